"""Fixtures for the client/hook tests: clients wired to a test simulator, with a fast retry policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from include.letsjobit.client import ClientSettings, LetsJobItClient, RetryPolicy
from include.letsjobit.simulator import SimulatorServer

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
