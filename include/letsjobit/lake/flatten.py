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
given, the contact columns in `schema.PSEUDONYMISED_COLUMNS` hold an HMAC-SHA256 of the (normalised)
value instead of the value, in the tables and in the issues' raw values alike.

Raw pages are the lines the extractor writes: `{"offset", "filters", "fetched_at", "body": {"meta",
"data"}}`; a line that is not such an object is a corrupt raw file and raises `RawPageError`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from letsjobit.lake import coerce, schema
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

_PSEUDONYMISED_API_NAMES = frozenset(
    f.api_name for f in schema.VISIT_FIELDS if f.column in schema.PSEUDONYMISED_COLUMNS
)
# Free text that quotes contacts (the reference's own `obs`: "Contact Info: ..., John: 01999999999").
_MASKED_API_NAMES = frozenset({"obs"})
_VALUE_NUMBER = Field("value", "value_number", Kind.FLOAT)
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")
_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits with the usual phone punctuation on one line; a phone when it has 9 to 15 digits.
_PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{6,}\d(?![\w])")
_DATE_IN_TEXT = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b")
PSEUDONYM_TOKEN_HEX = 12
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


def iter_raw_pages(path: Path) -> Iterator[dict[str, Any]]:
    """The pages of one raw part (`part-*.jsonl.gz`), in the order they were fetched."""
    with gzip.open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield parse_page(line, f"{path}:{number}")


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


# --- pseudonymisation --------------------------------------------------------------------------


def pseudonymise(value: str | None, key: str, api_name: str) -> str | None:
    """HMAC-SHA256 of a contact value, normalised first so that formatting does not split a person."""
    if value is None:
        return None
    text = value.strip()
    if api_name == "signeeEmail":
        text = text.lower()
    elif api_name == "contactPhone":
        text = _PHONE_PUNCTUATION.sub("", text)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def mask_contacts(text: str | None, key: str) -> str | None:
    """Free text with its email addresses and phone numbers replaced by ``[email:…]`` / ``[phone:…]``.

    The token is the start of the value's pseudonym (`pseudonymise`), so a number quoted in `obs` can
    still be matched with `contact_phone`. A phone is a run of 9 to 15 digits (spaces, dots, dashes and
    brackets allowed between them, no date in it); times, dates and quantities are left alone.
    """
    if not text:
        return text

    def email(match: re.Match) -> str:
        return f"[email:{pseudonymise(match.group(), key, 'signeeEmail')[:PSEUDONYM_TOKEN_HEX]}]"

    def phone(match: re.Match) -> str:
        digits = sum(character.isdigit() for character in match.group())
        if not 9 <= digits <= 15 or _DATE_IN_TEXT.search(match.group()):
            return match.group()
        return f"[phone:{pseudonymise(match.group(), key, 'contactPhone')[:PSEUDONYM_TOKEN_HEX]}]"

    return _PHONE_IN_TEXT.sub(phone, _EMAIL_IN_TEXT.sub(email, text))


# --- flattening --------------------------------------------------------------------------------


class _Issues:
    """Accumulates issue rows column by column; their visit dates are known once the visits are coerced."""

    def __init__(self, run_id: str, pseudonymise_key: str | None):
        self.run_id = run_id
        self.key = pseudonymise_key
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.DATA_ISSUES.names}
        self.parents: list[int | None] = []  # row of `visits` each issue is about
        self.pages: list[int] = []  # page number of each issue, for its listing's date filter

    def add(
        self,
        page_number: int,
        page_offset: int | None,
        fetched_at: datetime | None,
        check: Check,
        parent: int | None,
        visit_id: str | None,
        line_index: int | None,
        extra_index: int | None,
        raw: Any,
        *,
        reason: str | None = None,
        record_date: date | None = None,  # the date of a record that did not land (no _id)
    ) -> None:
        api_field = check.api_field
        if self.key and check is suites.VISIT_ID_PRESENT and isinstance(raw, dict):
            raw = _pseudonymised_record(raw, self.key)
        raw_value = coerce.raw_text(raw)
        if self.key and api_field in _PSEUDONYMISED_API_NAMES and check.table == "visits":
            raw_value = pseudonymise(raw_value, self.key, api_field)
        elif self.key and api_field in _MASKED_API_NAMES and check.table == "visits":
            raw_value = mask_contacts(raw_value, self.key)
        row = {
            "run_id": self.run_id,
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
            "page_offset": page_offset,
            "fetched_at": fetched_at,
        }
        for name, value in row.items():
            self.columns[name].append(value)
        self.parents.append(parent)
        self.pages.append(page_number)

    def table(self, visit_date: pa.Array, listing_dates: list[date | None]) -> pa.Table:
        """The issue rows, each dated by its visit, else the record's own date, else its listing's filter."""
        parents = pa.array(self.parents, pa.int32())
        listing = pa.array(listing_dates, pa.date32()).take(pa.array(self.pages, pa.int32()))
        own = pa.array(self.columns["visit_date"], pa.date32())
        columns = dict(self.columns)
        columns["visit_date"] = pc.coalesce(visit_date.take(parents), own, listing)
        return pa.Table.from_pydict(columns, schema=schema.DATA_ISSUES)


def _pseudonymised_record(record: dict[str, Any], key: str) -> dict[str, Any]:
    """A record's fields with its contacts pseudonymised as their columns are (for an issue's raw value)."""
    record = dict(record)
    for api_name in _PSEUDONYMISED_API_NAMES & record.keys():
        try:
            text = coerce.coerce_text(record[api_name])
        except coerce.CoercionError:
            text = coerce.json_text(record[api_name])
        record[api_name] = pseudonymise(text, key, api_name)
    for api_name in _MASKED_API_NAMES & record.keys():
        value = record[api_name]
        record[api_name] = mask_contacts(value if isinstance(value, str) else coerce.raw_text(value), key)
    return record


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


def flatten_pages(
    pages: Iterable[Mapping[str, Any]],
    run_id: str,
    *,
    pseudonymise_key: str | None = None,
) -> FlatBatch:
    """Flatten a batch of raw pages. Memory is that of the batch; call it once per batch of pages."""
    issues = _Issues(run_id, pseudonymise_key)

    page_times: list[datetime] = []
    page_offsets: list[int | None] = []
    listing_dates: list[date | None] = []

    visits: list[dict[str, Any]] = []
    visit_ids: list[str] = []
    visit_pages: list[int] = []
    line_counts: list[int] = []

    lines: list[dict[str, Any]] = []
    line_parents: list[int] = []
    line_indexes: list[int] = []
    extra_data_counts: list[int] = []

    entries: list[dict[str, Any]] = []
    entry_parents: list[int] = []
    entry_line_indexes: list[int] = []
    entry_indexes: list[int] = []

    for page_number, page in enumerate(pages):
        fetched_at = fetched_at_of(page, f"page at offset {page.get('offset')!r}")
        offset = _page_offset(page)
        page_times.append(fetched_at)
        page_offsets.append(offset)
        listing_dates.append(_listing_date(page))
        body = page.get("body")
        data = body.get("data") if isinstance(body, dict) else None
        issue = functools.partial(issues.add, page_number, offset, fetched_at)
        if not isinstance(data, list):
            issue(suites.PAGE_DATA_IS_LIST, None, None, None, None, data)
            continue
        for visit in data:
            if visit.__class__ is not dict:
                issue(suites.VISIT_IS_OBJECT, None, None, None, None, visit)
                continue
            raw_id = visit.get(VISIT_KEY)
            try:
                visit_id = raw_id if raw_id.__class__ is str else coerce.coerce_text(raw_id)
            except coerce.CoercionError:
                visit_id = None
            if not visit_id:
                identity = {
                    key: value for key, value in visit.items() if key not in (LINES_KEY, SIGNATURE_KEY)
                }
                issue(
                    suites.VISIT_ID_PRESENT, None, None, None, None, identity,
                    record_date=_date_or_none(visit.get("date")),
                )  # fmt: skip
                continue
            parent = len(visits)
            visits.append(visit)
            visit_ids.append(visit_id)
            visit_pages.append(page_number)
            visit_lines = visit.get(LINES_KEY)
            landed_lines = 0
            if visit_lines.__class__ is list:
                for line_index, line in enumerate(visit_lines):
                    if line.__class__ is not dict:
                        issue(suites.LINE_IS_OBJECT, parent, visit_id, line_index, None, line)
                        continue
                    lines.append(line)
                    line_parents.append(parent)
                    line_indexes.append(line_index)
                    landed_lines += 1
                    extra_data = line.get(EXTRA_DATA_KEY)
                    landed_entries = 0
                    if extra_data.__class__ is list:
                        for extra_index, entry in enumerate(extra_data):
                            if entry.__class__ is not dict:
                                issue(
                                    suites.EXTRA_DATA_ENTRY_IS_OBJECT, parent, visit_id, line_index,
                                    extra_index, entry,
                                )  # fmt: skip
                                continue
                            entries.append(entry)
                            entry_parents.append(parent)
                            entry_line_indexes.append(line_index)
                            entry_indexes.append(extra_index)
                            landed_entries += 1
                    elif extra_data is not None:
                        issue(suites.EXTRA_DATA_IS_LIST, parent, visit_id, line_index, None, extra_data)
                    extra_data_counts.append(landed_entries)
            elif visit_lines is not None:
                issue(suites.LINES_IS_LIST, parent, visit_id, None, None, visit_lines)
            line_counts.append(landed_lines)

    unknown_fields = {"visits": set(), "visit_lines": set(), "line_extra_data": set()}
    fetched_at_by_page = pa.array(page_times, pa.timestamp("us", tz="UTC"))
    visit_page_array = pa.array(visit_pages, pa.int32())
    visit_fetched_at = fetched_at_by_page.take(visit_page_array)
    visit_id_array = pa.array(visit_ids, pa.string())
    line_parent_array = pa.array(line_parents, pa.int32())
    entry_parent_array = pa.array(entry_parents, pa.int32())

    def record_issues(
        table: str, field_: Field, unreadable: list[coerce.Unreadable], rows: dict[str, Sequence]
    ) -> None:
        """One `<table>.<column>_parses` issue per value the coercion layer could not read."""
        check = suites.parse_check(table, field_.api_name)
        for position, raw, reason in unreadable:
            record_issue(check, table, position, raw, rows, reason=reason)

    def record_issue(
        check: Check, table: str, position: int, raw: Any, rows: dict[str, Sequence], reason: str | None
    ) -> None:
        parent = rows["parent"][position]
        page_number = visit_pages[parent]
        issues.add(
            page_number,
            page_offsets[page_number],
            page_times[page_number],
            check,
            parent,
            visit_ids[parent],
            rows["line_index"][position] if "line_index" in rows else None,
            rows["extra_index"][position] if "extra_index" in rows else None,
            raw,
            reason=reason,
        )

    # visits
    visit_rows = {"parent": range(len(visits))}
    visit_columns: dict[str, pa.Array] = {"visit_id": visit_id_array}
    for field_, values in zip(schema.VISIT_FIELDS, _raw_columns(visits, schema.VISIT_FIELDS), strict=True):
        api_name = field_.api_name
        array, bad = coerce.coerce_column(field_, values)
        if field_.column == schema.PARTITION_COLUMN:
            # One issue per visit without a usable date, whatever the reason: it cannot be placed.
            reasons = {position: reason for position, _, reason in bad}
            for position in pc.indices_nonzero(array.is_null()).to_pylist():
                reason = reasons.get(position, REASON_DATE_MISSING)
                record_issue(
                    suites.VISIT_DATE_VALID, "visits", position, values[position], visit_rows, reason
                )
            visit_columns[field_.column] = array
            continue
        if pseudonymise_key and api_name in _PSEUDONYMISED_API_NAMES:
            array = pa.array(
                [pseudonymise(value, pseudonymise_key, api_name) for value in array.to_pylist()], pa.string()
            )
        elif pseudonymise_key and api_name in _MASKED_API_NAMES:
            array = pa.array(
                [mask_contacts(value, pseudonymise_key) for value in array.to_pylist()], pa.string()
            )
        visit_columns[field_.column] = array
        record_issues("visits", field_, bad, visit_rows)
    visit_columns["has_signature"] = pa.array(
        [_has_signature(visit.get(SIGNATURE_KEY)) for visit in visits], pa.bool_()
    )
    visit_columns["line_count"] = pa.array(line_counts, pa.int32())
    visit_columns["extra_fields"] = pa.array(
        _unknown_json(visits, KNOWN_VISIT_KEYS, unknown_fields["visits"]), pa.string()
    )
    visit_date = visit_columns["visit_date"]

    # visit_lines
    line_rows = {"parent": line_parents, "line_index": line_indexes}
    line_columns: dict[str, pa.Array] = {
        "visit_id": visit_id_array.take(line_parent_array),
        "line_index": pa.array(line_indexes, pa.int32()),
        "visit_date": visit_date.take(line_parent_array),
    }
    for field_, values in zip(schema.LINE_FIELDS, _raw_columns(lines, schema.LINE_FIELDS), strict=True):
        array, bad = coerce.coerce_column(field_, values)
        line_columns[field_.column] = array
        record_issues("visit_lines", field_, bad, line_rows)
    line_columns["extra_data_count"] = pa.array(extra_data_counts, pa.int32())
    line_columns["extra_fields"] = pa.array(
        _unknown_json(lines, KNOWN_LINE_KEYS, unknown_fields["visit_lines"]), pa.string()
    )

    # line_extra_data
    entry_rows = {"parent": entry_parents, "line_index": entry_line_indexes, "extra_index": entry_indexes}
    entry_columns: dict[str, pa.Array] = {
        "visit_id": visit_id_array.take(entry_parent_array),
        "line_index": pa.array(entry_line_indexes, pa.int32()),
        "extra_index": pa.array(entry_indexes, pa.int32()),
        "visit_date": visit_date.take(entry_parent_array),
    }
    raw_values: Sequence[Any] = ()
    for field_, values in zip(
        schema.EXTRA_DATA_FIELDS, _raw_columns(entries, schema.EXTRA_DATA_FIELDS), strict=True
    ):
        if field_.api_name == "value":
            raw_values = values
        array, bad = coerce.coerce_column(field_, values)
        entry_columns[field_.column] = array
        record_issues("line_extra_data", field_, bad, entry_rows)
    entry_columns["value_number"] = coerce.coerce_column(_VALUE_NUMBER, _decimal_points(raw_values))[0]
    entry_columns["extra_fields"] = pa.array(
        _unknown_json(entries, KNOWN_EXTRA_DATA_KEYS, unknown_fields["line_extra_data"]), pa.string()
    )

    run_id_scalar = pa.scalar(run_id, pa.string())
    tables = {}
    for name, columns, parents in (
        ("visits", visit_columns, None),
        ("visit_lines", line_columns, line_parent_array),
        ("line_extra_data", entry_columns, entry_parent_array),
    ):
        rows = len(columns["visit_id"])
        columns["run_id"] = pa.repeat(run_id_scalar, rows)
        columns["fetched_at"] = visit_fetched_at if parents is None else visit_fetched_at.take(parents)
        table_schema = schema.TABLES[name]
        tables[name] = pa.Table.from_arrays(
            [columns[column] for column in table_schema.names], schema=table_schema
        )

    return FlatBatch(
        visits=tables["visits"],
        visit_lines=tables["visit_lines"],
        line_extra_data=tables["line_extra_data"],
        issues=issues.table(visit_date, listing_dates),
        line_parents=line_parent_array,
        extra_data_parents=entry_parent_array,
        issue_parents=pa.array(issues.parents, pa.int32()),
        unknown_fields={name: names for name, names in unknown_fields.items() if names},
        pages=len(page_times),
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
    "iter_raw_pages",
    "parse_page",
    "mask_contacts",
    "pseudonymise",
]
