"""Hypothesis strategies for hostile API payloads, shared by the fuzz tests of the lake and the client.

Values are what a JSON parser (orjson, as the client and the lake use) can hand over: no NaN or
infinity, integers within 64 bits, strings without lone surrogates. Within that, anything goes: wrong
types in every field, huge strings, deep nesting, nulls where objects belong, unknown fields.

`FUZZ` holds the settings: bounded, quick and derandomised for `make test`, so CI checks the same
examples every time and a red build always means a change, not a lucky draw; `LETSJOBIT_FUZZ_EXAMPLES=N`
(what `make soak` sets) asks for N random examples per property instead, which is where new hostile
inputs are found (each failure prints its reproducing example; pin it as a test).
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from letsjobit.lake import schema

# Bounded by default so the whole fuzz suite stays within seconds; `make soak` raises it.
EXPLORE = "LETSJOBIT_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("LETSJOBIT_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not EXPLORE,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the worktree; failures print their reproducing example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson parses
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
# Strings that look almost right: they are where coercion has to decide.
NEAR_MISSES = st.sampled_from(
    [
        "",
        " ",
        "0",
        "1",
        "-1",
        "5",
        "6",
        "0.0",
        "4.5",
        "1e3",
        "1e400",
        "-0",
        "nan",
        "inf",
        "NaN",
        "1_000",
        "true",
        "FALSE",
        "yes",
        "maybe",
        "null",
        "None",
        "[]",
        "{}",
        "2026-11-01",
        "2026-02-30",
        "2026-11-01 10:00",
        "2026-11-01T10:00:00Z",
        "2026-11-01 25:00",
        "99999-01-01",
        "10:30",
        "a,b,,c",
        " , ",
        "\r\n",
        "\x00",
        "é",
        "😀",
        "\u202e",
        "9" * 40,
        "-" * 40,
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    NEAR_MISSES,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value nested `depth` levels deep, alternating lists and objects."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# Depths around the limits that matter: orjson dumps at most 254 levels and parses at most 1024.
DEEP = st.sampled_from([20, 253, 254, 255, 300, 900]).map(nested)
HUGE_TEXT = st.sampled_from([10**5, 10**6]).flatmap(lambda n: st.sampled_from(["x" * n, "é" * n, "1" * n]))

JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=12,
)
# Any value, weighted towards the ones that break things.
HOSTILE = st.one_of(JSON, NEAR_MISSES, DEEP, HUGE_TEXT)

VISIT_NAMES = [f.api_name for f in schema.VISIT_FIELDS]
LINE_NAMES = [f.api_name for f in schema.LINE_FIELDS]
EXTRA_NAMES = [f.api_name for f in schema.EXTRA_DATA_FIELDS]


@st.composite
def hostile_object(draw, base: dict, names: list[str], children: dict[str, Any] | None = None) -> Any:
    """`base` with some fields replaced by hostile values, some removed, unknown ones added; or not
    an object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.none(), SCALARS, st.lists(SCALARS, max_size=3), DEEP))
    obj = copy.deepcopy(base)
    for name in draw(st.lists(st.sampled_from(names), max_size=6, unique=True)):
        if draw(st.booleans()):
            obj[name] = draw(HOSTILE)
        else:
            obj.pop(name, None)
    for name, value in draw(st.dictionaries(TEXT, HOSTILE, max_size=2)).items():
        obj.setdefault(name, value)
    for name, strategy in (children or {}).items():
        obj[name] = draw(strategy)
    return obj


def hostile_extra_data(base_entry: dict) -> st.SearchStrategy:
    return st.one_of(
        st.lists(hostile_object(base_entry, EXTRA_NAMES), max_size=3),
        HOSTILE,
    )


def hostile_lines(base_line: dict) -> st.SearchStrategy:
    entry = base_line["extraData"][0]
    line = hostile_object(base_line, LINE_NAMES, {"extraData": hostile_extra_data(entry)})
    return st.one_of(st.lists(line, max_size=3), HOSTILE)


def hostile_visit(base_visit: dict) -> st.SearchStrategy:
    """A visit with hostile fields, lines and extraData, and sometimes a hostile `_id`."""
    base_line = base_visit["lines"][0]

    @st.composite
    def build(draw) -> Any:
        visit = draw(hostile_object(base_visit, VISIT_NAMES, {"lines": hostile_lines(base_line)}))
        if isinstance(visit, dict):
            visit["_id"] = draw(
                st.one_of(
                    st.uuids().map(str),
                    st.sampled_from(["", " ", None, 0, 17, True, [], {}, ["x"], "x" * 10**5]),
                    JSON,
                )
            )
        return visit

    return build()


HOSTILE_META_NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, -100, 0, "", "12", "-5", "1e3", "nan", "inf", None, True, [], {}, 1.5, -0.0, 1e308]),
)


@st.composite
def hostile_meta(draw) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.none(), SCALARS, st.lists(SCALARS, max_size=2)))
    meta = {}
    for name in ("totalRecords", "returnedRecords", "remainingRecords", "nextStart"):
        if draw(st.integers(0, 3)):
            meta[name] = draw(HOSTILE_META_NUMBER)
    return meta
