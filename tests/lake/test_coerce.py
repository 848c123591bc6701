"""The coercion layer: each kind's decisions, and whole columns agreeing with value-by-value coercion."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from letsjobit.lake import coerce, schema
from letsjobit.lake.coerce import CoercionError
from letsjobit.lake.schema import Field, Kind

REJECTED = object()


def field_of(kind: Kind, api_name: str = "x") -> Field:
    return Field(api_name, api_name, kind)


def outcome(kind: Kind, value, api_name: str = "x"):
    try:
        return coerce.coerce_value(field_of(kind, api_name), value)
    except CoercionError:
        return REJECTED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True), (1, True), (1.0, True), ("1", True), ("true", True), ("TRUE", True), (" yes ", True),
        (False, False), (0, False), (0.0, False), ("0", False), ("false", False), ("no", False), ("", False),
        (None, None),
        (2, REJECTED), ("maybe", REJECTED), ("2", REJECTED), ([True], REJECTED), ({"a": 1}, REJECTED),
    ],
)  # fmt: skip
def test_flags_accept_every_encoding_the_reference_shows(value, expected):
    assert outcome(Kind.BOOL, value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5), (5, 5), (5.0, 5), (" 4 ", 4), (1, 1),
        (0, None), ("0", None), ("", None), (None, None),
        (9, 9), ("9", 9), (-1, -1),  # kept as sent: the validation gate quarantines them
        (4.5, REJECTED), ("five", REJECTED), (True, REJECTED), (300, REJECTED), ([5], REJECTED),
    ],
)  # fmt: skip
def test_signee_rating_is_null_when_unrated_and_kept_when_out_of_range(value, expected):
    assert (
        outcome(Kind.RATING, value) == expected
        if expected is not REJECTED
        else outcome(Kind.RATING, value) is REJECTED
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3), (3, 3), (3.0, 3), ("3.0", 3), (" 7 ", 7), ("-2", -2), ("1e3", 1000), ("", None), (None, None),
        ("3.5", REJECTED), (3.5, REJECTED), ("three", REJECTED), (True, REJECTED), ("1_000", REJECTED),
        (2**63, REJECTED), ("nan", REJECTED),
    ],
)  # fmt: skip
def test_integers_accept_numbers_and_numeric_strings_only(value, expected):
    result = outcome(Kind.INT, value)
    assert result is REJECTED if expected is REJECTED else result == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (57.0, 57.0), (-2, -2.0), ("57.5", 57.5), (" .5 ", 0.5), ("1e-3", 0.001), ("", None),
        ("57,5", REJECTED), ("inf", REJECTED), ("nan", REJECTED), (True, REJECTED), ("1e400", REJECTED),
    ],
)  # fmt: skip
def test_floats_accept_numbers_and_decimal_strings(value, expected):
    result = outcome(Kind.FLOAT, value)
    assert result is REJECTED if expected is REJECTED else result == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30101308", "30101308"), (30101308, "30101308"), (10816703.0, "10816703"), (2.5, "2.5"),
        (True, "true"), ("", ""), ("Zoë\r\nline", "Zoë\r\nline"), (None, None),
        ({"a": 1}, REJECTED), (["a"], REJECTED),
    ],
)  # fmt: skip
def test_text_keeps_strings_and_renders_numbers_without_a_decimal_point(value, expected):
    assert (
        outcome(Kind.TEXT, value) == expected
        if expected is not REJECTED
        else outcome(Kind.TEXT, value) is REJECTED
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-03-31", date(2020, 3, 31)), (" 2020-03-31 ", date(2020, 3, 31)),
        ("2020-03-31 10:00:00", date(2020, 3, 31)), ("", None),
        ("2020-02-30", REJECTED), ("31/03/2020", REJECTED), (20200331, REJECTED),
    ],
)  # fmt: skip
def test_dates(value, expected):
    result = outcome(Kind.DATE, value)
    assert result is REJECTED if expected is REJECTED else result == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-03-09 15:48:17", datetime(2020, 3, 9, 15, 48, 17)),
        ("2020-03-24 15:45", datetime(2020, 3, 24, 15, 45)),
        ("2020-03-24T15:45:00.25", datetime(2020, 3, 24, 15, 45, 0, 250000)),
        ("2020-03-24T15:45:00Z", datetime(2020, 3, 24, 15, 45)),
        ("2020-03-24T15:45:00+01:00", datetime(2020, 3, 24, 14, 45)),
        ("2020-03-24", datetime(2020, 3, 24)),
        ("", None),
        ("2020-03-24 25:00", REJECTED), ("yesterday", REJECTED), (1585064700, REJECTED),
    ],
)  # fmt: skip
def test_timestamps_are_naive_and_offsets_become_utc(value, expected):
    result = outcome(Kind.TIMESTAMP, value)
    assert result is REJECTED if expected is REJECTED else result == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["My Subcontractor"], ["My Subcontractor"]),
        ("Aberdeen Gas Ltd, Clyde Plumbing", ["Aberdeen Gas Ltd", "Clyde Plumbing"]),
        ("Aberdeen Gas Ltd,Clyde Plumbing,", ["Aberdeen Gas Ltd", "Clyde Plumbing"]),
        ("", []), ([], []), (None, None), (["A", None, 7], ["A", "7"]),
        ([{"name": "A"}], REJECTED), (7, REJECTED),
    ],
)  # fmt: skip
def test_name_lists_accept_lists_and_comma_separated_strings(value, expected):
    result = outcome(Kind.TEXT_LIST, value)
    assert result is REJECTED if expected is REJECTED else result == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([{"earliest": 30600, "latest": 64800}], [{"earliest": 30600, "latest": 64800}]),
        ({"earliest": "08:30", "latest": "18:00"}, [{"earliest": 30600, "latest": 64800}]),
        ([{"earliest": "30600"}], [{"earliest": 30600, "latest": None}]),
        ([], []),
        ([{"earliest": 1, "other": 2}], REJECTED), (["08:30"], REJECTED), ("08:30-18:00", REJECTED),
    ],
)  # fmt: skip
def test_time_windows(value, expected):
    result = outcome(Kind.TIME_WINDOWS, value)
    assert result is REJECTED if expected is REJECTED else result == expected


@pytest.mark.parametrize(
    ("api_name", "value", "expected"),
    [("required", "required", True), ("readonly", "readonly", True), ("required", "", False),
     ("required", True, True), ("required", "readonly", REJECTED)],
)  # fmt: skip
def test_flag_words_are_their_own_word_or_a_flag(api_name, value, expected):
    assert outcome(Kind.FLAG_WORD, value, api_name) is expected


def test_json_kind_keeps_any_value_as_sorted_json_text():
    assert outcome(Kind.JSON, {"lng": -2, "lat": 57}) == '{"lat":57,"lng":-2}'
    assert outcome(Kind.JSON, None) is None


# --- whole columns agree with single values ------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "0", "1", "5", "9", "3.0", "2.5", " 7 ", "yes", "No", "TRUE", "maybe", "required",
                     "readonly", "2020-03-31", "2020-02-30", "2020-03-24 15:45", "2020-03-24T15:45:00Z",
                     "A, B", "1e3", "1e400", "08:30", "Zoë\r\n"]),
    st.text(max_size=12),
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(["earliest", "latest", "other"]), children, max_size=2),
    ),
    max_leaves=4,
)
_clean_columns = {
    Kind.TEXT: st.one_of(st.none(), st.text(max_size=5), st.integers(-5, 5)),
    Kind.INT: st.one_of(st.none(), st.integers(-(2**64), 2**64)),
    Kind.FLOAT: st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False)),
    Kind.BOOL: st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, "0", "1", "", "Yes"])),
    Kind.DATE: st.one_of(st.none(), st.dates().map(date.isoformat), st.just("2021-02-29")),
    Kind.TIMESTAMP: st.one_of(st.none(), st.datetimes().map(lambda moment: moment.isoformat(sep=" "))),
    Kind.RATING: st.one_of(st.none(), st.integers(-3, 200)),
    Kind.TEXT_LIST: st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=3)),
    Kind.TIME_WINDOWS: st.one_of(
        st.none(),
        st.lists(
            st.fixed_dictionaries(
                {"earliest": st.integers(0, 86400)},
                optional={"latest": st.integers(0, 86400), "other": st.just(1)},
            )
        ),
    ),  # fmt: skip
}


def _by_value(field: Field, values: list) -> tuple[list, list]:
    results, rejects = [], []
    for position, value in enumerate(values):
        try:
            results.append(coerce.coerce_value(field, value))
        except CoercionError as error:
            results.append(None)
            rejects.append((position, str(error)))
    return results, rejects


def _assert_column_matches_values(field: Field, values: list) -> None:
    array, rejects = coerce.coerce_column(field, values)
    expected, expected_rejects = _by_value(field, values)
    assert array.type == schema.ARROW_TYPES[field.kind]
    assert array.to_pylist() == pa.array(expected, schema.ARROW_TYPES[field.kind]).to_pylist()
    assert [(position, reason) for position, _, reason in rejects] == expected_rejects


@pytest.mark.parametrize("kind", list(Kind))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_messy_column_coerces_exactly_as_its_values_one_by_one(kind, data):
    values = data.draw(st.lists(_values, max_size=8))
    _assert_column_matches_values(field_of(kind, "required"), values)


@pytest.mark.parametrize("kind", sorted(_clean_columns, key=lambda kind: kind.value))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_clean_column_takes_the_fast_path_to_the_same_answer(kind, data):
    values = data.draw(st.lists(_clean_columns[kind], max_size=8))
    _assert_column_matches_values(field_of(kind), values)


def test_a_column_of_nulls_has_its_declared_type():
    for kind in Kind:
        array, rejects = coerce.coerce_column(field_of(kind), [None, None])
        assert array.type == schema.ARROW_TYPES[kind] and array.null_count == 2 and rejects == []
