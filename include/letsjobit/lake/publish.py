"""Publishing: the validation gate's audited output becomes the lake's, one Delta commit per table; and retention.

`publish_run(run_id, layout, partitions)` makes the audited output (`layout.audited(run_id)`) the lake's,
the four tables alike (`schema.LAKE_TABLES`): a full refresh (None) replaces each whole table, a list of
dates replaces exactly those `visit_date` partitions (removing those with no audited rows). Each table
changes by one Delta commit that adds the new files and removes every file of the replaced partitions,
so a reader of a table sees its old or its new version, never a mix; the lake's publication record
(`tables.LakeState`) says which version of every table readers read, and moves only once all four are
committed. A publication killed before that leaves the previous one readable and a `publishing` entry
in the record: the next `publish_run` re-publishes it from its audited output (each commit replaces
whole partitions, so doing one twice gives the same tables), or, when that output is gone, rolls the
tables it had moved back to the published versions. `publish_lock` keeps to one publisher
on a host; the DAG's `max_active_runs=1` keeps to one across hosts.

`prune_runs` keeps the raw pages and staging areas of the newest runs (never one whose publication is
pending) and removes the scratch of killed attempts; `vacuum` deletes the lake files no version within
`config.LAKE_RETENTION` references.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from filelock import FileLock

from letsjobit import config
from letsjobit.config import DataLayout
from letsjobit.lake import parquet, raw_store, schema, tables
from letsjobit.lake.parquet import NULL_PARTITION

log = logging.getLogger(__name__)

# A commit's metadata key naming the run that published it (the table's history tells them apart).
RUN_ID_KEY = "letsjobit.run_id"
# Tables whose new files are written at once (one per CPU of the 2-core target: more only adds memory).
WRITERS = 2


class PublishError(RuntimeError):
    """A publication that cannot be done (nothing staged or audited for the run, or the commit failed)."""


@dataclass
class PublishResult:
    run_id: str
    mode: str  # "full" or "partitions"
    replaced: list[str]  # partitions now holding the run's rows (every table)
    removed: list[str]  # partitions removed because the run staged no rows for them
    rows: dict[str, int]  # rows published per lake table (data_issues included)
    versions: dict[str, int] = field(default_factory=dict)  # the Delta version of each table readers now read
    recovered: list[str] = field(default_factory=list)  # runs whose interrupted publication was finished
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# A table's rows to publish: an in-memory table or a dataset (the audited parquet), read as a stream.
Source = pa.Table | ds.Dataset


# --- publishing ----------------------------------------------------------------------------------


def publish_lock(layout: DataLayout) -> FileLock:
    """Held while a publication changes the lake: one publisher at a time on this host."""
    layout.state.mkdir(parents=True, exist_ok=True)
    return FileLock(str(layout.publish_lock_file))


def publish_run(run_id: str, layout: DataLayout, partitions: list[date] | None) -> PublishResult:
    """Make an audited run the lake's data; safe to re-run, and settles an interrupted publication first.

    What is published is the validation gate's output (`layout.audited(run_id)`), never the raw staging:
    a run the gate has not passed cannot be published. None: full refresh, each lake table (data_issues
    included) becomes exactly the audited table. A list of dates: those `visit_date` partitions become
    exactly the audited rows of that date (removed if there are none); other partitions are not touched.
    """
    if not layout.staging_run(run_id).is_dir():
        raise PublishError(
            f"run {run_id!r} has nothing staged at {layout.staging_run(run_id)}; stage_run it first"
        )
    if not layout.audited(run_id).is_dir():
        raise PublishError(
            f"run {run_id!r} has not passed the validation gate (nothing audited at {layout.audited(run_id)}); "
            "audit it first (letsjobit.quality.audit.audit_run)"
        )
    dates = None if partitions is None else sorted({day.isoformat() for day in partitions})
    return publish_tables(layout, run_id, audited_sources(layout, run_id), dates)


def audited_sources(layout: DataLayout, run_id: str) -> dict[str, Source]:
    """The gate's audited output of a run, one dataset per lake table (empty where it wrote none)."""
    stage = layout.audited(run_id)
    return {
        table: parquet.dataset(stage / table) if (stage / table).is_dir() else table_schema.empty_table()
        for table, table_schema in schema.LAKE_TABLES.items()
    }


def publish_tables(
    layout: DataLayout, run_id: str, sources: Mapping[str, Source], dates: list[str | None] | None
) -> PublishResult:
    """Commit ``sources`` (lake table -> rows) to the lake as one publication of ``run_id``.

    ``dates``: None replaces each given table whole; otherwise the `visit_date` partitions named
    (ISO dates; None or NULL_PARTITION for the null partition) are replaced by the rows of those dates,
    and rows of other dates are left out. Tables not in ``sources`` are not touched. `publish_run` is
    the pipeline's way in; this is also how tests write a lake of their own rows.
    """
    started = time.monotonic()
    with publish_lock(layout):
        recovered = _settle_interrupted(layout, run_id, dates)
        replaced, removed, rows, versions = _publish(layout, run_id, sources, dates)
    result = PublishResult(
        run_id=run_id,
        mode="full" if dates is None else "partitions",
        replaced=replaced,
        removed=removed,
        rows=rows,
        versions=versions,
        recovered=recovered,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "Published run %s (%s) to %s: %d partitions replaced, %d removed, rows %s, versions %s",
        run_id, result.mode, layout.lake_location.redacted, len(replaced), len(removed), rows, versions,
    )  # fmt: skip
    return result


def _publish(
    layout: DataLayout, run_id: str, sources: Mapping[str, Source], dates: list[str | None] | None
) -> tuple[list[str], list[str], dict[str, int], dict[str, int]]:
    """The record says `publishing`, each table gets its commit, then the record names the new versions."""
    location = layout.lake_location
    state = tables.read_state(location)
    now = datetime.now(UTC).isoformat()
    tables.write_state(location, tables.LakeState(state.published, tables.Publication(run_id, dates, now)))
    versions = dict(state.published.versions) if state.published else {}
    replaced: set[str] = set()
    removed: set[str] = set()
    ignored: set[str] = set()
    rows: dict[str, int] = {}
    kept: dict[str, ds.Dataset] = {}
    for table, source in sources.items():
        data = source if isinstance(source, ds.Dataset) else ds.dataset(source)
        kept[table] = data if dates is None else data.filter(_in_partitions(dates))
    # The tables' files are written side by side (pyarrow works outside the GIL), then committed one
    # table after the other: the commits follow each other within milliseconds.
    with ThreadPoolExecutor(WRITERS) as pool:
        written = {table: pool.submit(_write_files, layout, table, data) for table, data in kept.items()}
        files = {table: future.result() for table, future in written.items()}
    for table, source in sources.items():
        data = source if isinstance(source, ds.Dataset) else ds.dataset(source)
        staged = _partitions_of(data)
        before = _published_partitions(layout, table) if dates is not None else set()
        rows[table] = sum(json.loads(action.stats)["numRecords"] for action in files[table])
        versions[table] = _commit_table(layout, table, files[table], dates, run_id)
        if table in schema.TABLES:
            days = staged if dates is None else staged & set(map(_partition_key, dates))
            replaced |= days - {NULL_PARTITION}
            removed |= (before & set(map(_partition_key, dates or ()))) - staged
        if dates is not None:
            ignored |= staged - set(map(_partition_key, dates))
    if ignored:
        log.warning(
            "Run %s staged rows for partitions outside the dates it publishes, left unpublished: %s",
            run_id, ", ".join(sorted(ignored)),
        )  # fmt: skip
    published = tables.Publication(run_id, dates, datetime.now(UTC).isoformat(), versions)
    tables.write_state(location, tables.LakeState(published, None))
    return sorted(replaced), sorted(removed), rows, versions


def _commit_table(
    layout: DataLayout, table: str, adds: list[AddAction], dates: list[str | None] | None, run_id: str
) -> int:
    """One Delta commit: the table becomes the files ``adds`` (dates None), or its partitions of
    ``dates`` do: the commit adds the files and removes every file of the replaced partitions, so a
    date without rows loses its partition in that same commit. Returns the version committed.
    """
    table_schema = schema.LAKE_TABLES[table]
    options = dict(
        schema=table_schema,
        partition_by=[schema.PARTITION_COLUMN],
        commit_properties=CommitProperties(custom_metadata={RUN_ID_KEY: run_id}),
    )
    if not tables.exists(layout, table):
        create_table_with_add_actions(
            layout.table_uri(table),
            DeltaSchema.from_arrow(table_schema),
            adds,
            mode="error",
            partition_by=options["partition_by"],
            storage_options=tables.storage_options(layout.lake_location),
            commit_properties=options["commit_properties"],
        )
    elif dates is None:
        tables.open_table(layout, table).create_write_transaction(adds, mode="overwrite", **options)
    else:
        current = tables.open_table(layout, table)
        removes = _files_of(current, {_partition_key(day) for day in dates})
        current.create_write_transaction([*adds, *removes], mode="append", **options)
    return tables.open_table(layout, table).version()


def _write_files(layout: DataLayout, table: str, data: ds.Dataset) -> list[AddAction]:
    """Write ``data`` as new parquet files of the table, one folder per partition (not yet in any version).

    pyarrow writes each partition's rows as they stream in, so memory holds a few batches, not the
    table (delta-rs' own writer keeps every partition's file open in memory until the end of the write:
    1.3 GiB for the 1M-visit benchmark's full refresh). The partition column is in the folder names
    only, as Delta has it.
    """
    store, lake_root = tables.filesystem(layout.lake_location)
    written: list[AddAction] = []
    base = f"{lake_root}/{table}"
    now = int(time.time() * 1000)

    def add(file) -> None:
        relative = file.path.removeprefix(f"{base}/")
        folder = relative.split("/", 1)[0]
        value = parquet.partition_value(folder)
        written.append(
            AddAction(
                path=relative,
                size=file.size,
                partition_values={schema.PARTITION_COLUMN: None if value == NULL_PARTITION else value},
                modification_time=now,
                data_change=True,
                stats=json.dumps({"numRecords": file.metadata.num_rows}),
            )
        )

    ds.write_dataset(
        _reader(data),
        base,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([data.schema.field(schema.PARTITION_COLUMN)]), flavor="hive"),
        basename_template=f"part-{uuid.uuid4()}-{{i}}.{schema.LAKE_COMPRESSION}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        file_options=ds.ParquetFileFormat().make_write_options(compression=schema.LAKE_COMPRESSION),
        filesystem=store,
        file_visitor=add,
        create_dir=layout.lake_location.is_local,  # an object store has no folders (no marker objects)
    )
    return written


def _files_of(current: DeltaTable, partitions: set[str]) -> list[RemoveAction]:
    """Remove actions for every file of the table's current version in ``partitions``."""
    actions = pa.table(current.get_add_actions(flatten=True)).to_pylist()
    now = int(time.time() * 1000)
    removes = []
    for action in actions:
        day = action[f"partition.{schema.PARTITION_COLUMN}"]
        value = None if day is None else str(day)
        if _partition_key(value) in partitions:
            removes.append(
                RemoveAction(
                    path=action["path"],
                    data_change=True,
                    deletion_timestamp=now,
                    size=action["size_bytes"],
                    partition_values={schema.PARTITION_COLUMN: value},
                )
            )
    return removes


def _reader(data: ds.Dataset) -> pa.RecordBatchReader:
    """The rows as a stream, one partition's files after the other, in the table's exact schema."""
    return data.scanner(batch_readahead=1, fragment_readahead=1).to_reader()


def _partition_key(day: str | None) -> str:
    return NULL_PARTITION if day is None else day


def _in_partitions(dates: list[str | None]) -> ds.Expression:
    column = pc.field(schema.PARTITION_COLUMN)
    days = [date.fromisoformat(day) for day in dates if _partition_key(day) != NULL_PARTITION]
    expression = column.isin(pa.array(days, pa.date32()))
    if any(_partition_key(day) == NULL_PARTITION for day in dates):
        expression = expression | column.is_null()
    return expression


def _partitions_of(data: ds.Dataset) -> set[str]:
    days = pc.unique(data.to_table(columns=[schema.PARTITION_COLUMN]).column(0)).to_pylist()
    return {NULL_PARTITION if day is None else day.isoformat() for day in days}


def _published_partitions(layout: DataLayout, table: str) -> set[str]:
    """The partitions of a table's latest version (what a commit of some dates may remove)."""
    if not tables.exists(layout, table):
        return set()
    actions = pa.table(tables.open_table(layout, table).get_add_actions(flatten=True))
    days = pc.unique(actions.column(f"partition.{schema.PARTITION_COLUMN}")).to_pylist()
    return {NULL_PARTITION if day is None else str(day) for day in days}


def _settle_interrupted(layout: DataLayout, run_id: str, dates: list[str | None] | None) -> list[str]:
    """Finish (or undo) a publication that started and never finished, before publishing anything else.

    The same publication asked again (a retry of the task) is simply done again. Another one is
    re-published from its audited output; when that is gone (pruned by hand, or on another host's
    scratch), the tables it moved go back to their published versions, and the lake is as it was.
    """
    state = tables.read_state(layout.lake_location)
    pending = state.publishing
    if pending is None or (pending.run_id, pending.partitions) == (run_id, dates):
        return []
    if layout.audited(pending.run_id).is_dir():
        log.warning("Finishing the interrupted publication of run %s first", pending.run_id)
        _publish(layout, pending.run_id, audited_sources(layout, pending.run_id), pending.partitions)
        return [pending.run_id]
    log.warning(
        "The interrupted publication of run %s cannot be finished (its audited output %s is gone); "
        "rolling the lake back to the publication of run %s",
        pending.run_id, layout.audited(pending.run_id), state.published.run_id if state.published else None,
    )  # fmt: skip
    _roll_back(layout, state)
    return []


def _roll_back(layout: DataLayout, state: tables.LakeState) -> None:
    """Commit, in each table an interrupted publication moved, its published version again."""
    versions = state.published.versions if state.published else {}
    for table in schema.LAKE_TABLES:
        if not tables.exists(layout, table):
            continue
        latest = tables.open_table(layout, table)
        published = versions.get(table)
        if published is None:  # created by the interrupted publication: nothing of it was published
            latest.delete()
        elif latest.version() != published:
            latest.restore(published)
    tables.write_state(layout.lake_location, tables.LakeState(state.published, None))


# --- retention ---------------------------------------------------------------------------------


# Scratch of a killed attempt that no later attempt of the same run id cleaned up: removed by
# prune_runs once this old (no live stage or extraction leaves its scratch untouched that long).
STALE_SCRATCH_SECONDS = 6 * 3600


def prune_runs(
    layout: DataLayout, keep: int = 10, *, stale_after_seconds: float = STALE_SCRATCH_SECONDS
) -> list[Path]:
    """Delete raw pages and staging areas of all but the `keep` newest runs (by modification time),
    and the scratch of killed attempts (hidden temp parts, staging and audit folders) older than
    `stale_after_seconds`.

    A run whose publication is pending in the lake's publication record is always kept. The raw run
    folders in the lake's store (`raw_store`, object-store lakes only) are pruned to the same ``keep``.
    """
    pending_publication = tables.read_state(layout.lake_location).publishing
    pending = {pending_publication.run_id} if pending_publication else set()
    removed = []
    for root, run_of in ((layout.raw, lambda name: name.removeprefix("run_id=")), (layout.staging, str)):
        if not root.is_dir():
            continue
        runs = sorted(
            (path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
        for path in runs[keep:]:
            if run_of(path.name) in pending:
                continue
            shutil.rmtree(path)
            removed.append(path)
            log.info("Pruned %s", path)
    cutoff = time.time() - stale_after_seconds
    scratch = [
        *(layout.raw.glob("run_id=*/.part-*.tmp") if layout.raw.is_dir() else ()),
        *(layout.staging.glob(".*.tmp-*") if layout.staging.is_dir() else ()),
        *(layout.staging.glob(f"*/{config.AUDIT_SCRATCH_PREFIX}*") if layout.staging.is_dir() else ()),
    ]
    for path in scratch:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed.append(path)
                log.info("Removed the scratch of a dead attempt: %s", path)
    raw_store.prune(layout, keep, pending)
    return removed


def vacuum(layout: DataLayout, retention: timedelta = config.LAKE_RETENTION) -> dict[str, int]:
    """Delete the files of every lake table (and the record) that no version of the last ``retention``
    references: replaced partitions, and the files of commits that never happened (a killed write).

    A reader holding a version (a warehouse build) keeps its files for ``retention`` after the version
    was replaced, so the retention must be longer than any reader holds one. Returns files deleted
    per table.
    """
    hours = int(retention.total_seconds() // 3600)
    deleted = {}
    for table in (*schema.LAKE_TABLES, tables.PUBLICATION_RECORD):
        if not tables.exists(layout, table):
            continue
        # full: also the files no commit names (a write killed before its commit), not only removed ones.
        # Below Delta's default retention only on purpose (tests): the check guards against typos.
        files = tables.open_table(layout, table).vacuum(
            retention_hours=hours,
            dry_run=False,
            enforce_retention_duration=retention >= timedelta(days=7),
            full=True,
        )
        deleted[table] = len(files)
    if any(deleted.values()):
        log.info(
            "Vacuumed the lake at %s (retention %s): files deleted %s",
            layout.lake_location.redacted, retention, deleted,
        )  # fmt: skip
    return deleted
