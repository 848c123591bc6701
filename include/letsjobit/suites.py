"""The validation gate's checks, in one place: what is checked, on which table, and how severe a failure is.

Every check has a stable name (``<table>.<what>``, or ``schema.<table>``) that appears in the JSON summary,
the report, the quarantine files and the ``ValidationFailed`` message. Checks on rows are Great
Expectations expectations, declared here as data (class name and arguments) and built into suites only
when a run is validated, so importing this module never imports GX (it is slow to import).

Severities:
- ``CONTRACT``: any failure fails the run and nothing is published (duplicate or null keys, orphans,
  reconciliation, schema).
- ``ROW``: the offending rows are quarantined and the rest is published, unless their share is above
  the threshold (see ``validate.Thresholds``), which fails the run.

Two checks need more than one table (a line's visit must exist, an extra data row's line must exist). GX
1.x has no cross-table expectation for pandas batches, so ``derive_columns`` computes the lookup as a
boolean column of the child table, and a plain expectation checks that column.

"Booleans are booleans" and "visit_date is a real date" are enforced by the schema check: a parquet
``bool`` column can hold only true, false or null, a ``date32`` column only real dates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from include.letsjobit import schema

if TYPE_CHECKING:
    import numpy as np


class Severity(StrEnum):
    CONTRACT = "contract"
    ROW = "row"


@dataclass(frozen=True)
class Check:
    """One named check: a GX expectation (class name + arguments) on one table, or a check done in code."""

    name: str
    table: str
    severity: Severity
    description: str
    expectation: str | None = None  # class in great_expectations.expectations; None: checked in code
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    when: tuple[str, Any] | None = None  # only rows where this column equals this value are checked
    parameter: str | None = None  # a run parameter the check needs (skipped when the run has none)

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


# Columns computed by `derive_columns` before validation (not stored in the lake).
VISIT_EXISTS = "visit_exists"
VISIT_DATE_MATCHES_VISIT = "visit_date_matches_visit"
LINE_EXISTS = "line_exists"
DERIVED_COLUMNS = frozenset({VISIT_EXISTS, VISIT_DATE_MATCHES_VISIT, LINE_EXISTS})

# Run parameters (GX suite parameters) of the reconciliation checks.
EXPECTED_VISITS = "expected_visits"


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


def _between(table: str, column: str, low: float | None, high: float | None, description: str) -> Check:
    return Check(
        f"{table}.{column}_in_range",
        table,
        Severity.ROW,
        description,
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": low, "max_value": high},
    )


VISITS_CHECKS: tuple[Check, ...] = (
    *_key_checks("visits"),
    Check(
        "visits.visit_date_not_null",
        "visits",
        Severity.ROW,
        "visit_date is present (a date the coercion could read)",
        "ExpectColumnValuesToNotBeNull",
        {"column": "visit_date"},
    ),
    _between("visits", "signee_rating", 1, 5, "signee_rating is NULL (unrated) or 1..5"),
    _between("visits", "lat", -90, 90, "lat in [-90, 90]"),
    _between("visits", "lng", -180, 180, "lng in [-180, 180]"),
    _between("visits", "priority", 1, 10, "priority in 1..10"),
    _between("visits", "total_jobs", 0, None, "total_jobs >= 0"),
    _between("visits", "duration", 0, None, "duration (seconds of work planned) >= 0"),
    Check(
        "visits.close_date_when_closed",
        "visits",
        Severity.ROW,
        "a closed visit has a close_date",
        "ExpectColumnValuesToNotBeNull",
        {"column": "close_date"},
        when=("closed", True),
    ),
    Check(
        "visits.not_closed_and_skipped",
        "visits",
        Severity.ROW,
        "a visit is not both closed and skipped",
        "ExpectColumnValuesToNotBeInSet",
        {"column": "skipped", "value_set": [True]},
        when=("closed", True),
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
    Check(
        "visit_lines.visit_exists",
        "visit_lines",
        Severity.CONTRACT,
        "every line's visit_id exists in visits (no orphans)",
        "ExpectColumnValuesToBeInSet",
        {"column": VISIT_EXISTS, "value_set": [True]},
    ),
    Check(
        "visit_lines.visit_date_matches_visit",
        "visit_lines",
        Severity.CONTRACT,
        "a line's visit_date equals its visit's (partitions are published whole)",
        "ExpectColumnValuesToBeInSet",
        {"column": VISIT_DATE_MATCHES_VISIT, "value_set": [True]},
    ),
    _row_count_check("visit_lines"),
)

LINE_EXTRA_DATA_CHECKS: tuple[Check, ...] = (
    *_key_checks("line_extra_data"),
    Check(
        "line_extra_data.line_exists",
        "line_extra_data",
        Severity.CONTRACT,
        "every (visit_id, line_index) exists in visit_lines (no orphans)",
        "ExpectColumnValuesToBeInSet",
        {"column": LINE_EXISTS, "value_set": [True]},
    ),
    Check(
        "line_extra_data.type_documented",
        "line_extra_data",
        Severity.ROW,
        f"type is NULL or one of {', '.join(schema.EXTRA_DATA_TYPES)}",
        "ExpectColumnValuesToBeInSet",
        {"column": "type", "value_set": list(schema.EXTRA_DATA_TYPES)},
    ),
    _row_count_check("line_extra_data"),
)

SUITES: dict[str, tuple[Check, ...]] = {
    "visits": VISITS_CHECKS,
    "visit_lines": VISIT_LINES_CHECKS,
    "line_extra_data": LINE_EXTRA_DATA_CHECKS,
}

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
    for table in schema.TABLES
}
QUARANTINE_SHARE_CHECKS: dict[str, Check] = {
    table: Check(
        f"{table}.quarantine_share",
        table,
        Severity.ROW,
        "the share of the table's rows quarantined (own failures and their dependants) is within the limit",
    )
    for table in schema.TABLES
}

ALL_CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        *SCHEMA_CHECKS.values(),
        *(c for s in SUITES.values() for c in s),
        *QUARANTINE_SHARE_CHECKS.values(),
    )
}


def reads_parent(check: Check) -> bool:
    """Whether a check reads a column derived from the parent table."""
    return bool(DERIVED_COLUMNS.intersection(check.columns))


def columns_to_load(table: str) -> list[str]:
    """Stored columns the table's checks read, keys first (derived columns are computed, not loaded)."""
    wanted = [*schema.KEYS[table], schema.PARTITION_COLUMN]
    for check in SUITES[table]:
        wanted.extend(c for c in check.columns if c not in DERIVED_COLUMNS)
    return list(dict.fromkeys(wanted))


def key_strings(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """One string per row that identifies it by `columns` (joined with a separator no id contains)."""
    if len(columns) == 1:
        return table.column(columns[0]).combine_chunks().cast(pa.string())
    parts = [table.column(c).combine_chunks().cast(pa.string()) for c in columns]
    return pc.binary_join_element_wise(*parts, "\x1f")


def derive_columns(
    tables: Mapping[str, pa.Table], keys: Mapping[str, pa.Array], parent_keys: Mapping[str, pa.Array]
) -> dict[str, dict[str, np.ndarray]]:
    """The lookup columns of the cross-table checks, per child table, from the loaded (arrow) tables.

    ``keys``: each table's row keys (``key_strings`` of its KEYS); ``parent_keys``: each child row's
    parent key.
    """
    derived: dict[str, dict[str, np.ndarray]] = {}
    for child, parent in PARENTS.items():
        if child not in tables or parent not in tables:
            continue
        # Position of each child's parent row (the first, if duplicated: key_unique reports those).
        position = pc.index_in(parent_keys[child], value_set=keys[parent])
        exists = position.is_valid()
        if child == "visit_lines":
            own = tables[child].column(schema.PARTITION_COLUMN).combine_chunks()
            theirs = tables[parent].column(schema.PARTITION_COLUMN).combine_chunks().take(position)
            both_null = pc.and_(own.is_null(), theirs.is_null())
            same = pc.or_(pc.fill_null(pc.equal(own, theirs), False), both_null)
            # An orphan has no visit to compare with; the orphan check reports it.
            matches = pc.or_(same, pc.invert(exists))
            derived[child] = {
                VISIT_EXISTS: exists.to_numpy(zero_copy_only=False),
                VISIT_DATE_MATCHES_VISIT: matches.to_numpy(zero_copy_only=False),
            }
        else:
            derived[child] = {LINE_EXISTS: exists.to_numpy(zero_copy_only=False)}
    return derived


def build_suite(table: str, parameters: Mapping[str, int]):
    """The GX ExpectationSuite of a table; checks whose run parameter is not given are left out."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    suite = gx.ExpectationSuite(name=table)
    for check in SUITES[table]:
        if check.parameter and check.parameter not in parameters:
            continue
        kwargs = dict(check.kwargs)
        if check.when:
            column, value = check.when
            kwargs["row_condition"] = Column(column) == value
        expectation_class = getattr(gxe, check.expectation)
        suite.add_expectation(
            expectation_class(
                **kwargs,
                meta={"check": check.name, "severity": check.severity.value},
                notes=f"{check.name} ({check.severity.value}): {check.description}",
            )
        )
    return suite


def schema_problems(file_schema: pa.Schema, table: str) -> list[str]:
    """What differs between one staged file's schema and the table's (column order and nullability aside)."""
    expected = schema.TABLES[table]
    problems = []
    for name in expected.names:
        if name == schema.PARTITION_COLUMN and name not in file_schema.names:
            continue  # held by the hive partition folder
        if name not in file_schema.names:
            problems.append(f"missing column {name}")
            continue
        want, got = expected.field(name).type, file_schema.field(name).type
        if not _same_type(want, got):
            problems.append(f"column {name} is {got}, expected {want}")
    problems.extend(f"unexpected column {name}" for name in file_schema.names if name not in expected.names)
    return problems


def _same_type(want: pa.DataType, got: pa.DataType) -> bool:
    # Parquet names list items "element" where pyarrow says "item": compare value types, not names.
    if pa.types.is_list(want) and pa.types.is_list(got):
        return _same_type(want.value_type, got.value_type)
    if pa.types.is_struct(want) and pa.types.is_struct(got):
        return [f.name for f in want] == [f.name for f in got] and all(
            _same_type(a.type, b.type) for a, b in zip(want, got, strict=True)
        )
    return want.equals(got)
