"""Hostile answers through the client's page parsing, fed directly (no server): a page or a clear error.

The client turns an HTTP answer into a listing page in `LetsJobItClient._interpret` (status, rate
headers, JSON) and `validate_page` (shape and meta), then `iter_pages` reads the page's meta and
`paging.deliver` de-duplicates its records. The properties, for any body bytes and headers:

- the answer either becomes a page whose meta numbers read back as counts, or raises
  `LetsJobItMalformedPage` (retried as a transient fault) with a message naming the page offset and
  the field; never another exception (a TypeError, a ValueError from `int("12.0")`, an OverflowError);
- an accepted page delivers every record exactly once by `_id` (records without one always);
- rate headers of any text never raise and never ask for a negative, infinite or endless pause;
- no message ever holds the API key.
"""

from __future__ import annotations

import math
import re

import orjson
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from letsjobit.api.client import LetsJobItClient
from letsjobit.api.errors import LetsJobItError, LetsJobItMalformedPage
from letsjobit.api.pages import Page, validate_page
from letsjobit.api.paging import ScanStats, deliver
from letsjobit.api.ratelimit import MAX_SERVER_PAUSE_SECONDS, parse_rate_headers
from letsjobit.api.settings import ClientSettings
from letsjobit.lake import coerce
from requests.structures import CaseInsensitiveDict

from tests.lake.conftest import REFERENCE_VISIT
from tests.reliability.hostile import FUZZ, HOSTILE, HOSTILE_META_NUMBER, JSON, SCALARS, TEXT, hostile_meta

API_KEY = "fuzz-key-3c1d9e0b7a"
PAGE_SIZE = 100


@pytest.fixture(scope="module")
def client():
    with LetsJobItClient(ClientSettings(base_url="http://127.0.0.1:9/api/v2", api_key=API_KEY)) as client:
        yield client


def answer(status: int, content: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = content
    response.headers = CaseInsensitiveDict(headers or {})
    return response


def interpret_page(client: LetsJobItClient, content: bytes, offset: int, headers=None):
    """What the client makes of one listing answer at `offset`: the validated body (or the error)."""

    def validated(body):
        validate_page(body, offset)
        return body

    return client._interpret(
        answer(200, content, headers), content, ScanStats(), validated, f"GET visits at offset {offset}"
    )


def consistent_meta(offset: int, data: list, total: int) -> dict:
    returned = len(data)
    return {
        "totalRecords": total,
        "returnedRecords": returned,
        "remainingRecords": max(0, total - offset - returned),
        "nextStart": offset + returned,
    }


RECORDS = st.lists(
    st.one_of(
        st.builds(lambda n: {**REFERENCE_VISIT, "_id": f"v{n}"}, st.integers(0, 5)),  # repeated ids
        st.fixed_dictionaries({"_id": st.one_of(JSON, st.just(""))}),
        HOSTILE,
    ),
    max_size=6,
)
# Spellings of a count that a number parser might accept but `int()` might not.
COUNT_SPELLINGS = st.sampled_from([str, lambda n: f"{n}.0", lambda n: f" {n} ", float, lambda n: f"{n}e0"])


@st.composite
def page_bodies(draw) -> tuple[int, object]:
    """(offset, body): consistent pages with counts in odd spellings, and broken ones."""
    offset = draw(st.sampled_from([0, PAGE_SIZE, 7 * PAGE_SIZE]))
    data = draw(RECORDS)
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return offset, draw(
            st.one_of(HOSTILE, st.fixed_dictionaries({"meta": hostile_meta(), "data": HOSTILE}))
        )
    meta = consistent_meta(offset, data, offset + len(data) + draw(st.sampled_from([0, 0, 1, PAGE_SIZE * 3])))
    if shape == 1:
        meta[draw(st.sampled_from(sorted(meta)))] = draw(HOSTILE_META_NUMBER)
    elif shape == 2:
        del meta[draw(st.sampled_from(sorted(meta)))]
    else:
        spell = draw(COUNT_SPELLINGS)
        meta = {name: spell(value) for name, value in meta.items()}
    return offset, {"meta": meta, "data": data}


def assert_names_the_page(error: Exception, offset: int) -> None:
    message = str(error)
    assert f"offset {offset}" in message, message
    assert API_KEY not in message


@FUZZ
@given(case=page_bodies())
def test_any_listing_answer_becomes_a_page_or_a_malformed_page_error(client, case):
    offset, body = case
    content = coerce.json_text(body).encode()  # what a server may send, nesting beyond orjson's 254 included

    try:
        accepted = interpret_page(client, content, offset)
    except LetsJobItMalformedPage as error:
        assert_names_the_page(error, offset)
        return

    page = Page(offset=offset, filters={}, fetched_at=None, body=accepted)
    assert page.total_records >= 0 and page.remaining_records >= 0
    stats, seen = ScanStats(), set()
    deliver(page, seen, stats)
    ids = [r.get("_id") for r in page.data if isinstance(r, dict)]
    usable = [i for i in ids if isinstance(i, str) and i]
    assert len(seen) == len(set(usable))
    delivered = [r.get("_id") for r in page.new_data if isinstance(r, dict) and isinstance(r.get("_id"), str)]
    assert sorted(i for i in delivered if i) == sorted(set(usable)), "each _id once"
    without_id = len(page.data) - len(usable)
    assert len(page.new_data) == len(set(usable)) + without_id, "records without an _id are all delivered"


@FUZZ
@given(
    body=st.one_of(JSON, st.just({"meta": {}, "data": []})),
    cut=st.floats(0, 1),
    garbage=st.binary(min_size=1, max_size=8),
)
def test_truncated_or_non_utf8_answers_are_malformed_pages_naming_the_offset(client, body, cut, garbage):
    content = coerce.json_text(body).encode()
    broken = [content[: int(len(content) * cut)], content + garbage, garbage + content]
    if b'"' in content:  # a byte that is not UTF-8 inside a string
        broken.append(content.replace(b'"', b'"\xff', 1))
    for payload in broken:
        try:
            interpret_page(client, payload, 300)
        except LetsJobItMalformedPage as error:
            assert_names_the_page(error, 300)


@FUZZ
@given(
    names=st.lists(
        st.sampled_from(
            [
                "X-RateLimit-Remaining",
                "X-Rate-Limit-Remaining",
                "X-Rate-Limit-Reset",
                "X-RateLimit-Reset",
                "Retry-After",
            ]  # fmt: skip
        ),
        unique=True,
    ),
    values=st.lists(
        st.one_of(
            TEXT,
            st.sampled_from(
                ["inf", "-inf", "nan", "1e400", "-1", "0", "1e9", "9" * 30, "1.5", " 3 ", "0x10"]
            ),
            st.integers(-(2**70), 2**70).map(str),
            st.floats().map(str),
        ),
        min_size=5,
        max_size=5,
    ),
)
def test_rate_headers_of_any_text_never_raise_nor_ask_for_an_endless_pause(names, values):
    headers = CaseInsensitiveDict(dict(zip(names, values, strict=False)))

    remaining, reset = parse_rate_headers(headers)

    assert remaining is None or isinstance(remaining, int)
    assert reset is None or (math.isfinite(reset) and 0 <= reset <= MAX_SERVER_PAUSE_SECONDS)


@FUZZ
@given(
    status=st.sampled_from([200, 408, 429, 500, 503, 400, 401, 403, 404, 418]),
    content=st.one_of(st.binary(max_size=64), JSON.map(orjson.dumps), SCALARS.map(lambda v: orjson.dumps(v))),
    remaining=st.one_of(st.none(), st.sampled_from(["0", "inf", "nan", "-5", "x", "1e400"])),
    reset=st.one_of(st.none(), st.sampled_from(["0", "inf", "nan", "-5", "x", "1e400", "2.5"])),
)
def test_any_status_body_and_headers_end_in_a_body_or_a_client_error(
    client, status, content, remaining, reset
):
    headers = {}
    if remaining is not None:
        headers["X-RateLimit-Remaining"] = remaining
    if reset is not None:
        headers["X-Rate-Limit-Reset"] = reset
    client.budget.pause_for(0)
    try:
        interpret_page(client, content, 0, headers)
    except LetsJobItError as error:
        assert API_KEY not in str(error)
        assert re.search(r"offset 0", str(error)), str(error)
