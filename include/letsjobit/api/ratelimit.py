"""The API key's request budget, shared by every thread and process that uses the key on one machine.

The API allows N requests per W seconds per key. The budget keeps a log of the requests made in the
last window: an entry is taken before a request starts and, when the answer arrives, re-stamped with
the answer's time. A slot is free again only W (+ a small margin) after the *answer*, so however long
the request took on the wire, the server has counted it before its slot is reused: network latency
and jitter cannot push the server over the limit, and the cost is one latency per window (~3% at
300 ms on a 10 s window).

Where the log lives is the budget's store (:class:`BudgetStore`); the window arithmetic here is the same
for all of them. With ``rate_budget_url`` it is in Redis (``ratelimit_redis.py``), so workers on every
host share the key's one budget. Otherwise, with a state directory, it is a small JSON file named after
a hash of the API host and key (never the key itself), guarded by a file lock, so concurrent tasks, DAG
runs and backfills on one machine share one budget. Without either, the budget is shared by the threads
of this process only. :func:`budget_for` picks the store from the client's settings.

The server's own signals come on top: when an answer says ``X-RateLimit-Remaining: 0`` or is a 429,
every user of the budget pauses until the reset the server announced (plus a margin).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from filelock import FileLock

from letsjobit import files
from letsjobit.api.keystate import key_state_name, key_state_path

if TYPE_CHECKING:
    from letsjobit.api.settings import ClientSettings

log = logging.getLogger(__name__)

STATE_FORMAT_VERSION = 1
# Poll interval while every slot is held by a request still in flight (its end time is unknown).
IN_FLIGHT_POLL_SECONDS = 0.02
# A request that never reported back (its process died) stops holding a slot after this long.
STALE_IN_FLIGHT_SECONDS = 300.0
# Longest pause the server's headers are believed for; anything longer is a clock or parsing error.
MAX_SERVER_PAUSE_SECONDS = 3600.0
BUDGET_STATE_KIND = "rate-budget"

T = TypeVar("T")


class BudgetCancelled(Exception):
    """The caller stopped waiting for a slot (the extraction is being shut down)."""


@dataclass(frozen=True)
class Slot:
    """A taken request slot; hand it back to :meth:`RateBudget.release` when the answer arrives."""

    slot_id: str
    waited_seconds: float


def budget_state_path(state_dir: Path, base_url_host: str, api_key: str) -> Path:
    """The shared state file of one API key on one API host: named by a hash, never by the key."""
    return key_state_path(state_dir, BUDGET_STATE_KIND, base_url_host, api_key)


def fresh_state() -> dict:
    """The state of a budget nobody has used: no requests logged, no pause."""
    return {"entries": {}, "blocked_until": 0.0}


class BudgetStore(Protocol):
    """Where a budget's state lives: ``{"entries": {slot_id: [stamp, in_flight]}, "blocked_until": t}``.

    A store only makes each change atomic for every user of the budget and says what time it is; the
    budget's rules are :class:`RateBudget`'s, the same whatever the store.
    """

    def transact(self, change: Callable[[dict, float], T]) -> T:
        """Run ``change(state, now)`` as one atomic read-modify-write and keep the state it leaves.

        A store may run ``change`` more than once (an optimistic store retries after a conflict): only the
        last run's state and result count, so ``change`` must not act outside the state.
        """
        ...

    def describe(self) -> str:
        """Where the state is, for a log line: never a secret."""
        ...


class _MemoryStore:
    """Budget state shared by the threads of this process."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._state = fresh_state()
        self._clock = clock

    def transact(self, change: Callable[[dict, float], T]) -> T:
        with self._lock:
            return change(self._state, self._clock())

    def describe(self) -> str:
        return "this process only"


class _FileStore:
    """Budget state in a JSON file under a file lock, shared by every process on the machine."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()
        self._file_lock = FileLock(str(self.path) + ".lock", thread_local=False)
        self._clock = clock

    def transact(self, change: Callable[[dict, float], T]) -> T:
        with self._thread_lock, self._file_lock:
            state = self._read()
            result = change(state, self._clock())
            self._write(state)
            return result

    def describe(self) -> str:
        return f"shared via {self.path.name}"

    def _read(self) -> dict:
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return fresh_state()
        except (OSError, ValueError) as exc:
            # A torn file can only come from a crash mid-write; starting afresh is safe because the
            # server's own headers and 429s still pace us.
            log.warning("Rate budget state %s unreadable (%s); starting a fresh log", self.path, exc)
            return fresh_state()
        if state.get("v") != STATE_FORMAT_VERSION:
            return fresh_state()
        return state

    def _write(self, state: dict) -> None:
        state["v"] = STATE_FORMAT_VERSION
        # Compact, and not fsynced: it is rewritten twice a request, and a file lost to a power cut only
        # restarts the log (see _read).
        files.write_json(self.path, state, indent=False)


class RateBudget:
    """A sliding-window request budget: at most ``limit`` requests in any ``window_seconds``.

    ``margin_seconds`` is added to the window so that clock granularity and the server's own rounding
    never let a request land one tick early. The state is in ``store`` if given, else in the file
    ``state_path``, else in this process. Time is the store's: ``clock`` (``time.monotonic``, system-wide on
    Linux, so the processes sharing a state file agree on it) for the file and in-process stores, the
    Redis server's for the Redis store. ``stale_in_flight_seconds``: see STALE_IN_FLIGHT_SECONDS.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        margin_seconds: float = 0.05,
        state_path: Path | None = None,
        store: BudgetStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        stale_in_flight_seconds: float = STALE_IN_FLIGHT_SECONDS,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError(f"rate budget needs limit >= 1 and window > 0, got {limit} / {window_seconds}")
        if store is not None and state_path is not None:
            raise ValueError("rate budget takes a store or a state_path, not both")
        self.limit = int(limit)
        self.window_seconds = float(window_seconds)
        self.margin_seconds = float(margin_seconds)
        self.stale_in_flight_seconds = float(stale_in_flight_seconds)
        self.state_path = state_path
        self.store: BudgetStore = store or (
            _FileStore(state_path, clock) if state_path else _MemoryStore(clock)
        )
        self._ids = itertools.count()
        # Slot ids must not collide between hosts, where pids and object addresses may repeat.
        self._owner = f"{os.getpid()}-{secrets.token_hex(4)}"

    def __repr__(self) -> str:
        return f"RateBudget({self.limit} requests / {self.window_seconds:g} s, {self.store.describe()})"

    # -- taking and returning slots ------------------------------------------------------------

    def acquire(self, cancel: threading.Event | None = None) -> Slot:
        """Block until a request may start; the returned slot counts against the budget."""
        waited = 0.0
        while True:
            slot_id = f"{self._owner}-{next(self._ids)}"

            def take(state: dict, now: float, slot_id: str = slot_id) -> float:
                self._prune(state, now)
                delay = self._delay(state, now)
                if delay <= 0:
                    state["entries"][slot_id] = [now, True]
                return delay

            delay = self.store.transact(take)
            if delay <= 0:
                return Slot(slot_id, waited)
            if cancel is not None:
                if cancel.wait(delay):
                    raise BudgetCancelled("stopped while waiting for the rate budget")
            else:
                time.sleep(delay)
            waited += delay

    def release(self, slot: Slot) -> None:
        """The request's answer (or failure) arrived: its slot stays taken for one window from now."""

        def stamp_answer(state: dict, now: float) -> None:
            state["entries"][slot.slot_id] = [now, False]

        self.store.transact(stamp_answer)

    def observe(self, remaining: int | None, reset_seconds: float | None) -> float:
        """Apply the server's rate headers from an answer; returns the pause imposed (0 if none)."""
        if remaining is None or remaining > 0:
            return 0.0
        pause = (reset_seconds if reset_seconds is not None else self.window_seconds) + self.margin_seconds

        def block(state: dict, now: float) -> float:
            self._prune(state, now)
            # Our own log already holds the key's whole budget: it frees each slot exactly one window
            # after that request's answer, which is never earlier than the server frees it, and more
            # precisely than the header's whole-second reset. The header only matters when the server
            # counts more than we do (another user of the key, or a smaller limit than configured).
            if len(state["entries"]) >= self.limit:
                return 0.0
            state["blocked_until"] = max(float(state.get("blocked_until", 0.0)), now + pause)
            return pause

        return self.store.transact(block)

    def pause_for(self, seconds: float) -> None:
        """Nobody sharing this budget starts a request for ``seconds`` (after a 429 or Remaining: 0)."""

        def block(state: dict, now: float) -> None:
            until = now + max(0.0, seconds)
            state["blocked_until"] = max(float(state.get("blocked_until", 0.0)), until)

        self.store.transact(block)

    # -- internals -----------------------------------------------------------------------------

    def _prune(self, state: dict, now: float) -> None:
        horizon = self.window_seconds + self.margin_seconds
        entries = state["entries"]
        for slot_id, (stamp, in_flight) in list(entries.items()):
            expired = now - stamp >= (self.stale_in_flight_seconds if in_flight else horizon)
            # An entry from the future comes from before a reboot (monotonic clock restarted), or from
            # before the Redis server's clock was stepped back.
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


def budget_for(settings: ClientSettings, api_host: str) -> RateBudget:
    """The key's budget as the settings choose it: in Redis when ``rate_budget_url`` is set (every host
    shares it), else in a file under ``rate_state_dir`` (this machine), else in this process."""
    store: BudgetStore | None = None
    if settings.rate_budget_url:
        from letsjobit.api.ratelimit_redis import RedisStore  # redis-py is only imported when used

        horizon = settings.window_seconds + settings.rate_margin_seconds
        store = RedisStore(
            settings.rate_budget_url,
            key_state_name(BUDGET_STATE_KIND, api_host, settings.api_key),
            keep_seconds=max(STALE_IN_FLIGHT_SECONDS, horizon),
        )
    return RateBudget(
        settings.requests_per_window,
        settings.window_seconds,
        margin_seconds=settings.rate_margin_seconds,
        store=store,
        state_path=(
            budget_state_path(settings.rate_state_dir, api_host, settings.api_key)
            if store is None and settings.rate_state_dir
            else None
        ),
    )


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
