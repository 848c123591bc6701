"""The soak's plan: which runs it makes (full refreshes, windows, kills by phase, drift while paging)
and the faults and drift it puts the source through. See tests/reliability/soak.py."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ANCHOR_DATE = date(2026, 11, 1)
PHASES = ("extract", "stage", "publish", "build")
# Rates the client's retry policy survives (it retries each request for minutes): the point is that
# nothing is lost through faults, not that runs fail.
DEFAULT_FAULTS = {
    "error_rate": 0.03,
    "spurious_429_rate": 0.02,
    "spurious_429_reset_seconds": 1.0,
    "slow_rate": 0.03,
    "slow_ms": 800.0,
    "truncate_rate": 0.02,
    "drop_rate": 0.02,
}
# Queued at the start of each run (spread out, so one request does not meet them all), so that each kind
# shows up even in a short run.
QUEUED_FAULTS = [
    "short",
    "ok",
    "ok",
    "429-no-headers",
    "ok",
    "ok",
    "503",
    "ok",
    "ok",
    "truncate",
    "ok",
    "drop",
]
IN_RUN_DRIFT = {"drift_every": 3, "drift_inserts": 1, "drift_deletes": 1, "drift_updates": 2}
BETWEEN_RUN_DRIFT = {"inserts": 6, "deletes": 4, "updates": 15}
# Longest random wait between the phase's first sign and the SIGKILL; the parquet writing of a few
# thousand visits lasts a fraction of a second, so the stage kill lands at its first file.
KILL_DELAY_SECONDS = {"extract": 0.3, "stage": 0.0, "publish": 0.0, "build": 0.5}


@dataclass(frozen=True)
class RunPlan:
    number: int
    logical_date: date
    full_refresh: bool
    kill_phase: str | None = None
    in_run_drift: bool = False

    @property
    def kind(self) -> str:
        return "full refresh" if self.full_refresh else "window"


@dataclass
class SoakSettings:
    runs: list[RunPlan]
    visits: int = 1500
    seed: int = 20261124
    days: int = 30
    days_ahead: int = 10
    latency_ms: float = 100.0
    readers: int = 2
    lookback_days: int = 3
    lookahead_days: int = 2
    faults: dict = field(default_factory=lambda: dict(DEFAULT_FAULTS))
    # Bad records of every kind and fields the reference does not list, at a rate a real API might have.
    bad_record_rate: float = 0.02
    unknown_field_rate: float = 0.01
    workdir: Path | None = None
    keep: bool = False
    attempt_timeout_seconds: float = 900.0


def short_plan() -> list[RunPlan]:
    """`make test`: a full refresh, a window killed while extracting and re-run, a window with drift
    while it pages. (Each attempt costs ~45 s of CPU whatever it does: Airflow's start, the gate.)"""
    return [
        RunPlan(1, ANCHOR_DATE, full_refresh=True),
        RunPlan(2, ANCHOR_DATE + timedelta(days=1), full_refresh=False, kill_phase="extract"),
        RunPlan(3, ANCHOR_DATE + timedelta(days=2), full_refresh=False, in_run_drift=True),
    ]


def long_plan(runs: int = 12, kills: int = 4, seed: int = 0) -> list[RunPlan]:
    """`make soak`: daily windows with a full refresh first, in the middle and last; kills spread over
    the runs in between, cycling through every phase."""
    rng = random.Random(seed)
    full = {1, runs // 2 + 1, runs}
    candidates = [n for n in range(2, runs + 1)]
    killed = sorted(rng.sample(candidates, min(kills, len(candidates))))
    phases = {number: PHASES[index % len(PHASES)] for index, number in enumerate(killed)}
    return [
        RunPlan(
            number,
            ANCHOR_DATE + timedelta(days=number - 1),
            full_refresh=number in full,
            kill_phase=phases.get(number),
            in_run_drift=number % 3 == 0,
        )
        for number in range(1, runs + 1)
    ]


def short_settings(**changes: Any) -> SoakSettings:
    """The short form: 1,500 visits, 3 runs, 1 kill, 2 readers (about 2 minutes on 2 idle cores)."""
    return replace(SoakSettings(runs=short_plan()), **changes)
