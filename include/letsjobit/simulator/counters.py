"""The simulator's request counters (``GET /_sim/counters``): what tests and benchmarks read back."""

from __future__ import annotations

import threading
import time


class Counters:
    """Requests by kind and status, 429s, faults, drift and concurrency.

    Every method takes ``lock``; a reader holds it too for a snapshot of one moment.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests_total = 0
            self.by_status: dict[str, int] = {}
            self.by_kind: dict[str, int] = {}
            self.rate_limited_429 = 0
            self.injected_429 = 0
            self.unauthorized = 0
            self.max_in_flight = 0
            self.faults: dict[str, int] = {}
            self.drift = {"events": 0, "inserted": 0, "deleted": 0, "updated": 0}
            self.admin_requests = 0
            self.started = time.monotonic()
        # in_flight is not reset: requests in progress stay in progress.
        if not hasattr(self, "in_flight"):
            self.in_flight = 0

    def begin(self, kind: str) -> None:
        with self.lock:
            self.requests_total += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, status: str) -> None:
        with self.lock:
            self.in_flight -= 1
            self.by_status[status] = self.by_status.get(status, 0) + 1

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def fault(self, kind: str) -> None:
        with self.lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def drifted(self, done: dict[str, list[str]]) -> None:
        with self.lock:
            self.drift["events"] += 1
            for name in ("inserted", "deleted", "updated"):
                self.drift[name] += len(done[name])
