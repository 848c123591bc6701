"""Raw API pages -> Arrow tables for `visits`, `visit_lines`, `line_extra_data` and `data_issues`.

The tables have exactly the schemas of `schema.py`, whatever the order or the encodings of the records:
columns are built from the declared types (never inferred), and every value goes through `coerce.py`.
Nothing the API sent is lost without a trace; every problem is one row of `data_issues` (schema
`DATA_ISSUES`) naming the check of `suites.py` it failed, its severity and the action taken:

- a value that cannot be coerced is NULL in its column and one `<table>.<column>_parses` issue (field,
  `nulled`); the record is kept;
- a visit without a usable date is one `visits.date_valid` issue (record, `quarantined`): the visit is
  staged without a date, in the null partition, and the validation gate quarantines it with its lines;
- a structural problem is one record issue naming the page offset and the field; the other rows of the
  page are kept: data that is not a list (`visits.data_is_list`), a visit, line or extraData entry that
  is not an object (`visits.is_object`, `visit_lines.is_object`, `line_extra_data.is_object`), a visit
  without `_id` (`visits.id_present`, raw value: its other fields), `lines` or `extraData` that are not
  lists (`visits.lines_is_list`, `visit_lines.extra_data_is_list`: the visit or line stays, the unusable
  structure is in the issue's raw value);
- fields the reference does not list are kept as JSON text in `extra_fields`, and their names are
  returned so the caller can log them once per run.

An issue's `visit_date` is its record's date, else the date filter of the listing the page came from
(a window run's issues then land in the partitions it replaces), else NULL.

`signature` is not copied (`has_signature` says whether there was one). `line_count` and
`extra_data_count` count the rows that landed in `visit_lines` and `line_extra_data`. When a key is
given, contacts are pseudonymised (`pseudonyms.py`), in the tables and in the issues' raw values alike.

Raw pages are the lines the extractor writes: `{"offset", "filters", "fetched_at", "body": {"meta",
"data"}}`; a line that is not such an object is a corrupt raw file and raises `RawPageError`.

`flatten_pages` reads a batch in two phases: reading (one function per level: page, visit, lines,
extraData) keeps each record as it came and records what is not a record; then the columns of each
table are coerced, one issue per value that cannot be read. Over 500 lines: both phases work on the
same private records and issues of a batch, which would otherwise cross a module boundary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from letsjobit.lake import coerce, pseudonyms, schema
from letsjobit.lake.schema import Field, Kind
from letsjobit.quality import suites
from letsjobit.quality.suites import Check

VISIT_KEY = "_id"
LINES_KEY = "lines"
EXTRA_DATA_KEY = "extraData"
SIGNATURE_KEY = "signature"

KNOWN_VISIT_KEYS = frozenset(f.api_name for f in schema.VISIT_FIELDS) | {VISIT_KEY, LINES_KEY, SIGNATURE_KEY}
KNOWN_LINE_KEYS = frozenset(f.api_name for f in schema.LINE_FIELDS) | {EXTRA_DATA_KEY}
KNOWN_EXTRA_DATA_KEYS = frozenset(f.api_name for f in schema.EXTRA_DATA_FIELDS)

_VALUE_NUMBER = Field("value", "value_number", Kind.FLOAT)
# extraData values follow the reference's own pattern `[0-9]+([\.,][0-9]+)?`: a decimal comma is a number.
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d+,\d+\s*", re.ASCII)

# The reason of a `visits.date_valid` issue when there was no date at all (else the coercion's reason).
REASON_DATE_MISSING = "date missing or empty"


class RawPageError(ValueError):
    """A raw file line that is not a page as the extractor writes them (our data, not the API's)."""


@dataclass
class FlatBatch:
    """The tables of a batch of pages, and where each child row's visit sits in `visits`."""

    visits: pa.Table
    visit_lines: pa.Table
    line_extra_data: pa.Table
    issues: pa.Table  # schema.DATA_ISSUES
    line_parents: pa.Array  # int32: row of `visits` that each `visit_lines` row belongs to
    extra_data_parents: pa.Array  # int32: row of `visits` that each `line_extra_data` row belongs to
    issue_parents: pa.Array  # int32: row of `visits` each issue is about (null: no visit landed)
    unknown_fields: dict[str, set[str]] = field(default_factory=dict)  # table -> field names
    pages: int = 0

    def tables(self) -> dict[str, pa.Table]:
        return {
            "visits": self.visits,
            "visit_lines": self.visit_lines,
            "line_extra_data": self.line_extra_data,
        }


# --- raw files ---------------------------------------------------------------------------------


def parse_page(line: bytes | str, where: str) -> dict[str, Any]:
    """One raw line as a page dict; `where` names the file and line for the error."""
    try:
        page = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise RawPageError(f"{where}: not JSON ({error})") from None
    if not isinstance(page, dict) or "fetched_at" not in page or "body" not in page:
        raise RawPageError(f"{where}: not a raw page (expected an object with fetched_at and body)")
    return page


def fetched_at_of(page: Mapping[str, Any], where: str = "page") -> datetime:
    """The page's fetch time as an aware UTC datetime."""
    value = page.get("fetched_at")
    try:
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RawPageError(f"{where}: fetched_at {value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --- flattening --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """What is the same for every row of a batch: the run it is staged for, the key contacts are hashed with."""

    run_id: str
    pseudonymise_key: str | None


@dataclass(frozen=True)
class _Page:
    """One page of the batch, as the issues about its records name it."""

    number: int  # position in the batch
    offset: int | None  # the listing's offset the page was read at
    fetched_at: datetime
    listing_date: date | None  # the `date` filter of the listing the page came from


@dataclass(frozen=True, slots=True)
class _Landed:
    """A visit that landed in `visits`: its page, its row there and its id (what its children's issues name)."""

    page: _Page
    row: int
    visit_id: str


class _Issues:
    """Accumulates issue rows column by column; their visit dates are known once the visits are coerced."""

    def __init__(self, run: _Run):
        self.run = run
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.DATA_ISSUES.names}
        self.parents: list[int | None] = []  # row of `visits` each issue is about
        self.page_numbers: list[int] = []  # page of each issue, for its listing's date filter

    def about_page(self, page: _Page, check: Check, raw: Any, *, record_date: date | None = None) -> None:
        """An issue about no landed visit: the page's data, an entry that is not a visit, a visit without
        `_id` (`record_date`: its own date, as the visit will not give it one)."""
        self._add(page, check, raw, record_date=record_date)

    def about_visit(
        self,
        visit: _Landed,
        check: Check,
        raw: Any,
        *,
        line_index: int | None = None,
        extra_index: int | None = None,
        reason: str | None = None,
    ) -> None:
        """An issue about a landed visit, one of its lines (`line_index`) or extraData entries."""
        self._add(
            visit.page, check, raw, parent=visit.row, visit_id=visit.visit_id,
            line_index=line_index, extra_index=extra_index, reason=reason,
        )  # fmt: skip

    def _add(
        self,
        page: _Page,
        check: Check,
        raw: Any,
        *,
        parent: int | None = None,
        visit_id: str | None = None,
        line_index: int | None = None,
        extra_index: int | None = None,
        reason: str | None = None,
        record_date: date | None = None,
    ) -> None:
        key = self.run.pseudonymise_key
        api_field = check.api_field
        if key and check is suites.VISIT_ID_PRESENT and isinstance(raw, dict):
            raw = pseudonyms.visit_record(raw, key)
        raw_value = coerce.raw_text(raw)
        if key and check.table == "visits":
            raw_value = pseudonyms.visit_value(raw_value, api_field, key)
        row = {
            "run_id": self.run.run_id,
            "table_name": check.table,
            "visit_id": visit_id,
            "line_index": line_index,
            "extra_index": extra_index,
            "visit_date": record_date,
            "field": api_field,
            "raw_value": raw_value,
            "check_name": check.name,
            "severity": check.severity.value,
            "action": check.action.value,
            "reason": reason or check.description,
            "page_offset": page.offset,
            "fetched_at": page.fetched_at,
        }
        for name, value in row.items():
            self.columns[name].append(value)
        self.parents.append(parent)
        self.page_numbers.append(page.number)

    def table(self, visit_date: pa.Array, pages: list[_Page]) -> pa.Table:
        """The issue rows, each dated by its visit, else the record's own date, else its listing's filter."""
        parents = pa.array(self.parents, pa.int32())
        listing_dates = pa.array([page.listing_date for page in pages], pa.date32())
        listing = listing_dates.take(pa.array(self.page_numbers, pa.int32()))
        own = pa.array(self.columns["visit_date"], pa.date32())
        columns = dict(self.columns)
        columns["visit_date"] = pc.coalesce(visit_date.take(parents), own, listing)
        return pa.Table.from_pydict(columns, schema=schema.DATA_ISSUES)


class _Records:
    """The records of a batch by level, in reading order; each child row knows its visit's row (parent)."""

    def __init__(self) -> None:
        self.pages: list[_Page] = []
        self.visits: list[dict[str, Any]] = []
        self.visit_ids: list[str] = []
        self.visit_pages: list[int] = []  # page number of each visit
        self.line_counts: list[int] = []  # lines of each visit that landed
        self.lines: list[dict[str, Any]] = []
        self.line_parents: list[int] = []
        self.line_indexes: list[int] = []
        self.extra_data_counts: list[int] = []  # extraData entries of each line that landed
        self.entries: list[dict[str, Any]] = []
        self.entry_parents: list[int] = []
        self.entry_line_indexes: list[int] = []
        self.entry_indexes: list[int] = []

    def landed(self, row: int) -> _Landed:
        """The visit at `row` of `visits`, for an issue about one of its values."""
        return _Landed(page=self.pages[self.visit_pages[row]], row=row, visit_id=self.visit_ids[row])


# Reading: one function per level (a page, a visit, a visit's lines, a line's extraData). What cannot
# be read as a record is an issue; what can is kept as a raw dict for the column phase below.


def _read_page(records: _Records, issues: _Issues, number: int, page: Mapping[str, Any]) -> None:
    """A page's visits, or one issue when its data is not a list."""
    source = _Page(
        number=number,
        offset=_page_offset(page),
        fetched_at=fetched_at_of(page, f"page at offset {page.get('offset')!r}"),
        listing_date=_listing_date(page),
    )
    records.pages.append(source)
    body = page.get("body")
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        issues.about_page(source, suites.PAGE_DATA_IS_LIST, data)
        return
    for visit in data:
        _read_visit(records, issues, source, visit)


def _read_visit(records: _Records, issues: _Issues, page: _Page, visit: Any) -> None:
    """A visit and its lines; one issue instead when it is not an object or has no `_id`."""
    if visit.__class__ is not dict:
        issues.about_page(page, suites.VISIT_IS_OBJECT, visit)
        return
    raw_id = visit.get(VISIT_KEY)
    try:
        visit_id = raw_id if raw_id.__class__ is str else coerce.coerce_text(raw_id)
    except coerce.CoercionError:
        visit_id = None
    if not visit_id:
        identity = {key: value for key, value in visit.items() if key not in (LINES_KEY, SIGNATURE_KEY)}
        issues.about_page(
            page, suites.VISIT_ID_PRESENT, identity, record_date=_date_or_none(visit.get("date"))
        )
        return
    landed = _Landed(page=page, row=len(records.visits), visit_id=visit_id)
    records.visits.append(visit)
    records.visit_ids.append(visit_id)
    records.visit_pages.append(page.number)
    records.line_counts.append(_read_lines(records, issues, landed, visit.get(LINES_KEY)))


def _read_lines(records: _Records, issues: _Issues, visit: _Landed, lines: Any) -> int:
    """The lines of a landed visit and their extraData; an issue for each that is not an object, or for
    `lines` itself when it is not a list. Returns how many landed."""
    if lines.__class__ is not list:
        if lines is not None:
            issues.about_visit(visit, suites.LINES_IS_LIST, lines)
        return 0
    landed = 0
    for line_index, line in enumerate(lines):
        if line.__class__ is not dict:
            issues.about_visit(visit, suites.LINE_IS_OBJECT, line, line_index=line_index)
            continue
        records.lines.append(line)
        records.line_parents.append(visit.row)
        records.line_indexes.append(line_index)
        records.extra_data_counts.append(
            _read_extra_data(records, issues, visit, line_index, line.get(EXTRA_DATA_KEY))
        )
        landed += 1
    return landed


def _read_extra_data(
    records: _Records, issues: _Issues, visit: _Landed, line_index: int, extra_data: Any
) -> int:
    """The extraData entries of a line; an issue for each that is not an object, or for `extraData`
    itself when it is not a list. Returns how many landed."""
    if extra_data.__class__ is not list:
        if extra_data is not None:
            issues.about_visit(visit, suites.EXTRA_DATA_IS_LIST, extra_data, line_index=line_index)
        return 0
    landed = 0
    for extra_index, entry in enumerate(extra_data):
        if entry.__class__ is not dict:
            issues.about_visit(
                visit,
                suites.EXTRA_DATA_ENTRY_IS_OBJECT,
                entry,
                line_index=line_index,
                extra_index=extra_index,
            )
            continue
        records.entries.append(entry)
        records.entry_parents.append(visit.row)
        records.entry_line_indexes.append(line_index)
        records.entry_indexes.append(extra_index)
        landed += 1
    return landed


def _listing_date(page: Mapping[str, Any]) -> date | None:
    """The `date` filter of the listing a page came from (a window run lists each date), or None."""
    filters = page.get("filters")
    value = filters.get("date") if isinstance(filters, dict) else None
    try:
        return coerce.coerce_date(value)
    except coerce.CoercionError:
        return None


def _page_offset(page: Mapping[str, Any]) -> int | None:
    offset = page.get("offset")
    return offset if isinstance(offset, int) and not isinstance(offset, bool) else None


# Columns: each level's records become typed columns through the coercion layer, one issue per value
# it cannot read.


def _unknown_json(rows: list[dict[str, Any]], known: frozenset[str], names: set[str]) -> list[str | None]:
    """`extra_fields` for each row: JSON text of the fields the reference does not list, or NULL."""
    texts: list[str | None] = [None] * len(rows)
    for position, row in enumerate(rows):
        if not known.issuperset(row):
            unknown = {key: value for key, value in row.items() if key not in known}
            names.update(unknown)
            texts[position] = coerce.json_text(unknown)
    return texts


def _raw_columns(rows: list[dict[str, Any]], fields: tuple[Field, ...]) -> list[Sequence[Any]]:
    """The raw value of each field in each row, column by column (missing keys are None)."""
    if not rows:
        return [()] * len(fields)
    names = [f.api_name for f in fields]
    # Row by row then transposed: each dict is visited once, which is several times faster than
    # one pass over all the dicts per field.
    return list(zip(*[tuple(map(row.get, names)) for row in rows], strict=True))


def _record_unreadable(
    issues: _Issues,
    records: _Records,
    table: str,
    field_: Field,
    unreadable: list[coerce.Unreadable],
    *,
    parents: Sequence[int],
    line_indexes: Sequence[int] | None = None,
    extra_indexes: Sequence[int] | None = None,
) -> None:
    """One `<table>.<column>_parses` issue per value the coercion layer could not read."""
    check = suites.parse_check(table, field_.api_name)
    for position, raw, reason in unreadable:
        issues.about_visit(
            records.landed(parents[position]),
            check,
            raw,
            line_index=None if line_indexes is None else line_indexes[position],
            extra_index=None if extra_indexes is None else extra_indexes[position],
            reason=reason,
        )


def _visit_columns(records: _Records, issues: _Issues, run: _Run, unknown: set[str]) -> dict[str, pa.Array]:
    visits = records.visits
    parents = range(len(visits))
    columns: dict[str, pa.Array] = {"visit_id": pa.array(records.visit_ids, pa.string())}
    for field_, values in zip(schema.VISIT_FIELDS, _raw_columns(visits, schema.VISIT_FIELDS), strict=True):
        array, bad = coerce.coerce_column(field_, values)
        if field_.column == schema.PARTITION_COLUMN:
            # One issue per visit without a usable date, whatever the reason: it cannot be placed.
            reasons = {position: reason for position, _, reason in bad}
            for position in pc.indices_nonzero(array.is_null()).to_pylist():
                issues.about_visit(
                    records.landed(position),
                    suites.VISIT_DATE_VALID,
                    values[position],
                    reason=reasons.get(position, REASON_DATE_MISSING),
                )
        else:
            array = pseudonyms.visit_column(array, field_.api_name, run.pseudonymise_key)
            _record_unreadable(issues, records, "visits", field_, bad, parents=parents)
        columns[field_.column] = array
    columns["has_signature"] = pa.array(
        [_has_signature(visit.get(SIGNATURE_KEY)) for visit in visits], pa.bool_()
    )
    columns["line_count"] = pa.array(records.line_counts, pa.int32())
    columns["extra_fields"] = pa.array(_unknown_json(visits, KNOWN_VISIT_KEYS, unknown), pa.string())
    return columns


def _line_columns(
    records: _Records, issues: _Issues, parent_columns: dict[str, pa.Array], unknown: set[str]
) -> dict[str, pa.Array]:
    columns = {**parent_columns, "line_index": pa.array(records.line_indexes, pa.int32())}
    for field_, values in zip(
        schema.LINE_FIELDS, _raw_columns(records.lines, schema.LINE_FIELDS), strict=True
    ):
        array, bad = coerce.coerce_column(field_, values)
        columns[field_.column] = array
        _record_unreadable(
            issues, records, "visit_lines", field_, bad,
            parents=records.line_parents, line_indexes=records.line_indexes,
        )  # fmt: skip
    columns["extra_data_count"] = pa.array(records.extra_data_counts, pa.int32())
    columns["extra_fields"] = pa.array(_unknown_json(records.lines, KNOWN_LINE_KEYS, unknown), pa.string())
    return columns


def _extra_data_columns(
    records: _Records, issues: _Issues, parent_columns: dict[str, pa.Array], unknown: set[str]
) -> dict[str, pa.Array]:
    columns = {
        **parent_columns,
        "line_index": pa.array(records.entry_line_indexes, pa.int32()),
        "extra_index": pa.array(records.entry_indexes, pa.int32()),
    }
    raw_values: Sequence[Any] = ()
    for field_, values in zip(
        schema.EXTRA_DATA_FIELDS, _raw_columns(records.entries, schema.EXTRA_DATA_FIELDS), strict=True
    ):
        if field_.api_name == "value":
            raw_values = values
        array, bad = coerce.coerce_column(field_, values)
        columns[field_.column] = array
        _record_unreadable(
            issues, records, "line_extra_data", field_, bad, parents=records.entry_parents,
            line_indexes=records.entry_line_indexes, extra_indexes=records.entry_indexes,
        )  # fmt: skip
    columns["value_number"] = coerce.coerce_column(_VALUE_NUMBER, _decimal_points(raw_values))[0]
    columns["extra_fields"] = pa.array(
        _unknown_json(records.entries, KNOWN_EXTRA_DATA_KEYS, unknown), pa.string()
    )
    return columns


def _table(name: str, columns: dict[str, pa.Array], run_id: str, fetched_at: pa.Array) -> pa.Table:
    """A data table in its schema's column order, with the run and each row's fetch time."""
    columns["run_id"] = pa.repeat(pa.scalar(run_id, pa.string()), len(columns["visit_id"]))
    columns["fetched_at"] = fetched_at
    table_schema = schema.TABLES[name]
    return pa.Table.from_arrays([columns[column] for column in table_schema.names], schema=table_schema)


def flatten_pages(
    pages: Iterable[Mapping[str, Any]],
    run_id: str,
    *,
    pseudonymise_key: str | None = None,
) -> FlatBatch:
    """Flatten a batch of raw pages. Memory is that of the batch; call it once per batch of pages."""
    run = _Run(run_id=run_id, pseudonymise_key=pseudonymise_key)
    records = _Records()
    issues = _Issues(run)
    for number, page in enumerate(pages):
        _read_page(records, issues, number, page)

    unknown_fields: dict[str, set[str]] = {"visits": set(), "visit_lines": set(), "line_extra_data": set()}
    page_times = pa.array([page.fetched_at for page in records.pages], pa.timestamp("us", tz="UTC"))
    visit_fetched_at = page_times.take(pa.array(records.visit_pages, pa.int32()))
    line_parents = pa.array(records.line_parents, pa.int32())
    entry_parents = pa.array(records.entry_parents, pa.int32())

    visits = _visit_columns(records, issues, run, unknown_fields["visits"])
    visit_keys = {name: visits[name] for name in ("visit_id", "visit_date")}
    lines = _line_columns(
        records, issues, {name: column.take(line_parents) for name, column in visit_keys.items()},
        unknown_fields["visit_lines"],
    )  # fmt: skip
    entries = _extra_data_columns(
        records, issues, {name: column.take(entry_parents) for name, column in visit_keys.items()},
        unknown_fields["line_extra_data"],
    )  # fmt: skip
    return FlatBatch(
        visits=_table("visits", visits, run_id, visit_fetched_at),
        visit_lines=_table("visit_lines", lines, run_id, visit_fetched_at.take(line_parents)),
        line_extra_data=_table("line_extra_data", entries, run_id, visit_fetched_at.take(entry_parents)),
        issues=issues.table(visits["visit_date"], records.pages),
        line_parents=line_parents,
        extra_data_parents=entry_parents,
        issue_parents=pa.array(issues.parents, pa.int32()),
        unknown_fields={name: names for name, names in unknown_fields.items() if names},
        pages=len(records.pages),
    )


def _decimal_points(values: Sequence[Any]) -> Sequence[Any]:
    """extraData values with a decimal comma ("12,5") written with a point, for `value_number`."""
    return [
        value.replace(",", ".")
        if value.__class__ is str and "," in value and _DECIMAL_COMMA.fullmatch(value)
        else value
        for value in values
    ]


def _date_or_none(value: Any) -> date | None:
    try:
        return coerce.coerce_date(value)
    except coerce.CoercionError:
        return None


def _has_signature(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and value is not False


def empty_batch(run_id: str) -> FlatBatch:
    """The tables of no pages at all (same schemas)."""
    return flatten_pages([], run_id)


__all__ = [
    "FlatBatch",
    "RawPageError",
    "empty_batch",
    "fetched_at_of",
    "flatten_pages",
    "parse_page",
]
