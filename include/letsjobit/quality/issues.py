"""The validation gate's rows of ``data_issues``: built from what a check found, and counted.

One issue row per row a gate check found (its keys, date, field, raw value and check); the gate keeps
only those the flattener has not recorded already, and the audit counts all of them together, the
flattener's included, by check and by raw value (the summary's ``issues`` and ``unknown_values``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from letsjobit.lake import coerce, schema
from letsjobit.quality import suites
from letsjobit.quality.suites import Check

if TYPE_CHECKING:
    from letsjobit.quality.audit import CheckResult
    from letsjobit.quality.staged import StagedTable

SAMPLE_SIZE = 5  # example values named in a check's detail and a failure's message


def _evidence_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def issue_rows(run_id: str, check: Check, table: StagedTable, positions: list[int]) -> pa.Table:
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


def new_issues(flattened: pa.Table, found: Sequence[pa.Table]) -> pa.Table:
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


def issue_counts(issues: pa.Table) -> list[tuple[Check, int, list[str | None]]]:
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


def unknown_values(issues: pa.Table) -> dict[str, dict[str, int]]:
    """The well-formed values the pipeline does not know (a new docType, a new extraData type), counted."""
    unknown = {}
    for name in suites.UNKNOWN_VALUE_CHECKS:
        values = issues.filter(pc.equal(issues.column("check_name"), name)).column("raw_value").to_pylist()
        unknown[name] = dict(Counter(values).most_common())
    return unknown


def by_check(checks: Sequence[CheckResult]) -> dict[str, dict[str, Any]]:
    """Per field or record check that found any issue rows: its table, field, action, count and verdict."""
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
