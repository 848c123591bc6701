"""The validation gate of write-audit-publish: audit a run's staged tables before anything is published.

``audit_run`` reads the staged parquet of one run (``layout.staging / run_id / <table>``) and the issues
the flattener staged beside it (``data_issues``), checks every file's schema against ``schema.py``, runs
the Great Expectations suites of ``suites.py`` on pandas batches of the columns they need, and applies
the policy of each check (``suites.Severity``, ``suites.Action``):

- contract checks: any failure fails the run;
- field checks: a value out of its domain is NULLed in the published data (``nulled``), a well-formed
  value the pipeline does not know or a contradiction between fields is kept as sent (``kept``); either
  way one row of ``data_issues`` records it; the record is published;
- record checks: a record that cannot be placed (no date, an orphan) is quarantined with its children
  (a visit takes its lines and their extraData along), and one issue row records it (the children taken
  along get none of their own: their quarantine rows say ``quarantined_with``);
- any field or record check whose share of its table's rows is above its threshold fails the run (a
  systemic change, not a bad record), and so does a table losing more than ``quarantine_share`` of its
  rows. The flattener's issues count too: 30% of priorities that cannot be read fail the run.

A failed run raises ``ValidationFailed`` naming every failed check, its share, threshold and examples:
nothing may be published (the audited output of any earlier audit of the run is removed). A run that
passes gets its **audited output** at ``layout.audited(run_id)``: the four lake tables as they are to
be published, files without a change hard-linked from the staging area, files with quarantined rows or
NULLed values rewritten, and the gate's issues added to the flattener's. ``lake.publish_run`` takes
that output. Quarantined rows go to ``layout.quarantine / run_id=<run_id> / <table>.parquet`` with the
checks they failed and the values those checks read.

The audit never changes the staging area: a re-audit of the same run reads the same input and writes the
same output (quarantine files first, then the audited folder built aside and swapped in), so a retry
after a crash at any point is safe and deterministic.

Every audit writes ``summary.json`` (machine-readable: verdict, issue counts by check, warnings, unknown
values), ``index.html`` (self-contained page) and GX Data Docs (``data_docs/index.html``) under
``layout.reports / run_id``, and replaces ``layout.reports / latest.json``.

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
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letsjobit import config, files
from letsjobit.config import DataLayout
from letsjobit.lake import coerce, schema
from letsjobit.quality import suites
from letsjobit.quality.suites import Action, Check, Severity

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    QUARANTINED = "quarantined"  # published, with some records kept out
    FAIL = "fail"


# Check statuses in the summary. A field or record check that found problems within its threshold has
# the action taken as its status: "nulled", "kept" or "quarantined".
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"

HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
ISSUES = schema.DATA_ISSUES_TABLE

# Columns a quarantine file adds to the table's own.
QUARANTINE_FIELDS = (
    pa.field("failed_checks", pa.list_(pa.string())),  # the row's own failed checks; empty when cascaded
    pa.field("failed_values", pa.string()),  # JSON: {check: {column: value}} of the values the checks read
    pa.field("quarantined_with", pa.string()),  # parent table whose row took this one along, else NULL
)

GATE_ISSUES_FILE = "audit-00000.parquet"  # the gate's issues of a partition, beside the flattener's files
SAMPLE_SIZE = 5  # example values named in a check's detail and a failure's message


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
    """When problems are systemic enough to fail the run rather than be recorded.

    Each field or record check has its default threshold in ``suites.py`` (a share of its table's rows;
    None: never fails the run); ``per_check`` overrides it by check name (None included).
    ``quarantine_share``: no table may lose more than this share of its rows to quarantine, all checks
    and cascades together. ``min_rows``: shares are taken over at least this many rows, so that a window
    of a few visits is not failed by one bad record (0: the true share, however small the table).
    ``warn_share``: a check above it, within its threshold, is listed under ``warnings``.
    """

    per_check: Mapping[str, float | None] = field(default_factory=dict)
    quarantine_share: float = suites.DEFAULT_QUARANTINE_SHARE
    min_rows: int = suites.DEFAULT_MIN_ROWS
    warn_share: float = suites.DEFAULT_WARN_SHARE

    def __post_init__(self) -> None:
        unknown = set(self.per_check) - set(suites.ISSUE_CHECKS)
        if unknown:
            raise ValueError(f"thresholds for unknown checks (or checks without one): {sorted(unknown)}")

    def for_check(self, check: Check) -> float | None:
        return self.per_check[check.name] if check.name in self.per_check else check.threshold

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
    action: str | None
    description: str
    status: str
    detail: str = ""
    unexpected_count: int | None = None  # contract checks: rows failing; issue checks: issue rows
    share: float | None = None  # unexpected / the table's rows (or the floor)
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
    counts: dict[str, dict[str, int]]  # per table: staged, quarantined, clean (published), values_nulled
    quarantined_rows: int  # all tables together, children taken along included
    failed_checks: list[str]
    checks: tuple[CheckResult, ...]
    issues: dict[str, dict[str, Any]]  # per check that found any: table, field, severity, action, count...
    warnings: list[dict[str, Any]]  # checks above warn_share, within their threshold
    unknown_values: dict[str, dict[str, int]]  # per "unknown value" check: raw value -> issue rows
    field_issues: int  # issue rows of field checks (values NULLed or kept)
    quarantined_records: int  # issue rows of record checks (records or structures kept out)
    report_html: Path  # our self-contained page
    report_json: Path  # summary.json
    data_docs_html: Path | None  # GX Data Docs index (None when no table could be loaded)
    latest_json: Path
    quarantine_paths: dict[str, Path]
    audited_path: Path | None  # what publish takes (None: the run failed)
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The small JSON-friendly part (paths and counts, never data, no per-check detail)."""
        return {
            "run_id": self.run_id,
            "verdict": self.verdict.value,
            "counts": self.counts,
            "quarantined_rows": self.quarantined_rows,
            "field_issues": self.field_issues,
            "quarantined_records": self.quarantined_records,
            "warnings": [w["check"] for w in self.warnings],
            "unknown_values": self.unknown_values,
            "failed_checks": self.failed_checks,
            "report_html": str(self.report_html),
            "report_json": str(self.report_json),
            "data_docs_html": str(self.data_docs_html) if self.data_docs_html else None,
            "latest_json": str(self.latest_json),
            "quarantine_paths": {t: str(p) for t, p in self.quarantine_paths.items()},
            "audited_path": str(self.audited_path) if self.audited_path else None,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Table:
    """One staged table of the run: its files, their schema problems, and the loaded check columns."""

    name: str
    root: Path
    files: list[Path]
    problems: dict[str, list[str]]  # problem -> files (relative) that have it
    loaded: pa.Table | None = None  # the checked columns and fetched_at, as read (integers widened)
    frame: pd.DataFrame | None = None  # the checked columns in pandas, plus derived ones: what GX validates
    key: pa.Array | None = None  # each row's key as one string (suites.key_strings)
    parent_key: pa.Array | None = None  # each row's parent key, for child tables
    file_starts: list[int] = field(default_factory=list)  # row of each file's first row, then the total

    @property
    def keys(self) -> list[str]:
        return list(schema.KEYS[self.name])

    @property
    def staged_rows(self) -> int:
        return 0 if self.frame is None else len(self.frame)


@dataclass
class _Findings:
    """What the gate's checks found, per table, as row positions (before any threshold is applied)."""

    own: dict[str, dict[int, list[str]]]  # rows failing record checks -> those checks
    nulled: dict[str, dict[str, Any]]  # column -> boolean mask of the values to NULL
    issues: list[pa.Table]  # the gate's issue rows (schema.DATA_ISSUES)

    @classmethod
    def empty(cls) -> _Findings:
        return cls({name: {} for name in schema.TABLES}, {name: {} for name in schema.TABLES}, [])


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
    """Validate a run's staged tables, write its audited output and reports; raise when it must not publish.

    ``expected_visits``: distinct visits the API reported for the run (None: not reconciled).
    ``rows_flattened``: rows per table the flattener produced (None or a missing table: not reconciled).
    """
    started = time.monotonic()
    thresholds = thresholds or Thresholds()
    run_dir = layout.staging / run_id
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no staged data for run {run_id} at {run_dir}")
    for leftover in run_dir.glob(f"{config.AUDIT_SCRATCH_PREFIX}*"):  # the scratch of an audit that crashed
        shutil.rmtree(leftover, ignore_errors=True)

    tables = {name: _scan(name, run_dir / name) for name in schema.TABLES}
    staged_issues = _scan(ISSUES, run_dir / ISSUES)
    results: dict[str, CheckResult] = {
        suites.SCHEMA_CHECKS[t.name].name: _schema_result(t) for t in (*tables.values(), staged_issues)
    }
    loadable = [t for t in tables.values() if not t.problems]
    for table in loadable:
        _load(table)
    derived = suites.derive_columns(
        {t.name: t.loaded for t in loadable},
        keys={t.name: t.key for t in loadable},
        parent_keys={t.name: t.parent_key for t in loadable if t.parent_key is not None},
    )
    for table in loadable:
        # Dates as datetime64 rather than one Python object per row; fetched_at is evidence, not checked.
        table.frame = table.loaded.drop_columns(["fetched_at"]).to_pandas(
            date_as_object=False, split_blocks=True
        )
        for column, values in derived.get(table.name, {}).items():
            table.frame[column] = values
    frames = {t.name: t.frame for t in loadable}

    parameters = _parameters(expected_visits, rows_flattened)
    reports = report_dir(layout, run_id)
    gx_results, docs_path = _run_gx(run_id, frames, parameters, reports)
    findings = _Findings.empty()
    for table in tables.values():
        for check in suites.SUITES[table.name]:
            results[check.name] = _check_result(
                run_id, check, table, tables, gx_results, parameters, findings
            )

    flattened = _read_issues(staged_issues)
    gate = _new_issues(flattened, findings.issues)
    issues = pa.concat_tables([flattened, gate])
    rows = _judged_rows(tables, flattened)
    for check, count, sample in _issue_counts(issues):
        result = results.get(check.name) or CheckResult(
            check.name, check.table, check.severity.value, check.action.value, check.description, PASSED
        )
        results[check.name] = result
        if result.status != ERROR:  # a check that could not run says so, whatever the flattener found
            _judge(result, check, count, rows[check.table], sample, thresholds)

    removed = _cascade(tables, findings.own) if loadable else {}
    for table in tables.values():
        results[suites.QUARANTINE_SHARE_CHECKS[table.name].name] = _quarantine_share_result(
            table, removed, thresholds
        )
    checks = _ordered(results)

    failed = any(c.status in (FAILED, ERROR) for c in checks)
    quarantine_paths: dict[str, Path] = {}
    audited: Path | None = None
    if failed:
        # What an earlier audit of the run left must not be published now.
        shutil.rmtree(layout.audited(run_id), ignore_errors=True)
        shutil.rmtree(quarantine_dir(layout, run_id), ignore_errors=True)
    else:
        quarantine_paths = _write_quarantine(run_id, layout, tables, findings.own, removed)
        audited = _write_audited(run_id, layout, tables, staged_issues, gate, findings.nulled, removed)
    counts = _table_counts(tables, removed, findings.nulled, applied=not failed)
    if failed:
        verdict = Verdict.FAIL
    elif any(c["quarantined"] for c in counts.values()):
        verdict = Verdict.QUARANTINED
    else:
        verdict = Verdict.PASS

    by_check = _issue_summary(checks)
    result = AuditResult(
        run_id=run_id,
        verdict=verdict,
        counts=counts,
        quarantined_rows=sum(c["quarantined"] for c in counts.values()),
        failed_checks=[c.name for c in checks if c.status in (FAILED, ERROR)],
        checks=tuple(checks),
        issues=by_check,
        warnings=_warnings(checks, thresholds),
        unknown_values=_unknown_values(issues),
        field_issues=sum(i["count"] for i in by_check.values() if i["severity"] == Severity.FIELD),
        quarantined_records=sum(i["count"] for i in by_check.values() if i["severity"] == Severity.RECORD),
        report_html=reports / "index.html",
        report_json=reports / "summary.json",
        data_docs_html=docs_path,
        latest_json=layout.reports / "latest.json",
        quarantine_paths=quarantine_paths,
        audited_path=audited,
        seconds=time.monotonic() - started,
    )
    _write_reports(result, expected_visits, rows_flattened, thresholds, run_dir)
    log.info(
        "Validation of run %s: %s in %.1f s; %d field issue(s), %d record(s) quarantined, rows "
        "quarantined %s; warnings %s; unknown values %s; report %s; summary %s; data docs %s",
        run_id,
        verdict,
        result.seconds,
        result.field_issues,
        result.quarantined_records,
        {table: c["quarantined"] for table, c in result.counts.items()},
        [w["check"] for w in result.warnings] or "none",
        {check: values for check, values in result.unknown_values.items() if values} or "none",
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


def _read_file(name: str, path: Path, columns: list[str] | None = None) -> pa.Table:
    """One staged file typed as schema.py, with visit_date from its folder when the file leaves it out."""
    table_schema = schema.LAKE_TABLES[name]
    wanted = columns or table_schema.names
    target = pa.schema([table_schema.field(c) for c in wanted])
    stored = set(pq.read_schema(path).names)
    content = pq.ParquetFile(path).read(columns=[c for c in wanted if c in stored])
    return _with_visit_date(content, path).select(wanted).cast(target)


def _with_visit_date(content: pa.Table, path: Path) -> pa.Table:
    if schema.PARTITION_COLUMN in content.column_names:
        return content
    day = pa.scalar(_partition_value(path), pa.date32())
    return content.append_column(schema.PARTITION_COLUMN, pa.repeat(day, content.num_rows))


def _load(table: _Table) -> None:
    """Load the columns the checks read, fetched_at (for the issue rows), and where each file starts."""
    import numpy as np

    columns = [*suites.columns_to_load(table.name), "fetched_at"]
    parts = [_read_file(table.name, path, columns) for path in table.files]
    loaded = pa.concat_tables(
        [pa.schema([schema.TABLES[table.name].field(c) for c in columns]).empty_table(), *parts]
    )
    table.file_starts = [0, *np.cumsum([p.num_rows for p in parts]).tolist()]
    table.key = suites.key_strings(loaded, table.keys)
    if table.name in suites.PARENTS:
        table.parent_key = suites.key_strings(loaded, schema.KEYS[suites.PARENTS[table.name]])
    # GX checks ranges vectorised only on 64-bit numpy dtypes (int8 and int32 go through a Python loop).
    table.loaded = loaded.cast(
        pa.schema([f.with_type(pa.int64()) if pa.types.is_integer(f.type) else f for f in loaded.schema])
    )


def _read_issues(table: _Table) -> pa.Table:
    """The issues the flattener staged (none when their files are broken: the schema check says so)."""
    if table.problems or not table.files:
        return schema.DATA_ISSUES.empty_table()
    return pa.concat_tables([_read_file(ISSUES, path) for path in table.files])


def _parameters(expected_visits: int | None, rows_flattened: Mapping[str, int] | None) -> dict[str, int]:
    """Reconciliation targets for the staged rows."""
    parameters = {}
    if expected_visits is not None:
        parameters[suites.EXPECTED_VISITS] = expected_visits
    for name, rows in (rows_flattened or {}).items():
        if name in schema.TABLES:  # other counts (data_issues, say) are not reconciled here
            parameters[suites.rows_flattened_parameter(name)] = rows
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
            # COMPLETE: every unexpected row's index, which is what gets NULLed, kept or quarantined.
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
    files.replace_dir(building, final)
    return final / "index.html"


def _check_result(
    run_id: str,
    check: Check,
    table: _Table,
    tables: Mapping[str, _Table],
    gx_results: Mapping[str, Any],
    parameters: Mapping[str, int],
    findings: _Findings,
) -> CheckResult:
    """Turn one GX result into a status (contract checks) or into findings (field and record checks)."""
    action = check.action.value if check.action else None
    result = CheckResult(check.name, check.table, check.severity.value, action, check.description, SKIPPED)
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
        result.observed = outcome["observed_value"]
        result.expected = parameters[check.parameter] if check.parameter else None
        result.status = PASSED if gx_result.success else FAILED
        result.detail = f"{result.observed} rows, expected {result.expected}"
        return result
    unexpected = int(outcome.get("unexpected_count") or 0)
    rows = table.staged_rows
    result.unexpected_count = unexpected
    result.status = PASSED
    if check.severity is Severity.CONTRACT:
        result.share = unexpected / rows if rows else 0.0
        result.sample = [_jsonable(v) for v in outcome.get("partial_unexpected_list", [])[:SAMPLE_SIZE]]
        if unexpected:
            result.status = FAILED
            result.detail = f"{unexpected} of {rows} rows ({result.share:.2%})"
            result.detail += f", e.g. {result.sample}" if result.sample else ""
        return result
    # A field or record check: what it found becomes issue rows; its status is judged with the
    # flattener's issues, once they are counted together.
    positions = [int(p) for p in outcome.get("unexpected_index_list") or []]
    if positions:
        findings.issues.append(_issue_rows(run_id, check, table, positions))
        if check.action is Action.QUARANTINED:
            for position in positions:
                findings.own[table.name].setdefault(position, []).append(check.name)
        elif check.action is Action.NULLED:
            import numpy as np

            column = check.kwargs["column"]
            mask = findings.nulled[table.name].setdefault(column, np.zeros(rows, dtype=bool))
            mask[positions] = True
    return result


def _schema_result(table: _Table) -> CheckResult:
    check = suites.SCHEMA_CHECKS[table.name]
    result = CheckResult(check.name, check.table, check.severity.value, None, check.description, PASSED)
    if table.problems:
        result.status = FAILED
        result.detail = "; ".join(
            f"{problem} ({len(files)} file{'s' if len(files) > 1 else ''}, e.g. {files[0]})"
            for problem, files in table.problems.items()
        )
    elif not table.files:
        result.detail = "no staged files: the table is empty"
    return result


# --- issues ---------------------------------------------------------------------------------------


def _evidence_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _issue_rows(run_id: str, check: Check, table: _Table, positions: list[int]) -> pa.Table:
    """One issue row per row a gate check found: its keys, date, field and the values the check read.

    The raw value is the staged (coerced) value as text: the raw page is the flattener's, and a
    coercion keeps the value ("9" and 9 are both 9). A cross-field check's raw value is the JSON object
    of the values it compared, keyed by API name (`{"closed":true,"skipped":true}`).
    """
    rows = table.loaded.take(pa.array(positions, pa.int64()))
    count = rows.num_rows
    evidence = {column: rows.column(column).to_pylist() for column in check.evidence}
    if len(check.evidence) == 1:
        (values,) = evidence.values()
        raw = [coerce.raw_text(_evidence_value(v)) for v in values]
    else:
        raw = [
            coerce.json_text(
                {suites.api_name(check.table, c): _evidence_value(evidence[c][i]) for c in evidence}
            )
            for i in range(count)
        ]
    keys = schema.KEYS[table.name]

    def key_column(name: str) -> pa.Array:
        return rows.column(name).cast(pa.int32()) if name in keys else pa.nulls(count, pa.int32())

    def repeat(value: str) -> pa.Array:
        return pa.repeat(pa.scalar(value, pa.string()), count)

    columns = {
        "run_id": repeat(run_id),
        "table_name": repeat(check.table),
        "visit_id": rows.column("visit_id"),
        "line_index": key_column("line_index"),
        "extra_index": key_column("extra_index"),
        "visit_date": rows.column(schema.PARTITION_COLUMN),
        "field": repeat(check.api_field),
        "raw_value": pa.array(raw, pa.string()),
        "check_name": repeat(check.name),
        "severity": repeat(check.severity.value),
        "action": repeat(check.action.value),
        "reason": repeat(check.description),
        "page_offset": pa.nulls(count, pa.int64()),  # staged rows do not carry their page
        "fetched_at": rows.column("fetched_at"),
    }
    return pa.Table.from_arrays([columns[n] for n in schema.DATA_ISSUES.names], schema=schema.DATA_ISSUES)


_ISSUE_IDENTITY = ("check_name", "table_name", "visit_id", "line_index", "extra_index")


def _new_issues(flattened: pa.Table, found: Sequence[pa.Table]) -> pa.Table:
    """The gate's issue rows the flattener has not recorded already (a visit without a date is found by
    both: one row, the flattener's, which holds the raw value)."""
    gate = pa.concat_tables([schema.DATA_ISSUES.empty_table(), *found])
    if not flattened.num_rows or not gate.num_rows:
        return gate
    known = _identity(flattened)
    return gate.filter(pc.invert(pc.is_in(_identity(gate), value_set=known)))


def _identity(issues: pa.Table) -> pa.Array:
    parts = [pc.fill_null(issues.column(c).cast(pa.string()), "") for c in _ISSUE_IDENTITY]
    return pc.binary_join_element_wise(*parts, "\x1f")


def _judged_rows(tables: Mapping[str, _Table], flattened: pa.Table) -> dict[str, int]:
    """Rows of each table a share is taken over: the staged rows, and the records that could not land."""
    not_landed = Counter(
        table
        for table, check in zip(
            flattened.column("table_name").to_pylist(),
            flattened.column("check_name").to_pylist(),
            strict=True,
        )
        if check in suites.NOT_LANDED
    )
    return {name: table.staged_rows + not_landed[name] for name, table in tables.items()}


def _issue_counts(issues: pa.Table) -> list[tuple[Check, int, list[str | None]]]:
    """Per check with issues: the check, its issue rows, and a few distinct raw values as examples."""
    counted: dict[str, int] = Counter(issues.column("check_name").to_pylist())
    found = []
    for name, count in counted.items():
        rows = issues.filter(pc.equal(issues.column("check_name"), name)).column("raw_value").to_pylist()
        sample = list(dict.fromkeys(rows))[:SAMPLE_SIZE]
        found.append((suites.ALL_CHECKS[name], count, [_shortened(v) for v in sample]))
    return found


def _shortened(value: str | None, limit: int = 120) -> str | None:
    return value if value is None or len(value) <= limit else value[:limit] + "..."


def _judge(
    result: CheckResult, check: Check, count: int, rows: int, sample: list, thresholds: Thresholds
) -> None:
    """Status of a field or record check from all its issue rows: the action taken, or failed above
    its threshold (a systemic problem)."""
    result.unexpected_count = count
    result.share = thresholds.share(count, rows)
    result.threshold = thresholds.for_check(check)
    result.sample = sample
    result.detail = f"{count} of {rows} rows ({result.share:.2%}{thresholds.judged_over(rows)})"
    if result.threshold is not None and result.share > result.threshold:
        result.status = FAILED
        result.detail += f", above the threshold of {result.threshold:.2%}"
    else:
        result.status = check.action.value
        result.detail += f", {check.action.value}"
    result.detail += f", e.g. {sample}" if sample else ""


def _ordered(results: Mapping[str, CheckResult]) -> list[CheckResult]:
    """Schema checks, the gate's checks table by table, the flattener's that found issues, then limits."""
    order = [
        *(c.name for c in suites.SCHEMA_CHECKS.values()),
        *(c.name for s in suites.SUITES.values() for c in s),
        *(c.name for c in suites.STRUCTURE_CHECKS),
        *(c.name for c in suites.PARSE_CHECKS.values()),
        *(c.name for c in suites.QUARANTINE_SHARE_CHECKS.values()),
    ]
    return [results[name] for name in order if name in results]


def _issue_summary(checks: Sequence[CheckResult]) -> dict[str, dict[str, Any]]:
    return {
        c.name: {
            "table": c.table,
            "field": suites.ALL_CHECKS[c.name].api_field,
            "severity": c.severity,
            "action": c.action,
            "count": c.unexpected_count,
            "share": c.share,
            "threshold": c.threshold,
            "status": c.status,
        }
        for c in checks
        if c.action is not None and c.unexpected_count
    }


def _warnings(checks: Sequence[CheckResult], thresholds: Thresholds) -> list[dict[str, Any]]:
    """Checks above the warning share that did not fail the run: a change worth a look."""
    return [
        {
            "check": c.name,
            "table": c.table,
            "count": c.unexpected_count,
            "share": c.share,
            "threshold": c.threshold,
            "warn_share": thresholds.warn_share,
            "sample": c.sample,
        }
        for c in checks
        if c.action is not None
        and c.unexpected_count
        and c.status != FAILED
        and c.share > thresholds.warn_share
    ]


def _unknown_values(issues: pa.Table) -> dict[str, dict[str, int]]:
    """The well-formed values the pipeline does not know (a new docType, a new extraData type), counted."""
    unknown = {}
    for name in suites.UNKNOWN_VALUE_CHECKS:
        values = issues.filter(pc.equal(issues.column("check_name"), name)).column("raw_value").to_pylist()
        unknown[name] = dict(Counter(values).most_common())
    return unknown


# --- quarantine and the audited output ------------------------------------------------------------


def _cascade(tables: Mapping[str, _Table], own: Mapping[str, Mapping[int, list[str]]]) -> dict[str, Any]:
    """Per table, a boolean mask over its rows: its own quarantined rows and those whose parent is."""
    import numpy as np

    removed: dict[str, Any] = {}
    for name in schema.TABLES:  # parents come first
        table = tables[name]
        mask = np.zeros(table.staged_rows, dtype=bool)
        removed[name] = mask
        if table.frame is None:
            continue
        mask[list(own[name])] = True
        parent = suites.PARENTS.get(name)
        if parent is not None and removed[parent].any():
            gone = tables[parent].key.filter(pa.array(removed[parent]))
            mask |= pc.is_in(table.parent_key, value_set=gone).to_numpy(zero_copy_only=False)
    return removed


def _quarantine_share_result(
    table: _Table, removed: Mapping[str, Any], thresholds: Thresholds
) -> CheckResult:
    check = suites.QUARANTINE_SHARE_CHECKS[table.name]
    result = CheckResult(check.name, check.table, check.severity.value, None, check.description, SKIPPED)
    if table.name not in removed:
        result.detail = "not run: the tables could not be loaded"
        return result
    rows = table.staged_rows
    quarantined = int(removed[table.name].sum())
    result.unexpected_count = quarantined
    result.share = thresholds.share(quarantined, rows)
    result.threshold = thresholds.quarantine_share
    result.status = PASSED if result.share <= result.threshold else FAILED
    result.detail = (
        f"{quarantined} of {rows} rows ({result.share:.2%}{thresholds.judged_over(rows)}) quarantined, "
        f"limit {result.threshold:.2%}"
    )
    return result


def _write_quarantine(
    run_id: str,
    layout: DataLayout,
    tables: Mapping[str, _Table],
    own: Mapping[str, Mapping[int, list[str]]],
    removed: Mapping[str, Any],
) -> dict[str, Path]:
    """The run's quarantine files: every removed row as staged, with the checks it failed (or the parent
    table that took it along). Tables with nothing removed have none (an earlier audit's is removed)."""
    target = quarantine_dir(layout, run_id)
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        path = target / f"{name}.parquet"
        mask = removed[name]
        if not mask.any():
            path.unlink(missing_ok=True)
            continue
        parts = []
        for index, file in enumerate(table.files):
            start, end = table.file_starts[index], table.file_starts[index + 1]
            if mask[start:end].any():
                content = _read_file(name, file)
                parts.append(content.filter(pa.array(mask[start:end])))
        rows = pa.concat_tables([schema.TABLES[name].empty_table(), *parts])
        with files.atomic_path(path) as temporary:
            pq.write_table(_annotate(table, rows, mask, own[name]), temporary)
        paths[name] = path
        log.info("Quarantined %d %s rows of %s to %s", int(mask.sum()), name, table.root, path)
    return paths


def _annotate(table: _Table, rows: pa.Table, mask, own_failures: Mapping[int, list[str]]) -> pa.Table:
    """Add to the removed rows (in row order) the checks each failed and the values those checks read."""
    quarantine_schema = pa.schema([*schema.TABLES[table.name], *QUARANTINE_FIELDS])
    positions = [int(p) for p in mask.nonzero()[0]]
    checked = sorted(
        {c for p in positions for check in own_failures.get(p, []) for c in suites.ALL_CHECKS[check].columns}
    )
    stored = {c: rows.column(c).to_pylist() for c in checked if c in rows.column_names}
    # Derived columns (an orphan's lookup) are not stored: the frame holds them.
    derived = {c: table.frame[c].to_numpy()[positions].tolist() for c in checked if c not in stored}
    values_of = {**stored, **derived}
    parent = suites.PARENTS.get(table.name)
    failed_checks, failed_values, quarantined_with = [], [], []
    for i, position in enumerate(positions):
        own = own_failures.get(position, [])
        failed_checks.append(own)
        values = {
            check: {c: _jsonable(values_of[c][i]) for c in suites.ALL_CHECKS[check].columns} for check in own
        }
        failed_values.append(json.dumps(values, sort_keys=True) if own else None)
        # A row removed without failing a check of its own was taken along by its parent table's row.
        quarantined_with.append(None if own else parent)
    for column, values in zip(
        QUARANTINE_FIELDS, (failed_checks, failed_values, quarantined_with), strict=True
    ):
        rows = rows.append_column(column, pa.array(values, column.type))
    return rows.select(quarantine_schema.names).cast(quarantine_schema)


def _write_audited(
    run_id: str,
    layout: DataLayout,
    tables: Mapping[str, _Table],
    staged_issues: _Table,
    gate_issues: pa.Table,
    nulled: Mapping[str, Mapping[str, Any]],
    removed: Mapping[str, Any],
) -> Path:
    """Build the run's audited output aside, then swap it in as ``layout.audited(run_id)``.

    A staged file without quarantined rows or NULLed values is hard-linked (copied across file systems);
    one with either is rewritten without the quarantined rows and with the values NULLed, in the codec
    it was written with. The flattener's issue files are linked, and the gate's issues of each partition
    are written beside them.
    """
    final = layout.audited(run_id)
    building = final.parent / f"{config.AUDIT_SCRATCH_PREFIX}{uuid.uuid4().hex[:8]}"
    building.mkdir()
    rewritten = 0
    try:
        for name, table in tables.items():
            (building / name).mkdir()
            for index, file in enumerate(table.files):
                start, end = table.file_starts[index], table.file_starts[index + 1]
                gone = removed[name][start:end]
                nulls = {c: m[start:end] for c, m in nulled[name].items() if m[start:end].any()}
                target = building / name / file.relative_to(table.root)
                if not gone.any() and not nulls:
                    target.parent.mkdir(exist_ok=True)
                    files.link_or_copy(file, target)
                    continue
                rewritten += 1
                _rewrite(file, target, gone, nulls)
        (building / ISSUES).mkdir()
        for file in staged_issues.files:
            target = building / ISSUES / file.relative_to(staged_issues.root)
            target.parent.mkdir(exist_ok=True)
            files.link_or_copy(file, target)
        _write_partitioned(gate_issues, building / ISSUES, GATE_ISSUES_FILE)
        files.replace_dir(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info(
        "Audited output of run %s at %s (%d staged file(s) rewritten, the rest linked)",
        run_id,
        final,
        rewritten,
    )
    return final


def _rewrite(file: Path, target: Path, gone, nulls: Mapping[str, Any]) -> None:
    """A staged file without its quarantined rows and with its out-of-domain values NULLed."""
    staged = pq.ParquetFile(file)
    content = staged.read()
    for column, mask in nulls.items():
        index = content.schema.get_field_index(column)
        values = content.column(index)
        empty = pa.scalar(None, values.type)
        content = content.set_column(index, column, pc.if_else(pa.array(mask), empty, values))
    if gone.any():
        content = content.filter(pa.array(~gone))
    if content.num_rows:  # a partition left without rows is no folder at all
        target.parent.mkdir(exist_ok=True)
        pq.write_table(content, target, compression=_codec(staged))


def _write_partitioned(issues: pa.Table, root: Path, file_name: str) -> None:
    """Issue rows as one file per visit_date partition (the null partition for those without a date)."""
    if not issues.num_rows:
        return
    days = issues.column(schema.PARTITION_COLUMN)
    for day in pc.unique(days).to_pylist():
        rows = issues.filter(pc.is_null(days) if day is None else pc.equal(days, day))
        folder = root / f"{schema.PARTITION_COLUMN}={HIVE_NULL_PARTITION if day is None else day.isoformat()}"
        folder.mkdir(exist_ok=True)
        pq.write_table(rows, folder / file_name, compression=schema.LAKE_COMPRESSION)


def _codec(staged: pq.ParquetFile) -> str:
    """The compression the lake wrote a file with, so that a rewrite keeps it."""
    metadata = staged.metadata
    if metadata.num_row_groups and metadata.num_columns:
        return metadata.row_group(0).column(0).compression.lower()
    return schema.LAKE_COMPRESSION


def _table_counts(
    tables: Mapping[str, _Table],
    removed: Mapping[str, Any],
    nulled: Mapping[str, Mapping[str, Any]],
    applied: bool,
) -> dict[str, dict[str, int]]:
    counts = {}
    for name, table in tables.items():
        gone = int(removed[name].sum()) if applied and name in removed else 0
        counts[name] = {
            "staged": table.staged_rows,
            "quarantined": gone,
            "clean": table.staged_rows - gone,
            "values_nulled": sum(int(mask.sum()) for mask in nulled[name].values()) if applied else 0,
        }
    return counts


# --- reports --------------------------------------------------------------------------------------


def _write_reports(
    result: AuditResult,
    expected_visits: int | None,
    rows_flattened: Mapping[str, int] | None,
    thresholds: Thresholds,
    run_dir: Path,
) -> None:
    summary = {
        "run_id": result.run_id,
        "verdict": result.verdict.value,
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
        "seconds": round(result.seconds, 3),
        "failed_checks": result.failed_checks,
        "field_issues": result.field_issues,
        "quarantined_records": result.quarantined_records,
        "quarantined_rows": result.quarantined_rows,
        "warnings": result.warnings,
        "unknown_values": result.unknown_values,
        "issues": result.issues,
        "counts": result.counts,
        "expected_visits": expected_visits,
        "rows_flattened": dict(rows_flattened) if rows_flattened else None,
        "thresholds": {
            "per_check": dict(thresholds.per_check),
            "quarantine_share": thresholds.quarantine_share,
            "min_rows": thresholds.min_rows,
            "warn_share": thresholds.warn_share,
        },
        "report_html": str(result.report_html),
        "report_json": str(result.report_json),
        "data_docs_html": str(result.data_docs_html) if result.data_docs_html else None,
        "quarantine_paths": {t: str(p) for t, p in result.quarantine_paths.items()},
        "audited": str(result.audited_path) if result.audited_path else None,
        "staging": str(run_dir),
        "checks": [c.as_dict() for c in result.checks],
    }
    text = json.dumps(_jsonable(summary), indent=2, sort_keys=False).encode()
    files.write_bytes(result.report_json, text)
    files.write_bytes(result.report_html, _render_html(summary).encode())
    files.write_bytes(result.latest_json, text)


def _render_html(summary: Mapping[str, Any]) -> str:
    """A self-contained page (no CDN: GX's own Data Docs need one for their styles)."""
    e = html.escape
    colours = {PASSED: "#1a7f37", FAILED: "#cf222e", ERROR: "#cf222e", SKIPPED: "#6e7781"}
    verdict_colour = {Verdict.PASS: "#1a7f37", Verdict.QUARANTINED: "#9a6700", Verdict.FAIL: "#cf222e"}
    check_rows = "".join(
        f"<tr><td><code>{e(c['name'])}</code><br><small>{e(c['description'])}</small></td>"
        f"<td>{e(c['severity'])}</td><td>{e(c['action'] or '')}</td>"
        f"<td style='color:{colours.get(c['status'], '#9a6700')};font-weight:bold'>{e(c['status'])}</td>"
        f"<td>{'' if c['unexpected_count'] is None else c['unexpected_count']}</td>"
        f"<td>{_percent(c['share'])}</td><td>{_percent(c['threshold'])}</td>"
        f"<td>{e(c['detail'])}</td></tr>"
        for c in summary["checks"]
    )
    table_rows = "".join(
        f"<tr><td>{e(name)}</td><td>{n['staged']}</td><td>{n['quarantined']}</td><td>{n['clean']}</td>"
        f"<td>{n['values_nulled']}</td></tr>"
        for name, n in summary["counts"].items()
    )
    warning_items = "".join(
        f"<li><code>{e(w['check'])}</code>: {w['count']} ({_percent(w['share'])}, above {_percent(w['warn_share'])}"
        f"; threshold {_percent(w['threshold']) or 'none'})</li>"
        for w in summary["warnings"]
    )
    unknown_items = "".join(
        f"<li><code>{e(check)}</code>: "
        + ", ".join(f"{e(str(value))} ({count})" for value, count in values.items())
        + "</li>"
        for check, values in summary["unknown_values"].items()
        if values
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
Field issues (values NULLed or kept, records published): {summary["field_issues"]}.
Records quarantined: {summary["quarantined_records"]} ({summary["quarantined_rows"]} rows with their children).
Failed checks: {e(", ".join(summary["failed_checks"]) or "none")}.</p>
<h2>Warnings</h2><ul>{warning_items or "<li>none</li>"}</ul>
<h2>Unknown values (kept as sent)</h2><ul>{unknown_items or "<li>none</li>"}</ul>
<h2>Rows</h2>
<table><tr><th>table</th><th>staged</th><th>quarantined</th><th>published</th><th>values NULLed</th></tr>{table_rows}</table>
<h2>Checks</h2>
<p><small>The flattener's checks (<code>&lt;table&gt;.&lt;column&gt;_parses</code> and the structural ones) are
listed only when they found something.</small></p>
<table><tr><th>check</th><th>severity</th><th>action</th><th>status</th><th>count</th><th>share</th><th>threshold</th>
<th>detail</th></tr>{check_rows}</table>
<h2>Files</h2><ul>{links}</ul>
</body></html>
"""


# --- small helpers --------------------------------------------------------------------------------


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
