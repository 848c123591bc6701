"""The rate budget: pacing at the ceiling without 429s, obeying the server's headers, shared by processes."""

from __future__ import annotations

import json
import threading
import time

import pytest
from letsjobit.api.paging import ScanStats
from letsjobit.api.ratelimit import BudgetCancelled, RateBudget, budget_state_path, parse_rate_headers

from tests.api.rate_worker import run_workers
from tests.conftest import truth_ids


@pytest.mark.parametrize("mode", ["sliding", "fixed"])
def test_listing_runs_at_the_ceiling_without_a_single_429(simulator_factory, client_factory, mode):
    sim = simulator_factory(
        rate_limit=10, rate_window_seconds=1.0, rate_limit_mode=mode, page_size=10, latency_ms=20
    )
    client = client_factory(sim)
    stats = ScanStats()
    started = time.monotonic()

    ids = [v["_id"] for v in client.iter_visits(stats=stats)]

    elapsed = time.monotonic() - started
    counters = sim.counters()
    assert sorted(ids) == sorted(truth_ids(sim))
    assert counters["rate_limited_429"] == 0
    assert counters["max_requests_in_window"] <= 10
    # 28 requests at 10 per second: two full windows to wait, and not much more.
    assert stats.requests == 28
    assert 1.9 <= elapsed <= 4.0, elapsed
    assert stats.rate_waits > 0


def test_a_budget_larger_than_the_servers_is_corrected_by_the_429_headers(simulator_factory, client_factory):
    sim = simulator_factory(
        rate_limit=10, rate_window_seconds=1.0, rate_limit_mode="sliding", page_size=10, fractional_reset=True
    )
    client = client_factory(sim, requests_per_window=1000, max_concurrency=4)
    stats = ScanStats()

    ids = [v["_id"] for v in client.iter_visits(stats=stats)]

    assert sorted(ids) == sorted(truth_ids(sim))
    assert stats.rate_limited_429 == sim.counters()["rate_limited_429"]
    # Remaining: 0 pauses everyone, so 429s stay rare: at most the requests already in flight.
    assert stats.rate_limited_429 <= 3 * 4, stats.rate_limited_429


def test_two_processes_sharing_one_key_stay_under_the_limit_together(simulator_factory, tmp_path):
    sim = simulator_factory(rate_limit=20, rate_window_seconds=1.0, rate_limit_mode="sliding", page_size=10)

    results = run_workers(sim, [tmp_path / "shared", tmp_path / "shared"])

    counters = sim.counters()
    assert [r["visits"] for r in results] == [250, 250]
    assert counters["rate_limited_429"] == 0, counters
    assert counters["max_requests_in_window"] <= 20
    assert counters["requests_total"] == 56


def test_without_the_shared_budget_two_processes_would_be_refused(simulator_factory, tmp_path):
    # The control for the test above: separate budget files, same key, same server.
    sim = simulator_factory(rate_limit=20, rate_window_seconds=1.0, rate_limit_mode="sliding", page_size=10)

    results = run_workers(sim, [tmp_path / "a", tmp_path / "b"])

    assert [r["visits"] for r in results] == [250, 250]  # still complete, thanks to the 429 handling
    assert sim.counters()["rate_limited_429"] > 0


def test_budget_never_lets_more_than_the_limit_start_in_a_window(tmp_path):
    budget = RateBudget(3, 0.3, margin_seconds=0.01, state_path=tmp_path / "budget.json")
    starts = []

    for _ in range(9):
        slot = budget.acquire()
        starts.append(time.monotonic())
        budget.release(slot)

    assert starts[-1] - starts[0] >= 0.6
    for i in range(len(starts) - 3):
        assert starts[i + 3] - starts[i] >= 0.3


def test_budget_pause_blocks_every_user_of_the_key(tmp_path):
    path = tmp_path / "budget.json"
    first, second = RateBudget(100, 10, state_path=path), RateBudget(100, 10, state_path=path)
    first.pause_for(0.3)
    started = time.monotonic()

    second.release(second.acquire())

    assert time.monotonic() - started >= 0.28


def test_a_budget_file_written_before_letsjobit_files_still_holds_its_slots_and_pause(tmp_path):
    path = tmp_path / "budget.json"
    # As _FileStore wrote it by hand: compact json.dumps, same keys.
    old = {"entries": {"1-a-0": [100.0, False], "1-a-1": [100.5, True]}, "blocked_until": 0.0, "v": 1}
    path.write_text(json.dumps(old, separators=(",", ":")))
    now = [101.0]
    budget = RateBudget(2, 10, state_path=path, clock=lambda: now[0])
    stop = threading.Event()
    stop.set()

    with pytest.raises(BudgetCancelled):
        budget.acquire(stop)  # both slots are still taken: it would have to wait
    budget.pause_for(30)

    stored = json.loads(path.read_text())
    assert set(stored) == set(old)
    assert stored["entries"] == old["entries"] and stored["blocked_until"] == 131.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budget.json", "budget.json.lock"]


def test_remaining_zero_pauses_only_when_our_own_log_does_not_already_hold_the_budget():
    budget = RateBudget(2, 10)
    assert budget.observe(remaining=0, reset_seconds=1.0) > 0  # someone else spent the key
    full = RateBudget(2, 10)
    full.acquire(), full.acquire()
    assert full.observe(remaining=0, reset_seconds=1.0) == 0.0  # our log already waits the window


def test_budget_file_is_named_by_a_hash_never_by_the_key(tmp_path):
    key = "super-secret-key-123"
    path = budget_state_path(tmp_path, "app.letsjobit.com", key)
    RateBudget(5, 1, state_path=path).release(RateBudget(5, 1, state_path=path).acquire())

    assert key not in path.name
    assert key not in path.read_text()
    assert path != budget_state_path(tmp_path, "other.example.com", key)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Remaining": "7", "X-Rate-Limit-Reset": "3"}, (7, 3.0)),
        ({"X-Rate-Limit-Remaining": "0", "X-RateLimit-Reset": "2.315"}, (0, 2.315)),
        ({"Retry-After": "4"}, (None, 4.0)),
        ({"X-RateLimit-Remaining": "lots", "X-Rate-Limit-Reset": "soon"}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_rate_headers_are_read_in_every_spelling(headers, expected):
    assert parse_rate_headers(headers) == expected


def test_an_epoch_reset_header_becomes_seconds_from_now():
    _, reset = parse_rate_headers({"X-Rate-Limit-Reset": str(int(time.time()) + 5)})
    assert 3.5 <= reset <= 5.5
