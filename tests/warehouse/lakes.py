"""Write small published lakes for warehouse tests, typed exactly as the lake types them.

Published the way publish.publish_run publishes (``publish.publish_tables``: one Delta commit per table
replacing whole ``visit_date`` partitions, then the lake's publication record), for the three keyed
tables (schema.TABLES) and the issues table (``data_issues``, whose issues without a date sit in the
null partition).
Rows hold what the lake stores, not what the API sent: an unrated visit has ``signee_rating`` None
(the lake's coercion turns 0, "" and out-of-range ratings into NULL).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
from letsjobit.lake import publish as lake_publish
from letsjobit.lake import schema, tables

# The lake's issues table and its schema (the lake owns both).
ISSUES_TABLE = schema.DATA_ISSUES_TABLE
ISSUES_SCHEMA = schema.DATA_ISSUES
# The folder of rows whose partition value is null, as pyarrow and DuckDB name it.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

FETCHED_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def visit(visit_id: str, visit_date: date, **columns) -> dict:
    """A visits row with plausible defaults; keyword arguments override any column."""
    row = {
        "visit_id": visit_id,
        "erp_id": visit_id.removeprefix("v"),
        "driver_id": "d1",
        "driver_name": "Liam",
        "visit_date": visit_date,
        "doc_no": f"H-{visit_id}",
        "site_id": "site-1",
        "customer": "The Green Sleeve",
        "territory": "AB-Aberdeen",
        "closed": False,
        "skipped": False,
        "created_at": datetime.combine(visit_date, datetime.min.time()) - timedelta(days=1),
        "modified_at": datetime.combine(visit_date, datetime.min.time()) + timedelta(hours=17),
        "has_signature": False,
        "line_count": 0,
        "run_id": "run-1",
        "fetched_at": FETCHED_AT,
    }
    row.update(columns)
    return row


def line(visit_row: dict, line_index: int, **columns) -> dict:
    """A visit_lines row of ``visit_row`` (same partition and lineage)."""
    row = {
        "visit_id": visit_row["visit_id"],
        "line_index": line_index,
        "visit_date": visit_row["visit_date"],
        "action_item": True,
        "description": "Boiler service",
        "qty": 1.0,
        "extra_data_count": 0,
        "run_id": visit_row["run_id"],
        "fetched_at": visit_row["fetched_at"],
    }
    row.update(columns)
    return row


def extra_field(line_row: dict, extra_index: int, **columns) -> dict:
    """A line_extra_data row of ``line_row``."""
    row = {
        "visit_id": line_row["visit_id"],
        "line_index": line_row["line_index"],
        "extra_index": extra_index,
        "visit_date": line_row["visit_date"],
        "name": "pressure",
        "caption": "Pressure",
        "type": "number",
        "value": "1.5",
        "value_number": 1.5,
        "run_id": line_row["run_id"],
        "fetched_at": line_row["fetched_at"],
    }
    row.update(columns)
    return row


def issue(visit_row: dict | None, check_name: str, field: str, raw_value, **columns) -> dict:
    """A data_issues row about ``visit_row`` (or about a record without one: pass None and the columns)."""
    table_name, _ = check_name.split(".", 1)
    row = {
        "run_id": visit_row["run_id"] if visit_row else "run-1",
        "table_name": table_name,
        "visit_id": visit_row["visit_id"] if visit_row else None,
        "line_index": None,
        "extra_index": None,
        "visit_date": visit_row["visit_date"] if visit_row else None,
        "field": field,
        "raw_value": raw_value,
        "check_name": check_name,
        "severity": "field",
        "action": "nulled",
        "reason": "out of range",
        "page_offset": 0,
        "fetched_at": visit_row["fetched_at"] if visit_row else FETCHED_AT,
    }
    row.update(columns)
    return row


def publish(layout, visits=(), lines=(), extra_data=(), dates=None, issues=()) -> set[date]:
    """Replace the partitions of ``dates`` (default: the dates of the rows given) with these rows.

    A partition named in ``dates`` with no rows is removed, as publish.publish_run does; the issues of
    a date are replaced with the date (``None`` in ``dates`` names the null partition). A table with
    no rows that was never published stays unpublished. Returns the visit dates replaced, as a caller
    names them to an incremental build.
    """
    rows = {
        "visits": list(visits),
        "visit_lines": list(lines),
        "line_extra_data": list(extra_data),
        ISSUES_TABLE: list(issues),
    }
    replaced = (
        set(dates) if dates is not None else {row["visit_date"] for batch in rows.values() for row in batch}
    )
    sources = {
        table: pa.Table.from_pylist(rows[table], schema=table_schema)
        for table, table_schema in schema.LAKE_TABLES.items()
        if rows[table] or tables.exists(layout, table)
    }
    partitions = sorted(None if day is None else day.isoformat() for day in replaced if day is not None)
    lake_publish.publish_tables(layout, "test-lake", sources, partitions + [None] * (None in replaced))
    return {day for day in replaced if day is not None}


SAMPLE_CUSTOMERS = ("The Green Sleeve", "Harbour Bar", "Kirk Cafe", "Old Mill")
SAMPLE_CITIES = ("Aberdeen", "Edinburgh", "Glasgow")


def sample(visits: int = 300, days: int = 40, seed: int = 7) -> dict[str, list[dict]]:
    """A seeded, varied lake's rows by table: drivers, territories, sites (each with its customer and
    city) with repeat equipment, ratings, skips, windows, the contradictions the lake keeps as sent
    (closed and skipped, closed without a close date), and their data issues (with one record
    quarantined for lack of a date)."""
    import random

    rng = random.Random(seed)
    first_day = date(2026, 10, 1)
    visit_rows, line_rows, extra_rows, issue_rows = [], [], [], []
    for number in range(visits):
        day = first_day + timedelta(days=rng.randrange(days))
        closed = rng.random() < 0.7
        skipped = not closed and rng.random() < 0.5
        created = datetime.combine(day, datetime.min.time()) - timedelta(hours=rng.randrange(1, 72))
        closed_at = datetime.combine(day, datetime.min.time()) + timedelta(
            seconds=rng.randrange(25_000, 75_000)
        )
        row = visit(
            f"v{number:05d}",
            day,
            driver_id=f"d{rng.randrange(8)}",
            driver_name=rng.choice(["Liam", "Ava", "Noah", "Mia"]),
            territory=rng.choice(["AB-Aberdeen", "ED-Edinburgh", "GL-Glasgow", None]),
            site_id=f"site-{rng.randrange(40)}",
            closed=closed,
            skipped=skipped,
            skipped_reason_id=rng.choice(["1", "2", "3", ""]) if skipped else None,
            signee_rating=rng.choice([None, None, 1, 2, 3, 4, 5, 5, 5, 4]) if closed else None,
            created_at=created,
            close_date=closed_at if closed else None,
            time_windows=[{"earliest": 30_600, "latest": 64_800}] if rng.random() < 0.8 else [],
            line_count=2,
        )
        # A site's customer and city follow from the site, several sites to a customer and a city.
        site_number = int(row["site_id"].removeprefix("site-"))
        row["customer"] = SAMPLE_CUSTOMERS[site_number % len(SAMPLE_CUSTOMERS)]
        row["city"] = SAMPLE_CITIES[site_number % len(SAMPLE_CITIES)]
        visit_rows.append(row)
        job = line(row, 0, serial_nr=f"SN-{row['site_id']}-{rng.randrange(2)}")
        material = line(row, 1, action_item=False, description="Filter")
        line_rows += [job, material]
        extra_rows.append(extra_field(job, 0))
        if closed and number % 29 == 0:  # sent closed and skipped: both kept
            row["skipped"] = True
            issue_rows.append(
                issue(row, "visits.not_closed_and_skipped", "skipped", '{"closed": true, "skipped": true}',
                      action="kept", reason="closed and skipped")
            )  # fmt: skip
        elif closed and number % 31 == 0:  # closed without a close date: kept
            row["close_date"] = None
            issue_rows.append(
                issue(row, "visits.close_date_when_closed", "closeDate", '{"closed": true, "closeDate": null}',
                      action="kept", reason="closed without close date")
            )  # fmt: skip
        if closed and row["signee_rating"] is None and number % 7 == 0:  # a rating of 9: nulled
            issue_rows.append(issue(row, "visits.signee_rating_in_range", "signeeRating", "9"))
    issue_rows.append(
        issue(None, "visits.date_valid", "date", "2026-02-30", severity="record", action="quarantined",
              reason="not a date", visit_id="v-no-date")
    )  # fmt: skip
    return {"visits": visit_rows, "lines": line_rows, "extra_data": extra_rows, "issues": issue_rows}


def publish_sample(layout, visits: int = 300, days: int = 40, seed: int = 7) -> set[date]:
    """Publish ``sample()``; returns the visit dates published."""
    return publish(layout, **sample(visits, days, seed))
