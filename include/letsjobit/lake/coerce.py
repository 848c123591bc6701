"""The one coercion layer: every raw API value becomes a value of its column's `schema.Kind` or NULL.

This is the only place a raw value is parsed: the SQL models read the typed lake columns as they are.
Coercion decides what a value *means*, never whether it is plausible: a rating of 9 or a latitude of 200
are kept here, and the quality gate (`letsjobit.quality`) NULLs them and records the issue.

One function per kind decides what a raw value means (`coerce_text`, `coerce_bool`, ...); it returns
the column value or raises `CoercionError` naming why (the flattener then records a
`<table>.<column>_parses` issue and the column holds NULL). `coerce_column` applies a kind to a whole column
at once: it takes a vectorised fast path when the values are already clean (the common case) and falls
back to the per-value function otherwise, so both paths give the same answer by construction
(tests/lake/test_coerce.py checks this property on random messy columns). The two paths stay in one
module (~570 lines) for that reason: each kind's fast path sits beside the function it must agree with.

Decisions, per kind (the reference's own examples use every one of these encodings):

- NULL in, NULL out, for every kind, never an issue. A missing field is NULL too.
- TEXT: strings are kept exactly (unicode, CRLF and "" included); integers and integral floats are
  rendered without a decimal point (`30101308.0` -> "30101308"), other floats with `repr`, booleans as
  "true"/"false". Objects and lists cannot be read.
- INT / FLOAT: JSON numbers, or strings holding an ASCII decimal number (surrounding blanks ignored, no
  "nan", "inf" or "1_000"); "" and blank strings are NULL without an issue. INT accepts integral values
  only ("3.0" -> 3, "3.5" cannot be read). Booleans cannot be read: `true` is not a quantity.
- BOOL: true, 1, 1.0, "1", "true", "yes" -> true; false, 0, 0.0, "0", "false", "no", "" -> false (strings
  case-insensitive, blanks ignored). "" is false because the API sends flags as PHP-ish strings, where
  the empty string is the unset flag. Anything else (2, "maybe", objects) cannot be read.
- FLAG_WORD ("required"/"readonly" on extraData): the attribute's own word -> true, else as BOOL.
- DATE: "YYYY-MM-DD", or a timestamp below (its date part). "" is NULL (the flattener records a visit
  without a date as `visits.date_valid`, whatever the reason).
- TIMESTAMP: "YYYY-MM-DD", "YYYY-MM-DD HH:MM", "YYYY-MM-DD HH:MM:SS[.ffffff]" (" " or "T"); a trailing
  "Z" or "+HH:MM" offset is converted to UTC (the column is naive, as the API's own timestamps are).
  Numbers cannot be read: an epoch would be a guess at the unit. "" is NULL without an issue.
- TEXT_LIST: a JSON list (its items as TEXT; null items dropped), or a comma-separated string (split,
  each name stripped, empty names dropped, so "" -> []). A list holding objects or lists cannot be read.
- TIME_WINDOWS: a list of {earliest, latest} objects (seconds from midnight, INT rules, "HH:MM[:SS]"
  accepted); a single object is taken as a list of one. Anything else cannot be read.
- RATING (signeeRating): 0, "0", "" -> NULL (the customer gave no score, not an issue); other integers
  are kept as they are, 9 and -1 included, so the validation gate sees them, NULLs them (unrated) and
  records a `visits.signee_rating_in_range` issue rather than the lake silently hiding them; integers
  that do not fit the int8 column and non-integers cannot be read.
- JSON: any value is kept as its JSON text.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from letsjobit.lake.schema import ARROW_TYPES, Field, Kind

NoneType = type(None)

# The `reason` of a `<table>.<column>_parses` issue: short, fixed phrases a query can group by.
REASON_NOT_TEXT = "object or list where text expected"
REASON_NOT_INTEGER = "not an integer"
REASON_NOT_NUMBER = "not a number"
REASON_OUT_OF_RANGE = "integer out of range for its column"
REASON_NOT_BOOLEAN = "not a boolean"
REASON_NOT_DATE = "not a date (YYYY-MM-DD)"
REASON_NOT_TIMESTAMP = "not a timestamp (YYYY-MM-DD[ HH:MM[:SS]])"
REASON_NOT_TEXT_LIST = "not a list of names nor a comma-separated string"
REASON_NOT_TIME_WINDOWS = "not a list of {earliest, latest} time windows"
REASON_NOT_RATING = "not an integer rating"


class CoercionError(ValueError):
    """A raw value that cannot become a value of its column's kind; the message is the reason."""


_DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"
_NAIVE_TIMESTAMP_PATTERN = _DATE_PATTERN + r"(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?"
# The same patterns serve the per-value functions (Python re) and the fast paths (Arrow's RE2).
DATE_REGEX = "^" + _DATE_PATTERN + "$"
NAIVE_TIMESTAMP_REGEX = "^" + _NAIVE_TIMESTAMP_PATTERN + "$"
_TIMESTAMP_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER_RE = re.compile(r"[+-]?\d+", re.ASCII)
_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", re.ASCII)

_TRUE_WORDS = frozenset({"1", "true", "yes"})
_FALSE_WORDS = frozenset({"0", "false", "no", ""})
_WINDOW_KEYS = frozenset({"earliest", "latest"})

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT8_MIN, INT8_MAX = -(2**7), 2**7 - 1
# Digits beyond any column's range (int64 has 19). Checked before int(): it refuses strings of more than
# 4,300 digits, and int(Decimal("1e999999")) builds a million-digit number for minutes.
_MAX_INTEGER_DIGITS = 21


def json_text(value: Any) -> str:
    """A JSON value as compact JSON text with sorted keys (stable across runs)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # e.g. an integer beyond 64 bits, or nesting beyond orjson's 254 levels
        pass
    try:
        return _scalar_json(value, sort_keys=True)
    except RecursionError:  # nesting near orjson's parse limit (1024) is deeper than Python's stack
        return _nested_json_text(value)


def _scalar_json(value: Any, sort_keys: bool = False) -> str:
    return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, default=repr)


def _nested_json_text(value: Any) -> str:
    """`json_text` without recursion, for values nested too deeply for the encoders."""
    parts: list[str] = []
    pending: list[Any] = [value]
    close = object()  # marks "emit the next pending text as is"
    while pending:
        item = pending.pop()
        if item is close:
            parts.append(pending.pop())
        elif isinstance(item, dict):
            parts.append("{")
            pending += ["}", close]
            for number, (key, child) in enumerate(reversed(sorted(item.items(), key=lambda kv: str(kv[0])))):
                pending.append(child)
                pending += [("," if number < len(item) - 1 else "") + _scalar_json(str(key)) + ":", close]
        elif isinstance(item, list | tuple):
            parts.append("[")
            pending += ["]", close]
            for number, child in enumerate(reversed(item)):
                pending.append(child)
                if number < len(item) - 1:
                    pending += [",", close]
        else:
            parts.append(_scalar_json(item))
    return "".join(parts)


def raw_text(value: Any) -> str | None:
    """A raw value as text for the issues table: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json_text(value)


# --- one function per kind ---------------------------------------------------------------------


def coerce_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    raise CoercionError(REASON_NOT_TEXT)


def _integer(value: Any, reason: str) -> int | None:
    """The integral value of a number or numeric string; None for NULL and blank strings."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise CoercionError(reason)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise CoercionError(reason)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _INTEGER_RE.fullmatch(text):
            if len(text.lstrip("+-").lstrip("0")) > _MAX_INTEGER_DIGITS:
                raise CoercionError(REASON_OUT_OF_RANGE)
            return int(text)
        if _NUMBER_RE.fullmatch(text):
            try:
                number = Decimal(text)
            except InvalidOperation:
                raise CoercionError(reason) from None
            if number == number.to_integral_value():
                if number.adjusted() >= _MAX_INTEGER_DIGITS:
                    raise CoercionError(REASON_OUT_OF_RANGE)
                return int(number)
        raise CoercionError(reason)
    raise CoercionError(reason)


def _in_range(number: int | None, low: int, high: int) -> int | None:
    if number is not None and not low <= number <= high:
        raise CoercionError(REASON_OUT_OF_RANGE)
    return number


def coerce_int(value: Any) -> int | None:
    return _in_range(_integer(value, REASON_NOT_INTEGER), INT64_MIN, INT64_MAX)


def coerce_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CoercionError(REASON_NOT_NUMBER)
    if isinstance(value, float):
        number = value
    elif isinstance(value, int):
        if not -(2**1023) < value < 2**1023:
            raise CoercionError(REASON_NOT_NUMBER)
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not _NUMBER_RE.fullmatch(text):
            raise CoercionError(REASON_NOT_NUMBER)
        number = float(text)
    else:
        raise CoercionError(REASON_NOT_NUMBER)
    if not math.isfinite(number):
        raise CoercionError(REASON_NOT_NUMBER)
    return number


def coerce_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value == 1:
            return True
        if value == 0:
            return False
        raise CoercionError(REASON_NOT_BOOLEAN)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise CoercionError(REASON_NOT_BOOLEAN)


def coerce_flag_word(value: Any, word: str) -> bool | None:
    if isinstance(value, str) and value.strip().lower() == word.lower():
        return True
    return coerce_bool(value)


def _parse_timestamp(text: str, reason: str) -> datetime:
    match = _TIMESTAMP_RE.fullmatch(text)
    if not match:
        raise CoercionError(reason)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        raise CoercionError(reason) from None
    if offset:
        if offset != "Z":
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            shift = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            moment = moment.replace(tzinfo=timezone(sign * shift))
        else:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def coerce_timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CoercionError(REASON_NOT_TIMESTAMP)
    text = value.strip()
    if not text:
        return None
    return _parse_timestamp(text, REASON_NOT_TIMESTAMP)


def coerce_date(value: Any) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CoercionError(REASON_NOT_DATE)
    text = value.strip()
    if not text:
        return None
    return _parse_timestamp(text, REASON_NOT_DATE).date()


def coerce_text_list(value: Any) -> list[str | None] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [name for name in (part.strip() for part in value.split(",")) if name]
    if isinstance(value, list):
        names = []
        for item in value:
            if item is None:
                continue
            if isinstance(item, dict | list):
                raise CoercionError(REASON_NOT_TEXT_LIST)
            names.append(coerce_text(item))
        return names
    raise CoercionError(REASON_NOT_TEXT_LIST)


def _seconds_from_midnight(value: Any) -> int | None:
    if isinstance(value, str):
        clock = _CLOCK_RE.fullmatch(value.strip())
        if clock:
            hours, minutes, seconds = clock.groups()
            return int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    number = _integer(value, REASON_NOT_TIME_WINDOWS)
    if number is not None and not INT32_MIN <= number <= INT32_MAX:
        raise CoercionError(REASON_NOT_TIME_WINDOWS)
    return number


def coerce_time_windows(value: Any) -> list[dict[str, int | None]] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise CoercionError(REASON_NOT_TIME_WINDOWS)
    windows = []
    for window in value:
        if not isinstance(window, dict) or not window.keys() <= _WINDOW_KEYS:
            raise CoercionError(REASON_NOT_TIME_WINDOWS)
        windows.append(
            {
                "earliest": _seconds_from_midnight(window.get("earliest")),
                "latest": _seconds_from_midnight(window.get("latest")),
            }
        )
    return windows


def coerce_rating(value: Any) -> int | None:
    rating = _in_range(_integer(value, REASON_NOT_RATING), INT8_MIN, INT8_MAX)
    return rating or None  # 0 is "no score"


def coerce_json(value: Any) -> str | None:
    if value is None:
        return None
    return json_text(value)


_SCALAR_FUNCTIONS: dict[Kind, Callable[[Any], Any]] = {
    Kind.TEXT: coerce_text,
    Kind.INT: coerce_int,
    Kind.FLOAT: coerce_float,
    Kind.BOOL: coerce_bool,
    Kind.DATE: coerce_date,
    Kind.TIMESTAMP: coerce_timestamp,
    Kind.TEXT_LIST: coerce_text_list,
    Kind.TIME_WINDOWS: coerce_time_windows,
    Kind.RATING: coerce_rating,
    Kind.JSON: coerce_json,
}


def coercer(field: Field) -> Callable[[Any], Any]:
    """The per-value function of a field's kind (FLAG_WORD is bound to the field's own word)."""
    if field.kind is Kind.FLAG_WORD:
        word = field.api_name
        return lambda value: coerce_flag_word(value, word)
    return _SCALAR_FUNCTIONS[field.kind]


def coerce_value(field: Field, value: Any) -> Any:
    """One raw value of `field` as its column value; raises CoercionError."""
    return coercer(field)(value)


# --- whole columns -----------------------------------------------------------------------------

Unreadable = tuple[int, Any, str]
"""A value the kind's function refused: (position in the column, raw value, reason)"""

_MISSING = object()

# Values a kind keeps exactly as they are, by class (bool is not int here: `True.__class__ is bool`).
# Everything else goes through the kind's function, so both paths agree by construction.
_KEPT_AS_IS: dict[Kind, frozenset[type]] = {
    Kind.TEXT: frozenset({str, NoneType}),
    Kind.INT: frozenset({int, NoneType}),
    Kind.FLOAT: frozenset({float, int, NoneType}),
    Kind.DATE: frozenset({NoneType}),
    Kind.TIMESTAMP: frozenset({NoneType}),
    Kind.TEXT_LIST: frozenset({list, NoneType}),  # optimistic: checked after conversion, see _verified
    Kind.TIME_WINDOWS: frozenset({list, NoneType}),
    Kind.RATING: frozenset({NoneType}),
    Kind.JSON: frozenset({NoneType}),
}

# Values BOOL maps without calling a function. True == 1 == 1.0 as dict keys, which is exactly the
# BOOL rule; strings are listed in the spellings the API uses, the rest go through coerce_bool.
_BOOL_LOOKUP: dict[Any, bool | None] = {None: None, True: True, False: False}
for _word in _TRUE_WORDS:
    _BOOL_LOOKUP.update({_word: True, _word.upper(): True, _word.capitalize(): True})
for _word in _FALSE_WORDS:
    _BOOL_LOOKUP.update({_word: False, _word.upper(): False, _word.capitalize(): False})


@functools.cache
def _flag_word_lookup(word: str) -> dict[Any, bool | None]:
    """The BOOL lookup plus the attribute's own word ("required" -> true)."""
    lookup = dict(_BOOL_LOOKUP)
    lookup.update({word: True, word.lower(): True, word.upper(): True, word.capitalize(): True})
    return lookup


def _first_pass(field: Field, values: Sequence[Any]) -> list[Any]:
    """Each value's column value where it needs no function, else `_MISSING`."""
    kind = field.kind
    if kind in (Kind.BOOL, Kind.FLAG_WORD):
        lookup = _BOOL_LOOKUP if kind is Kind.BOOL else _flag_word_lookup(field.api_name)
        try:
            return [lookup.get(value, _MISSING) for value in values]
        except TypeError:  # an unhashable value (a list or an object): let the function judge each
            return [lookup.get(value, _MISSING) if value.__class__ is not list and value.__class__
                    is not dict else _MISSING for value in values]  # fmt: skip
    kept = _KEPT_AS_IS[kind]
    return [value if value.__class__ in kept else _MISSING for value in values]


def _second_pass(field: Field, values: Sequence[Any], results: list[Any]) -> list[Unreadable]:
    """Fill the `_MISSING` results with the kind's function (memoised for strings); return those refused."""
    function = coercer(field)
    unreadable: list[Unreadable] = []
    memo: dict[str, Any] = {}
    for position in [position for position, result in enumerate(results) if result is _MISSING]:
        value = values[position]
        is_text = value.__class__ is str
        result = memo.get(value, _MISSING) if is_text else _MISSING
        if result is _MISSING:
            try:
                result = function(value)
            except CoercionError as error:
                result = error
            if is_text:
                memo[value] = result
        if result.__class__ is CoercionError:
            unreadable.append((position, value, str(result)))
            result = None
        results[position] = result
    return unreadable


def _all_match(strings: pa.Array, regex: str) -> bool:
    matched = pc.match_substring_regex(strings, regex)
    return pc.all(pc.or_kleene(matched, pc.is_null(strings))).as_py() is not False


def _text_column_cast(field: Field, values: Sequence[Any]) -> pa.Array | None:
    """DATE and TIMESTAMP columns of clean strings, parsed by Arrow; None if any value is not clean."""
    regex = DATE_REGEX if field.kind is Kind.DATE else NAIVE_TIMESTAMP_REGEX
    try:
        strings = pa.array(values, pa.string())
        if _all_match(strings, regex):
            return strings.cast(ARROW_TYPES[field.kind])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # a non-string, or an impossible calendar day: the per-value function says which
    return None


def _verified(field: Field, values: Sequence[Any], array: pa.Array) -> bool:
    """Whether lists kept as they are meet their kind's rules (Arrow's conversion checks the rest)."""
    if field.kind is Kind.TEXT_LIST:
        return pc.list_flatten(array).null_count == 0  # null names are dropped by the function
    if field.kind is Kind.TIME_WINDOWS:
        try:
            return all(window.keys() <= _WINDOW_KEYS for windows in values if windows for window in windows)
        except (AttributeError, TypeError):
            return False
    return True


# Columns whose values all have these classes convert with Arrow alone, to exactly what the kind's
# function would give (TEXT_LIST and TIME_WINDOWS are then checked by `_verified`).
_ARROW_ALONE: dict[Kind, frozenset[type]] = {
    Kind.TEXT: frozenset({str, NoneType}),
    Kind.INT: frozenset({int, NoneType}),
    Kind.FLOAT: frozenset({float, int, NoneType}),
    Kind.BOOL: frozenset({bool, NoneType}),
    Kind.FLAG_WORD: frozenset({bool, NoneType}),
    Kind.TEXT_LIST: frozenset({list, NoneType}),
    Kind.TIME_WINDOWS: frozenset({list, NoneType}),
}
_NULLS_ONLY = frozenset({NoneType})
_INTEGERS = frozenset({int, NoneType})
_INTEGERS_AND_TEXT = frozenset({int, str, NoneType})
_TEXT = frozenset({str, NoneType})


def _vectorised(field: Field, values: Sequence[Any], classes: set[type]) -> pa.Array | None:
    """The column converted without a per-value Python function, when its classes allow; else None."""
    kind = field.kind
    target = ARROW_TYPES[kind]
    if classes <= _NULLS_ONLY:
        return pa.nulls(len(values), target)
    if classes <= _ARROW_ALONE.get(kind, _NULLS_ONLY):
        array = pa.array(values, target)
        return array if _verified(field, values, array) else None
    if kind is Kind.TEXT:
        if classes <= _INTEGERS:
            return pa.array(values, pa.int64()).cast(target)
        if classes <= _INTEGERS_AND_TEXT:
            return pa.array([str(value) if value.__class__ is int else value for value in values], target)
    if kind in (Kind.DATE, Kind.TIMESTAMP) and classes <= _TEXT:
        return _text_column_cast(field, values)
    if kind is Kind.RATING and classes <= _INTEGERS:
        ratings = pa.array(values, pa.int64())
        bounds = pc.min_max(ratings).as_py()
        if bounds["min"] is not None and bounds["min"] >= 0 and bounds["max"] <= INT8_MAX:
            return pc.if_else(pc.equal(ratings, 0), pa.scalar(None, pa.int64()), ratings).cast(target)
    return None


def coerce_column(field: Field, values: Sequence[Any]) -> tuple[pa.Array, list[Unreadable]]:
    """A whole column of raw values as an Arrow array of the field's type, and the values it could not read.

    Same answer as `coerce_value` on each value. Faster: a column whose value classes allow it is
    converted by Arrow at once; otherwise values that need no function are kept as they are and only
    the others (memoised when they are strings) go through the kind's function.
    """
    target = ARROW_TYPES[field.kind]
    try:
        array = _vectorised(field, values, set(map(type, values)))
        if array is not None:
            return array, []
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass  # e.g. an integer too large for int64: the function says which and why
    results = _first_pass(field, values)
    unreadable = _second_pass(field, values, results) if _MISSING in results else []
    try:
        array = pa.array(results, target)
        if _verified(field, values, array):
            return array, unreadable
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass  # a value kept as it is does not fit after all: judge every value by the function
    results = [_MISSING if value is not None else None for value in values]
    unreadable = _second_pass(field, values, results)
    return pa.array(results, target), unreadable
