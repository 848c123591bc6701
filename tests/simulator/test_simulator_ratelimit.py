"""The rate limit per API key: headers on every answer, exact 429 counts under concurrency, both modes."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from letsjobit.simulator.ratelimit import RateLimiter

from tests.simulator.helpers import get


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_every_answer_carries_the_rate_headers_and_remaining_counts_down(simulator):
    answers = [get(simulator, params={"pagination": 100 * i}) for i in range(3)]

    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["99", "98", "97"]
    assert all(a.headers["X-Rate-Limit-Reset"] == "10" for a in answers)
    assert get(simulator, "/visits/unknown").headers["X-RateLimit-Remaining"] == "96"


@pytest.mark.parametrize("mode", ["fixed", "sliding"])
def test_concurrent_clients_get_exactly_the_limit_then_429s(simulator_factory, mode):
    sim = simulator_factory(rate_limit=30, rate_window_seconds=5, rate_limit_mode=mode)
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        for _ in range(10):
            answer = get(sim, session=session)
            with lock:
                statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert answer.json()["meta"]["error"].startswith("Too Many Requests")
                assert answer.headers["X-RateLimit-Remaining"] == "0"
                assert 1 <= int(answer.headers["X-Rate-Limit-Reset"]) <= 5

    threads = [threading.Thread(target=client) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses.count(200) == 30
    assert statuses.count(429) == 20
    counters = sim.counters()
    assert counters["rate_limited_429"] == 20
    assert counters["injected_429"] == 0
    assert counters["max_requests_in_window"] == 50
    assert counters["max_in_flight"] >= 2


def test_waiting_the_reset_header_is_enough_to_be_served_again(simulator_factory):
    sim = simulator_factory(rate_limit=3, rate_window_seconds=1, rate_limit_mode="sliding")
    for _ in range(3):
        assert get(sim).status_code == 200
    refused = get(sim)
    assert refused.status_code == 429

    time.sleep(int(refused.headers["X-Rate-Limit-Reset"]))

    assert get(sim).status_code == 200


def test_the_limit_is_per_key(simulator_factory):
    sim = simulator_factory(api_keys=("key-one-aaaa", "key-two-bbbb"), rate_limit=2)
    one = {"Authorization": "Bearer key-one-aaaa"}
    two = {"Authorization": "Bearer key-two-bbbb"}

    codes_one = [
        requests.get(sim.base_url + "/visits", headers=one, timeout=10).status_code for _ in range(3)
    ]
    codes_two = [
        requests.get(sim.base_url + "/visits", headers=two, timeout=10).status_code for _ in range(2)
    ]

    assert codes_one == [200, 200, 429]
    assert codes_two == [200, 200]
    assert sorted(sim.counters()["max_requests_in_window_by_key"].values()) == [2, 3]


def test_fixed_window_resets_at_its_end():
    clock = FakeClock()
    limiter = RateLimiter(2, 10, "fixed", clock=clock)

    assert [limiter.acquire("k").allowed for _ in range(3)] == [True, True, False]
    clock.now += 9.5
    refused = limiter.acquire("k")
    clock.now += 0.5

    assert not refused.allowed
    assert refused.headers() == {"X-RateLimit-Remaining": "0", "X-Rate-Limit-Reset": "1"}
    assert limiter.acquire("k").allowed


def test_sliding_window_frees_one_slot_when_the_oldest_request_leaves():
    clock = FakeClock()
    limiter = RateLimiter(2, 10, "sliding", clock=clock)
    limiter.acquire("k")
    clock.now += 4
    limiter.acquire("k")
    clock.now += 1

    refused = limiter.acquire("k")
    assert not refused.allowed
    assert refused.reset_seconds == pytest.approx(5)
    clock.now += 5
    assert limiter.acquire("k").allowed
    assert not limiter.acquire("k").allowed  # the second request is still inside the window
    clock.now += 4
    assert limiter.acquire("k").allowed


def test_rejected_requests_do_not_count_unless_asked():
    clock = FakeClock()
    lenient = RateLimiter(1, 10, "sliding", clock=clock)
    strict = RateLimiter(1, 10, "sliding", count_rejected=True, clock=clock)
    for limiter in (lenient, strict):
        limiter.acquire("k")
    clock.now += 9
    for limiter in (lenient, strict):
        assert not limiter.acquire("k").allowed
    clock.now += 1.5

    assert lenient.acquire("k").allowed
    assert not strict.acquire("k").allowed  # the refused request at t+9 still counts until t+19
