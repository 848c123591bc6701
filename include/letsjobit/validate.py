"""The validation gate of write-audit-publish: audit a run's staged tables before anything is published.

``audit_run`` reads the staged parquet of one run (``layout.staging / run_id / <table>``), checks every
file's schema against ``schema.py``, runs the Great Expectations suites of ``suites.py`` on pandas
batches of the columns they need, and decides:

- ``fail``: a contract broke (duplicate or null keys, orphans, reconciliation, schema), a check could not
  run, or row-level problems exceed their threshold. The staging area is left as it is, the report is
  written and ``ValidationFailed`` is raised: the DAG must not publish.
- ``quarantined``: some rows failed row-level checks, within the thresholds. They are written with the
  names of the checks they failed and the values those checks read to
  ``layout.quarantine / run_id=<run_id> / <table>.parquet`` and removed from the staged files, together
  with their dependent rows (a visit takes its lines and their extra data along), so what is published
  is clean.
- ``pass``: nothing to remove.

Every audit writes ``summary.json`` (machine-readable), ``index.html`` (self-contained page) and GX Data
Docs (``data_docs/index.html``) under ``layout.reports / run_id``, and replaces ``layout.reports /
latest.json``.

Re-running an audit is safe: the quarantine file is written before the staged files are rewritten, rows
quarantined by an earlier audit of the same run stay quarantined and count towards reconciliation, and a
second audit of an already cleaned run finds nothing new.

GX and pandas are imported inside functions only: GX alone takes seconds to import, and DAG parsing must
stay light. Staged files are read one by one with pyarrow.parquet (pyarrow.dataset would import pandas),
which also tells which file holds each row.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from include.letsjobit import schema, suites
from include.letsjobit.config import DataLayout
from include.letsjobit.suites import Severity

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    QUARANTINED = "quarantined"
    FAIL = "fail"


# Check statuses in the summary.
PASSED, QUARANTINED, FAILED, ERROR, SKIPPED = "passed", "quarantined", "failed", "error", "skipped"

HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

# Columns a quarantine file adds to the table's own.
QUARANTINE_FIELDS = (
    pa.field("failed_checks", pa.list_(pa.string())),  # the row's own failed checks; empty when cascaded
    pa.field("failed_values", pa.string()),  # JSON: {check: {column: value}} of the values the checks read
    pa.field("quarantined_with", pa.string()),  # parent table whose row took this one along, else NULL
)

REWRITE_SUFFIX = ".audited"  # a staged file rewritten without its quarantined rows, before it replaces it
SAMPLE_SIZE = 5  # example values named in a failed check's message


class ValidationFailed(Exception):
    """A run failed validation: nothing may be published. The message names every failed check."""

    def __init__(self, message: str, result: AuditResult | None = None):
        super().__init__(message)
        self.result = result

    @classmethod
    def from_result(cls, result: AuditResult) -> ValidationFailed:
        details = "; ".join(f"{c.name}: {c.detail}" for c in result.checks if c.status in (FAILED, ERROR))
        return cls(
            f"validation failed for run {result.run_id}: {details} (report: {result.report_html})", result
        )


@dataclass(frozen=True)
class Thresholds:
    """How many bad rows a run may quarantine before it fails instead.

    ``row_share``: a row-level check failing on more than this share of its table's rows fails the run
    (``per_check`` overrides it by check name). ``quarantine_share``: no table may lose more than this
    share of its rows to quarantine, all checks and cascades together. ``min_rows``: shares are taken
    over at least this many rows, so that a window of a few visits is not failed by one bad record
    (0: the true share, however small the table; the pipeline sets config.gate_min_rows()).
    """

    row_share: float = 0.05
    per_check: Mapping[str, float] = field(default_factory=dict)
    quarantine_share: float = 0.10
    min_rows: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.per_check) - set(suites.ALL_CHECKS)
        if unknown:
            raise ValueError(f"thresholds for unknown checks: {sorted(unknown)}")

    def for_check(self, name: str) -> float:
        return self.per_check.get(name, self.row_share)

    def share(self, count: int, rows: int) -> float:
        """``count`` as a share of ``rows``, or of ``min_rows`` when the table is smaller."""
        judged = max(rows, self.min_rows)
        return count / judged if judged else 0.0

    def judged_over(self, rows: int) -> str:
        """What a share's detail adds when the floor, not the table, was its denominator."""
        return (
            f", judged over {self.min_rows} rows (the floor for small runs)" if rows < self.min_rows else ""
        )


@dataclass
class CheckResult:
    name: str
    table: str
    severity: str
    description: str
    status: str
    detail: str = ""
    unexpected_count: int | None = None
    share: float | None = None  # unexpected rows / the table's rows
    threshold: float | None = None
    observed: Any = None
    expected: Any = None
    sample: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class AuditResult:
    """What an audit decided and where it wrote. ``dataclasses.asdict`` of it is JSON-able for XCom."""

    run_id: str
    verdict: Verdict
    counts: dict[str, dict[str, int]]  # per table: staged, quarantined, quarantined_earlier, clean
    quarantined_rows: int  # all tables together
    failed_checks: list[str]
    checks: tuple[CheckResult, ...]
    report_html: Path  # our self-contained page
    report_json: Path  # summary.json
    data_docs_html: Path | None  # GX Data Docs index (None when no table could be loaded)
    latest_json: Path
    quarantine_paths: dict[str, Path]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The small JSON-friendly part (paths and counts, never data, no per-check detail)."""
        return {
            "run_id": self.run_id,
            "verdict": self.verdict.value,
            "counts": self.counts,
            "quarantined_rows": self.quarantined_rows,
            "failed_checks": self.failed_checks,
            "report_html": str(self.report_html),
            "report_json": str(self.report_json),
            "data_docs_html": str(self.data_docs_html) if self.data_docs_html else None,
            "latest_json": str(self.latest_json),
            "quarantine_paths": {t: str(p) for t, p in self.quarantine_paths.items()},
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Table:
    """One staged table of the run: its files, their schema problems, and the loaded check columns."""

    name: str
    root: Path
    files: list[Path]
    problems: dict[str, list[str]]  # problem -> files (relative) that have it
    loaded: pa.Table | None = None  # the checked columns, as read (dropped once the frame is built)
    frame: pd.DataFrame | None = None  # the same columns in pandas, plus derived ones: what GX validates
    key: pa.Array | None = None  # each frame row's key as one string (suites.key_strings)
    parent_key: pa.Array | None = None  # each frame row's parent key, for child tables
    row_files: np.ndarray | None = None  # index in `files` of each frame row
    previous: pa.Table | None = None  # rows an earlier audit of this run quarantined (no longer staged)

    @property
    def keys(self) -> list[str]:
        return list(schema.KEYS[self.name])

    @property
    def staged_rows(self) -> int:
        return 0 if self.frame is None else len(self.frame)

    @property
    def previous_rows(self) -> int:
        return 0 if self.previous is None else self.previous.num_rows

    def earlier_failures(self, check: str) -> int:
        """Rows an earlier audit of the run quarantined for failing this check."""
        if self.previous is None:
            return 0
        return sum(check in failed for failed in self.previous.column("failed_checks").to_pylist())


def quarantine_dir(layout: DataLayout, run_id: str) -> Path:
    return layout.quarantine / f"run_id={run_id}"


def report_dir(layout: DataLayout, run_id: str) -> Path:
    return layout.reports / run_id


def audit_run(
    run_id: str,
    layout: DataLayout,
    expected_visits: int | None,
    rows_flattened: Mapping[str, int] | None = None,
    thresholds: Thresholds | None = None,
) -> AuditResult:
    """Validate a run's staged tables, quarantine bad rows, write the reports; raise when it must not publish.

    ``expected_visits``: distinct visits the API reported for the run (None: not reconciled).
    ``rows_flattened``: rows per table the flattener produced (None or a missing table: not reconciled).
    """
    started = time.monotonic()
    thresholds = thresholds or Thresholds()
    run_dir = layout.staging / run_id
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no staged data for run {run_id} at {run_dir}")

    for leftover in run_dir.rglob(f".*{REWRITE_SUFFIX}"):  # rewrites of an audit that crashed
        leftover.unlink()
    tables = {name: _scan(name, run_dir / name) for name in schema.TABLES}
    checks: list[CheckResult] = [_schema_result(t) for t in tables.values()]
    loadable = [t for t in tables.values() if not t.problems]
    for table in loadable:
        _load(table, quarantine_dir(layout, run_id) / f"{table.name}.parquet")
    derived = suites.derive_columns(
        {t.name: t.loaded for t in loadable},
        keys={t.name: t.key for t in loadable},
        parent_keys={t.name: t.parent_key for t in loadable if t.parent_key is not None},
    )
    for table in loadable:
        # Dates as datetime64 rather than one Python object per row; the arrow table is not used again.
        table.frame = table.loaded.to_pandas(date_as_object=False, split_blocks=True, self_destruct=True)
        table.loaded = None
        for column, values in derived.get(table.name, {}).items():
            table.frame[column] = values
    frames = {t.name: t.frame for t in loadable}

    parameters = _parameters(tables, expected_visits, rows_flattened)
    reports = report_dir(layout, run_id)
    gx_results, docs_path = _run_gx(run_id, frames, parameters, reports)
    bad_rows: dict[str, dict[int, list[str]]] = {name: {} for name in schema.TABLES}
    for table in tables.values():
        for check in suites.SUITES[table.name]:
            checks.append(_check_result(check, table, tables, gx_results, parameters, thresholds, bad_rows))

    removed = _cascade(tables, bad_rows) if loadable else {}
    checks.extend(_quarantine_share_result(t, removed, thresholds) for t in tables.values())

    failed = any(c.status in (FAILED, ERROR) for c in checks)
    quarantine_paths: dict[str, Path] = {}
    if not failed:
        quarantine_paths = _quarantine(run_id, layout, tables, bad_rows, removed)
    counts = _table_counts(tables, removed, applied=not failed)
    if failed:
        verdict = Verdict.FAIL
    elif any(c["quarantined"] for c in counts.values()):
        verdict = Verdict.QUARANTINED
    else:
        verdict = Verdict.PASS

    result = AuditResult(
        run_id=run_id,
        verdict=verdict,
        counts=counts,
        quarantined_rows=sum(c["quarantined"] for c in counts.values()),
        failed_checks=[c.name for c in checks if c.status in (FAILED, ERROR)],
        checks=tuple(checks),
        report_html=reports / "index.html",
        report_json=reports / "summary.json",
        data_docs_html=docs_path,
        latest_json=layout.reports / "latest.json",
        quarantine_paths=quarantine_paths,
        seconds=time.monotonic() - started,
    )
    _write_reports(result, expected_visits, rows_flattened, thresholds, tables)
    log.info(
        "Validation of run %s: %s in %.1f s; quarantined %s; report %s; summary %s; data docs %s",
        run_id,
        verdict,
        result.seconds,
        {table: c["quarantined"] for table, c in result.counts.items()},
        result.report_html,
        result.report_json,
        result.data_docs_html,
    )
    if failed:
        raise ValidationFailed.from_result(result)
    return result


# --- reading the staging area ---------------------------------------------------------------------


def _data_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    # Like pyarrow.dataset: names starting with "." or "_" are temporary or metadata files.
    return sorted(
        path
        for path in root.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)
    )


def _scan(name: str, root: Path) -> _Table:
    """List a staged table's files and check each file's schema and partition folder (footers only)."""
    table = _Table(name=name, root=root, files=_data_files(root), problems={})
    for path in table.files:
        relative = str(path.relative_to(root))
        problems = []
        folder = path.relative_to(root).parts[:-1]
        if len(folder) != 1 or not _is_partition_folder(folder[0]):
            problems.append(f"not directly under a {schema.PARTITION_COLUMN}=YYYY-MM-DD folder")
        try:
            problems.extend(suites.schema_problems(pq.read_schema(path), name))
        except (pa.ArrowInvalid, OSError) as error:
            problems.append(f"unreadable parquet ({error})")
        for problem in problems:
            table.problems.setdefault(problem, []).append(relative)
    return table


def _partition_value(path: Path) -> dt.date | None | str:
    """The visit_date of a staged file's folder: a date, None (hive NULL), or the raw text if malformed."""
    key, _, value = path.parent.name.partition("=")
    if key != schema.PARTITION_COLUMN:
        return path.parent.name
    if value == HIVE_NULL_PARTITION:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return value


def _is_partition_folder(folder: str) -> bool:
    return not isinstance(_partition_value(Path(folder) / "f"), str)


def _read_file(table: _Table, path: Path, columns: list[str] | None = None) -> pa.Table:
    """One staged file typed as schema.py, with visit_date from its folder when the file leaves it out."""
    wanted = columns or schema.TABLES[table.name].names
    target = pa.schema([schema.TABLES[table.name].field(c) for c in wanted])
    stored = set(pq.read_schema(path).names)
    content = pq.ParquetFile(path).read(columns=[c for c in wanted if c in stored])
    if schema.PARTITION_COLUMN in wanted and schema.PARTITION_COLUMN not in stored:
        day = pa.scalar(_partition_value(path), pa.date32())
        content = content.append_column(schema.PARTITION_COLUMN, pa.repeat(day, content.num_rows))
    return content.select(wanted).cast(target)


def _load(table: _Table, previous_path: Path) -> None:
    """Load the columns the checks read (and each row's file), and the rows quarantined earlier."""
    import numpy as np

    columns = suites.columns_to_load(table.name)
    parts = [_read_file(table, path, columns) for path in table.files]
    loaded = pa.concat_tables(
        [pa.schema([schema.TABLES[table.name].field(c) for c in columns]).empty_table(), *parts]
    )
    table.row_files = np.repeat(np.arange(len(parts), dtype=np.int32), [p.num_rows for p in parts])
    table.key = suites.key_strings(loaded, table.keys)
    if table.name in suites.PARENTS:
        table.parent_key = suites.key_strings(loaded, schema.KEYS[suites.PARENTS[table.name]])
    # GX checks ranges vectorised only on 64-bit numpy dtypes (int8 and int32 go through a Python loop).
    table.loaded = loaded.cast(
        pa.schema([f.with_type(pa.int64()) if pa.types.is_integer(f.type) else f for f in loaded.schema])
    )
    if previous_path.exists():
        previous = pq.read_table(previous_path)
        still_out = pc.invert(pc.is_in(suites.key_strings(previous, table.keys), value_set=table.key))
        table.previous = previous.filter(still_out)


def _parameters(
    tables: Mapping[str, _Table], expected_visits: int | None, rows_flattened: Mapping[str, int] | None
) -> dict[str, int]:
    """Reconciliation targets for the staged rows: rows quarantined by an earlier audit are no longer staged."""
    parameters = {}
    if expected_visits is not None:
        parameters[suites.EXPECTED_VISITS] = expected_visits - tables["visits"].previous_rows
    for name, rows in (rows_flattened or {}).items():
        if name in tables:  # other counts (rejects, say) are not reconciled here
            parameters[suites.rows_flattened_parameter(name)] = rows - tables[name].previous_rows
    return parameters


# --- Great Expectations ---------------------------------------------------------------------------


def _import_gx():
    # GX logs hundreds of INFO lines about its docs decorators while importing, and one per context.
    for noisy in ("great_expectations._docs_decorators", "great_expectations.datasource.fluent.config"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def _run_gx(
    run_id: str, frames: Mapping[str, pd.DataFrame], parameters: Mapping[str, int], reports: Path
) -> tuple[dict[str, Any], Path | None]:
    """Validate each frame against its suite in one ephemeral context; build Data Docs; results by check."""
    if not frames:
        return {}, None
    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )
    source = context.data_sources.add_pandas("staged")
    gx_run = RunIdentifier(run_name=run_id, run_time=dt.datetime.now(dt.UTC))
    results: dict[str, Any] = {}
    for name, frame in frames.items():
        suite = context.suites.add(suites.build_suite(name, parameters))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("run")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        validation = definition.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=dict(parameters),
            # COMPLETE: every unexpected row's index, which is what gets quarantined.
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_SIZE},
            run_id=gx_run,
        )
        for expectation in validation.results:
            results[expectation.expectation_config.meta["check"]] = expectation
    return results, _build_data_docs(context, reports)


def _build_data_docs(context, reports: Path) -> Path:
    """Render the run's Data Docs into a fresh folder, then swap it in (the old one stays until then)."""
    reports.mkdir(parents=True, exist_ok=True)
    final = reports / "data_docs"
    building = reports / f".data_docs-{uuid.uuid4().hex}"
    context.add_data_docs_site(
        site_name="run",
        site_config={
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(building)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    context.build_data_docs(site_names=["run"])
    # GX copies its tutorial animations (3 MB) into every site; the pages we build never show them.
    for gif in (building / "static" / "images").glob("*.gif"):
        gif.unlink()
    _replace_dir(building, final)
    return final / "index.html"


def _check_result(
    check: suites.Check,
    table: _Table,
    tables: Mapping[str, _Table],
    gx_results: Mapping[str, Any],
    parameters: Mapping[str, int],
    thresholds: Thresholds,
    bad_rows: dict[str, dict[int, list[str]]],
) -> CheckResult:
    """Turn one GX result into a status; record the rows a row-level check quarantines."""
    result = CheckResult(check.name, check.table, check.severity.value, check.description, SKIPPED)
    if check.parameter and check.parameter not in parameters:
        result.detail = f"not reconciled: the run gave no {check.parameter}"
        return result
    needed = [table.name] + ([suites.PARENTS[table.name]] if suites.reads_parent(check) else [])
    broken = [name for name in needed if tables[name].problems]
    if broken:
        result.detail = f"not run: schema of {', '.join(broken)} is broken"
        return result
    gx_result = gx_results[check.name]
    if gx_result.exception_info and gx_result.exception_info.get("raised_exception"):
        result.status = ERROR
        result.detail = f"could not run: {gx_result.exception_info.get('exception_message')}"
        return result
    outcome = gx_result.result
    if "observed_value" in outcome:  # table-level: row counts
        previous = table.previous_rows
        result.observed = outcome["observed_value"] + previous
        result.expected = parameters[check.parameter] + previous if check.parameter else None
        result.status = PASSED if gx_result.success else FAILED
        result.detail = f"{result.observed} rows, expected {result.expected}" + (
            f" (incl. {previous} quarantined earlier)" if previous else ""
        )
        return result
    # Rows an earlier audit of this run quarantined for this check count as if still staged.
    earlier = table.earlier_failures(check.name)
    unexpected = int(outcome.get("unexpected_count") or 0) + earlier
    rows = table.staged_rows + table.previous_rows
    result.unexpected_count = unexpected
    result.share = thresholds.share(unexpected, rows)
    result.sample = [_jsonable(v) for v in outcome.get("partial_unexpected_list", [])[:SAMPLE_SIZE]]
    if not unexpected:
        result.status = PASSED
        return result
    result.detail = f"{unexpected} of {rows} rows ({result.share:.2%}{thresholds.judged_over(rows)})"
    result.detail += f", e.g. {result.sample}" if result.sample else ""
    result.detail += f", {earlier} quarantined earlier" if earlier else ""
    if check.severity is Severity.CONTRACT:
        result.status = FAILED
        return result
    result.threshold = thresholds.for_check(check.name)
    if result.share > result.threshold:
        result.status = FAILED
        result.detail += f", above the threshold of {result.threshold:.2%}"
        return result
    result.status = QUARANTINED
    for position in outcome.get("unexpected_index_list") or []:
        bad_rows[table.name].setdefault(int(position), []).append(check.name)
    return result


def _schema_result(table: _Table) -> CheckResult:
    check = suites.SCHEMA_CHECKS[table.name]
    result = CheckResult(check.name, check.table, check.severity.value, check.description, PASSED)
    if table.problems:
        result.status = FAILED
        result.detail = "; ".join(
            f"{problem} ({len(files)} file{'s' if len(files) > 1 else ''}, e.g. {files[0]})"
            for problem, files in table.problems.items()
        )
    elif not table.files:
        result.detail = "no staged files: the table is empty"
    return result


# --- quarantine -----------------------------------------------------------------------------------


def _cascade(tables: Mapping[str, _Table], bad_rows: Mapping[str, Mapping[int, list[str]]]) -> dict[str, Any]:
    """Per table, a boolean mask over the frame: its own bad rows and the rows whose parent is removed."""
    import numpy as np

    removed: dict[str, Any] = {}
    for name in schema.TABLES:  # parents come first
        table = tables[name]
        mask = np.zeros(table.staged_rows, dtype=bool)
        removed[name] = mask
        if table.frame is None:
            continue
        mask[list(bad_rows[name])] = True
        parent = suites.PARENTS.get(name)
        if parent is not None and removed[parent].any():
            gone = tables[parent].key.filter(pa.array(removed[parent]))
            mask |= pc.is_in(table.parent_key, value_set=gone).to_numpy(zero_copy_only=False)
    return removed


def _quarantine_share_result(
    table: _Table, removed: Mapping[str, Any], thresholds: Thresholds
) -> CheckResult:
    check = suites.QUARANTINE_SHARE_CHECKS[table.name]
    result = CheckResult(check.name, check.table, check.severity.value, check.description, SKIPPED)
    if table.name not in removed:
        result.detail = "not run: the tables could not be loaded"
        return result
    rows = table.staged_rows + table.previous_rows
    quarantined = int(removed[table.name].sum()) + table.previous_rows
    result.unexpected_count = quarantined
    result.share = thresholds.share(quarantined, rows)
    result.threshold = thresholds.quarantine_share
    result.status = PASSED if result.share <= result.threshold else FAILED
    result.detail = (
        f"{quarantined} of {rows} rows ({result.share:.2%}{thresholds.judged_over(rows)}) quarantined, "
        f"limit {result.threshold:.2%}"
    )
    return result


def _quarantine(
    run_id: str,
    layout: DataLayout,
    tables: Mapping[str, _Table],
    bad_rows: Mapping[str, Mapping[int, list[str]]],
    removed: Mapping[str, Any],
) -> dict[str, Path]:
    """Move the removed rows from the staged files to the run's quarantine files, crash-safely.

    Each affected staged file is read once: its removed rows are kept for the quarantine file and the
    rest is written beside it under a hidden name. Then the quarantine files are written (with the rows
    of earlier audits), and only then the rewritten files replace the staged ones, so a crash at any
    point leaves rows either still staged (a re-audit finds them again) or already quarantined.
    """
    target = quarantine_dir(layout, run_id)
    replacements: list[tuple[Path, Path | None]] = []  # staged file, its rewrite (None: no row left)
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        mask = removed[name]
        if not mask.any() and table.previous is None:
            continue  # nothing now and no file from an earlier audit to keep
        visit_ids = pa.array(table.frame["visit_id"][mask].unique(), pa.string())
        gone = _Gone(table.key.filter(pa.array(mask)), visit_ids)
        taken = [_take_rows(table, file, gone, replacements) for file in _files_of(table, mask)]
        rows = _annotate(
            table, pa.concat_tables([schema.TABLES[name].empty_table(), *taken]), mask, bad_rows[name]
        )
        if table.previous is not None:
            rows = pa.concat_tables([table.previous.select(rows.schema.names).cast(rows.schema), rows])
        target.mkdir(parents=True, exist_ok=True)
        paths[name] = target / f"{name}.parquet"
        _write_parquet_atomic(rows, paths[name])
    for staged, rewrite in replacements:
        if rewrite is not None:
            os.replace(rewrite, staged)
            continue
        staged.unlink()
        if not any(staged.parent.iterdir()):
            staged.parent.rmdir()
    for name, table in tables.items():
        if removed[name].any():
            log.info("Quarantined %d %s rows of %s", int(removed[name].sum()), name, table.root)
    return paths


def _files_of(table: _Table, mask) -> list[Path]:
    import numpy as np

    return [table.files[i] for i in np.unique(table.row_files[mask])]


def _codec(staged: pq.ParquetFile) -> str:
    """The compression the lake wrote a file with, so that a rewrite keeps it."""
    metadata = staged.metadata
    if metadata.num_row_groups and metadata.num_columns:
        return metadata.row_group(0).column(0).compression.lower()
    return "snappy"


@dataclass(frozen=True)
class _Gone:
    """The keys of a table's removed rows, and their visit ids (a cheap first filter: every key has one)."""

    keys: pa.Array
    visit_ids: pa.Array


def _take_rows(
    table: _Table, file: Path, gone: _Gone, replacements: list[tuple[Path, Path | None]]
) -> pa.Table:
    """The removed rows of one staged file (typed as schema.py); its rewrite without them is queued."""
    import numpy as np

    staged = pq.ParquetFile(file)
    content = staged.read()
    maybe = pc.indices_nonzero(pc.is_in(content.column("visit_id"), value_set=gone.visit_ids))
    exact = pc.is_in(suites.key_strings(content.take(maybe), table.keys), value_set=gone.keys)
    hit = np.zeros(content.num_rows, dtype=bool)
    hit[maybe.filter(exact).to_numpy()] = True
    hit = pa.array(hit)
    kept = content.filter(pc.invert(hit))
    if kept.num_rows:
        # A fixed hidden name: ignored by readers, overwritten by a re-audit after a crash.
        rewrite = file.with_name(f".{file.name}{REWRITE_SUFFIX}")
        pq.write_table(kept, rewrite, compression=_codec(staged))
        replacements.append((file, rewrite))
    else:
        replacements.append((file, None))
    removed = content.filter(hit)
    if schema.PARTITION_COLUMN not in removed.column_names:
        day = pa.scalar(_partition_value(file), pa.date32())
        removed = removed.append_column(schema.PARTITION_COLUMN, pa.repeat(day, removed.num_rows))
    return removed.select(schema.TABLES[table.name].names).cast(schema.TABLES[table.name])


def _annotate(table: _Table, rows: pa.Table, mask, own_failures: Mapping[int, list[str]]) -> pa.Table:
    """Add to the removed rows the checks each failed and the values those checks read."""
    quarantine_schema = pa.schema([*schema.TABLES[table.name], *QUARANTINE_FIELDS])
    positions = mask.nonzero()[0]
    # Frame position of each removed row, through its key.
    index = pc.index_in(suites.key_strings(rows, table.keys), value_set=table.key.take(pa.array(positions)))
    row_positions = (
        [int(p) for p in positions[index.to_numpy(zero_copy_only=False).astype(int)]] if rows.num_rows else []
    )
    # The values the failed checks read, as stored (the frame widened integers for GX).
    checked = sorted(
        {
            c
            for p in row_positions
            for check in own_failures.get(p, [])
            for c in suites.ALL_CHECKS[check].columns
        }
    )
    stored = {c: rows.column(c).to_pylist() for c in checked}
    # A row removed without failing a check of its own was taken along by its parent table's row.
    parent = suites.PARENTS.get(table.name)
    failed_checks, failed_values, quarantined_with = [], [], []
    for i, position in enumerate(row_positions):
        own = own_failures.get(position, [])
        failed_checks.append(own)
        values = {
            check: {c: _jsonable(stored[c][i]) for c in suites.ALL_CHECKS[check].columns} for check in own
        }
        failed_values.append(json.dumps(values, sort_keys=True) if own else None)
        quarantined_with.append(None if own else parent)
    for column, values in zip(
        QUARANTINE_FIELDS, (failed_checks, failed_values, quarantined_with), strict=True
    ):
        rows = rows.append_column(column, pa.array(values, column.type))
    return rows.select(quarantine_schema.names).cast(quarantine_schema)


def _table_counts(
    tables: Mapping[str, _Table], removed: Mapping[str, Any], applied: bool
) -> dict[str, dict[str, int]]:
    counts = {}
    for name, table in tables.items():
        new = int(removed[name].sum()) if applied and name in removed else 0
        counts[name] = {
            "staged": table.staged_rows,
            "quarantined": new + table.previous_rows,
            "quarantined_earlier": table.previous_rows,
            "clean": table.staged_rows - new,
        }
    return counts


# --- reports --------------------------------------------------------------------------------------


def _write_reports(
    result: AuditResult,
    expected_visits: int | None,
    rows_flattened: Mapping[str, int] | None,
    thresholds: Thresholds,
    tables: Mapping[str, _Table],
) -> None:
    summary = {
        "run_id": result.run_id,
        "verdict": result.verdict.value,
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
        "seconds": round(result.seconds, 3),
        "failed_checks": result.failed_checks,
        "quarantined_rows": result.quarantined_rows,
        "counts": result.counts,
        "rejects": _count_rows(tables["visits"].root.parent / "rejects.parquet"),
        "expected_visits": expected_visits,
        "rows_flattened": dict(rows_flattened) if rows_flattened else None,
        "thresholds": {
            "row_share": thresholds.row_share,
            "per_check": dict(thresholds.per_check),
            "quarantine_share": thresholds.quarantine_share,
            "min_rows": thresholds.min_rows,
        },
        "report_html": str(result.report_html),
        "report_json": str(result.report_json),
        "data_docs_html": str(result.data_docs_html) if result.data_docs_html else None,
        "quarantine_paths": {t: str(p) for t, p in result.quarantine_paths.items()},
        "staging": str(tables["visits"].root.parent),
        "checks": [c.as_dict() for c in result.checks],
    }
    text = json.dumps(summary, indent=2, sort_keys=False).encode()
    result.report_json.parent.mkdir(parents=True, exist_ok=True)
    _write_bytes_atomic(text, result.report_json)
    _write_bytes_atomic(_render_html(summary).encode(), result.report_html)
    _write_bytes_atomic(text, result.latest_json)


def _render_html(summary: Mapping[str, Any]) -> str:
    """A self-contained page (no CDN: GX's own Data Docs need one for their styles)."""
    e = html.escape
    colours = {
        PASSED: "#1a7f37",
        QUARANTINED: "#9a6700",
        FAILED: "#cf222e",
        ERROR: "#cf222e",
        SKIPPED: "#6e7781",
    }
    verdict_colour = {Verdict.PASS: "#1a7f37", Verdict.QUARANTINED: "#9a6700", Verdict.FAIL: "#cf222e"}
    check_rows = "".join(
        f"<tr><td><code>{e(c['name'])}</code><br><small>{e(c['description'])}</small></td>"
        f"<td>{e(c['severity'])}</td>"
        f"<td style='color:{colours.get(c['status'], '#000')};font-weight:bold'>{e(c['status'])}</td>"
        f"<td>{'' if c['unexpected_count'] is None else c['unexpected_count']}</td>"
        f"<td>{_percent(c['share'])}</td><td>{_percent(c['threshold'])}</td>"
        f"<td>{e(c['detail'])}</td></tr>"
        for c in summary["checks"]
    )
    table_rows = "".join(
        f"<tr><td>{e(name)}</td><td>{n['staged']}</td><td>{n['quarantined']}</td><td>{n['clean']}</td></tr>"
        for name, n in summary["counts"].items()
    )
    links = ""
    if summary["data_docs_html"]:
        links += "<li><a href='data_docs/index.html'>Great Expectations Data Docs</a></li>"
    links += "<li><a href='summary.json'>summary.json</a></li>"
    links += "".join(
        f"<li>quarantine {e(t)}: <code>{e(p)}</code></li>" for t, p in summary["quarantine_paths"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Validation {e(summary["run_id"])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f6f8fa}}.verdict{{font-size:1.6em;font-weight:bold;color:{verdict_colour[summary["verdict"]]}}}
</style></head><body>
<h1>Validation of run <code>{e(summary["run_id"])}</code></h1>
<p class="verdict">{e(summary["verdict"].upper())}</p>
<p>Validated at {e(summary["validated_at"])} in {summary["seconds"]} s.
Expected visits (API): {e(str(summary["expected_visits"]))}.
Values the flattener could not coerce (rejects, kept as NULL): {e(str(summary["rejects"]))}.
Failed checks: {e(", ".join(summary["failed_checks"]) or "none")}.</p>
<h2>Rows</h2>
<table><tr><th>table</th><th>staged</th><th>quarantined</th><th>clean</th></tr>{table_rows}</table>
<h2>Checks</h2>
<table><tr><th>check</th><th>severity</th><th>status</th><th>unexpected rows</th><th>share</th><th>threshold</th>
<th>detail</th></tr>{check_rows}</table>
<h2>Files</h2><ul>{links}</ul>
</body></html>
"""


# --- small helpers --------------------------------------------------------------------------------


def _count_rows(path: Path) -> int | None:
    """Rows of a parquet file from its footer (the lake's rejects), None when there is none."""
    return pq.read_metadata(path).num_rows if path.exists() else None


def _percent(share: float | None) -> str:
    return "" if share is None else f"{share:.2%}"


def _jsonable(value: Any) -> Any:
    """A JSON-safe form of a value from pandas or GX (NaN and NaT become null, dates ISO text)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "isoformat"):  # numpy scalars
        return _jsonable(value.item())
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _write_bytes_atomic(content: bytes, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    # A leading "." keeps a crashed write's leftover out of readers (pyarrow.dataset, _data_files).
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def _replace_dir(new: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}-old-{uuid.uuid4().hex}")
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
