"""Every data-quality check of the pipeline, in one place: what is checked, where, how severe, what happens.

Every check has a stable name (``<table>.<what>``, or ``schema.<table>``) that appears in the issues
table (``data_issues``), the JSON summary, the report, the quarantine files and the ``ValidationFailed``
message; tests, the simulator's ground truth, the marts and the docs use the same names.

Severities (what a problem costs):
- ``CONTRACT``: any failure fails the run and nothing is published (duplicate or null keys,
  reconciliation, schema).
- ``RECORD``: the record cannot be identified or placed (no ``_id``, no valid ``date``, not an object, an
  orphan, ``lines``/``extraData`` that are not lists): the record and its children are quarantined (or,
  for a structure, the unusable structure is dropped and recorded), the rest is published.
- ``FIELD``: the record is published and the issue recorded; the value is NULLed (it cannot be read, or is
  out of its domain) or kept as sent (well-formed but unknown, or contradicting another field).

Each field or record check has an ``action`` (``nulled``, ``kept``, ``quarantined``) and a default
``threshold``: the share of its table's rows above which the problem is systemic and fails the run
(``None``: never fails it). ``audit.Thresholds`` overrides them per check.

Where each check runs: the flattener (``flatten.py``) records what it meets while reading the pages (the
structural checks and ``<table>.<column>_parses`` for every value the coercion layer cannot read); the
validation gate (``audit.py``) runs the rest as Great Expectations expectations, declared here as data
(class name and arguments) and built into suites by ``expectations.py`` only when a run is validated, so
importing this module never imports GX (it is slow to import). ``visits.date_valid`` is both: the
flattener records the raw value, the gate quarantines every visit without a date (one issue row either
way).

Two checks need more than one table (a line's visit must exist, an extra data row's line must exist). GX
1.x has no cross-table expectation for pandas batches, so ``expectations.derive_columns`` computes the
lookup as a boolean column of the child table, and a plain expectation checks that column.

"Booleans are booleans" and "visit_date is a real date" are enforced by the schema check: a parquet
``bool`` column can hold only true, false or null, a ``date32`` column only real dates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from letsjobit.lake import schema


class Severity(StrEnum):
    CONTRACT = "contract"
    RECORD = "record"
    FIELD = "field"


class Action(StrEnum):
    """What happens to the value (field checks) or the record (record checks) an issue is about."""

    NULLED = "nulled"
    KEPT = "kept"
    QUARANTINED = "quarantined"


DEFAULT_MIN_ROWS = 100
"""Shares are taken over at least this many rows, so one bad record in a small window run is not a
"50% problem" that fails every run covering its date (config.gate_min_rows() and audit.Thresholds)."""

DEFAULT_THRESHOLD = 0.05
"""Default share of a table's rows a field or record check may find before the run fails."""

DEFAULT_WARN_SHARE = 0.01
"""A check above this share (within its threshold) is listed under ``warnings`` in the summary."""

DEFAULT_QUARANTINE_SHARE = 0.10
"""No table may lose more than this share of its rows to quarantine, all checks and cascades together."""


@dataclass(frozen=True)
class Check:
    """One named check: a GX expectation (class name + arguments) on one table, or a check done in code."""

    name: str
    table: str
    severity: Severity
    description: str  # also the `reason` of the issue rows the gate records
    expectation: str | None = None  # class in great_expectations.expectations; None: checked in code
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    when: tuple[str, Any] | None = None  # only rows where this column equals this value are checked
    parameter: str | None = None  # a run parameter the check needs (skipped when the run has none)
    action: Action | None = None  # field and record checks: what happens to the value or the record
    threshold: float | None = None  # share of the table's rows above which the run fails; None: never
    api_field: str | None = None  # the field an issue row names, as the API names it
    evidence: tuple[str, ...] = ()  # stored columns whose values are an issue row's raw value

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the check reads, in the order they are reported."""
        cols: list[str] = []
        if self.when:
            cols.append(self.when[0])
        if "column" in self.kwargs:
            cols.append(self.kwargs["column"])
        cols.extend(self.kwargs.get("column_list", ()))
        return tuple(dict.fromkeys(cols))

    @property
    def records_issues(self) -> bool:
        """Whether each problem it finds is a row of the issues table (field and record checks)."""
        return self.action is not None


# Columns computed by `derive_columns` before validation (not stored in the lake).
VISIT_EXISTS = "visit_exists"
VISIT_DATE_MATCHES_VISIT = "visit_date_matches_visit"
LINE_EXISTS = "line_exists"
DERIVED_COLUMNS = frozenset({VISIT_EXISTS, VISIT_DATE_MATCHES_VISIT, LINE_EXISTS})

# Run parameters (GX suite parameters) of the reconciliation checks.
EXPECTED_VISITS = "expected_visits"

_FIELDS: dict[str, tuple[schema.Field, ...]] = {
    "visits": schema.VISIT_FIELDS,
    "visit_lines": schema.LINE_FIELDS,
    "line_extra_data": schema.EXTRA_DATA_FIELDS,
}
_API_NAMES: dict[tuple[str, str], str] = {
    (table, f.column): f.api_name for table, fields in _FIELDS.items() for f in fields
}


def api_name(table: str, column: str) -> str:
    """The API's name of a stored column (the column's own name for those the flattener derives)."""
    return _API_NAMES.get((table, column), column)


def rows_flattened_parameter(table: str) -> str:
    return f"{table}_rows_flattened"


def _key_checks(table: str) -> list[Check]:
    keys = schema.KEYS[table]
    checks = [
        Check(
            f"{table}.{column}_not_null",
            table,
            Severity.CONTRACT,
            f"key column {column} is never null",
            "ExpectColumnValuesToNotBeNull",
            {"column": column},
        )
        for column in keys
    ]
    if len(keys) == 1:
        unique = Check(
            f"{table}.key_unique",
            table,
            Severity.CONTRACT,
            f"{keys[0]} is unique in the run",
            "ExpectColumnValuesToBeUnique",
            {"column": keys[0]},
        )
    else:
        unique = Check(
            f"{table}.key_unique",
            table,
            Severity.CONTRACT,
            f"({', '.join(keys)}) is unique in the run",
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": list(keys)},
        )
    return [*checks, unique]


def _row_count_check(table: str) -> Check:
    parameter = rows_flattened_parameter(table)
    return Check(
        f"{table}.rows_match_flattened",
        table,
        Severity.CONTRACT,
        "rows written == rows the flattener produced",
        "ExpectTableRowCountToEqual",
        {"value": {"$PARAMETER": parameter}},
        parameter=parameter,
    )


def _in_range(table: str, column: str, low: float | None, high: float | None, description: str) -> Check:
    """A field check: a value outside [low, high] is NULLed in the published data and recorded."""
    return Check(
        f"{table}.{column}_in_range",
        table,
        Severity.FIELD,
        description,
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": low, "max_value": high},
        action=Action.NULLED,
        threshold=DEFAULT_THRESHOLD,
        api_field=api_name(table, column),
        evidence=(column,),
    )


def _orphan(table: str, name: str, column: str, description: str, api_field: str, evidence) -> Check:
    """A record check on a lookup column derived from the parent table: the row is quarantined."""
    return Check(
        f"{table}.{name}",
        table,
        Severity.RECORD,
        description,
        "ExpectColumnValuesToBeInSet",
        {"column": column, "value_set": [True]},
        action=Action.QUARANTINED,
        threshold=DEFAULT_THRESHOLD,
        api_field=api_field,
        evidence=evidence,
    )


def _structure(table: str, name: str, api_field: str, description: str) -> Check:
    """A record check of the flattener: a record or structure it cannot use (the description is the reason)."""
    return Check(
        f"{table}.{name}",
        table,
        Severity.RECORD,
        description,
        action=Action.QUARANTINED,
        threshold=DEFAULT_THRESHOLD,
        api_field=api_field,
    )


# --- the flattener's checks ------------------------------------------------------------------------

PAGE_DATA_IS_LIST = _structure("visits", "data_is_list", "data", "page data is not a list")
VISIT_IS_OBJECT = _structure("visits", "is_object", "data", "visit is not an object")
VISIT_ID_PRESENT = _structure("visits", "id_present", "_id", "visit without _id")
LINES_IS_LIST = _structure("visits", "lines_is_list", "lines", "lines is not a list")
LINE_IS_OBJECT = _structure("visit_lines", "is_object", "lines", "line is not an object")
EXTRA_DATA_IS_LIST = _structure("visit_lines", "extra_data_is_list", "extraData", "extraData is not a list")
EXTRA_DATA_ENTRY_IS_OBJECT = _structure(
    "line_extra_data", "is_object", "extraData", "extraData entry is not an object"
)
# Both stages: the flattener records the raw date, the gate quarantines every visit staged without one.
VISIT_DATE_VALID = Check(
    "visits.date_valid",
    "visits",
    Severity.RECORD,
    "date is present and a real date (YYYY-MM-DD)",
    "ExpectColumnValuesToNotBeNull",
    {"column": schema.PARTITION_COLUMN},
    action=Action.QUARANTINED,
    threshold=DEFAULT_THRESHOLD,
    api_field="date",
    evidence=(schema.PARTITION_COLUMN,),
)

STRUCTURE_CHECKS: tuple[Check, ...] = (
    PAGE_DATA_IS_LIST,
    VISIT_IS_OBJECT,
    VISIT_ID_PRESENT,
    LINES_IS_LIST,
    LINE_IS_OBJECT,
    EXTRA_DATA_IS_LIST,
    EXTRA_DATA_ENTRY_IS_OBJECT,
)
# Issues about something that never became a row of its table: they count in the table's rows when a
# share is taken (a page whose data is not a list counts as one).
NOT_LANDED = frozenset(
    {PAGE_DATA_IS_LIST.name, VISIT_IS_OBJECT.name, VISIT_ID_PRESENT.name, LINE_IS_OBJECT.name,
     EXTRA_DATA_ENTRY_IS_OBJECT.name}
)  # fmt: skip


def _parse_check(table: str, f: schema.Field) -> Check:
    return Check(
        f"{table}.{f.column}_parses",
        table,
        Severity.FIELD,
        f"{f.api_name} can be read as {f.kind.value} (else it is NULL)",
        action=Action.NULLED,
        threshold=DEFAULT_THRESHOLD,
        api_field=f.api_name,
    )


# `<table>.<column>_parses` for every field of schema.py (a visit's date is `visits.date_valid` instead:
# a visit without a date cannot be placed in a partition).
PARSE_CHECKS: dict[tuple[str, str], Check] = {
    (table, f.api_name): _parse_check(table, f)
    for table, fields in _FIELDS.items()
    for f in fields
    if (table, f.api_name) != ("visits", "date")
}


def parse_check(table: str, api_field: str) -> Check:
    """The check a value of `api_field` that the coercion layer cannot read fails."""
    return PARSE_CHECKS[(table, api_field)]


# --- the gate's checks -----------------------------------------------------------------------------

VISITS_CHECKS: tuple[Check, ...] = (
    *_key_checks("visits"),
    VISIT_DATE_VALID,
    _in_range("visits", "signee_rating", 1, 5, "signee_rating is NULL (unrated) or 1..5"),
    _in_range("visits", "lat", -90, 90, "lat in [-90, 90]"),
    _in_range("visits", "lng", -180, 180, "lng in [-180, 180]"),
    _in_range("visits", "priority", 1, 10, "priority in 1..10"),
    _in_range("visits", "total_jobs", 0, None, "total_jobs >= 0"),
    _in_range("visits", "duration", 0, None, "duration (seconds of work planned) >= 0"),
    Check(
        "visits.doc_type_known",
        "visits",
        Severity.FIELD,
        "doc_type is NULL or one of the known docTypes (schema.DOC_TYPES)",
        "ExpectColumnValuesToBeInSet",
        {"column": "doc_type", "value_set": list(schema.DOC_TYPES)},
        action=Action.KEPT,
        threshold=None,  # a new docType is news, not a failure
        api_field="docType",
        evidence=("doc_type",),
    ),
    Check(
        "visits.close_date_when_closed",
        "visits",
        Severity.FIELD,
        "a closed visit has a close_date",
        "ExpectColumnValuesToNotBeNull",
        {"column": "close_date"},
        when=("closed", True),
        action=Action.KEPT,
        threshold=DEFAULT_THRESHOLD,
        api_field="closeDate",
        evidence=("closed", "close_date"),
    ),
    Check(
        "visits.not_closed_and_skipped",
        "visits",
        Severity.FIELD,
        "a visit is not both closed and skipped",
        "ExpectColumnValuesToNotBeInSet",
        {"column": "skipped", "value_set": [True]},
        when=("closed", True),
        action=Action.KEPT,
        threshold=DEFAULT_THRESHOLD,
        api_field="skipped",
        evidence=("closed", "skipped"),
    ),
    Check(
        "visits.rows_match_api",
        "visits",
        Severity.CONTRACT,
        "visits staged == distinct visits the API reported for the run",
        "ExpectTableRowCountToEqual",
        {"value": {"$PARAMETER": EXPECTED_VISITS}},
        parameter=EXPECTED_VISITS,
    ),
    _row_count_check("visits"),
)

VISIT_LINES_CHECKS: tuple[Check, ...] = (
    *_key_checks("visit_lines"),
    _orphan(
        "visit_lines",
        "visit_exists",
        VISIT_EXISTS,
        "every line's visit_id exists in visits (no orphans)",
        "lines",
        ("visit_id",),
    ),  # fmt: skip
    _orphan(
        "visit_lines",
        "visit_date_matches_visit",
        VISIT_DATE_MATCHES_VISIT,
        "a line's visit_date equals its visit's (partitions are published whole)",
        "date",
        ("visit_date",),
    ),  # fmt: skip
    _row_count_check("visit_lines"),
)

LINE_EXTRA_DATA_CHECKS: tuple[Check, ...] = (
    *_key_checks("line_extra_data"),
    _orphan(
        "line_extra_data",
        "line_exists",
        LINE_EXISTS,
        "every (visit_id, line_index) exists in visit_lines (no orphans)",
        "extraData",
        ("visit_id", "line_index"),
    ),  # fmt: skip
    Check(
        "line_extra_data.type_documented",
        "line_extra_data",
        Severity.FIELD,
        f"type is NULL or one of {', '.join(schema.EXTRA_DATA_TYPES)}",
        "ExpectColumnValuesToBeInSet",
        {"column": "type", "value_set": list(schema.EXTRA_DATA_TYPES)},
        action=Action.KEPT,
        threshold=None,  # the API "is under active development": a new input type is news, not a failure
        api_field="type",
        evidence=("type",),
    ),
    _row_count_check("line_extra_data"),
)

SUITES: dict[str, tuple[Check, ...]] = {
    "visits": VISITS_CHECKS,
    "visit_lines": VISIT_LINES_CHECKS,
    "line_extra_data": LINE_EXTRA_DATA_CHECKS,
}

# The checks that report well-formed values the pipeline does not know: `unknown_values` of the summary.
UNKNOWN_VALUE_CHECKS = ("visits.doc_type_known", "line_extra_data.type_documented")

# Parent of each child table, for orphan checks and for cascading a quarantine down to dependent rows.
PARENTS: dict[str, str] = {"visit_lines": "visits", "line_extra_data": "visit_lines"}

# Checks done in code rather than by GX.
SCHEMA_CHECKS: dict[str, Check] = {
    table: Check(
        f"schema.{table}",
        table,
        Severity.CONTRACT,
        "every staged file has exactly the columns and types of schema.py; partition folders are dates",
    )
    for table in schema.LAKE_TABLES
}
QUARANTINE_SHARE_CHECKS: dict[str, Check] = {
    table: Check(
        f"{table}.quarantine_share",
        table,
        Severity.CONTRACT,
        "the share of the table's rows quarantined (own problems and their dependants) is within the limit",
    )
    for table in schema.TABLES
}

ALL_CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        *SCHEMA_CHECKS.values(),
        *STRUCTURE_CHECKS,
        *PARSE_CHECKS.values(),
        *(c for s in SUITES.values() for c in s),
        *QUARANTINE_SHARE_CHECKS.values(),
    )
}
ISSUE_CHECKS: dict[str, Check] = {name: check for name, check in ALL_CHECKS.items() if check.records_issues}


def reads_parent(check: Check) -> bool:
    """Whether a check reads a column derived from the parent table."""
    return bool(DERIVED_COLUMNS.intersection(check.columns))


def columns_to_load(table: str) -> list[str]:
    """Stored columns the table's checks read, keys first (derived columns are computed, not loaded)."""
    wanted = [*schema.KEYS[table], schema.PARTITION_COLUMN]
    for check in SUITES[table]:
        wanted.extend(c for c in (*check.columns, *check.evidence) if c not in DERIVED_COLUMNS)
    return list(dict.fromkeys(wanted))
