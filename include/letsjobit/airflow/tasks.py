"""The pipeline's steps as plain functions: what each Airflow task does, testable without a scheduler.

A run moves through write -> audit -> publish:
  plan_chunks  -> extract_chunk (one per chunk, mapped) -> stage -> audit -> publish -> build_warehouse
Every step takes and returns small JSON-able dicts (paths and counts), never data, so they travel in XCom.
Every step is idempotent for a given run id: a retry or a re-run replaces its own output exactly.
Every step reports the datasets it reads and writes for lineage (include/letsjobit/airflow/lineage.py), and
``fail_fast`` turns the errors that waiting cannot heal into a failure without retries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from letsjobit import config, files
from letsjobit.airflow import lineage

log = logging.getLogger(__name__)

FULL_REFRESH_CHUNK = "all"

# Errors a retry would meet again, so the task fails at once and the alert goes out within seconds: the
# API refusing the request for good (401/403, 400, 404 and other 4xx but 429), settings that cannot work,
# and a failed validation gate (the same staged data fails the same way). Named, not imported, so that
# checking an extraction's error does not import the gate's libraries.
CANNOT_HEAL = (
    "letsjobit.api.errors.LetsJobItAPIError",
    "letsjobit.api.errors.LetsJobItConfigError",
    "letsjobit.quality.audit.ValidationFailed",
)


def cannot_heal(error: BaseException) -> bool:
    """Whether waiting and retrying cannot change the outcome of what raised ``error``."""
    return any(f"{cls.__module__}.{cls.__qualname__}" in CANNOT_HEAL for cls in type(error).__mro__)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Around a task's work: an error that cannot heal fails the task now, without Airflow's retries."""
    try:
        yield
    except Exception as error:
        if not cannot_heal(error):
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"{type(error).__name__} (not retried: waiting cannot fix it): {error}"
        ) from error


def safe_run_id(airflow_run_id: str) -> str:
    """A run id usable as a folder name (Airflow's contain ':' and '+'); stable for the same run."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", airflow_run_id).strip("_")


def window_dates(
    interval_start: datetime | None,
    interval_end: datetime | None,
    lookback_days: int,
    lookahead_days: int,
    run_after: datetime | None = None,
) -> list[date]:
    """Visit dates a scheduled run re-extracts: its data interval widened by look-back and look-ahead days.

    Visits change after their date (closed, rated, rescheduled) and the API has no "modified since"
    filter, so each run re-reads a window of dates around its interval and replaces exactly those
    partitions.
    """
    if interval_start is None or interval_end is None:
        # Airflow 3 gives a run triggered without a logical date (UI, REST) no data interval: use its run_after.
        if run_after is None:
            raise ValueError("a window run needs a data interval or a run_after moment")
        interval_start = interval_end = run_after
    if lookback_days < 0 or lookahead_days < 0:
        raise ValueError(f"look-back ({lookback_days}) and look-ahead ({lookahead_days}) days must be >= 0")
    first = interval_start.date() - timedelta(days=lookback_days)
    # The interval end is exclusive; a zero-width interval (manual run) still covers its own day.
    last = max(interval_end.date() - timedelta(days=1), interval_start.date()) + timedelta(
        days=lookahead_days
    )
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def plan_chunks(
    full_refresh: bool,
    interval_start: datetime,
    interval_end: datetime,
    lookback_days: int,
    lookahead_days: int,
    dates_per_chunk: int = 3,
    run_after: datetime | None = None,
) -> list[dict[str, Any]]:
    """Split the run's extraction into chunks for dynamic task mapping.

    A full refresh is one chunk: the client already pages it concurrently at the key's ceiling, and one
    listing lets it detect and repair offset drift across the whole collection. A window is split by
    visit date, a few dates a chunk, so several workers share it (the key's budget is shared by all).
    """
    if full_refresh:
        return [{"chunk": FULL_REFRESH_CHUNK, "dates": None}]
    dates = window_dates(interval_start, interval_end, lookback_days, lookahead_days, run_after)
    chunks = []
    for start in range(0, len(dates), dates_per_chunk):
        group = dates[start : start + dates_per_chunk]
        chunks.append(
            {"chunk": f"{group[0]:%Y%m%d}-{group[-1]:%Y%m%d}", "dates": [d.isoformat() for d in group]}
        )
    log.info("Planned %d chunk(s) over %d visit dates %s..%s", len(chunks), len(dates), dates[0], dates[-1])
    return chunks


def as_dict(result: Any) -> dict[str, Any]:
    """A step's result as a JSON-able dict for XCom: its own ``as_dict()`` when it has one."""
    if hasattr(result, "as_dict"):
        result = result.as_dict()
    elif dataclasses.is_dataclass(result):
        result = dataclasses.asdict(result)
    return _jsonable(result)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def extract_chunk(client: Any, run_id: str, chunk: dict[str, Any]) -> dict[str, Any]:
    """Extract one chunk's raw pages: the whole collection, or each of its visit dates."""
    from letsjobit.lake import extract, raw_store

    layout = config.layout()
    if chunk["dates"] is None:
        results = [extract.extract_to_raw(client, run_id, chunk["chunk"], {}, layout)]
    else:
        results = [
            extract.extract_to_raw(
                client, run_id, f"{chunk['chunk']}-{day.replace('-', '')}", {"date": day}, layout
            )
            for day in chunk["dates"]
        ]
    for result in results:  # so that the stage task can run on another host
        raw_store.push(layout, run_id, result.chunk)
    raw_store.prune_local(layout, config.keep_runs())
    parts = [as_dict(result) for result in results]
    lineage.record(
        client, inputs=[lineage.api_visits(client.settings.base_url)], outputs=[lineage.folder(layout.raw)]
    )
    return {
        "chunk": chunk["chunk"],
        "dates": chunk["dates"],
        "expected_visits": sum(int(part["distinct_visits"]) for part in parts),
        "parts": parts,
    }


def extract_chunk_from_connection(run_id: str, chunk: dict[str, Any]) -> dict[str, Any]:
    """The extract task: :func:`extract_chunk` with a client from the ``letsjobit_default`` connection.

    The client is closed afterwards, success or not: until then its key-redacting filter stays on
    urllib3's logger, which the whole worker process shares.
    """
    from letsjobit.airflow.hooks import LetsJobItHook

    with closing(LetsJobItHook()) as hook:
        return extract_chunk(hook.get_client(), run_id, chunk)


def materialise(mapped_results: Any) -> list[dict[str, Any]]:
    """The results of a mapped task as a list, read by index.

    Iterating Airflow's lazy XCom sequence probes one offset past the end and logs that miss as an
    error; asking for its length first does not.
    """
    return [mapped_results[index] for index in range(len(mapped_results))]


def expected_visits(extracted: list[dict[str, Any]], staged: dict[str, Any] | None = None) -> int:
    """Distinct visits the API reported for the run, after drift handling: the reconciliation target.

    Each listing's count is distinct within that listing; a visit rescheduled while a window run read
    two of its dates is in both and counted twice, so the visits staging found in several raw parts are
    subtracted (staging keeps one copy of each).
    """
    reported = sum(int(chunk["expected_visits"]) for chunk in extracted)
    return reported - int((staged or {}).get("visits_in_several_parts", 0))


def partitions_of(extracted: list[dict[str, Any]]) -> list[str] | None:
    """The visit_date partitions this run replaces, or None for a full refresh (every partition)."""
    if any(chunk["dates"] is None for chunk in extracted):
        return None
    return sorted({day for chunk in extracted for day in chunk["dates"]})


def stage(run_id: str) -> dict[str, Any]:
    """Stage the run's raw pages, first fetching those extracted on other hosts (lake.raw_store)."""
    from letsjobit.lake import raw_store
    from letsjobit.lake.stage import stage_run

    layout = config.layout()
    raw_store.fetch(layout, run_id)
    result = as_dict(stage_run(run_id, layout))
    lineage.record(layout, inputs=[lineage.folder(layout.raw)], outputs=[lineage.folder(layout.staging)])
    return result


def audit(run_id: str, extracted: list[dict[str, Any]], staged: dict[str, Any]) -> dict[str, Any]:
    """Run the validation gate on the staged run; it writes the audited output that publish takes.

    The thresholds are the checks' own (suites.py) over at least config.gate_min_rows() rows, which
    defaults to suites.DEFAULT_MIN_ROWS like the library itself.
    """
    from letsjobit.quality import audit

    layout = config.layout()
    lineage.record(layout, inputs=[lineage.folder(layout.staging)])
    result = audit.audit_run(
        run_id,
        layout,
        expected_visits=expected_visits(extracted, staged),
        thresholds=audit.Thresholds(min_rows=config.gate_min_rows()),
        rows_flattened=staged.get("rows"),
    )
    return as_dict(result)


def publish(run_id: str, extracted: list[dict[str, Any]], audited: dict[str, Any]) -> dict[str, Any]:
    """Publish the gate's audited output into the lake and record the publication for the warehouse."""
    from letsjobit.lake.publish import prune_runs, publish_run, vacuum

    layout = config.layout()
    partitions = partitions_of(extracted)
    dates = None if partitions is None else [date.fromisoformat(day) for day in partitions]
    result = as_dict(publish_run(run_id, layout, dates))
    publication = {
        "run_id": run_id,
        "partitions": partitions,
        "published_at": datetime.now(UTC).isoformat(),
        "validation": {
            key: audited.get(key)
            for key in ("verdict", "failed_checks", "report_html", "field_issues", "quarantined_records")
        },
    }
    files.write_json(layout.last_publication, publication)
    lineage.record(layout, inputs=[lineage.folder(layout.staging)], outputs=lineage.lake_tables(layout))
    prune_runs(layout, keep=config.keep_runs())
    vacuum(layout)
    log.info(
        "Published run %s (%s)", run_id, "full refresh" if partitions is None else f"{len(partitions)} dates"
    )
    return {**publication, "lake": result}


def build_warehouse(published: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the marts for the published dates (all of them after a full refresh) and swap the file."""
    from letsjobit.warehouse import build as warehouse

    layout = config.layout()
    partitions = published.get("partitions")
    changed = None if partitions is None else [date.fromisoformat(day) for day in partitions]
    result = warehouse.build(
        layout,
        changed_dates=changed,
        run_id=published["run_id"],
        validation=published.get("validation"),
    )
    record_warehouse_lineage(layout)
    return as_dict(result)


def record_warehouse_lineage(layout: config.DataLayout) -> None:
    """A warehouse build reads the three lake tables and writes the marts."""
    lineage.record(layout, inputs=lineage.lake_tables(layout), outputs=lineage.warehouse_marts(layout))


def rebuild_if_stale() -> dict[str, Any]:
    """Rebuild the whole warehouse unless it already reflects the lake's latest publication."""
    from letsjobit.warehouse import build as warehouse

    layout = config.layout()
    path = layout.last_publication
    if not path.exists():
        log.info("Nothing published to the lake yet at %s; nothing to build", layout.lake_location.redacted)
        return {"rebuilt": False, "reason": "no publication"}
    publication = json.loads(path.read_text())
    built_run = warehouse.built_run_id(layout)
    if built_run == publication["run_id"]:
        log.info("Warehouse already built from the latest publication (run %s); skipping", built_run)
        return {"rebuilt": False, "reason": "current", "run_id": built_run}
    log.info(
        "Warehouse built from run %s, lake published by run %s: full rebuild",
        built_run,
        publication["run_id"],
    )
    result = warehouse.build(
        layout, changed_dates=None, run_id=publication["run_id"], validation=publication.get("validation")
    )
    record_warehouse_lineage(layout)
    return {"rebuilt": True, **as_dict(result)}


def log_task_failure(context: dict[str, Any]) -> None:
    """Failure callback: one clear line per failed task, and a note of its error for the run's alert."""
    ti = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    log.error(
        "LetsJobIt task failed: dag=%s task=%s map_index=%s try=%s run=%s error=%s: %s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        getattr(ti, "map_index", "?"),
        getattr(ti, "try_number", "?"),
        context.get("run_id", "?"),
        type(error).__name__ if error else "unknown",
        error,
    )
    from letsjobit.airflow import alerts

    alerts.record_task_failure(context)
