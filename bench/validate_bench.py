"""Benchmark of the validation gate: audit time and peak memory for staged runs of N visits.

    .venv/bin/python bench/validate_bench.py --visits 10000 1000000

Each size gets a fresh staged run (2 lines per visit, 1 extra data row per line, 30 visit dates, 1% of
visits with an out-of-range rating, which the gate NULLs and records, so the rewrite path runs on every
visits file), audited in a child process so that its peak RSS is the audit's own. Prints one line per
size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from letsjobit.config import DataLayout
from letsjobit.lake import schema

RUN_ID = "bench"
DAYS = 30


def _table(table_schema: pa.Schema, rows: int, columns: dict[str, pa.Array]) -> pa.Table:
    """A table of `rows` rows: the given columns, NULL elsewhere (lineage filled)."""
    fetched = pa.array(
        np.full(rows, np.datetime64("2026-11-24T10:00:00", "us")), pa.timestamp("us", tz="UTC")
    )
    filled = {"run_id": pa.array(np.full(rows, RUN_ID), pa.string()), "fetched_at": fetched} | columns
    arrays = [filled.get(f.name, pa.nulls(rows, f.type)).cast(f.type) for f in table_schema]
    return pa.Table.from_arrays(arrays, schema=table_schema)


def generate(layout: DataLayout, visits: int) -> dict[str, int]:
    rng = np.random.default_rng(7)
    ids = np.char.add("v", np.arange(visits).astype(str))
    dates = (np.datetime64("2026-11-01") + (np.arange(visits) % DAYS)).astype("datetime64[D]")
    rating = rng.integers(1, 6, visits)
    rating[rng.random(visits) < 0.01] = 7
    closed = rng.random(visits) < 0.6
    tables = {
        "visits": _table(
            schema.VISITS,
            visits,
            {
                "visit_id": pa.array(ids),
                "visit_date": pa.array(dates),
                "signee_rating": pa.array(rating),
                "lat": pa.array(rng.uniform(50, 60, visits)),
                "lng": pa.array(rng.uniform(-5, 2, visits)),
                "priority": pa.array(rng.integers(1, 11, visits)),
                "total_jobs": pa.array(rng.integers(0, 5, visits)),
                "closed": pa.array(closed),
                "skipped": pa.array(~closed & (rng.random(visits) < 0.1)),
                "close_date": pa.array(
                    np.where(closed, np.datetime64("2026-11-01T15:00", "us"), np.datetime64("NaT"))
                ),
                "has_signature": pa.array(closed),
            },
        )
    }
    line_visit = np.repeat(np.arange(visits), 2)
    line_columns = {
        "visit_id": pa.array(ids[line_visit]),
        "line_index": pa.array(np.tile([0, 1], visits)),
        "visit_date": pa.array(dates[line_visit]),
    }
    tables["visit_lines"] = _table(schema.VISIT_LINES, 2 * visits, line_columns)
    tables["line_extra_data"] = _table(
        schema.LINE_EXTRA_DATA,
        2 * visits,
        line_columns
        | {
            "extra_index": pa.array(np.zeros(2 * visits, dtype=np.int32)),
            "type": pa.array(np.full(2 * visits, "number")),
        },
    )
    for name, table in tables.items():
        ds.write_dataset(
            table,
            layout.staging / RUN_ID / name,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("visit_date", pa.date32())]), flavor="hive"),
            basename_template="part-{i}.parquet",
        )
    return {name: t.num_rows for name, t in tables.items()}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def audit_child(root: str, counts: str) -> None:
    from letsjobit.quality import audit, expectations

    rows = json.loads(counts)
    started = time.perf_counter()
    expectations.import_gx()
    imported = time.perf_counter()
    cpu_before = _cpu_seconds()
    result = audit.audit_run(RUN_ID, DataLayout(Path(root)), rows["visits"], rows)
    done = time.perf_counter()
    cpu = _cpu_seconds() - cpu_before
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "gx_import_s": imported - started,
                "audit_s": done - imported,
                "audit_cpu_s": cpu,
                "peak_rss_mib": peak_mib,
                "verdict": result.verdict.value,
                "field_issues": result.field_issues,
                "quarantined": {t: c["quarantined"] for t, c in result.counts.items()},
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visits", type=int, nargs="+", default=[10_000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        audit_child(*args.child)
        return
    for visits in args.visits:
        with tempfile.TemporaryDirectory() as tmp:
            layout = DataLayout(Path(tmp))
            started = time.perf_counter()
            counts = generate(layout, visits)
            generated = time.perf_counter() - started
            out = subprocess.run(
                [sys.executable, __file__, "--child", tmp, json.dumps(counts)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            print(
                f"{visits:>9,} visits ({counts['visit_lines']:,} lines, {counts['line_extra_data']:,} extra data): "
                f"audit {figures['audit_s']:.1f} s wall / {figures['audit_cpu_s']:.1f} s CPU "
                f"(+ GX import {figures['gx_import_s']:.1f} s), "
                f"peak RSS {figures['peak_rss_mib']:.0f} MiB, {figures['verdict']}, {figures['field_issues']:,} field "
                f"issues, quarantined {figures['quarantined']} "
                f"[generated in {generated:.1f} s, {dt.datetime.now():%H:%M}]",
                flush=True,
            )


if __name__ == "__main__":
    main()
