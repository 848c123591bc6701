"""Benchmark of the warehouse build: full and incremental, for lakes of N visits.

    .venv/bin/python bench/bench_warehouse.py --visits 1000000 10000000

For each size, DuckDB writes the lake's rows to parquet (the exact schemas of schema.py, partitioned
by visit_date over a year, 2 lines and 1 extraData row per visit, 0.1% of visits also present in an
older version in another partition), published into the lake's Delta tables, then the bench times,
dbt included (the builds run `dbt build` in this process, as the pipeline's task does):

- a full build (every partition read), with its peak RSS (sampled from /proc while it runs),
- an incremental build after one partition was republished with changed ratings,
- an incremental build after 22 consecutive partitions were republished (a daily window run),

each incremental one ``--repeat`` times (median), and prints the slowest models, the file size, a KPI
read, and as its last line per size:

    RESULT visits=N full_s=X full_peak_mb=Y incr1_s=Z incr22_s=W

With ``--floor`` it also prints, before that line, what any build of this lake costs at least on this
machine, whatever its models, so that the RESULT figures can be read against it:

    FLOOR visits=N copy_s=X replace22_s=Y unchanged_s=Z dbt_nodes=K dbt_s=D

- ``copy_s``: the lake's three tables copied, every column, into a new DuckDB file with the build's
  settings (one ``create table as`` each, as a full build must at least store the facts);
- ``replace22_s``: the 22 partitions of a window run deleted from those tables and inserted again
  from the lake, one transaction per table (the least an incremental build of the facts does);
- ``unchanged_s``: an incremental build with no partition changed (the runner and dbt's fixed cost:
  every node runs and finds nothing to do), the median of ``--repeat`` after the one that catches up;
- ``dbt_s``: ``dbt build`` of a project as large as ours (as many table models and data tests, as
  the last build's run_results.json counts them) whose models are one row each: dbt's own cost for
  ``dbt_nodes`` nodes, the median of ``--repeat``.

dbt's start-up (import and parse, once per process: a fresh Airflow task pays it once per build) is
printed apart. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from letsjobit.config import DataLayout
from letsjobit.lake import parquet, publish, schema, snapshot
from letsjobit.warehouse import build as warehouse
from letsjobit.warehouse import dbt_runner

FIRST_DAY = date(2025, 11, 1)
DAYS = 365
FACT_TABLES = ("visits", "visit_lines", "line_extra_data")
WINDOWS = {1: 200, 22: 300}  # partitions republished -> the day number of the first

# Column generators over `i` (the visit number) and `day` (its visit_date); columns not listed are NULL.
VISIT_COLUMNS = {
    "visit_id": "'v' || i",
    "erp_id": "cast(10000000 + i as varchar)",
    "driver_id": "'d' || (i % 400)",
    "driver_name": "'Driver ' || (i % 400)",
    "visit_date": "day",
    "total_jobs": "1",
    "doc_type": "'CALL OUT'",
    "doc_no": "'H-' || i",
    "service_order": "i % 12",
    "customer": "'Customer ' || (i % 20000)",
    "site_id": "cast(30000000 + i % 50000 as varchar)",
    "lat": "57.0 + (i % 1000) / 1000.0",
    "lng": "-2.0 - (i % 1000) / 1000.0",
    "address": "(i % 500) || ' High Street'",
    "post_code": "'AB' || (i % 99) || ' 3QR'",
    "city": "'INVERURIE'",
    "obs": "'Access 9am - 5.30pm, no parking onsite, visit ' || i",
    "contact_person": "'John'",
    "territory": "'T-' || (i % 30)",
    "country": "'GB'",
    "company_id": "'LPeaJNaLQT6RqcFdt'",
    "time_windows": "[{'earliest': 30600, 'latest': 64800}]",
    "required_skills": "['Plumber', 'Installer']",
    "closed": "i % 10 < 7",
    "skipped": "i % 10 = 7",
    "in_progress": "false",
    "duration": "2100",
    "created_at": "day - interval 2 day + to_seconds(i % 36000)",
    "modified_at": "day + to_seconds(36000 + i % 36000)",
    # as the lake stores it: 1..5 or NULL (no score, or a score out of range the lake nulled)
    "signee_rating": "case when i % 10 < 7 and i % 7 between 1 and 5 then (i % 7) end",
    "close_date": "case when i % 10 < 7 then day + to_seconds(30000 + i % 40000) end",
    "skipped_reason_id": "case when i % 10 = 7 then cast(i % 4 as varchar) end",
    "has_signature": "i % 10 < 7",
    "line_count": "2",
    "run_id": "'bench-1'",
    "fetched_at": "timestamptz '2026-11-01 10:00:00+00'",
}
LINE_COLUMNS = {
    "visit_id": "'v' || i",
    "line_index": "line_index",
    "visit_date": "day",
    "action_item": "line_index = 0",
    "brand": "'AQUARIUS'",
    "description": "case when line_index = 0 then 'Boiler service' else 'Filter' end",
    "job_type": "'repair'",
    "qty": "1.0",
    "serial_nr": "case when line_index = 0 then 'SN-' || (i % 50000) || '-' || (i % 3) end",
    "extra_data_count": "case when line_index = 0 then 1 else 0 end",
    "run_id": "'bench-1'",
    "fetched_at": "timestamptz '2026-11-01 10:00:00+00'",
}
EXTRA_COLUMNS = {
    "visit_id": "'v' || i",
    "line_index": "0",
    "extra_index": "0",
    "visit_date": "day",
    "name": "'pressure'",
    "caption": "'Pressure'",
    "type": "'number'",
    "value": "cast(1 + (i % 20) / 10.0 as varchar)",
    "value_number": "1 + (i % 20) / 10.0",
    "run_id": "'bench-1'",
    "fetched_at": "timestamptz '2026-11-01 10:00:00+00'",
}


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type that parquet-round-trips to ``arrow_type``."""
    if pa.types.is_list(arrow_type):
        return duckdb_type(arrow_type.value_type) + "[]"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f"{f.name} {duckdb_type(f.type)}" for f in arrow_type)
        return f"struct({fields})"
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    return {
        pa.string(): "varchar",
        pa.int64(): "bigint",
        pa.int32(): "integer",
        pa.int8(): "tinyint",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        pa.date32(): "date",
    }[arrow_type]


def select_list(table_schema: pa.Schema, generators: dict[str, str], overrides: dict[str, str]) -> str:
    columns = generators | overrides
    return ", ".join(
        f"cast({columns.get(f.name, 'null')} as {duckdb_type(f.type)}) as {f.name}" for f in table_schema
    )


def write_lake(
    layout: DataLayout,
    visits: int,
    where: str = "true",
    overrides: dict | None = None,
    days: list[date] | None = None,
    run: str = "bench-1",
) -> None:
    """Write lake rows with DuckDB, typed exactly as schema.py, and publish them into the lake's Delta
    tables (the whole tables, or, with ``days`` and the matching ``where``, those partitions)."""
    overrides = overrides or {}
    source = layout.root / "bench_source"
    shutil.rmtree(source, ignore_errors=True)
    connection = duckdb.connect()
    connection.execute("set preserve_insertion_order = false")
    numbers = f"select i, date '{FIRST_DAY}' + cast(i % {DAYS} as integer) as day from range({visits}) t(i)"
    # 0.1% of visits also sit, in an older version, in the partition of the day before.
    moved = f"select i, day - 1 as day from ({numbers}) where i % 1000 = 0 and day > date '{FIRST_DAY}'"
    moved_overrides = {"modified_at": "day - interval 1 day", "run_id": "'bench-0'"}
    for table, generators, fanout in (
        ("visits", VISIT_COLUMNS, "(select 0 as line_index)"),
        ("visit_lines", LINE_COLUMNS, "(select unnest([0, 1]) as line_index)"),
        ("line_extra_data", EXTRA_COLUMNS, "(select 0 as line_index)"),
    ):
        table_schema = schema.TABLES[table]
        current = select_list(table_schema, generators, overrides)
        older = select_list(table_schema, generators, overrides | moved_overrides)
        query = (
            f"select {current} from ({numbers}) cross join {fanout} where {where} "
            f"union all select {older} from ({moved}) cross join {fanout} where {where}"
        )
        target = source / table
        target.mkdir(parents=True, exist_ok=True)
        connection.execute(
            f"copy ({query}) to '{target}' (format parquet, partition_by (visit_date), "
            "write_partition_columns true, overwrite_or_ignore true, filename_pattern 'part-{uuid}')"
        )
    connection.close()
    sources = {table: parquet.dataset(source / table) for table in schema.TABLES}
    publish.publish_tables(layout, run, sources, None if days is None else [day.isoformat() for day in days])
    shutil.rmtree(source)


def republish(layout: DataLayout, visits: int, days: list[date], run: str) -> None:
    """Replace whole partitions, as publish.publish_run does: ratings and run id change."""
    listed = ", ".join(f"date '{day}'" for day in days)
    write_lake(
        layout,
        visits,
        where=f"day in ({listed})",
        overrides={"signee_rating": "5", "run_id": f"'{run}'", "fetched_at": "now()"},
        days=days,
        run=run,
    )


def timed_build(label: str, layout: DataLayout, **arguments) -> tuple[float, float]:
    """One build, reported with its wall time, the CPU time it used (load-independent), the load and
    its peak RSS; returns (wall seconds, peak RSS MB)."""
    sampler = RssSampler()
    cpu = time.process_time()
    with sampler:
        result = warehouse.build(layout, **arguments)
    cpu = time.process_time() - cpu
    slowest = sorted(result.model_seconds.items(), key=lambda item: -item[1])[:5]
    size = layout.warehouse.stat().st_size / 1e6
    print(
        f"  {label:<26} {result.seconds:7.1f} s wall, {cpu:7.1f} s CPU ({result.mode}, "
        f"{len(result.changed_partitions)} partitions read, file {size:,.0f} MB, "
        f"load average {os.getloadavg()[0]:.1f}, peak RSS {sampler.peak_mb:,.0f} MB)",
        flush=True,
    )
    print("      slowest models: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in slowest))
    return result.seconds, sampler.peak_mb


class RssSampler:
    """The process's peak resident set while the block runs, read from /proc every 20 ms."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        while True:
            with open("/proc/self/statm") as statm:
                self.peak_mb = max(self.peak_mb, int(statm.read().split()[1]) * page_mb)
            if self._stop.wait(0.02):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def dbt_start_up(root: Path) -> float:
    """Import dbt and parse the project once, as the first build of a process does."""
    from letsjobit.warehouse import dbt_runner

    started = time.monotonic()
    dbt_runner.run(root / "parse" / "warehouse.duckdb", root / "parse-state", command="parse")
    return time.monotonic() - started


def window(count: int) -> list[date]:
    return [FIRST_DAY + timedelta(days=WINDOWS[count] + offset) for offset in range(count)]


def storage_floor(layout: DataLayout, days: list[date], memory_limit: str | None) -> tuple[float, float]:
    """Seconds to copy the lake's tables into a new DuckDB file, and to replace ``days`` in them:
    the storage work a full and an incremental build cannot avoid, with the build's reads and settings."""
    work = layout.root / "floor"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        lake = snapshot.take(layout, work / "lake_snapshot")
        sources = warehouse._source_sql(lake, work)
        build_profile = dbt_runner.profile(work / "floor.duckdb", work / "spill", 1, memory_limit)
        options = build_profile[dbt_runner.PROFILE]["outputs"]["build"]["config_options"]
        with duckdb.connect(config=options) as connection:
            connection.execute(
                f"attach '{work / 'floor.duckdb'}' as floor (storage_version '{warehouse.STORAGE_VERSION}')"
            )
            connection.execute("use floor")
            started = time.monotonic()
            for table in FACT_TABLES:
                connection.execute(f"create table {table} as select * from {sources[table]}")
            connection.execute("checkpoint")
            copy_s = time.monotonic() - started
            listed = ", ".join(f"date '{day}'" for day in days)
            started = time.monotonic()
            for table in FACT_TABLES:
                connection.execute("begin")
                connection.execute(f"delete from {table} where visit_date in ({listed})")
                connection.execute(
                    f"insert into {table} select * from {sources[table]} where visit_date in ({listed})"
                )
                connection.execute("commit")
            connection.execute("checkpoint")
            replace_s = time.monotonic() - started
        return copy_s, replace_s
    finally:
        shutil.rmtree(work, ignore_errors=True)


def dbt_floor(layout: DataLayout, repeat: int) -> tuple[int, float]:
    """(nodes, median seconds) of ``dbt build`` on a project with as many table models and data tests
    as the last build ran, each model one row: what dbt itself costs for that many nodes."""
    results = json.loads((layout.state / "dbt" / "target" / "run_results.json").read_text())["results"]
    models = sum(1 for result in results if result["unique_id"].startswith("model."))
    tests = sum(1 for result in results if result["unique_id"].startswith("test."))
    project_dir = layout.root / "dbt-floor"
    (project_dir / "models").mkdir(parents=True)
    (project_dir / "dbt_project.yml").write_text(
        f"name: floor\nversion: '1.0.0'\nconfig-version: 2\nprofile: {dbt_runner.PROFILE}\n"
        "models:\n  floor:\n    +materialized: table\n"
    )
    columns = []
    for index in range(models):  # a chain, as the project's layers are
        source = "select 1 as id" if index == 0 else f"select id from {{{{ ref('m{index - 1}') }}}}"
        (project_dir / "models" / f"m{index}.sql").write_text(source)
        columns.append({"name": f"m{index}", "columns": [{"name": "id", "data_tests": []}]})
    for index in range(tests):
        columns[index % models]["columns"][0]["data_tests"].append(
            ["unique", "not_null"][index // models % 2]
        )
    (project_dir / "models" / "models.yml").write_text(json.dumps({"version": 2, "models": columns}))
    database = layout.root / "dbt-floor-build" / "warehouse.duckdb"
    database.parent.mkdir()
    state = layout.root / "dbt-floor-state"
    dbt_runner.run(database, state, command="parse", project_dir=project_dir)
    seconds = []
    for _ in range(repeat):
        started = time.monotonic()
        nodes = dbt_runner.run(database, state, project_dir=project_dir)
        seconds.append(time.monotonic() - started)
    return len(nodes), statistics.median(seconds)


def bench(visits: int, keep: bool, repeat: int, memory_limit: str | None, floor: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"bench-warehouse-{visits}-"))
    layout = DataLayout(root)
    try:
        (root / "parse").mkdir()
        print(f"dbt start-up (import and parse, once per process): {dbt_start_up(root):.1f} s", flush=True)
        started = time.monotonic()
        write_lake(layout, visits)
        lake_mb = sum(p.stat().st_size for p in layout.lake.rglob("*.parquet")) / 1e6  # a local lake
        print(
            f"{visits:,} visits: lake written in {time.monotonic() - started:.0f} s "
            f"({lake_mb:,.0f} MB parquet, {DAYS} partitions, {root})",
            flush=True,
        )

        full_s, full_mb = timed_build("full build", layout, run_id="bench-full", memory_limit=memory_limit)
        incremental: dict[int, list[float]] = {count: [] for count in WINDOWS}
        # One size after the other: an incremental build starts from the build before the last (the
        # standby), so its first build of a size also reloads what the previous size's last one changed.
        for count in WINDOWS:
            for attempt in range(repeat):
                days = window(count)
                run = f"bench-{count}-{attempt}"
                republish(layout, visits, days, run)
                seconds, _ = timed_build(
                    f"incremental, {count} partition{'s' if count > 1 else ''}",
                    layout,
                    changed_dates=days,
                    run_id=run,
                    memory_limit=memory_limit,
                )
                incremental[count].append(seconds)

        if floor:
            unchanged = []
            for attempt in range(repeat + 1):  # the first catches the standby up with the last window
                seconds, _ = timed_build(
                    "incremental, no change",
                    layout,
                    changed_dates=[],
                    run_id=f"bench-0-{attempt}",
                    memory_limit=memory_limit,
                )
                unchanged.append(seconds)
            copy_s, replace_s = storage_floor(layout, window(22), memory_limit)
            nodes, dbt_s = dbt_floor(layout, repeat)
            print(
                f"FLOOR visits={visits} copy_s={copy_s:.1f} replace22_s={replace_s:.1f} "
                f"unchanged_s={statistics.median(unchanged[1:]):.1f} dbt_nodes={nodes} dbt_s={dbt_s:.1f}",
                flush=True,
            )

        connection = warehouse.connect_read_only(layout.warehouse)
        try:
            started = time.monotonic()
            connection.execute(
                "select driver_id, 100.0 * (sum(promoters) - sum(detractors)) / sum(rated_visits) as nps "
                "from marts.kpi_driver_daily group by driver_id order by nps desc limit 10"
            ).fetchall()
            kpi_ms = (time.monotonic() - started) * 1000
            started = time.monotonic()
            rows = connection.execute(
                "select territory, count(*), avg(hours_to_close) from marts.fct_visits group by territory"
            ).fetchall()
            fact_ms = (time.monotonic() - started) * 1000
        finally:
            connection.close()
        print(
            f"  reads: top drivers by NPS from kpi_driver_daily {kpi_ms:.0f} ms; "
            f"{len(rows)} territories aggregated over fct_visits {fact_ms:.0f} ms"
        )
        print(
            f"RESULT visits={visits} full_s={full_s:.1f} full_peak_mb={full_mb:.0f} "
            f"incr1_s={statistics.median(incremental[1]):.1f} incr22_s={statistics.median(incremental[22]):.1f}",
            flush=True,
        )
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--keep", action="store_true", help="keep the generated lake and warehouse")
    parser.add_argument("--log", action="store_true", help="show the runner's per-model log")
    parser.add_argument("--repeat", type=int, default=3, help="incremental builds of each size (median)")
    parser.add_argument(
        "--memory-limit", default=None, help="DuckDB memory_limit for the builds (default: the build's)"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also print the FLOOR line: what any build costs at least here"
    )
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO if arguments.log else logging.WARNING)
    for visits in arguments.visits:
        bench(visits, arguments.keep, arguments.repeat, arguments.memory_limit, arguments.floor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
