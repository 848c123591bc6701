"""The rate budget in Redis: one key's budget shared by hosts, against a real redis-server on loopback.

Two processes, each with its own budget on the same Redis, play two hosts. Windows are small (10 requests
per second) so the file runs in seconds.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from letsjobit.api.errors import LetsJobItConfigError, LetsJobItRateBudgetUnavailable
from letsjobit.api.keystate import key_state_name
from letsjobit.api.paging import ScanStats
from letsjobit.api.ratelimit import (
    BUDGET_STATE_KIND,
    BudgetCancelled,
    budget_for,
    budget_state_path,
)
from letsjobit.api.ratelimit_redis import KEY_PREFIX, TTL_SLACK_SECONDS
from letsjobit.api.settings import ClientSettings

from tests.api.rate_worker import run_workers
from tests.api.redis_hosts import LIMIT, WINDOW, hold_slots_until_killed, host_requests, redis_budget
from tests.conftest import truth_ids

SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter, as on another host


def most_starts_in_a_window(starts: list[float], window: float) -> int:
    ordered = sorted(starts)
    most, first = 0, 0
    for last, stamp in enumerate(ordered):
        while stamp - ordered[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.fixture(scope="module")
def two_hosts(redis_server) -> list[dict[str, list[float]]]:
    """Two hosts at once, each with two budgets of 2 threads x 6 requests: one budget on the key both
    hosts share, one on a key of the host's own (the control). Each host's request start times by key."""
    url = redis_server.url(db=1)  # a database of this fixture's own: redis_url empties the others
    redis_server.client(db=1).flushdb()
    ready, results = SPAWN.Barrier(2), SPAWN.Queue()
    hosts = [
        SPAWN.Process(target=host_requests, args=(url, ["rate-budget-shared", own], 2, 6, ready, results))
        for own in ("rate-budget-alone-1", "rate-budget-alone-2")
    ]
    for host in hosts:
        host.start()
    runs = [results.get(timeout=60) for _ in hosts]
    for host in hosts:
        host.join(10)
    return runs


def test_two_hosts_on_one_redis_never_start_more_than_the_limit_in_any_window(two_hosts):
    first, second = (host["rate-budget-shared"] for host in two_hosts)

    assert len(first) == len(second) == 12
    assert most_starts_in_a_window(first + second, WINDOW) <= LIMIT
    assert max(min(first), min(second)) < min(max(first), max(second))  # the hosts ran at the same time
    # 24 requests at 10 per window: two full windows waited.
    assert max(first + second) - min(first + second) >= 2 * WINDOW


def test_two_hosts_with_separate_budgets_would_exceed_the_limit(two_hosts):
    # The control for the test above: the same hosts at the same time, each on a budget of its own.
    first, second = (starts for host in two_hosts for name, starts in host.items() if "alone" in name)

    assert most_starts_in_a_window(first + second, WINDOW) > LIMIT


def test_a_pause_one_host_hears_from_the_server_pauses_the_other(redis_url):
    first, second = redis_budget(redis_url), redis_budget(redis_url)

    assert first.observe(remaining=0, reset_seconds=0.4) == pytest.approx(0.42)  # Remaining: 0
    started = time.monotonic()
    second.release(second.acquire())
    after_remaining_zero = time.monotonic() - started

    second.pause_for(0.3)  # what the client does on a 429
    started = time.monotonic()
    first.release(first.acquire())
    after_429 = time.monotonic() - started

    assert 0.38 <= after_remaining_zero <= 1.0
    assert 0.28 <= after_429 <= 1.0


def test_waiting_for_the_redis_budget_can_be_cancelled(redis_url):
    budget = redis_budget(redis_url, limit=1, window=30)
    budget.release(budget.acquire())
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()

    with pytest.raises(BudgetCancelled):
        budget.acquire(cancel)

    assert time.monotonic() - started < 1.0


def test_slots_of_a_host_that_died_mid_request_stop_counting_after_the_stale_limit(redis_url):
    held = SPAWN.Event()
    host = SPAWN.Process(target=hold_slots_until_killed, args=(redis_url, LIMIT, held))
    host.start()
    assert held.wait(20)
    host.kill()
    host.join()
    cancel = threading.Event()

    # Within the stale limit, the dead host's requests still count: nobody may start one.
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(BudgetCancelled):
        redis_budget(redis_url).acquire(cancel)
    # With a stale limit of 1 s, they stop counting a second after they started.
    cancel.clear()
    threading.Timer(5.0, cancel.set).start()
    slot = redis_budget(redis_url, stale_in_flight_seconds=1.0).acquire(cancel)
    cancel.set()

    assert 0.3 <= slot.waited_seconds <= 2.0


def test_only_a_hash_of_the_api_key_is_stored_in_redis_and_it_expires(redis_server, redis_url):
    key = "super-secret-key-123"
    settings = ClientSettings(
        base_url="https://app.letsjobit.com", api_key=key, requests_per_window=3, rate_budget_url=redis_url
    )
    budget = budget_for(settings, "app.letsjobit.com")
    for _ in range(3):
        budget.release(budget.acquire())
    budget.pause_for(0.01)

    client = redis_server.client()
    keys = list(client.scan_iter())
    values = [client.get(name) for name in keys]

    state_name = key_state_name(BUDGET_STATE_KIND, "app.letsjobit.com", key)
    assert keys == [f"{KEY_PREFIX}{state_name}".encode()]
    assert state_name == budget_state_path(Path("state"), "app.letsjobit.com", key).stem  # one hash
    assert not any(key.encode() in blob for blob in keys + values)
    assert key not in repr(budget) and redis_server.password not in repr(budget)
    # Expires when nothing in it can matter: a stale in-flight slot's 300 s, plus the slack.
    assert 300 < client.ttl(keys[0]) <= 300 + TTL_SLACK_SECONDS + 1


def test_the_settings_choose_redis_then_the_file_then_this_process(redis_url, tmp_path):
    def store_of(**settings) -> str:
        chosen = ClientSettings(base_url="https://app.letsjobit.com", api_key="k-123", **settings)
        return type(budget_for(chosen, "app.letsjobit.com").store).__name__

    assert store_of(rate_budget_url=redis_url, rate_state_dir=tmp_path) == "RedisStore"
    assert store_of(rate_budget_url="  ", rate_state_dir=tmp_path) == "_FileStore"  # blank is unset
    assert store_of(rate_state_dir=tmp_path) == "_FileStore"
    assert store_of() == "_MemoryStore"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://:hunter2-pw@redis-host:6379/2", "scheme must be redis, rediss or unix"),
        ("redis-host:6379", "scheme must be redis, rediss or unix"),
        ("redis://:hunter2-pw@redis-host:port/2", "port is not a number"),
        ("redis://:hunter2-pw@/2", "no host"),
        ("redis://:hunter2-pw@redis-host:6379/two", "database 'two' is not a number"),
        ("redis://:hunter2-pw@redis-host/2?colour=red", "unknown query parameter 'colour'"),
        ("redis://redis-host/2?password=hunter2-pw&db=x", "Invalid value for 'db'"),
        ("unix://:hunter2-pw@", "no socket path"),
    ],
)
def test_an_unusable_redis_url_is_refused_naming_the_setting_without_its_password(url, problem):
    with pytest.raises(LetsJobItConfigError) as refused:
        ClientSettings(base_url="https://app.letsjobit.com", api_key="k-123", rate_budget_url=url)

    message = str(refused.value)
    assert "rate_budget_url" in message and "LETSJOBIT_RATE_BUDGET_URL" in message
    assert problem in message
    assert "hunter2-pw" not in message


def test_redis_going_away_mid_run_stops_requests_with_a_clear_error(redis_factory):
    server = redis_factory()
    budget = redis_budget(server.url(), reconnects=2)
    slot = budget.acquire()

    server.stop()
    started = time.monotonic()
    with pytest.raises(LetsJobItRateBudgetUnavailable) as stopped:
        budget.release(slot)
    with pytest.raises(LetsJobItRateBudgetUnavailable):
        budget.acquire()  # no fallback to a budget of this host alone

    message = str(stopped.value)
    assert f"redis://:***@127.0.0.1:{server.port}/0" in message
    assert "could exceed the API key's limit across hosts" in message
    assert server.password not in message
    assert time.monotonic() - started < 5


def test_a_wrong_redis_password_is_a_configuration_error_without_the_password(redis_server, redis_url):
    wrong = redis_url.replace(redis_server.password, "not-the-password")

    with pytest.raises(LetsJobItConfigError) as refused:
        redis_budget(wrong).acquire()

    assert "refused the credentials" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


def test_an_extraction_on_the_redis_budget_stays_under_the_limit_without_a_429(
    simulator_factory, client_factory, redis_server, redis_url, tmp_path, caplog
):
    sim = simulator_factory(
        rate_limit=LIMIT, rate_window_seconds=WINDOW, rate_limit_mode="sliding", page_size=10, latency_ms=20
    )
    client = client_factory(sim, rate_budget_url=redis_url)
    stats = ScanStats()

    with caplog.at_level(logging.DEBUG):
        ids = [visit["_id"] for visit in client.iter_visits(stats=stats)]

    counters = sim.counters()
    assert sorted(ids) == sorted(truth_ids(sim))
    assert counters["rate_limited_429"] == 0
    assert counters["max_requests_in_window"] <= LIMIT
    assert stats.requests == 28 and stats.rate_waits > 0
    assert "shared via Redis redis://:***@" in repr(client)
    assert not list((tmp_path / "state").glob("rate-budget-*"))  # the Redis budget, not the file
    stored = redis_server.client()
    assert not any(sim.api_key.encode() in (name + stored.get(name)) for name in stored.scan_iter())
    assert redis_server.password not in caplog.text + repr(client)


def test_two_processes_with_their_own_budget_files_share_the_key_through_redis(
    simulator_factory, redis_url, tmp_path
):
    sim = simulator_factory(rate_limit=20, rate_window_seconds=1.0, rate_limit_mode="sliding", page_size=10)

    # Separate state dirs, as on two hosts: only Redis is shared (the same dirs without Redis get 429s).
    results = run_workers(sim, [tmp_path / "host-a", tmp_path / "host-b"], redis_url)

    counters = sim.counters()
    assert [r["visits"] for r in results] == [250, 250]
    assert counters["rate_limited_429"] == 0, counters
    assert counters["max_requests_in_window"] <= 20
    assert counters["requests_total"] == 56
