"""The API key's request budget, shared by every thread and process that uses the key on one machine.

The API allows N requests per W seconds per key. The budget keeps a log of the requests made in the
last window: an entry is taken before a request starts and, when the answer arrives, re-stamped with
the answer's time. A slot is free again only W (+ a small margin) after the *answer*, so however long
the request took on the wire, the server has counted it before its slot is reused: network latency
and jitter cannot push the server over the limit, and the cost is one latency per window (~3% at
300 ms on a 10 s window).

With a state directory the log lives in a small JSON file named after a hash of the API host and key
(never the key itself), guarded by a file lock, so concurrent tasks, DAG runs and backfills on one
machine share one budget. Without one, the budget is shared by the threads of this process only.

The server's own signals come on top: when an answer says ``X-RateLimit-Remaining: 0`` or is a 429,
every user of the budget pauses until the reset the server announced (plus a margin).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from letsjobit import files
from letsjobit.api.keystate import key_state_path

log = logging.getLogger(__name__)

STATE_FORMAT_VERSION = 1
# Poll interval while every slot is held by a request still in flight (its end time is unknown).
IN_FLIGHT_POLL_SECONDS = 0.02
# A request that never reported back (its process died) stops holding a slot after this long.
STALE_IN_FLIGHT_SECONDS = 300.0
# Longest pause the server's headers are believed for; anything longer is a clock or parsing error.
MAX_SERVER_PAUSE_SECONDS = 3600.0


class BudgetCancelled(Exception):
    """The caller stopped waiting for a slot (the extraction is being shut down)."""


@dataclass(frozen=True)
class Slot:
    """A taken request slot; hand it back to :meth:`RateBudget.release` when the answer arrives."""

    slot_id: str
    waited_seconds: float


def budget_state_path(state_dir: Path, base_url_host: str, api_key: str) -> Path:
    """The shared state file of one API key on one API host: named by a hash, never by the key."""
    return key_state_path(state_dir, "rate-budget", base_url_host, api_key)


class _MemoryStore:
    """Budget state shared by the threads of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict = {"entries": {}, "blocked_until": 0.0}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        with self._lock:
            yield self._state


class _FileStore:
    """Budget state in a JSON file under a file lock, shared by every process on the machine."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()
        self._file_lock = FileLock(str(self.path) + ".lock", thread_local=False)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        with self._thread_lock, self._file_lock:
            state = self._read()
            yield state
            self._write(state)

    def _read(self) -> dict:
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"entries": {}, "blocked_until": 0.0}
        except (OSError, ValueError) as exc:
            # A torn file can only come from a crash mid-write; starting afresh is safe because the
            # server's own headers and 429s still pace us.
            log.warning("Rate budget state %s unreadable (%s); starting a fresh log", self.path, exc)
            return {"entries": {}, "blocked_until": 0.0}
        if state.get("v") != STATE_FORMAT_VERSION:
            return {"entries": {}, "blocked_until": 0.0}
        return state

    def _write(self, state: dict) -> None:
        state["v"] = STATE_FORMAT_VERSION
        # Compact, and not fsynced: it is rewritten twice a request, and a file lost to a power cut only
        # restarts the log (see _read).
        files.write_json(self.path, state, indent=False)


class RateBudget:
    """A sliding-window request budget: at most ``limit`` requests in any ``window_seconds``.

    ``margin_seconds`` is added to the window so that clock granularity and the server's own rounding
    never let a request land one tick early. Time is ``time.monotonic`` (system-wide on Linux, so the
    processes sharing a state file agree on it).
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        margin_seconds: float = 0.05,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError(f"rate budget needs limit >= 1 and window > 0, got {limit} / {window_seconds}")
        self.limit = int(limit)
        self.window_seconds = float(window_seconds)
        self.margin_seconds = float(margin_seconds)
        self.state_path = state_path
        self._store = _FileStore(state_path) if state_path else _MemoryStore()
        self._clock = clock
        self._ids = itertools.count()
        self._owner = f"{os.getpid()}-{id(self):x}"

    def __repr__(self) -> str:
        where = f"shared via {self.state_path.name}" if self.state_path else "this process only"
        return f"RateBudget({self.limit} requests / {self.window_seconds:g} s, {where})"

    # -- taking and returning slots ------------------------------------------------------------

    def acquire(self, cancel: threading.Event | None = None) -> Slot:
        """Block until a request may start; the returned slot counts against the budget."""
        waited = 0.0
        while True:
            with self._store.transaction() as state:
                now = self._clock()
                self._prune(state, now)
                delay = self._delay(state, now)
                if delay <= 0:
                    slot_id = f"{self._owner}-{next(self._ids)}"
                    state["entries"][slot_id] = [now, True]
                    return Slot(slot_id, waited)
            if cancel is not None:
                if cancel.wait(delay):
                    raise BudgetCancelled("stopped while waiting for the rate budget")
            else:
                time.sleep(delay)
            waited += delay

    def release(self, slot: Slot) -> None:
        """The request's answer (or failure) arrived: its slot stays taken for one window from now."""
        with self._store.transaction() as state:
            state["entries"][slot.slot_id] = [self._clock(), False]

    def observe(self, remaining: int | None, reset_seconds: float | None) -> float:
        """Apply the server's rate headers from an answer; returns the pause imposed (0 if none)."""
        if remaining is None or remaining > 0:
            return 0.0
        pause = (reset_seconds if reset_seconds is not None else self.window_seconds) + self.margin_seconds
        with self._store.transaction() as state:
            now = self._clock()
            self._prune(state, now)
            # Our own log already holds the key's whole budget: it frees each slot exactly one window
            # after that request's answer, which is never earlier than the server frees it, and more
            # precisely than the header's whole-second reset. The header only matters when the server
            # counts more than we do (another user of the key, or a smaller limit than configured).
            if len(state["entries"]) >= self.limit:
                return 0.0
            state["blocked_until"] = max(float(state.get("blocked_until", 0.0)), now + pause)
        return pause

    def pause_for(self, seconds: float) -> None:
        """Nobody sharing this budget starts a request for ``seconds`` (after a 429 or Remaining: 0)."""
        with self._store.transaction() as state:
            until = self._clock() + max(0.0, seconds)
            state["blocked_until"] = max(float(state.get("blocked_until", 0.0)), until)

    # -- internals -----------------------------------------------------------------------------

    def _prune(self, state: dict, now: float) -> None:
        horizon = self.window_seconds + self.margin_seconds
        entries = state["entries"]
        for slot_id, (stamp, in_flight) in list(entries.items()):
            expired = now - stamp >= (STALE_IN_FLIGHT_SECONDS if in_flight else horizon)
            # An entry from the future comes from before a reboot (monotonic clock restarted).
            if expired or stamp > now + horizon:
                del entries[slot_id]

    def _delay(self, state: dict, now: float) -> float:
        blocked = float(state.get("blocked_until", 0.0)) - now
        if blocked > 0:
            # A blocked_until further away than any plausible reset is left over from before a reboot.
            if blocked > MAX_SERVER_PAUSE_SECONDS + self.window_seconds:
                state["blocked_until"] = 0.0
            else:
                return blocked
        entries = state["entries"]
        if len(entries) < self.limit:
            return 0.0
        horizon = self.window_seconds + self.margin_seconds
        done = sorted(stamp for stamp, in_flight in entries.values() if not in_flight)
        # The (excess+1)-th oldest finished entry frees the slot we need; in-flight ones free later.
        needed = len(entries) - self.limit + 1
        if len(done) >= needed:
            return max(done[needed - 1] + horizon - now, 0.001)
        return IN_FLIGHT_POLL_SECONDS


def parse_rate_headers(headers) -> tuple[int | None, float | None]:
    """``(remaining, reset_seconds)`` from an answer's headers, whichever spelling the server used.

    The reference names ``X-RateLimit-Remaining`` and ``X-Rate-Limit-Reset``; both spellings of each are
    read, plus ``Retry-After``. A reset that looks like a Unix timestamp is turned into seconds from now.
    """

    def first(*names: str) -> str | None:
        for name in names:
            value = headers.get(name)
            if value not in (None, ""):
                return value
        return None

    remaining_raw = first("X-RateLimit-Remaining", "X-Rate-Limit-Remaining")
    reset_raw = first("X-Rate-Limit-Reset", "X-RateLimit-Reset", "Retry-After")
    remaining = None
    reset = None
    if remaining_raw is not None:
        try:
            remaining = int(float(remaining_raw))
        except (ValueError, OverflowError):  # OverflowError: "inf", "1e400"
            log.warning("Ignoring unparseable X-RateLimit-Remaining header %r", remaining_raw)
    if reset_raw is not None:
        try:
            reset = float(reset_raw)
        except ValueError:
            log.warning("Ignoring unparseable rate-limit reset header %r", reset_raw)
        else:
            if reset > 1e9:  # an epoch timestamp rather than a number of seconds
                reset = reset - time.time()
            if not math.isfinite(reset) or reset < 0:
                reset = 0.0
            reset = min(reset, MAX_SERVER_PAUSE_SECONDS)
    return remaining, reset
