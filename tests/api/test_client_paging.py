"""Paging exactness and filters against the real simulator over loopback."""

from __future__ import annotations

import pytest
from letsjobit.api.errors import LetsJobItConfigError
from letsjobit.api.paging import ScanStats
from letsjobit.api.settings import FILTER_NAMES, normalize_filters

from tests.conftest import truth_ids


def test_full_listing_delivers_every_visit_exactly_once(simulator, client_factory):
    simulator.configure(page_size=10)
    client = client_factory(simulator)
    stats = ScanStats()

    visits = list(client.iter_visits(stats=stats))

    assert sorted(v["_id"] for v in visits) == sorted(truth_ids(simulator))
    assert {v["_id"]: v for v in visits} == {v["_id"]: v for v in simulator.store.snapshot()}
    assert stats.distinct_visits == 250
    assert stats.total_records_first == 250
    # 250 records, 10 a page, overlapping by one: offsets 0, 9, ..., 243.
    assert stats.pages == stats.pages_planned == 28
    assert stats.duplicates_dropped == 27
    assert stats.rate_limited_429 == 0 and sum(stats.retries.values()) == 0


def test_pages_overlap_by_one_and_each_page_is_the_apis_answer(simulator, client_factory):
    simulator.configure(page_size=50)
    client = client_factory(simulator)

    pages = sorted(client.iter_pages(), key=lambda p: p.offset)

    assert [p.offset for p in pages] == [0, 49, 98, 147, 196, 245]
    for before, after in zip(pages, pages[1:], strict=False):
        assert before.data[-1]["_id"] == after.data[0]["_id"]
    assert pages[-1].remaining_records == 0
    assert all(p.meta["returnedRecords"] == len(p.data) for p in pages)
    assert sum(len(p.new_data) for p in pages) == 250


@pytest.mark.parametrize("page_size", [1, 2, 100, 250, 1000])
def test_page_sizes_from_one_to_larger_than_the_listing(simulator, client_factory, page_size):
    simulator.configure(page_size=page_size, rate_limit=0)
    client = client_factory(simulator)

    ids = [v["_id"] for v in client.iter_visits()]

    assert sorted(ids) == sorted(truth_ids(simulator))


def test_empty_listing_is_one_request_and_no_visits(simulator, client_factory):
    client = client_factory(simulator)
    stats = ScanStats()

    visits = list(client.iter_visits(stats=stats, docNo="no-such-document-number"))

    assert visits == []
    assert stats.requests == 1 and stats.pages == 1


def _filter_cases(sim) -> list[dict]:
    sample = sim.store.snapshot()[17]
    return [
        {"_id": sample["_id"]},
        {"id": sample["id"]},
        {"date": sample["date"]},
        {"driverId": sample["driverId"]},
        {"docNo": sample["docNo"][-3:]},
        {"closed": 1},
        {"closed": False},
        {"confirmClose": 1},
        {"inProgress": 0},
        {"priority": sample["priority"]},
        {"skipped": True},
        {"date": sample["date"], "driverId": sample["driverId"], "closed": sample["closed"]},
    ]


def test_every_documented_filter_pages_to_what_the_server_matches(simulator_factory, client_factory):
    simulator = simulator_factory(rate_limit=0)  # ~150 requests; the limiter has its own tests
    client = client_factory(simulator)
    cases = _filter_cases(simulator)
    assert {FILTER_NAMES_KEY for case in cases for FILTER_NAMES_KEY in case} == set(FILTER_NAMES)

    for filters in cases:
        # Truth: the server's own match in one big page; then the same filter paged 7 at a time.
        simulator.configure(page_size=100_000)
        expected = [v["_id"] for v in client.fetch_page(0, filters).data]
        simulator.configure(page_size=7)

        got = [v["_id"] for v in client.iter_visits(**filters)]

        assert sorted(got) == sorted(expected), filters
        assert len(got) == len(set(got)), filters
        assert expected, f"filter {filters} matched nothing; pick a better sample"


def test_filter_aliases_and_values_are_normalised():
    assert normalize_filters(
        {"visit_date": "2026-11-01", "driver_id": "D1", "closed": True, "in_progress": 0, "priority": " 2 "}
    ) == {"date": "2026-11-01", "driverId": "D1", "closed": "1", "inProgress": "0", "priority": "2"}
    assert normalize_filters({"skipped": None}) == {}


@pytest.mark.parametrize(
    "filters",
    [
        {"colour": "red"},
        {"pagination": 5},
        {"date": "01/11/2026"},
        {"closed": "yes"},
        {"priority": "high"},
        {"driverId": "a", "driver_id": "b"},
    ],
)
def test_bad_filters_are_refused_before_any_request(simulator, client_factory, filters):
    client = client_factory(simulator)

    with pytest.raises(LetsJobItConfigError):
        list(client.iter_visits(**filters))

    assert simulator.counters()["requests_total"] == 0
