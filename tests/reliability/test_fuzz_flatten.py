"""Hostile API payloads through the lake's flattening: typed rows plus recorded issues, never a crash.

Every generated batch mixes hostile visits (wrong types in every field, huge strings, deep nesting,
nulls where objects belong, unknown fields, `data` that is not a list, broken meta) with good visits
whose rows must come out exactly as they do on their own. The properties:

- `flatten_pages` returns the four tables with exactly the lake schemas, whatever the pages hold;
- every visit object with an id lands once per copy; every entry that cannot land is a record issue
  naming the page offset and the field;
- a value the coercion layer refuses is NULL in its column *and* one issue (visit, field) row of its
  `<table>.<column>_parses` check; otherwise the column holds the coercion layer's value: nothing is
  dropped silently; a visit without a usable date is exactly one `visits.date_valid` row;
- every issue row names a check of suites.py with that check's severity and action;
- the good visits of a hostile page land with the very same values as on a clean page;
- staging a run of such pages stages each visit with an id exactly once.
"""

from __future__ import annotations

import functools
import gzip
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from letsjobit.config import DataLayout
from letsjobit.lake import coerce, flatten, parquet, schema, stage
from letsjobit.quality import suites

from tests.lake.conftest import FETCHED_AT, raw_page, reference_visit
from tests.reliability.hostile import FUZZ, HOSTILE, JSON, SCALARS, hostile_meta, hostile_visit, nested

RUN_ID = "fuzz-run"
BASE_VISIT = reference_visit()

OFFSETS = st.one_of(st.integers(0, 10**6), st.sampled_from([-1, -100, None, "200", 1.5, True]))


def good_visit(page_number: int, position: int) -> dict:
    return reference_visit(_id=f"good-{page_number}-{position}", date=f"2026-11-0{1 + position % 9}")


@st.composite
def hostile_page(draw, page_number: int) -> dict:
    """A raw page as the extractor writes it, whose body (the API's answer) is hostile."""
    goods = [good_visit(page_number, n) for n in range(draw(st.integers(0, 2)))]
    shape = draw(st.integers(0, 9))
    if shape == 0:
        body: Any = draw(st.one_of(st.none(), SCALARS, st.lists(SCALARS, max_size=2)))
    elif shape == 1:
        body = {"meta": draw(hostile_meta()), "data": draw(st.one_of(HOSTILE, st.just({"_id": "x"})))}
    elif shape == 2:
        body = {"meta": draw(hostile_meta())}  # no data at all
    else:
        visits = draw(st.lists(hostile_visit(BASE_VISIT), max_size=4))
        for good in goods:
            visits.insert(draw(st.integers(0, len(visits))), good)
        body = {"meta": draw(hostile_meta()), "data": visits}
    return {"offset": draw(OFFSETS), "filters": {}, "fetched_at": FETCHED_AT.isoformat(), "body": body}


@st.composite
def hostile_batches(draw) -> list[dict]:
    return [draw(hostile_page(number)) for number in range(draw(st.integers(1, 3)))]


def visit_id_of(raw: Any) -> str | None:
    """The id a visit object lands under (the coercion layer's text of `_id`), or None."""
    try:
        text = coerce.coerce_text(raw)
    except coerce.CoercionError:
        return None
    return text or None


def expected_column_value(field: schema.Field, raw: Any) -> tuple[Any, bool]:
    """(column value, refused?) by the coercion layer's per-value rule, the contract of the lake."""
    try:
        return coerce.coerce_value(field, raw), False
    except coerce.CoercionError:
        return None, True


def landed_visits(pages: list[dict]) -> tuple[list[tuple[dict, Any]], int]:
    """The visit objects that must land (with their page's offset), and the entries that must not."""
    landed, refused = [], 0
    for page in pages:
        body = page["body"]
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            refused += 1
            continue
        for visit in data:
            if isinstance(visit, dict) and visit_id_of(visit.get("_id")):
                landed.append((visit, page["offset"]))
            else:
                refused += 1
    return landed, refused


def offset_of(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def assert_nothing_dropped_silently(pages: list[dict], batch: flatten.FlatBatch) -> None:
    issues = batch.issues.to_pylist()
    recorded = {
        (r["table_name"], r["visit_id"], r["line_index"], r["extra_index"], r["field"]) for r in issues
    }
    for issue in issues:
        assert issue["field"] and issue["reason"], issue
        check = suites.ISSUE_CHECKS[issue["check_name"]]
        assert (issue["table_name"], issue["field"]) == (check.table, check.api_field), issue
        assert (issue["severity"], issue["action"]) == (check.severity.value, check.action.value), issue
    assert {r["page_offset"] for r in issues} <= {offset_of(page["offset"]) for page in pages}
    undated = [r["visit_id"] for r in issues if r["check_name"] == "visits.date_valid"]
    dates = batch.visits.column("visit_date").to_pylist()
    visit_ids = batch.visits.column("visit_id").to_pylist()
    assert sorted(undated) == sorted(v for v, d in zip(visit_ids, dates, strict=True) if d is None), (
        "one date_valid row per visit without a date"
    )

    landed, refused = landed_visits(pages)
    assert batch.visits.num_rows == len(landed)
    structural = [r for r in issues if r["visit_id"] is None]
    assert len(structural) == refused, "every page or visit that cannot land is an issue row"

    rows = batch.visits.to_pylist()
    lines = batch.visit_lines.to_pylist()
    entries = batch.line_extra_data.to_pylist()
    line_row, entry_row = 0, 0
    for (visit, _offset), row in zip(landed, rows, strict=True):
        visit_id = visit_id_of(visit.get("_id"))
        assert row["visit_id"] == visit_id
        for field in schema.VISIT_FIELDS:
            value, refused_value = expected_column_value(field, visit.get(field.api_name))
            assert row[field.column] == value, (visit_id, field.api_name)
            if refused_value:
                assert ("visits", visit_id, None, None, field.api_name) in recorded, (
                    visit_id,
                    field.api_name,
                )

        raw_lines = visit.get("lines")
        if raw_lines is not None and not isinstance(raw_lines, list):
            assert ("visits", visit_id, None, None, "lines") in recorded
        for line_index, line in enumerate(raw_lines if isinstance(raw_lines, list) else []):
            if not isinstance(line, dict):
                assert ("visit_lines", visit_id, line_index, None, "lines") in recorded
                continue
            line_out = lines[line_row]
            line_row += 1
            assert (line_out["visit_id"], line_out["line_index"]) == (visit_id, line_index)
            assert line_out["visit_date"] == row["visit_date"]
            for field in schema.LINE_FIELDS:
                value, refused_value = expected_column_value(field, line.get(field.api_name))
                assert line_out[field.column] == value, (visit_id, line_index, field.api_name)
                if refused_value:
                    assert ("visit_lines", visit_id, line_index, None, field.api_name) in recorded
            extra = line.get("extraData")
            if extra is not None and not isinstance(extra, list):
                assert ("visit_lines", visit_id, line_index, None, "extraData") in recorded
            for extra_index, entry in enumerate(extra if isinstance(extra, list) else []):
                if not isinstance(entry, dict):
                    assert ("line_extra_data", visit_id, line_index, extra_index, "extraData") in recorded
                    continue
                entry_out = entries[entry_row]
                entry_row += 1
                assert (entry_out["visit_id"], entry_out["line_index"], entry_out["extra_index"]) == (
                    visit_id,
                    line_index,
                    extra_index,
                )
                for field in schema.EXTRA_DATA_FIELDS:
                    value, refused_value = expected_column_value(field, entry.get(field.api_name))
                    assert entry_out[field.column] == value, (
                        visit_id,
                        line_index,
                        extra_index,
                        field.api_name,
                    )
                    if refused_value:
                        key = ("line_extra_data", visit_id, line_index, extra_index, field.api_name)
                        assert key in recorded
    assert line_row == len(lines) and entry_row == len(entries)


@functools.cache
def solo_rows(visit_id: str) -> dict[str, list[dict]]:
    """The rows of a good visit flattened on a clean page of its own."""
    page_number, position = (int(part) for part in visit_id.split("-")[1:])
    batch = flatten.flatten_pages([raw_page([good_visit(page_number, position)])], RUN_ID)
    return {name: table.to_pylist() for name, table in batch.tables().items()}


def assert_good_visits_land_as_on_a_clean_page(pages: list[dict], batch: flatten.FlatBatch) -> None:
    tables = {name: table.to_pylist() for name, table in batch.tables().items()}
    for page in pages:
        data = page["body"].get("data") if isinstance(page["body"], dict) else None
        for visit in data if isinstance(data, list) else []:
            if isinstance(visit, dict) and str(visit.get("_id")).startswith("good-"):
                for name, rows in solo_rows(visit["_id"]).items():
                    landed = [row for row in tables[name] if row["visit_id"] == visit["_id"]]
                    assert landed == rows, (name, visit["_id"])


@FUZZ
@given(pages=hostile_batches())
def test_hostile_pages_end_in_typed_rows_and_issues_never_a_crash(pages):
    batch = flatten.flatten_pages(pages, RUN_ID)

    for name, table in batch.tables().items():
        assert table.schema == schema.TABLES[name]
    assert batch.issues.schema == schema.DATA_ISSUES
    assert batch.pages == len(pages)
    assert_nothing_dropped_silently(pages, batch)
    assert_good_visits_land_as_on_a_clean_page(pages, batch)


FIELD_PATHS = (
    [("visit", f.api_name) for f in schema.VISIT_FIELDS]
    + [("line", f.api_name) for f in schema.LINE_FIELDS]
    + [("extra", f.api_name) for f in schema.EXTRA_DATA_FIELDS]
    + [("visit", "someNewField"), ("line", "someNewField"), ("extra", "someNewField")]
)


def assert_one_value_lands_or_is_recorded(value: Any, where: tuple[str, str]) -> None:
    level, name = where
    visit = reference_visit(_id="v-1")
    target = {"visit": visit, "line": visit["lines"][0], "extra": visit["lines"][0]["extraData"][0]}[level]
    target[name] = value
    pages = [raw_page([visit], offset=300)]

    batch = flatten.flatten_pages(pages, RUN_ID)

    assert batch.visits.num_rows == 1
    assert_nothing_dropped_silently(pages, batch)


@FUZZ
@given(value=HOSTILE, where=st.sampled_from(FIELD_PATHS))
def test_any_json_value_in_any_field_is_a_column_value_or_an_issue(value, where):
    """One hostile value at a time, in every field of every table (unknown fields included)."""
    assert_one_value_lands_or_is_recorded(value, where)


@pytest.mark.parametrize(
    "where", [("visit", "geocoding"), ("visit", "obs"), ("line", "someNewField"), ("extra", "value")]
)
@pytest.mark.parametrize("depth", [254, 255, 1000, 1019])
def test_values_nested_up_to_the_json_parsers_limit_land_or_are_recorded(depth, where):
    """orjson parses 1,024 levels but writes only 254, and Python's own encoder stops near 1,000."""
    assert_one_value_lands_or_is_recorded(nested(depth), where)


def write_raw_lines(layout: DataLayout, run_id: str, lines: list[bytes]) -> None:
    path = layout.raw_run(run_id) / "part-0.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as out:
        for line in lines:
            out.write(line + b"\n")


@settings(FUZZ, max_examples=max(5, FUZZ.max_examples // 4))  # each example writes parquet
@given(pages=hostile_batches())
def test_staging_a_run_of_hostile_pages_keeps_every_good_visit(tmp_path_factory, pages):
    layout = DataLayout(tmp_path_factory.mktemp("stage"))
    lines = []
    for page in pages:
        try:
            lines.append(orjson.dumps(page))
        except orjson.JSONEncodeError:
            continue  # nested past orjson's 254 levels: the extractor could not have written it either
    write_raw_lines(layout, RUN_ID, lines)

    result = stage.stage_run(RUN_ID, layout, workers=1, pseudonymise_key=None)

    staged = parquet.read_table(layout.staging_run(RUN_ID) / "visits").column("visit_id").to_pylist()
    landed = {visit_id_of(v.get("_id")) for v, _ in landed_visits([orjson.loads(line) for line in lines])[0]}
    assert sorted(staged) == sorted(landed), "each visit with an id is staged exactly once"
    assert result.rows["visits"] == len(landed)


@pytest.mark.parametrize(
    "bad_bytes",
    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80abc"],
    ids=["0xff", "truncated-sequence", "encoded-surrogate", "continuation-byte"],
)
def test_a_raw_line_with_invalid_utf8_fails_staging_with_an_error_naming_the_file_and_line(
    tmp_path, bad_bytes
):
    layout = DataLayout(tmp_path)
    good = orjson.dumps(raw_page([reference_visit(_id="v-good")]))
    broken = good.replace(b'"Liam"', b'"Li' + bad_bytes + b'am"')
    write_raw_lines(layout, RUN_ID, [good, broken])

    with pytest.raises(flatten.RawPageError) as error:
        stage.stage_run(RUN_ID, layout, workers=1, pseudonymise_key=None)

    assert "part-0.jsonl.gz:2" in str(error.value)
    assert not layout.staging_run(RUN_ID).exists(), "a failed staging leaves nothing half-written"


@FUZZ
@given(fetched_at=st.one_of(JSON, st.just("2026-13-01T00:00:00")), offset=OFFSETS)
def test_a_raw_page_without_a_usable_fetch_time_is_refused_naming_the_page(fetched_at, offset):
    """fetched_at is ours (the extractor's), not the API's: a bad one is a corrupt raw file."""
    page = {**raw_page([reference_visit()]), "fetched_at": fetched_at, "offset": offset}
    try:
        moment = datetime.fromisoformat(fetched_at)
    except (TypeError, ValueError):
        with pytest.raises(flatten.RawPageError, match="fetched_at"):
            flatten.flatten_pages([page], RUN_ID)
    else:
        batch = flatten.flatten_pages([page], RUN_ID)
        expected = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        assert batch.visits.column("fetched_at").to_pylist() == [expected.astimezone(UTC)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("value", ["1" * 5000, "-" + "9" * 4400, "1e999999", "-2.5e999999999", "9" * 25])
@pytest.mark.parametrize(
    "where", [("visit", "totalJobs"), ("visit", "signeeRating"), ("visit", "time_windows")]
)
def test_huge_numbers_in_integer_fields_are_issues_not_a_crash_or_a_hang(value, where):
    """int() refuses strings of more than 4,300 digits, and int(Decimal("1e999999")) runs for minutes."""
    if where[1] == "time_windows":
        value = [{"earliest": value, "latest": 3600}]
    assert_one_value_lands_or_is_recorded(value, where)
