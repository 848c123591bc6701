"""Fault injection (off by default): each kind as a client sees it, rates, seeding, latency and drift."""

from __future__ import annotations

import threading
import time

import orjson
import pytest
import requests
from letsjobit.simulator import FaultConfig

from tests.simulator.helpers import fetch_all, get


def test_no_faults_by_default(simulator):
    statuses = [get(simulator, params={"pagination": 0}).status_code for _ in range(20)]

    assert statuses == [200] * 20
    assert simulator.counters()["faults"] == {}


@pytest.mark.parametrize("status", [500, 503])
def test_queued_server_errors_answer_in_the_error_shape_with_rate_headers(simulator, status):
    simulator.fail_next(status)

    failed = get(simulator)
    recovered = get(simulator)

    assert failed.status_code == status
    assert failed.json()["data"] is None and failed.json()["meta"]["error"]
    assert "X-RateLimit-Remaining" in failed.headers and "X-Rate-Limit-Reset" in failed.headers
    assert recovered.status_code == 200
    assert simulator.counters()["faults"] == {str(status): 1}


def test_spurious_429_with_and_without_headers_count_as_injected(simulator):
    simulator.fail_next(429, "429-no-headers")

    with_headers, without_headers = get(simulator), get(simulator)

    assert with_headers.status_code == without_headers.status_code == 429
    assert with_headers.headers["X-RateLimit-Remaining"] == "0"
    assert with_headers.headers["X-Rate-Limit-Reset"] == "1"
    assert "X-RateLimit-Remaining" not in without_headers.headers
    counters = simulator.counters()
    assert counters["injected_429"] == 2
    assert counters["rate_limited_429"] == 0


def test_truncated_json_is_a_200_whose_body_does_not_parse(simulator):
    simulator.fail_next("truncate")

    answer = get(simulator)

    assert answer.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer.content)
    assert get(simulator).json()["meta"]["returnedRecords"] == 100


def test_short_body_breaks_the_transfer(simulator):
    simulator.fail_next("short")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(simulator)
    assert get(simulator).status_code == 200


def test_dropped_connection_gets_no_answer_even_on_a_kept_alive_session(simulator):
    session = requests.Session()
    assert get(simulator, session=session).status_code == 200
    simulator.fail_next("drop")

    with pytest.raises(requests.exceptions.ConnectionError):
        get(simulator, session=session)
    assert get(simulator, session=session).status_code == 200
    assert simulator.counters()["by_status"]["dropped"] == 1


def test_slow_fault_adds_its_delay(simulator_factory):
    sim = simulator_factory(faults=FaultConfig(slow_ms=300))
    sim.fail_next("slow")

    started = time.perf_counter()
    get(sim)
    slow = time.perf_counter() - started
    started = time.perf_counter()
    get(sim)
    normal = time.perf_counter() - started

    assert slow >= 0.3 > normal
    assert sim.counters()["faults"] == {"slow": 1}


def test_force_status_fails_everything_until_cleared(simulator):
    simulator.set_faults(force_status=503)

    assert [get(simulator).status_code for _ in range(3)] == [503, 503, 503]
    simulator.set_faults()
    assert get(simulator).status_code == 200


def _statuses(sim, count: int) -> list[int]:
    session = requests.Session()
    statuses = []
    for _ in range(count):
        try:
            statuses.append(get(sim, session=session).status_code)
        except requests.exceptions.ConnectionError:
            statuses.append(0)
    return statuses


def test_random_faults_are_reproducible_from_their_seed(simulator_factory):
    faults = FaultConfig(error_rate=0.2, spurious_429_rate=0.1, drop_rate=0.05, truncate_rate=0.1, seed=11)
    first = simulator_factory(rate_limit=0, faults=faults)
    second = simulator_factory(rate_limit=0, faults=faults)

    statuses = _statuses(first, 60)

    assert statuses == _statuses(second, 60)
    assert {500, 503, 429, 0, 200} <= set(statuses)
    counters = first.counters()
    assert sum(counters["faults"].values()) == sum(1 for s in statuses if s != 200) + counters["faults"].get(
        "truncate", 0
    )


def test_rejected_fault_settings_name_the_problem(simulator):
    with pytest.raises(ValueError, match="error_rate"):
        simulator.set_faults(error_rate=2)
    with pytest.raises(ValueError, match="fault kind"):
        simulator.fail_next("explode")


def test_latency_applies_to_every_request_and_requests_overlap(simulator_factory):
    sim = simulator_factory(latency_ms=300)
    results = []

    def client() -> None:
        results.append(get(sim).status_code)

    threads = [threading.Thread(target=client) for _ in range(6)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started

    assert results == [200] * 6
    assert 0.3 <= elapsed < 1.2  # six 300 ms requests in flight together, not one after the other
    assert sim.counters()["max_in_flight"] >= 4


def test_drift_inserts_and_deletes_between_list_requests(simulator_factory):
    sim = simulator_factory(
        visits=300,
        rate_limit=0,
        faults=FaultConfig(drift_every=1, drift_inserts=4, drift_deletes=3, seed=5),
    )
    before = set(sim.store.ids())

    visits, metas = fetch_all(sim)

    totals = [m["totalRecords"] for m in metas]
    assert totals[0] == 301 and totals == sorted(totals) and len(set(totals)) == len(totals)
    after = set(sim.store.ids())
    survivors = before & after
    seen = [v["_id"] for v in visits]
    # Deletes shift later offsets: plain offset paging misses some visits that existed all along.
    assert survivors - set(seen), "plain offset paging should have missed a visit that was never deleted"
    assert sim.counters()["drift"] == {
        "events": len(metas),
        "inserted": 4 * len(metas),
        "deleted": 3 * len(metas),
        "updated": 0,
    }


def test_store_can_be_mutated_between_pages(simulator):
    first = get(simulator, params={"pagination": 0}).json()
    simulator.store.delete(first["data"][0]["_id"])

    second = get(simulator, params={"pagination": 100}).json()

    assert second["meta"]["totalRecords"] == 249
    assert second["data"][0]["_id"] == simulator.store.ids()[100]  # every later visit moved up by one


def test_any_queued_status_is_served_even_unusual_ones(simulator):
    simulator.fail_next(404, 599)

    assert [get(simulator).status_code for _ in range(3)] == [404, 599, 200]
