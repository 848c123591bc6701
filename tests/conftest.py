"""Shared fixtures: the LetsJobIt simulator as a real server on loopback.

``simulator``: a small simulator (250 visits, seed 7, anchored on 2026-11-01, documented rate limit)
started for one test. ``simulator_factory(**settings)``: start more, with any ``SimulatorConfig`` setting
(``visits=``, ``rate_limit=``, ``latency_ms=``, ``faults=FaultConfig(...)``...); all stop after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import pytest

from include.letsjobit.simulator import SimulatorConfig, SimulatorServer

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
