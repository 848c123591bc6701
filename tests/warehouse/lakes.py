"""Write small published lakes for warehouse tests, typed exactly by include/letsjobit/schema.py.

Mirrors what lake.publish_run leaves behind: ``layout.table(name) / visit_date=YYYY-MM-DD /
*.parquet``, a whole partition replaced at a time.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import count

import pyarrow as pa
import pyarrow.parquet as pq

from include.letsjobit import schema

FETCHED_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
_files = count()


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


def publish(layout, visits=(), lines=(), extra_data=(), dates=None) -> set[date]:
    """Replace the partitions of ``dates`` (default: the dates of the rows given) with these rows.

    A partition named in ``dates`` with no rows is removed, as lake.publish_run does. Returns the
    dates replaced.
    """
    rows = {"visits": list(visits), "visit_lines": list(lines), "line_extra_data": list(extra_data)}
    by_partition: dict[tuple[str, date], list[dict]] = defaultdict(list)
    for table, table_rows in rows.items():
        for row in table_rows:
            by_partition[(table, row["visit_date"])].append(row)
    replaced = set(dates) if dates is not None else {day for _, day in by_partition}
    for table, table_schema in schema.TABLES.items():
        for day in replaced:
            folder = layout.table(table) / f"visit_date={day.isoformat()}"
            shutil.rmtree(folder, ignore_errors=True)
            partition_rows = by_partition.get((table, day))
            if partition_rows:
                folder.mkdir(parents=True)
                pq.write_table(
                    pa.Table.from_pylist(partition_rows, schema=table_schema),
                    folder / f"part-{next(_files):05d}.parquet",
                )
    return replaced


def publish_sample(layout, visits: int = 300, days: int = 40, seed: int = 7) -> set[date]:
    """A seeded, varied lake: drivers, territories, sites with repeat equipment, ratings, skips, windows."""
    import random

    rng = random.Random(seed)
    first_day = date(2026, 10, 1)
    visit_rows, line_rows, extra_rows = [], [], []
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
            signee_rating=rng.choice([None, 0, 1, 2, 3, 4, 5, 5, 5, 4]) if closed else None,
            created_at=created,
            close_date=closed_at if closed else None,
            time_windows=[{"earliest": 30_600, "latest": 64_800}] if rng.random() < 0.8 else [],
            line_count=2,
        )
        visit_rows.append(row)
        job = line(row, 0, serial_nr=f"SN-{row['site_id']}-{rng.randrange(2)}")
        material = line(row, 1, action_item=False, description="Filter")
        line_rows += [job, material]
        extra_rows.append(extra_field(job, 0))
    return publish(layout, visit_rows, line_rows, extra_rows)
