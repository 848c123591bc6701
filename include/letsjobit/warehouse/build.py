"""Build the DuckDB warehouse with the dbt project in ``sql/`` and publish it without disturbing readers.

``build(layout, changed_dates=None, run_id=None, validation=None)`` runs ``dbt build`` (every model,
then its tests) over one snapshot of the published lake, in a new file, and publishes that file as
``layout.warehouse``. dbt does the modelling; this module does what dbt cannot: read one consistent
lake state, decide full or incremental, hand dbt its sources, and publish atomically.

Publication. DuckDB lets one process write a database file, or many processes read it, not both.
So a build never opens the published file for writing: it builds in a private folder beside it,
closes the file, fsyncs it and ``os.replace``s it over ``warehouse.duckdb``. A reader that opened the
old file keeps reading the old (complete) build; a reader that opens the path afterwards gets the new
one; no reader can block the build or see half of it. The views over the lake (which the ephemeral
staging models read) are build-time only and are dropped before publishing, so the published file
never reads the lake.

Incremental builds start from the standby: the file the last publication replaced, kept under a
second name (a hard link), one build behind. The build takes it over and catches it up, because the
partitions to reload are those named plus every partition whose fingerprint differs from what that
file's build saw; so publication never copies the warehouse. If a reader still holds the standby, or
there is none, the published file is copied instead. A model change (any file of the project) forces
a full build. How the models recompute only what changed: docs/warehouse.md.

Files are written with DuckDB storage version ``STORAGE_VERSION`` so that the pinned ``duckdb`` CLI
(and BI drivers, which lag behind the Python package) can open them.

One module of ~550 lines on purpose: a build is one transaction (plan, snapshot the lake, prepare the
sources, run dbt, publish), and its steps read best in order in one place.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
from filelock import FileLock

from letsjobit import config
from letsjobit.lake import schema, snapshot
from letsjobit.warehouse import dbt_runner, documentation, project

log = logging.getLogger(__name__)

# Bump when the runner's own behaviour changes in a way that makes old files unfit for incremental builds.
RUNNER_VERSION = 1
# Readable by DuckDB >= 1.5 (the duckdb-cli pinned in requirements-dev.in), not only by the 2.x package.
STORAGE_VERSION = "v1.5.0"
# Deletes and inserts leave free blocks behind; a full rebuild now and then keeps the file compact.
FULL_REBUILD_EVERY = 50
# dbt's checkpoints do not vacuum (dbt_runner.profile: max_vacuum_tasks), so the rows incremental models
# delete keep their space; a table whose stored rows are this share deleted ones is rewritten at the end
# of the build (_compact): no table stores much more than twice its live rows.
COMPACT_DEAD_SHARE = 0.5
BUILD_DIR = ".warehouse-build"
# The build the published one replaced, kept (as a hard link) for the next incremental build.
STANDBY_DIR = ".warehouse-standby"
# Relations a reader must never see: they read the lake live or only make sense during a build.
BUILD_ONLY_RELATIONS = ("build.previous_visits", "build.replaced_visits", "build.replaced_equipment")


class WarehouseError(RuntimeError):
    """A build failed; the message names the model (and the key values) at fault."""


@dataclass(frozen=True)
class ValidationInfo:
    """What the validation gate said about the data being published, for marts.build_info."""

    verdict: str | None = None
    report_path: str | None = None

    @classmethod
    def of(cls, value: ValidationInfo | Mapping[str, Any] | None) -> ValidationInfo:
        """Accepts the dataclass itself or a mapping (an XCom) with ``verdict`` and a report path under
        ``report_path``, ``report_html`` or ``report_json`` (the first one present)."""
        if value is None:
            return cls()
        if isinstance(value, ValidationInfo):
            return value
        report = value.get("report_path") or value.get("report_html") or value.get("report_json")
        return cls(verdict=value.get("verdict"), report_path=str(report) if report else None)


@dataclass(frozen=True)
class BuildResult:
    """What a build did; ``as_dict()`` is what a task returns as its XCom."""

    path: Path
    run_id: str
    mode: str
    reason: str
    changed_partitions: tuple[date, ...]
    model_seconds: dict[str, float]
    row_counts: dict[str, int]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "run_id": self.run_id,
            "mode": self.mode,
            "reason": self.reason,
            "changed_partitions": [day.isoformat() for day in self.changed_partitions],
            "model_seconds": self.model_seconds,
            "row_counts": self.row_counts,
            "seconds": self.seconds,
        }


@dataclass
class _Plan:
    mode: str
    reason: str
    changed: set[date] = field(default_factory=set)
    builds_since_full: int = 0


def build(
    layout: config.DataLayout,
    changed_dates: Iterable[date | str] | None = None,
    run_id: str | None = None,
    validation: ValidationInfo | Mapping[str, Any] | None = None,
    *,
    project_dir: Path = project.PROJECT_DIR,
    memory_limit: str | None = None,
) -> BuildResult:
    """Build the warehouse with dbt and publish it atomically as ``layout.warehouse``.

    ``changed_dates=None`` rebuilds everything from the lake. A list (even empty) asks for an
    incremental build that reads those visit_date partitions plus any the previous build saw
    differently; it falls back to a full build when there is no usable previous warehouse.
    Builds are serialised with a lock file under ``layout.state``; readers are never locked out.
    """
    started = time.monotonic()
    phases: dict[str, float] = {}  # seconds of each step, for the log

    def step_done(name: str) -> None:
        phases[name] = time.monotonic() - started - sum(phases.values())

    run_id = run_id or "manual"
    validation_info = ValidationInfo.of(validation)
    digest = project.digest(project_dir, f"runner-{RUNNER_VERSION}", f"dbt-duckdb-{_dbt_duckdb_version()}")
    layout.warehouse.parent.mkdir(parents=True, exist_ok=True)
    layout.state.mkdir(parents=True, exist_ok=True)

    with FileLock(str(layout.state / "warehouse.lock")):
        # One fixed place (under the lock): dbt's profile names the file, and an unchanged profile
        # lets dbt reuse its parse of the project.
        workdir = layout.warehouse.parent / BUILD_DIR
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
        try:
            build_path = workdir / layout.warehouse.name
            # The build reads a snapshot, so a publication landing meanwhile is not half seen.
            lake = snapshot.take(layout, workdir / "lake_snapshot")
            requested = None if changed_dates is None else {_as_date(day) for day in changed_dates}
            plan = _plan(layout, build_path, requested, digest, dict(lake.fingerprints))
            log.info(
                "warehouse build %s: %s (%s), %d partitions to read",
                run_id,
                plan.mode,
                plan.reason,
                len(plan.changed),
            )
            connection = _connect(build_path)
            try:
                _prepare_build_relations(connection, plan, lake, run_id, validation_info, digest, workdir)
            finally:
                connection.close()
            step_done("prepare")
            try:
                results = dbt_runner.run(
                    build_path,
                    layout.state / "dbt",
                    arguments=("--full-refresh",) if plan.mode == "full" else (),
                    memory_limit=memory_limit,
                    project_dir=project_dir,
                )
            except dbt_runner.DbtBuildError as error:
                raise WarehouseError(str(error)) from error
            step_done("dbt")
            connection = _connect(build_path)
            try:
                row_counts = _finish(connection)
            finally:
                connection.close()
            step_done("finish")
            _publish(build_path, layout.warehouse, _standby(layout))
            step_done("publish")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    model_seconds = {node.name: node.seconds for node in results if node.resource_type == "model"}
    result = BuildResult(
        path=layout.warehouse,
        run_id=run_id,
        mode=plan.mode,
        reason=plan.reason,
        changed_partitions=tuple(sorted(plan.changed)),
        model_seconds=model_seconds,
        row_counts=row_counts,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "warehouse %s published (%s build, %.2fs: %s; %d tests passed): %s",
        layout.warehouse,
        plan.mode,
        result.seconds,
        ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in phases.items()),
        sum(1 for node in results if node.resource_type == "test"),
        ", ".join(f"{name}={rows}" for name, rows in row_counts.items()),
    )
    return result


def _dbt_duckdb_version() -> str:
    from importlib.metadata import version

    return version("dbt-duckdb")


# --- planning -----------------------------------------------------------------------------------


def _plan(
    layout: config.DataLayout,
    build_path: Path,
    requested: set[date] | None,
    digest: str,
    partitions: dict[tuple[str, date], str],
) -> _Plan:
    every_partition = {day for _, day in partitions}
    if requested is None:
        return _Plan("full", "full rebuild requested", every_partition)
    if not layout.warehouse.exists():
        return _Plan("full", "no previous warehouse", every_partition)

    started_from = _start_from_previous(layout, build_path)
    previous = _previous_state(build_path)
    reason = None
    if previous is None:
        reason = "previous warehouse has no build state"
    elif previous["models_digest"] != digest:
        reason = f"SQL models changed since the previous build ({previous['models_digest']} -> {digest})"
    elif previous["builds_since_full"] + 1 >= FULL_REBUILD_EVERY:
        reason = f"{FULL_REBUILD_EVERY} builds since the last full build: compacting"
    if reason is not None:
        build_path.unlink()
        return _Plan("full", reason, every_partition)

    seen_before: dict[tuple[str, date], str] = previous["partitions"]
    drifted = {
        day
        for (table, day) in seen_before.keys() | partitions.keys()
        if seen_before.get((table, day)) != partitions.get((table, day))
    }
    unannounced = drifted - requested
    if unannounced:
        log.warning(
            "lake partitions changed since the previous build without being named; reloading them too: %s",
            ", ".join(day.isoformat() for day in sorted(unannounced)),
        )
    return _Plan(
        "incremental",
        f"{len(requested)} partitions named, {len(unannounced)} more changed on disk, from {started_from}",
        requested | drifted,
        previous["builds_since_full"] + 1,
    )


def _start_from_previous(layout: config.DataLayout, build_path: Path) -> str:
    """Put the file an incremental build starts from at ``build_path``; say which it is.

    Publishing keeps the build it replaces as the standby (a second name of the same file, no copy).
    An incremental build takes the standby over and catches it up: it is one build behind, and the
    partitions the last build changed differ from what the standby recorded, so they are reloaded too.
    So publication never copies the warehouse. The standby is taken only if no reader holds it (one
    who opened the warehouse two builds ago); else, or when there is none, the published file is copied.
    A standby taken over leaves its place first, so a build that dies cannot leave a half-updated one.
    """
    standby = _standby(layout)
    if standby.exists():
        os.replace(standby, build_path)
        try:
            duckdb.connect(str(build_path)).close()  # refused while a reader holds the file
            return "the standby (the build before the last)"
        except duckdb.IOException as error:
            log.info("the standby warehouse is held by a reader (%s); copying the published one", error)
            build_path.unlink()
    shutil.copyfile(layout.warehouse, build_path)
    return "a copy of the published warehouse"


def _standby(layout: config.DataLayout) -> Path:
    return layout.warehouse.parent / STANDBY_DIR / layout.warehouse.name


def _previous_state(path: Path) -> dict[str, Any] | None:
    """models_digest, builds_since_full and lake partitions the file at ``path`` was built with."""
    connection = duckdb.connect(str(path))
    try:
        tables = {
            row[0]
            for row in connection.execute(
                "select schema_name || '.' || table_name from duckdb_tables() where schema_name = 'build'"
            ).fetchall()
        }
        if not {"build.parameters", "build.lake_partitions"} <= tables:
            return None
        digest, builds_since_full = connection.execute(
            "select models_digest, builds_since_full from build.parameters"
        ).fetchone()
        partitions = {
            (table, day): fingerprint
            for table, day, fingerprint in connection.execute(
                "select table_name, visit_date, fingerprint from build.lake_partitions"
            ).fetchall()
        }
        return {"models_digest": digest, "builds_since_full": builds_since_full, "partitions": partitions}
    finally:
        connection.close()


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# --- running ------------------------------------------------------------------------------------


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    # As in dbt's profile (dbt_runner.profile): the last checkpoint must not vacuum the row groups the
    # build's deletes touched either (3 s of a 22-partition build at 1M visits); _compact does that.
    connection = duckdb.connect(config={"preserve_insertion_order": False, "max_vacuum_tasks": 0})
    connection.execute(f"attach {_quote(path)} as warehouse (storage_version '{STORAGE_VERSION}')")
    connection.execute("use warehouse")
    return connection


def _prepare_build_relations(
    connection: duckdb.DuckDBPyConnection,
    plan: _Plan,
    lake: snapshot.LakeSnapshot,
    run_id: str,
    validation: ValidationInfo,
    digest: str,
    workdir: Path,
) -> None:
    """The sources the dbt project reads: ``lake.*`` over the snapshot, ``build.*`` from this plan
    (documented as sources in sql/models/staging/_staging.yml)."""
    for name in ("build", "lake"):
        connection.execute(f"create schema if not exists {name}")
    for table, sql in _source_sql(lake, workdir).items():
        connection.execute(f"create or replace view lake.{table} as select * from {sql}")
    connection.execute(
        """
        create or replace table build.parameters as
        select
            cast($built_at as timestamptz) as built_at,
            cast($run_id as varchar) as run_id,
            cast($build_mode as varchar) as build_mode,
            cast($changed_partitions as integer) as changed_partitions,
            cast($validation_verdict as varchar) as validation_verdict,
            cast($validation_report as varchar) as validation_report,
            cast($models_digest as varchar) as models_digest,
            cast($builds_since_full as integer) as builds_since_full,
            cast($lake_location as varchar) as lake_location,
            cast($lake_run_id as varchar) as lake_run_id,
            cast($visits_version as bigint) as lake_visits_version,
            cast($visit_lines_version as bigint) as lake_visit_lines_version,
            cast($line_extra_data_version as bigint) as lake_line_extra_data_version,
            cast($data_issues_version as bigint) as lake_data_issues_version
        """,
        {
            "built_at": datetime.now(UTC),
            "run_id": run_id,
            "build_mode": plan.mode,
            "changed_partitions": len(plan.changed),
            "validation_verdict": validation.verdict,
            "validation_report": validation.report_path,
            "models_digest": digest,
            "builds_since_full": plan.builds_since_full,
            "lake_location": lake.location,
            "lake_run_id": lake.run_id,
            **{f"{table}_version": version for table, version in lake.versions.items()},
        },
    )
    connection.execute(
        "create or replace table build.changed_partitions as "
        "select unnest(cast($days as date[])) as visit_date",
        {"days": sorted(plan.changed)},
    )
    if plan.mode == "incremental":
        connection.execute(
            """
            create or replace table build.previous_visits as
            select distinct visit_id, visit_date from intermediate.int_visit_versions
            where visit_date in (select visit_date from build.changed_partitions)
            """
        )
    else:
        connection.execute(
            "create or replace table build.previous_visits (visit_id varchar, visit_date date)"
        )
    # Filled on an incremental build by the replace_where strategy of marts.fct_visits and
    # marts.fct_equipment_visits (their keep_replaced config):
    # the rows they are about to replace, whose dates and keys the derived tables must recompute.
    connection.execute(
        "create or replace table build.replaced_visits "
        "(visit_id varchar, visit_date date, driver_id varchar, site_id varchar, territory varchar)"
    )
    connection.execute(
        "create or replace table build.replaced_equipment "
        "(visit_id varchar, site_id varchar, serial_nr varchar, is_repeat_visit boolean)"
    )
    ordered = sorted(lake.fingerprints.items())
    connection.execute(
        """
        create or replace table build.lake_partitions as
        select
            unnest(cast($tables as varchar[])) as table_name,
            unnest(cast($days as date[])) as visit_date,
            unnest(cast($fingerprints as varchar[])) as fingerprint
        """,
        {
            "tables": [table for (table, _), _ in ordered],
            "days": [day for (_, day), _ in ordered],
            "fingerprints": [fingerprint for _, fingerprint in ordered],
        },
    )


def _source_sql(lake: snapshot.LakeSnapshot, workdir: Path) -> dict[str, str]:
    """``read_parquet(...)`` of each lake table, always with every column of its schema.

    An empty file with the table's schema is read along with the lake, so a column no lake file has
    yet (or a table with no file at all, such as the issues of a lake published before they were
    kept) still exists with its contract type.
    """
    sources = {}
    for table, table_schema in schema.LAKE_TABLES.items():
        empty = workdir / "schema" / table / f"{schema.PARTITION_COLUMN}=1970-01-01" / "empty.parquet"
        empty.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table_schema.empty_table(), empty)
        paths = [_quote(empty), *(_quote(path) for path in lake.files[table])]
        sources[table] = (
            f"read_parquet([{', '.join(paths)}], hive_partitioning = true, union_by_name = true, "
            f"hive_types = {{'{schema.PARTITION_COLUMN}': date}})"
        )
    return sources


def _finish(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Drop what must not outlive the build and return marts.build_info's row counts.

    The ``lake`` views read the snapshot's files, which the build removes (the staging models are
    ephemeral: dbt inlines them where they are used); ``build.previous_visits`` only makes sense
    during a build. Views in the other layers read only tables of the warehouse file itself, so they
    stay."""
    connection.execute("drop schema if exists lake cascade")
    for relation in BUILD_ONLY_RELATIONS:
        connection.execute(f"drop table if exists {relation}")
    _compact(connection)
    row = connection.execute("select * from marts.build_info").fetchone()
    names = [column[0] for column in connection.description]
    connection.execute("checkpoint")
    return {
        name.removesuffix("_rows"): value
        for name, value in zip(names, row, strict=True)
        if name.endswith("_rows")
    }


def _compact(connection: duckdb.DuckDBPyConnection) -> None:
    """Rewrite the tables whose stored rows are mostly deleted ones (COMPACT_DEAD_SHARE).

    Emptying a table and putting its live rows back keeps its definition (the contract's constraints)
    and lets the checkpoint drop the emptied row groups; ``duckdb_tables().estimated_size`` counts the
    deleted rows a table still stores, ``count(*)`` does not."""
    for table, stored in connection.execute(
        "select schema_name || '.' || table_name, estimated_size from duckdb_tables() "
        "where database_name = 'warehouse' and schema_name in ('intermediate', 'marts') and estimated_size > 0"
    ).fetchall():
        (live,) = connection.execute(f"select count(*) from {table}").fetchone()
        if 1 - live / stored < COMPACT_DEAD_SHARE:
            continue
        started = time.monotonic()
        connection.execute(f"create temp table live_rows as select * from {table}")
        connection.execute(f"delete from {table}")
        connection.execute(f"insert into {table} select * from live_rows")
        connection.execute("drop table live_rows")
        log.info(
            "compacted %s: %d live of %d stored rows (%.2fs)", table, live, stored, time.monotonic() - started
        )


def _publish(build_path: Path, target: Path, standby: Path) -> None:
    """Atomically put the finished file in place; readers of the old file keep their snapshot, which
    stays as the standby (a hard link: the next incremental build starts from it)."""
    leftovers = [path for path in build_path.parent.glob(build_path.name + ".wal")]
    if leftovers:
        raise WarehouseError(f"{build_path}: a write-ahead log is left after closing; not publishing")
    with open(build_path, "rb") as handle:
        os.fsync(handle.fileno())
    standby.parent.mkdir(exist_ok=True)
    standby.unlink(missing_ok=True)
    if target.exists():
        os.link(target, standby)
    os.replace(build_path, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _quote(value: Path | str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# --- reading and documenting ----------------------------------------------------------------------


def connect_read_only(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse. Open one per unit of work and close it: a
    connection keeps reading the build it opened, so a new build shows up at the next connect."""
    return duckdb.connect(str(path or config.layout().warehouse), read_only=True)


def built_run_id(layout: config.DataLayout) -> str | None:
    """The run_id of the published build (marts.build_info), or None when there is no usable warehouse."""
    if not layout.warehouse.exists():
        return None
    try:
        connection = connect_read_only(layout.warehouse)
    except duckdb.Error as error:
        log.warning("cannot open the warehouse %s read-only: %s", layout.warehouse, error)
        return None
    try:
        return connection.execute("select run_id from marts.build_info").fetchone()[0]
    except duckdb.Error as error:
        log.warning("the warehouse %s has no readable marts.build_info: %s", layout.warehouse, error)
        return None
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m letsjobit.warehouse.build", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build and publish the warehouse from the lake")
    build_command.add_argument(
        "--changed", nargs="*", metavar="YYYY-MM-DD", help="incremental: changed partitions"
    )
    build_command.add_argument("--run-id", default=None)
    commands.add_parser("docs", help="write dbt's documentation of the warehouse as one HTML file")
    commands.add_parser("analyses", help="compile the example analyses to plain SQL under the data dir")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if arguments.command == "build":
        build(config.layout(), changed_dates=arguments.changed, run_id=arguments.run_id)
    elif arguments.command == "docs":
        print(documentation.docs(config.layout()))
    else:
        for path in documentation.compile_analyses(config.layout()):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
