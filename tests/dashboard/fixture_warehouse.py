"""A small warehouse with the marts' contract names (issue 6), built from hand-shaped visits.

Stand-in until the real `warehouse.build()` is on main. The data has the awkward cases on purpose:
a first week with no ratings at all, a day with no visits (FIRST_DAY + GAP_DAY), a territory whose
visits are never rated, and a driver with a single rating of 5.
"""

from __future__ import annotations

import os
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

FIRST_DAY = date(2026, 9, 1)
LAST_DAY = date(2026, 10, 31)
GAP_DAY = date(2026, 10, 15)  # no visits at all
UNRATED_UNTIL = date(2026, 9, 7)  # nobody rated a visit up to and including this day
TERRITORIES = ("AB-Aberdeen", "DD-Dundee", "EH-Edinburgh", "IV-Inverness")
UNRATED_TERRITORY = "IV-Inverness"
DRIVERS = {"d-liam": "Liam", "d-ava": "Ava", "d-noah": "Noah", "d-mia": "Mia"}
SINGLE_RATING_DRIVER = "d-mia"
CUSTOMERS = {
    f"3010{n:04d}": name
    for n, name in enumerate(
        ("The Green Sleeve", "Harbour Bar", "Kirk Cafe", "Old Mill", "Station Hotel", "Bridge Inn"), start=1
    )
}
SKIP_REASONS = ("1", "2", "3", None)


def sample_visits(seed: int = 7, scale: int = 1) -> list[dict]:
    """Visits at fct_visits grain (a few per day), reproducible from the seed."""
    rng = random.Random(seed)
    visits = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        if day != GAP_DAY:
            for _ in range(rng.randint(1, 6) * scale):
                visits.append(_visit(rng, len(visits) + 1, day))
        day += timedelta(days=1)
    # The single-rating driver: one visit, rated 5.
    visits.append(
        _visit(
            rng,
            len(visits) + 1,
            date(2026, 10, 20),
            driver_id=SINGLE_RATING_DRIVER,
            rating=5,
            territory="AB-Aberdeen",
        )
    )
    return visits


def _visit(rng: random.Random, number: int, day: date, driver_id=None, rating=-1, territory=None) -> dict:
    driver_id = driver_id or rng.choice([d for d in DRIVERS if d != SINGLE_RATING_DRIVER])
    territory = territory or rng.choice(TERRITORIES)
    site_id = rng.choice(list(CUSTOMERS))
    closed = rng.random() < 0.7
    skipped = not closed and rng.random() < 0.5
    if rating == -1:
        rating = rng.choice([None, 1, 2, 3, 4, 4, 5, 5, 5]) if closed else None
        if day <= UNRATED_UNTIL or territory == UNRATED_TERRITORY:
            rating = None
    has_windows = rng.random() < 0.8
    created = datetime.combine(day, datetime.min.time()) - timedelta(days=rng.randint(1, 5))
    closed_at = (
        datetime.combine(day, datetime.min.time()) + timedelta(hours=rng.randint(7, 19)) if closed else None
    )
    return {
        "visit_id": f"v{number:05d}",
        "visit_date": day,
        "driver_id": driver_id,
        "driver_name": DRIVERS[driver_id],
        "site_id": site_id,
        "customer": CUSTOMERS[site_id],
        "territory": territory,
        "is_closed": closed,
        "is_skipped": skipped,
        "rating": rating,
        "skipped_reason_id": rng.choice(SKIP_REASONS) if skipped else None,
        "jobs": rng.randint(0, 3),
        "closed_within_window": (rng.random() < 0.75) if closed and has_windows else None,
        "hours_to_close": (closed_at - created).total_seconds() / 3600 if closed else None,
    }


KPI_SELECT = """
    count(*) as visits,
    count(*) filter (where is_closed) as closed_visits,
    count(*) filter (where is_skipped) as skipped_visits,
    count(*) filter (where is_rated) as rated_visits,
    count(*) filter (where is_promoter) as promoters,
    count(*) filter (where is_passive) as passives,
    count(*) filter (where is_detractor) as detractors,
    100.0 * (count(*) filter (where is_promoter) - count(*) filter (where is_detractor))
        / nullif(count(*) filter (where is_rated), 0) as nps,
    count(*) filter (where is_closed) / count(*) as close_rate,
    count(*) filter (where is_skipped) / count(*) as skip_rate,
    avg(rating) as avg_rating,
    count(*) filter (where rating >= 4) / nullif(count(*) filter (where is_rated), 0) as csat
"""


def build(
    path: Path,
    visits: list[dict],
    run_id: str = "fixture-run",
    verdict: str = "passed",
    report_path: str | None = None,
) -> None:
    """Writes the fixture warehouse next to ``path`` and renames it into place (as the real build does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    with duckdb.connect(str(temporary)) as con:
        con.execute("begin")  # one commit: a fixture build stays quick
        con.execute("create schema marts")
        con.execute(
            """
            create table marts.fct_visits (
                visit_id varchar primary key, visit_date date, driver_id varchar, driver_name varchar,
                site_id varchar, customer varchar, territory varchar, is_closed boolean, is_skipped boolean,
                rating tinyint, skipped_reason_id varchar, jobs integer, closed_within_window boolean,
                hours_to_close double,
                is_rated boolean generated always as (coalesce(rating between 1 and 5, false)),
                is_promoter boolean generated always as (coalesce(rating = 5, false)),
                is_passive boolean generated always as (coalesce(rating = 4, false)),
                is_detractor boolean generated always as (coalesce(rating between 1 and 3, false))
            )
            """
        )
        if visits:
            rows = pa.Table.from_pylist(visits)  # noqa: F841 (read by the statement below)
            con.execute(f"insert into marts.fct_visits ({', '.join(rows.column_names)}) select * from rows")
        con.execute(
            "create table marts.dim_drivers as select distinct driver_id, driver_name from marts.fct_visits"
        )
        con.execute(
            "create table marts.dim_customers as select site_id, any_value(customer) as customer "
            "from marts.fct_visits group by site_id"
        )
        con.execute("create table marts.dim_territories as select distinct territory from marts.fct_visits")
        con.execute(
            f"create table marts.kpi_daily as select visit_date, {KPI_SELECT} from marts.fct_visits group by all"
        )
        con.execute(
            f"create table marts.kpi_driver_daily as select visit_date, driver_id, driver_name, {KPI_SELECT} "
            "from marts.fct_visits group by all"
        )
        con.execute(
            f"create table marts.kpi_territory_daily as select visit_date, territory, {KPI_SELECT} "
            "from marts.fct_visits group by all"
        )
        con.execute(
            "create table marts.build_info as select now()::timestamp as built_at, ? as run_id, "
            "? as validation_verdict, ? as report_path, ? as visits",
            [run_id, verdict, report_path, len(visits)],
        )
        con.execute("commit")
    os.replace(temporary, path)
