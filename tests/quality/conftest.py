"""Builders of staged runs for the validation tests: typed parquet written straight from schema.py.

The rows are good unless a test overrides a value; `write_staged` writes them as the lake does (hive
`visit_date=` folders, NULL dates under `__HIVE_DEFAULT_PARTITION__`), with the flattener's issues, if a
test gives any, as the `data_issues` table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from letsjobit.config import DataLayout
from letsjobit.lake import schema

RUN_ID = "manual__2026-11-24T10:00:00+00:00"
FETCHED_AT = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
DATES = (dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3))


def visit(visit_id: str, visit_date: dt.date | None = DATES[0], **values) -> dict:
    row = {
        "visit_id": visit_id,
        "visit_date": visit_date,
        "erp_id": f"erp-{visit_id}",
        "signee_rating": 4,
        "lat": 57.0,
        "lng": -2.0,
        "priority": 3,
        "total_jobs": 1,
        "closed": True,
        "skipped": False,
        "close_date": dt.datetime(2026, 11, 1, 15, 45),
        "has_signature": True,
        "line_count": 2,
        "run_id": RUN_ID,
        "fetched_at": FETCHED_AT,
    }
    return row | values


def line(visit_id: str, line_index: int, visit_date: dt.date | None = DATES[0], **values) -> dict:
    row = {
        "visit_id": visit_id,
        "line_index": line_index,
        "visit_date": visit_date,
        "description": f"job {line_index}",
        "qty": 1.0,
        "extra_data_count": 1,
        "run_id": RUN_ID,
        "fetched_at": FETCHED_AT,
    }
    return row | values


def extra(visit_id: str, line_index: int, extra_index: int, visit_date=DATES[0], **values) -> dict:
    row = {
        "visit_id": visit_id,
        "line_index": line_index,
        "extra_index": extra_index,
        "visit_date": visit_date,
        "name": "meter",
        "type": "number",
        "value": "12",
        "value_number": 12.0,
        "run_id": RUN_ID,
        "fetched_at": FETCHED_AT,
    }
    return row | values


def flattener_issue(visit_id: str, check: str, raw_value: str | None, visit_date=DATES[0], **values) -> dict:
    """A data_issues row as the flattener stages it."""
    from letsjobit.quality import suites

    definition = suites.ALL_CHECKS[check]
    row = {
        "run_id": RUN_ID,
        "table_name": definition.table,
        "visit_id": visit_id,
        "visit_date": visit_date,
        "field": definition.api_field,
        "raw_value": raw_value,
        "check_name": check,
        "severity": definition.severity.value,
        "action": definition.action.value,
        "reason": definition.description,
        "page_offset": 0,
        "fetched_at": FETCHED_AT,
    }
    return row | values


def good_rows(visits: int, lines_per_visit: int = 2, extras_per_line: int = 1) -> dict[str, list[dict]]:
    """A consistent run: visits spread over three dates, each with its lines and their extra data."""
    rows: dict[str, list[dict]] = {name: [] for name in schema.TABLES}
    for n in range(visits):
        visit_id, day = f"v{n:05d}", DATES[n % len(DATES)]
        rows["visits"].append(visit(visit_id, day))
        for li in range(lines_per_visit):
            rows["visit_lines"].append(line(visit_id, li, day))
            rows["line_extra_data"].extend(extra(visit_id, li, ei, day) for ei in range(extras_per_line))
    return rows


def write_staged(
    layout: DataLayout,
    rows: dict[str, list[dict]],
    run_id: str = RUN_ID,
    schemas: dict[str, pa.Schema] | None = None,
    visit_date_in_files: bool = False,
) -> Path:
    """Write the rows as the run's staged tables; `schemas` replaces a table's schema (to break it)."""
    run_dir = layout.staging / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, table_rows in rows.items():
        table_schema = (schemas or {}).get(name, schema.LAKE_TABLES[name])
        table = pa.Table.from_pylist(
            [{k: v for k, v in row.items() if k in table_schema.names} for row in table_rows],
            schema=table_schema,
        )
        if visit_date_in_files:
            for day in sorted({r["visit_date"] for r in table_rows}, key=str):
                folder = run_dir / name / f"visit_date={day or '__HIVE_DEFAULT_PARTITION__'}"
                folder.mkdir(parents=True, exist_ok=True)
                mask = [r["visit_date"] == day for r in table_rows]
                pq.write_table(table.filter(pa.array(mask)), folder / "part-0.parquet")
            continue
        ds.write_dataset(
            table,
            run_dir / name,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("visit_date", pa.date32())]), flavor="hive"),
            basename_template="part-{i}.parquet",
            existing_data_behavior="overwrite_or_ignore",
        )
    return run_dir


def read_staged(layout: DataLayout, table: str, run_id: str = RUN_ID) -> pa.Table:
    return read_tree(layout.staging / run_id / table)


def read_audited(layout: DataLayout, table: str, run_id: str = RUN_ID) -> pa.Table:
    """A table of the run's audited output: what publishing takes."""
    return read_tree(layout.audited(run_id) / table, schema.LAKE_TABLES[table])


def read_tree(root: Path, table_schema: pa.Schema | None = None) -> pa.Table:
    if not root.exists():
        return table_schema.empty_table()
    return ds.dataset(
        root,
        schema=table_schema,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("visit_date", pa.date32())]), flavor="hive"),
    ).to_table()


def keys_of(table: pa.Table, name: str) -> list[tuple]:
    columns = schema.KEYS[name]
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with the hash of its bytes: equal digests mean nothing was touched."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    return DataLayout(tmp_path / "data")
