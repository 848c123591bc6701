"""The validation gate of write-audit-publish: audit a run's staged tables before anything is published.

``audit_run`` reads the staged parquet of one run (``layout.staging / run_id / <table>``) and the issues
the flattener staged beside it (``data_issues``), checks every file's schema against ``schema.py``, runs
the Great Expectations suites of ``suites.py`` on pandas batches of the columns they need
(``expectations.py``), and applies the policy of each check (``suites.Severity``, ``suites.Action``):

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
passes gets its **audited output** at ``layout.audited(run_id)`` (the lake tables as they are to be
published, the gate's issues added to the flattener's), which ``lake.publish_run`` takes, and its
quarantined rows at ``layout.quarantine_dir(run_id)``; ``staged.py`` reads the staged files and writes both.

The audit never changes the staging area: a re-audit of the same run reads the same input and writes the
same output (quarantine files first, then the audited folder built aside and swapped in), so a retry
after a crash at any point is safe and deterministic.

Every audit, passed or failed, writes ``summary.json``, ``index.html`` and GX Data Docs under
``layout.report_dir(run_id)`` and replaces ``layout.reports / latest.json`` (``reports.py``).

GX and pandas are imported inside functions only: GX alone takes seconds to import, and DAG parsing must
stay light.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from letsjobit import config
from letsjobit.config import DataLayout
from letsjobit.lake import schema
from letsjobit.quality import expectations, issues, reports, staged, suites
from letsjobit.quality.suites import Action, Check, Severity

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    QUARANTINED = "quarantined"  # published, with some records kept out
    FAIL = "fail"


# Check statuses in the summary. A field or record check that found problems within its threshold has
# the action taken as its status: "nulled", "kept" or "quarantined".
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


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
        return {k: reports.jsonable(v) for k, v in self.__dict__.items()}


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
class _Findings:
    """What the gate's checks found, per table, as row positions (before any threshold is applied)."""

    own: dict[str, dict[int, list[str]]]  # rows failing record checks -> those checks
    nulled: dict[str, dict[str, Any]]  # column -> boolean mask of the values to NULL
    issues: list[pa.Table]  # the gate's issue rows (schema.DATA_ISSUES)

    @classmethod
    def empty(cls) -> _Findings:
        return cls({name: {} for name in schema.TABLES}, {name: {} for name in schema.TABLES}, [])


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

    tables = {name: staged.scan(name, run_dir / name) for name in schema.TABLES}
    staged_issues = staged.scan(staged.ISSUES, run_dir / staged.ISSUES)
    results: dict[str, CheckResult] = {
        suites.SCHEMA_CHECKS[t.name].name: _schema_result(t) for t in (*tables.values(), staged_issues)
    }
    loadable = [t for t in tables.values() if not t.problems]
    for table in loadable:
        staged.load(table)
    frames = expectations.batches(loadable)

    parameters = expectations.suite_parameters(expected_visits, rows_flattened)
    report_folder = layout.report_dir(run_id)
    gx_results, docs_path = expectations.run_suites(run_id, frames, parameters, report_folder)
    findings = _Findings.empty()
    for table in tables.values():
        for check in suites.SUITES[table.name]:
            results[check.name] = _check_result(
                run_id, check, table, tables, gx_results, parameters, findings
            )

    flattened = staged.read_issues(staged_issues)
    gate = issues.new_issues(flattened, findings.issues)
    all_issues = pa.concat_tables([flattened, gate])
    rows = _judged_rows(tables, flattened)
    for check, count, sample in issues.issue_counts(all_issues):
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
        shutil.rmtree(layout.quarantine_dir(run_id), ignore_errors=True)
    else:
        quarantine_paths = staged.write_quarantine(run_id, layout, tables, findings.own, removed)
        audited = staged.write_audited(run_id, layout, tables, staged_issues, gate, findings.nulled, removed)
    counts = _table_counts(tables, removed, findings.nulled, applied=not failed)
    if failed:
        verdict = Verdict.FAIL
    elif any(c["quarantined"] for c in counts.values()):
        verdict = Verdict.QUARANTINED
    else:
        verdict = Verdict.PASS

    by_check = issues.by_check(checks)
    result = AuditResult(
        run_id=run_id,
        verdict=verdict,
        counts=counts,
        quarantined_rows=sum(c["quarantined"] for c in counts.values()),
        failed_checks=[c.name for c in checks if c.status in (FAILED, ERROR)],
        checks=tuple(checks),
        issues=by_check,
        warnings=_warnings(checks, thresholds),
        unknown_values=issues.unknown_values(all_issues),
        field_issues=sum(i["count"] for i in by_check.values() if i["severity"] == Severity.FIELD),
        quarantined_records=sum(i["count"] for i in by_check.values() if i["severity"] == Severity.RECORD),
        report_html=report_folder / "index.html",
        report_json=report_folder / "summary.json",
        data_docs_html=docs_path,
        latest_json=layout.reports / "latest.json",
        quarantine_paths=quarantine_paths,
        audited_path=audited,
        seconds=time.monotonic() - started,
    )
    reports.write_reports(result, expected_visits, rows_flattened, thresholds, run_dir)
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


# --- the checks' results --------------------------------------------------------------------------


def _check_result(
    run_id: str,
    check: Check,
    table: staged.StagedTable,
    tables: Mapping[str, staged.StagedTable],
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
        result.sample = [
            reports.jsonable(v) for v in outcome.get("partial_unexpected_list", [])[: issues.SAMPLE_SIZE]
        ]
        if unexpected:
            result.status = FAILED
            result.detail = f"{unexpected} of {rows} rows ({result.share:.2%})"
            result.detail += f", e.g. {result.sample}" if result.sample else ""
        return result
    # A field or record check: what it found becomes issue rows; its status is judged with the
    # flattener's issues, once they are counted together.
    positions = [int(p) for p in outcome.get("unexpected_index_list") or []]
    if positions:
        findings.issues.append(issues.issue_rows(run_id, check, table, positions))
        if check.action is Action.QUARANTINED:
            for position in positions:
                findings.own[table.name].setdefault(position, []).append(check.name)
        elif check.action is Action.NULLED:
            import numpy as np

            column = check.kwargs["column"]
            mask = findings.nulled[table.name].setdefault(column, np.zeros(rows, dtype=bool))
            mask[positions] = True
    return result


def _schema_result(table: staged.StagedTable) -> CheckResult:
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


# --- judging ----------------------------------------------------------------------------------------


def _judged_rows(tables: Mapping[str, staged.StagedTable], flattened: pa.Table) -> dict[str, int]:
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


# --- quarantine -----------------------------------------------------------------------------------


def _cascade(
    tables: Mapping[str, staged.StagedTable], own: Mapping[str, Mapping[int, list[str]]]
) -> dict[str, Any]:
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
    table: staged.StagedTable, removed: Mapping[str, Any], thresholds: Thresholds
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


def _table_counts(
    tables: Mapping[str, staged.StagedTable],
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
