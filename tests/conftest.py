"""Shared fixtures: the LetsJobIt simulator as a real server on loopback.

``simulator``: a small simulator (250 visits, seed 7, anchored on 2026-11-01, documented rate limit)
started for one test. ``simulator_factory(**settings)``: start more, with any ``SimulatorConfig`` setting
(``visits=``, ``rate_limit=``, ``latency_ms=``, ``faults=FaultConfig(...)``...); all stop after the test.
``client_factory(sim, **settings)``: API clients for a simulator, with a fast retry policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import pytest
from letsjobit.api.client import LetsJobItClient
from letsjobit.api.settings import ClientSettings, RetryPolicy
from letsjobit.simulator import SimulatorConfig, SimulatorServer

TEST_ANCHOR_DATE = date(2026, 11, 1)
TEST_API_KEY = "test-key-0f9e8d7c6b5a"  # opens only the test simulators; also used to check logs for leaks

SMALL_SIMULATOR = {"visits": 250, "seed": 7, "anchor_date": TEST_ANCHOR_DATE, "api_keys": (TEST_API_KEY,)}


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., SimulatorServer]]:
    started: list[SimulatorServer] = []

    def start(**settings) -> SimulatorServer:
        sim = SimulatorServer(SimulatorConfig(**{**SMALL_SIMULATOR, **settings}))
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(simulator_factory) -> SimulatorServer:
    return simulator_factory()


# Small budgets and backoffs so fault tests take milliseconds, not minutes.
FAST_RETRY = RetryPolicy(
    fault_budget_seconds=5.0,
    rate_limit_budget_seconds=30.0,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.05,
    backoff_jitter_seconds=0.01,
    rate_limit_extra_seconds=0.02,
    headerless_429_initial_seconds=0.05,
)


@pytest.fixture
def client_factory(tmp_path) -> Iterator[Callable[..., LetsJobItClient]]:
    """``client_factory(sim, **settings)``: a client for ``sim`` whose rate budget matches the simulator's
    limit and lives under this test's tmp dir."""
    made: list[LetsJobItClient] = []

    def make(sim: SimulatorServer, retry_policy: RetryPolicy = FAST_RETRY, **settings) -> LetsJobItClient:
        defaults = {
            "base_url": sim.base_url,
            "api_key": sim.api_key,
            "requests_per_window": sim.config.rate_limit or 1000,
            "window_seconds": sim.config.rate_window_seconds,
            "rate_state_dir": tmp_path / "state",
            "timeout_seconds": 5.0,
            "connect_timeout_seconds": 2.0,
            "progress_interval_seconds": 0.2,
        }
        client = LetsJobItClient(ClientSettings(**{**defaults, **settings}), retry_policy=retry_policy)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def truth_ids(sim: SimulatorServer) -> list[str]:
    return [visit["_id"] for visit in sim.store.snapshot()]
