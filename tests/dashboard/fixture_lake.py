"""A small published lake with awkward cases on purpose, and the real warehouse built over it.

The dashboard tests read marts that `warehouse.build()` made, so what they check is the dashboard
against the real KPI tables, not against a stand-in. The data has:
a first week with no ratings at all (FIRST_DAY..UNRATED_UNTIL), a day with no visits (GAP_DAY), a
territory whose visits are never rated, a driver with a single rating of 5, visits without a
territory or a site ('(unknown)' in the KPI tables and dims), unrated visits, skips with and
without a reason, time windows, and equipment serviced again within 30 days (repeat visits). The rows
hold what the lake stores (a score of 0 or out of range is NULL), and the lake's data issues of
those visits (a few each day, of several checks and actions, and some without a date).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
from letsjobit import config
from letsjobit.lake import publish as lake_publish
from letsjobit.lake import schema
from letsjobit.warehouse import build as warehouse

from tests.warehouse import lakes

FIRST_DAY = date(2026, 9, 1)
LAST_DAY = date(2026, 10, 31)
GAP_DAY = date(2026, 10, 15)  # no visits at all
UNRATED_UNTIL = date(2026, 9, 7)  # nobody rated a visit up to and including this day
TERRITORIES = ("AB-Aberdeen", "DD-Dundee", "EH-Edinburgh", "IV-Inverness")
UNRATED_TERRITORY = "IV-Inverness"
UNKNOWN = "(unknown)"  # the warehouse's label for an empty key
DRIVERS = {"d-liam": "Liam", "d-ava": "Ava", "d-noah": "Noah", "d-mia": "Mia"}
SINGLE_RATING_DRIVER = "d-mia"
CUSTOMERS = {
    f"3010{n:04d}": name
    for n, name in enumerate(
        ("The Green Sleeve", "Harbour Bar", "Kirk Cafe", "Old Mill", "Station Hotel", "Bridge Inn"), start=1
    )
}
SKIP_REASONS = ("1", "2", "3", None)
OPENING_HOURS = [{"earliest": 8 * 3600 + 1800, "latest": 18 * 3600}]  # 08:30-18:00
FETCHED_AT = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
# Two data sets with different KPIs, for tests that swap one build for another: run_id -> sample().
DATA_SETS = {"build-a": {"seed": 7}, "build-b": {"seed": 8, "scale": 3}}


def sample(seed: int = 7, scale: int = 1) -> tuple[list[dict], list[dict]]:
    """(visits, visit_lines) rows typed by schema.py, reproducible from the seed."""
    rng = random.Random(seed)
    visits: list[dict] = []
    lines: list[dict] = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        if day != GAP_DAY:
            for _ in range(rng.randint(1, 6) * scale):
                _add_visit(rng, visits, lines, day)
        day += timedelta(days=1)
    _add_visit(rng, visits, lines, date(2026, 10, 20), driver_id=SINGLE_RATING_DRIVER, rating=5)
    return visits, lines


def _add_visit(rng, visits, lines, day: date, driver_id: str | None = None, rating: int | None = -1) -> None:
    visit_id = f"v{len(visits) + 1:05d}"
    driver_id = driver_id or rng.choice([d for d in DRIVERS if d != SINGLE_RATING_DRIVER])
    territory = rng.choice((*TERRITORIES, *TERRITORIES, None))
    site_id = rng.choice((*CUSTOMERS, *CUSTOMERS, None))
    closed = rng.random() < 0.7
    skipped = not closed and rng.random() < 0.5
    if rating == -1:
        rating = rng.choice([None, None, 1, 2, 3, 4, 4, 5, 5, 5]) if closed else None  # sent 0: no score
        if day <= UNRATED_UNTIL or territory == UNRATED_TERRITORY:
            rating = rng.choice([None, None])
    midnight = datetime.combine(day, datetime.min.time())
    jobs = rng.randint(0, 3)
    visits.append(
        {
            "visit_id": visit_id,
            "erp_id": visit_id[1:],
            "driver_id": driver_id,
            "driver_name": DRIVERS[driver_id],
            "visit_date": day,
            "site_id": site_id,
            "customer": CUSTOMERS.get(site_id),
            "territory": territory,
            "closed": closed,
            "skipped": skipped,
            "skipped_reason_id": rng.choice(SKIP_REASONS) if skipped else None,
            "signee_rating": rating,
            "time_windows": OPENING_HOURS if rng.random() < 0.8 else [],
            "created_at": midnight - timedelta(hours=rng.randint(2, 96)),
            "modified_at": midnight + timedelta(hours=20),
            "close_date": midnight + timedelta(minutes=rng.randint(7 * 60, 20 * 60)) if closed else None,
            "total_jobs": jobs,
            "has_signature": closed,
            "line_count": jobs + 1,
            "run_id": "fixture",
            "fetched_at": FETCHED_AT,
        }
    )
    for index in range(jobs + 1):
        is_job = index < jobs
        lines.append(
            {
                "visit_id": visit_id,
                "line_index": index,
                "visit_date": day,
                "action_item": is_job,
                "description": "Service" if is_job else "Parts",
                "serial_nr": f"SN-{site_id}-{rng.randint(0, 9)}" if is_job else None,
                "qty": 1.0,
                "extra_data_count": 0,
                "run_id": "fixture",
                "fetched_at": FETCHED_AT,
            }
        )


# The data issues the fixture's lake carries: (check, field, raw value, action), one kind per visit
# number that divides by the step.
ISSUE_KINDS = (
    (3, "visits.signee_rating_in_range", "signeeRating", "9", "nulled"),
    (5, "visits.lat_in_range", "lat", "200.5", "nulled"),
    (7, "visits.doc_type_known", "docType", "AUDIT", "kept"),
)
UNDATED_ISSUES = 2


def data_issues(visits: list[dict]) -> list[dict]:
    """The issues of these visits (ISSUE_KINDS), and UNDATED_ISSUES records quarantined without a date."""
    issues = []
    for number, visit in enumerate(visits):
        for step, check, field, raw_value, action in ISSUE_KINDS:
            if number % step == 0:
                issues.append(lakes.issue(visit, check, field, raw_value, action=action))
    for number in range(UNDATED_ISSUES):
        issues.append(
            lakes.issue(
                None, "visits.date_valid", "date", f"2026-02-3{number}", severity="record",
                action="quarantined", reason="not a date", visit_id=f"undated-{number}",
            )
        )  # fmt: skip
    return issues


def publish(
    layout: config.DataLayout, visits: list[dict], lines: list[dict], issues: list[dict] = ()
) -> None:
    """Replace the whole published lake with these rows (a full refresh, as publish.publish_run does)."""
    rows = {"visits": visits, "visit_lines": lines, "line_extra_data": [], lakes.ISSUES_TABLE: list(issues)}
    sources = {
        table: pa.Table.from_pylist(rows[table], schema=table_schema)
        for table, table_schema in schema.LAKE_TABLES.items()
    }
    lake_publish.publish_tables(layout, run_id="fixture-lake", sources=sources, dates=None)


def build(layout: config.DataLayout, seed: int = 7, scale: int = 1, run_id: str = "fixture-run") -> None:
    """Publish the sample lake and build the real warehouse over it (full build)."""
    visits, lines = sample(seed, scale)
    publish(layout, visits, lines, data_issues(visits))
    warehouse.build(layout, run_id=run_id, validation={"verdict": "pass", "report_path": None})
