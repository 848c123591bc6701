"""The simulator's rate limit per API key (fixed or sliding window), and the meter that watches clients.

``fixed``: a window opens with the first request after the previous one expired and admits ``limit``
requests; ``X-Rate-Limit-Reset`` is the time until it closes. ``sliding``: at most ``limit`` admitted
requests in any ``window`` seconds; the reset is the time until the oldest counted request leaves the
window (when full: until the next slot frees).

Requests answered 429 by the limiter do not count toward the window by default, as real APIs usually
behave; ``count_rejected=True`` makes them count (in sliding mode a client that keeps hammering then stays
locked out). The reset header is an integer, rounded up, so waiting that long is always enough.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

MODES = ("fixed", "sliding")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    reset_seconds: float

    def headers(self, fractional: bool = False) -> dict[str, str]:
        reset = max(0.0, self.reset_seconds)
        reset_text = f"{reset:.3f}" if fractional else str(math.ceil(reset))
        return {"X-RateLimit-Remaining": str(self.remaining), "X-Rate-Limit-Reset": reset_text}


class RateLimiter:
    """``limit`` requests per ``window`` seconds per key; ``limit <= 0`` disables the limit."""

    def __init__(
        self,
        limit: int,
        window: float,
        mode: str = "fixed",
        count_rejected: bool = False,
        clock=time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"rate limit mode must be one of {MODES}, got {mode!r}")
        if window <= 0:
            raise ValueError(f"rate limit window must be > 0 seconds, got {window}")
        self.limit = limit
        self.window = window
        self.mode = mode
        self.count_rejected = count_rejected
        self._clock = clock
        self._lock = threading.Lock()
        self._fixed: dict[str, list[float]] = {}  # key -> [window start, count]
        self._sliding: dict[str, deque[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def acquire(self, key: str) -> Decision:
        now = self._clock()
        with self._lock:
            if self.mode == "fixed":
                return self._acquire_fixed(key, now)
            return self._acquire_sliding(key, now)

    def reset(self) -> None:
        with self._lock:
            self._fixed.clear()
            self._sliding.clear()

    def _acquire_fixed(self, key: str, now: float) -> Decision:
        state = self._fixed.get(key)
        if state is None or now >= state[0] + self.window:
            state = self._fixed[key] = [now, 0]
        allowed = state[1] < self.limit
        if allowed or self.count_rejected:
            state[1] += 1
        return Decision(allowed, max(0, self.limit - int(state[1])), state[0] + self.window - now)

    def _acquire_sliding(self, key: str, now: float) -> Decision:
        log = self._sliding.setdefault(key, deque())
        horizon = now - self.window
        while log and log[0] <= horizon:
            log.popleft()
        allowed = len(log) < self.limit
        if allowed or self.count_rejected:
            log.append(now)
        remaining = max(0, self.limit - len(log))
        if len(log) >= self.limit:
            reset = log[len(log) - self.limit] + self.window - now  # when the next slot frees
        else:
            reset = log[0] + self.window - now if log else 0.0
        return Decision(allowed, remaining, reset)


class WindowMeter:
    """The most requests any key sent within any ``window`` seconds (a sliding log of arrivals)."""

    def __init__(self, window: float, clock=time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: dict[str, deque[float]] = {}
        self.max_by_key: dict[str, int] = {}

    def record(self, key: str) -> None:
        now = self._clock()
        with self._lock:
            log = self._logs.setdefault(key, deque())
            horizon = now - self.window
            while log and log[0] <= horizon:
                log.popleft()
            log.append(now)
            if len(log) > self.max_by_key.get(key, 0):
                self.max_by_key[key] = len(log)

    def reset(self) -> None:
        with self._lock:
            self._logs.clear()
            self.max_by_key.clear()
