"""Faults: each kind is retried to an exact result; refusals fail at once; budgets end retries."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from letsjobit.api.client import LetsJobItClient
from letsjobit.api.errors import (
    LetsJobItAuthError,
    LetsJobItBadRequest,
    LetsJobItMalformedPage,
    LetsJobItNotFound,
    LetsJobItRateLimited,
    LetsJobItRetryBudgetExhausted,
    LetsJobItTransientError,
)
from letsjobit.api.pages import validate_page
from letsjobit.api.paging import ScanStats
from letsjobit.api.settings import ClientSettings, RetryPolicy
from letsjobit.simulator import FaultConfig

from tests.conftest import FAST_RETRY, truth_ids


@pytest.mark.parametrize(
    ("kind", "retry_kind"),
    [
        ("500", "http_500"),
        ("503", "http_503"),
        ("truncate", "bad_json"),
        ("short", "connection"),
        ("drop", "connection"),
        ("slow", "timeout"),
        ("429", "rate_limited"),
        ("429-no-headers", "rate_limited"),
    ],
)
def test_each_fault_kind_is_retried_and_the_listing_stays_exact(simulator, client_factory, kind, retry_kind):
    simulator.configure(page_size=25)
    simulator.set_faults(FaultConfig(slow_ms=1500, spurious_429_reset_seconds=1))
    client = client_factory(simulator, timeout_seconds=0.5)
    # The first page, then one planned page, then a later one each meet the fault.
    simulator.fail_next("ok", kind, "ok", "ok", kind)
    stats = ScanStats()

    ids = [v["_id"] for v in client.iter_visits(stats=stats)]

    assert sorted(ids) == sorted(truth_ids(simulator))
    assert stats.retries[retry_kind] == 2, dict(stats.retries)


def test_random_fault_mix_still_delivers_every_visit_once(simulator_factory, client_factory):
    sim = simulator_factory(
        rate_limit=0,
        page_size=10,
        faults=FaultConfig(
            error_rate=0.15,
            truncate_rate=0.1,
            drop_rate=0.1,
            spurious_429_rate=0.05,
            spurious_429_reset_seconds=1,
            seed=11,
        ),
    )
    client = client_factory(sim)
    stats = ScanStats()

    ids = [v["_id"] for v in client.iter_visits(stats=stats)]

    assert sorted(ids) == sorted(truth_ids(sim))
    assert sum(stats.retries.values()) >= 5
    faults = sim.counters()["faults"]
    assert sum(faults.values()) == sum(stats.retries.values())


@pytest.mark.parametrize(("placement", "requests"), [("header", 1), ("query", 1), ("auto", 2)])
def test_wrong_key_fails_fast_with_one_request_per_placement_tried(
    simulator, client_factory, placement, requests
):
    client = client_factory(simulator, api_key="not-the-key-123456", key_placement=placement)

    with pytest.raises(LetsJobItAuthError, match="401") as caught:
        list(client.iter_visits())

    assert "connection's password" in str(caught.value)
    assert simulator.counters()["requests_total"] == requests


@pytest.mark.parametrize(
    ("status", "error"), [(400, LetsJobItBadRequest), (403, LetsJobItAuthError), (404, LetsJobItNotFound)]
)
def test_client_errors_are_not_retried(simulator, client_factory, status, error):
    simulator.set_faults(FaultConfig(force_status=status))
    client = client_factory(simulator)

    with pytest.raises(error, match=f"offset 0: HTTP {status}"):
        list(client.iter_visits())

    assert simulator.counters()["requests_total"] == 1


def test_persistent_server_errors_end_when_the_time_budget_is_spent(simulator, client_factory):
    simulator.set_faults(FaultConfig(force_status=503))
    policy = RetryPolicy(
        fault_budget_seconds=0.6,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.1,
        backoff_jitter_seconds=0.01,
    )
    client = client_factory(simulator, retry_policy=policy)
    started = time.monotonic()

    with pytest.raises(
        LetsJobItRetryBudgetExhausted, match="GET visits at offset 0: still failing"
    ) as caught:
        list(client.iter_visits())

    assert 0.6 <= time.monotonic() - started < 3
    assert "HTTP 503" in str(caught.value)
    assert simulator.counters()["requests_total"] >= 3


def test_a_worker_failure_stops_the_whole_listing(simulator, client_factory):
    simulator.configure(page_size=10)
    # An explicit placement: in auto a 401 would be retried with the key in the query string.
    client = client_factory(simulator, key_placement="header")
    simulator.fail_next("ok", "ok", "401")

    with pytest.raises(LetsJobItAuthError):
        list(client.iter_visits())


def _page(offset=99, total=250, returned=2, remaining=None, next_start=None, data=None):
    remaining = max(0, total - offset - returned) if remaining is None else remaining
    meta = {
        "totalRecords": total,
        "returnedRecords": returned,
        "remainingRecords": remaining,
        "nextStart": offset + returned if next_start is None else next_start,
    }
    return {"meta": meta, "data": data if data is not None else [{"_id": f"v{i}"} for i in range(returned)]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": []}, "no meta object"),
        ({"meta": {}, "data": {}}, "data is dict"),
        (_page(returned=3, data=[{"_id": "a"}]), "returnedRecords=3 but data holds 1"),
        (
            _page(remaining=0) | {"meta": {"totalRecords": -5, "returnedRecords": 2, "remainingRecords": 0}},
            "totalRecords is not a count",
        ),
        ({"meta": {"totalRecords": 9, "returnedRecords": 0}, "data": []}, "remainingRecords is missing"),
        (_page(remaining=7), "remainingRecords=7 but totalRecords=250"),
        (_page(next_start=500), "nextStart=500, expected"),
        (
            _page(remaining=1)
            | {"meta": {"totalRecords": "many", "returnedRecords": 2, "remainingRecords": 1}},
            "totalRecords is not a number",
        ),
    ],
)
def test_page_meta_that_does_not_hold_together_is_refused_naming_the_offset(body, message):
    with pytest.raises(LetsJobItMalformedPage, match=message) as caught:
        validate_page(body, offset=99)
    assert "offset 99" in str(caught.value)


def test_consistent_page_meta_passes():
    validate_page(_page(), offset=99)
    validate_page(_page(offset=248, total=250), offset=248)
    validate_page({"meta": {"totalRecords": 0, "returnedRecords": 0, "remainingRecords": 0}, "data": []}, 0)


@pytest.mark.parametrize("policy", [RetryPolicy(), FAST_RETRY], ids=["default", "fast"])
def test_faults_back_off_doubling_from_the_initial_wait_to_the_cap_and_a_429_waits_on_the_budget(policy):
    slept: list[float] = []
    outcomes = iter(
        [*[LetsJobItTransientError("HTTP 503")] * 8, LetsJobItRateLimited("429", 3.0, True), "ok"]
    )

    def attempt() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert policy.retrying(sleep=slept.append)(attempt) == "ok"

    *after_faults, after_429 = slept
    for retry, waited in enumerate(after_faults):
        doubled = policy.backoff_initial_seconds * 2**retry
        low, high = (
            min(doubled, policy.backoff_max_seconds),
            min(doubled + policy.backoff_jitter_seconds, policy.backoff_max_seconds),
        )
        assert low <= waited <= high, (retry, waited)
    assert after_faults[-1] == policy.backoff_max_seconds
    # The 429's pause is on the shared rate budget already: the retry itself does not wait again.
    assert after_429 == 0.0


class SlowToReadPolicy(RetryPolicy):
    """A policy whose headerless backoff takes a moment to read, as any injected policy may: the GIL
    otherwise hides a thread switch between counting a 429 and reading the count."""

    @property
    def headerless_429_initial_seconds(self) -> float:
        time.sleep(0.001)
        return 1e-6

    @headerless_429_initial_seconds.setter
    def headerless_429_initial_seconds(self, value: float) -> None:
        pass  # the frozen dataclass's __init__ sets every field


def test_headerless_429s_met_by_several_threads_at_once_each_double_the_backoff_once():
    client = LetsJobItClient(
        ClientSettings(base_url="http://127.0.0.1:9/api/v2", api_key="key-5f4e3d2c1b", window_seconds=1e9),
        retry_policy=SlowToReadPolicy(),
    )
    threads, answers = 8, 3
    too_many = requests.Response()
    too_many.status_code = 429  # and no rate headers
    start, waits = threading.Barrier(threads), []

    def meet_429s() -> None:
        start.wait()
        for _ in range(answers):
            with pytest.raises(LetsJobItRateLimited) as caught:
                client._interpret(too_many, b"", ScanStats(), None, "GET visits at offset 0")
            waits.append(caught.value.wait_seconds)

    with client:
        workers = [threading.Thread(target=meet_429s) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)

    assert sorted(waits) == [1e-6 * 2**n for n in range(threads * answers)]
