"""Publishing: the validation gate's audited output becomes the lake's, atomically; and retention.

`publish_run(run_id, layout, partitions)` makes the audited output (`layout.audited(run_id)`) the lake's,
the four tables alike (`schema.LAKE_TABLES`): a full refresh (None) replaces each whole table, a list of
dates replaces exactly those `visit_date` partitions (removing those with no audited rows). Each table
or partition appears by one atomic directory exchange, so a reader sees the old or the new partition,
never a mix; a journal (`layout.journal(run_id)`) records the intent first, so a publication killed
half-way is finished by `recover(layout)` or by the next `publish_run`. `publish_lock` is held meanwhile.

`prune_runs` keeps the raw pages and staging areas of the newest runs (never one whose publication is
pending) and removes the scratch of killed attempts.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from filelock import FileLock

from letsjobit import config, files
from letsjobit.config import DataLayout
from letsjobit.lake import schema
from letsjobit.lake.parquet import partition_name, partition_value

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """A publication that cannot be done (nothing staged for the run, a journal that cannot finish)."""


@dataclass
class PublishResult:
    run_id: str
    mode: str  # "full" or "partitions"
    replaced: list[str]  # partitions now holding the run's rows (every table)
    removed: list[str]  # partitions removed because the run staged no rows for them
    rows: dict[str, int]  # rows published per lake table (data_issues included)
    recovered: list[str] = field(default_factory=list)  # runs whose interrupted publication was finished
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- publishing ----------------------------------------------------------------------------------


def publish_lock(layout: DataLayout) -> FileLock:
    """Held while a publication changes the lake; whoever holds it sees one publication, whole."""
    layout.state.mkdir(parents=True, exist_ok=True)
    return FileLock(str(layout.publish_lock_file))


def _staged_partitions(stage: Path, table: str) -> set[str]:
    directory = stage / table
    if not directory.is_dir():
        return set()
    return {partition_value(path.name) for path in directory.iterdir() if path.is_dir() and "=" in path.name}


def _count_rows(directory: Path) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in directory.rglob("*.parquet"))


def _apply(layout: DataLayout, run_id: str, dates: list[str] | None) -> tuple[list[str], list[str]]:
    """Make the audited run the lake's data (the whole tables, or the given partitions).

    Returns the partitions replaced and removed in the data tables (data_issues follows them, and may
    hold partitions of its own, e.g. the null partition of a full refresh).
    """
    stage = layout.audited(run_id)
    scratch = layout.publish_scratch(run_id)
    shutil.rmtree(scratch, ignore_errors=True)  # leftovers of an interrupted attempt
    scratch.mkdir(parents=True)
    replaced: set[str] = set()
    removed: set[str] = set()
    ignored: set[str] = set()
    try:
        for table in schema.LAKE_TABLES:
            is_data = table in schema.TABLES
            staged = _staged_partitions(stage, table)
            target = layout.table(table)
            if dates is None:
                incoming = scratch / table
                if (stage / table).is_dir():
                    files.link_tree(stage / table, incoming)
                else:
                    incoming.mkdir()
                files.replace_dir(incoming, target, scratch / f"{table}.previous")
                replaced |= staged if is_data else set()
                continue
            target.mkdir(parents=True, exist_ok=True)
            for day in dates:
                name = partition_name(day)
                if day in staged:
                    incoming = scratch / f"{table}.{name}"
                    files.link_tree(stage / table / name, incoming)
                    files.replace_dir(incoming, target / name, scratch / f"{table}.{name}.previous")
                    if is_data:
                        replaced.add(day)
                elif (target / name).exists():
                    files.remove_dir(target / name, scratch / f"{table}.{name}.previous")
                    if is_data:
                        removed.add(day)
            ignored |= staged - set(dates)
        if ignored:
            log.warning(
                "Run %s staged rows for partitions outside the dates it publishes, left unpublished: %s",
                run_id, ", ".join(sorted(ignored)),
            )  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(replaced), sorted(removed)


def _finish_interrupted(layout: DataLayout, skip: str | None = None) -> list[str]:
    """Roll forward publications whose journal says they started and did not finish."""
    finished = []
    directory = layout.journals
    if not directory.is_dir():
        return finished
    journals = []
    for path in directory.glob("*.json"):
        journal = orjson.loads(path.read_bytes())
        if journal.get("state") == "publishing" and journal["run_id"] != skip:
            journals.append(journal)
    for journal in sorted(journals, key=lambda item: item["started_at"]):
        run_id = journal["run_id"]
        if not layout.audited(run_id).is_dir():
            raise PublishError(
                f"publication of run {run_id} was interrupted and its audited staging area "
                f"{layout.audited(run_id)} is gone; re-stage and audit the run and publish it again"
            )
        log.warning("Finishing the interrupted publication of run %s", run_id)
        _apply(layout, run_id, journal["partitions"])
        files.write_json(layout.journal(run_id), {**journal, "state": "published", "recovered": True})
        finished.append(run_id)
    return finished


def publish_run(run_id: str, layout: DataLayout, partitions: list[date] | None) -> PublishResult:
    """Make an audited run the lake's data; safe to re-run, and finishes crashed runs.

    What is published is the validation gate's output (`layout.audited(run_id)`), never the raw staging:
    a run the gate has not passed cannot be published. None: full refresh, each lake table (data_issues
    included) becomes exactly the audited table. A list of dates: those `visit_date` partitions become
    exactly the audited rows of that date (removed if there are none); other partitions are not touched.
    """
    started = time.monotonic()
    if not layout.staging_run(run_id).is_dir():
        raise PublishError(
            f"run {run_id!r} has nothing staged at {layout.staging_run(run_id)}; stage_run it first"
        )
    stage = layout.audited(run_id)
    if not stage.is_dir():
        raise PublishError(
            f"run {run_id!r} has not passed the validation gate (nothing audited at {stage}); "
            "audit it first (letsjobit.quality.audit.audit_run)"
        )
    dates = None if partitions is None else sorted({day.isoformat() for day in partitions})
    with publish_lock(layout):
        recovered = _finish_interrupted(layout, skip=run_id)
        journal = {
            "run_id": run_id,
            "partitions": dates,
            "state": "publishing",
            "started_at": datetime.now(UTC).isoformat(),
        }
        files.write_json(layout.journal(run_id), journal)
        replaced, removed = _apply(layout, run_id, dates)
        published_days = None if dates is None else set(dates)
        rows = {
            table: sum(_count_rows(folder) for folder in (stage / table).glob(f"{schema.PARTITION_COLUMN}=*")
                       if published_days is None or partition_value(folder.name) in published_days)
            for table in schema.LAKE_TABLES
        }  # fmt: skip
        files.write_json(
            layout.journal(run_id),
            {**journal, "state": "published", "finished_at": datetime.now(UTC).isoformat(),
             "replaced": replaced, "removed": removed, "rows": rows},
        )  # fmt: skip
    result = PublishResult(
        run_id=run_id,
        mode="full" if dates is None else "partitions",
        replaced=replaced,
        removed=removed,
        rows=rows,
        recovered=recovered,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "Published run %s (%s): %d partitions replaced, %d removed, rows %s",
        run_id, result.mode, len(replaced), len(removed), rows,
    )  # fmt: skip
    return result


def recover(layout: DataLayout) -> list[str]:
    """Finish any publication a crash interrupted; returns the run ids finished."""
    with publish_lock(layout):
        return _finish_interrupted(layout)


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

    A run whose publication is still pending in the journal is always kept.
    """
    pending = set()
    if layout.journals.is_dir():
        for path in layout.journals.glob("*.json"):
            journal = orjson.loads(path.read_bytes())
            if journal.get("state") == "publishing":
                pending.add(journal["run_id"])
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
    return removed
