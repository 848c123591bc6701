"""Fault injection for the simulator: random rates, a deterministic queue, a forced status, offset drift.

Faults are off by default. Each API request (after auth and the rate limit admitted it, so it counts in
the window like any request the server saw) draws at most one fault, in this order:

1. ``force_status``: every answer is this error status until cleared;
2. ``fail_next``: a queue consumed one entry per request, e.g. ``[500, 500, 429, "drop", "ok"]``;
3. the random rates: ``drop_rate``, ``error_rate`` (500/503), ``spurious_429_rate``, ``truncate_rate``;
   ``slow_rate`` is drawn on its own and adds ``slow_ms``.

Error and 429 faults are decided before the request is processed (a failed write changed nothing); slow,
truncated, short and dropped answers happen after it (a write went through but its answer was lost).

Fault kinds (``FAULT_KINDS``), usable in ``fail_next``:
``500``/``503``/any status int: an error answer in the API's shape, with rate headers;
``429``: a spurious rate-limit answer with headers (remaining 0, reset ``spurious_429_reset_seconds``);
``429-no-headers``: the same without the rate headers; ``slow``: ``slow_ms`` extra latency;
``truncate``: status 200, the JSON body cut in half with a matching Content-Length;
``short``: the full Content-Length is announced, half the body is sent, the connection is closed;
``drop``: the connection is closed without an answer; ``ok``: no fault for this request.

Offset drift: every ``drift_every`` list requests, ``drift_deletes`` visits are deleted, ``drift_updates``
updated and ``drift_inserts`` inserted (at ``drift_position``, default the store's insert position).
Random draws come from ``random.Random(seed)``, so a single client sees a reproducible sequence.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, fields, replace

FAULT_KINDS = ("500", "503", "429", "429-no-headers", "slow", "truncate", "short", "drop", "ok")


@dataclass
class FaultConfig:
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    spurious_429_rate: float = 0.0
    spurious_429_reset_seconds: float = 1.0
    slow_rate: float = 0.0
    slow_ms: float = 2000.0
    truncate_rate: float = 0.0
    drop_rate: float = 0.0
    fail_next: list = field(default_factory=list)
    force_status: int | None = None
    drift_every: int = 0
    drift_inserts: int = 0
    drift_deletes: int = 0
    drift_updates: int = 0
    drift_position: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "spurious_429_rate", "slow_rate", "truncate_rate", "drop_rate"):
            rate = getattr(self, name)
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"fault {name} must be between 0 and 1, got {rate!r}")
        self.error_statuses = tuple(int(s) for s in self.error_statuses)
        self.fail_next = [_check_kind(kind) for kind in self.fail_next]
        if self.force_status is not None and not 400 <= int(self.force_status) <= 599:
            raise ValueError(f"force_status must be an HTTP error status, got {self.force_status!r}")
        for name in ("drift_every", "drift_inserts", "drift_deletes", "drift_updates"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: dict) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_kind(kind):
    if isinstance(kind, bool):
        raise ValueError(f"fault kind must be a status or one of {FAULT_KINDS}, got {kind!r}")
    if isinstance(kind, int) or (isinstance(kind, str) and kind.isdigit()):
        status = int(kind)
        if not 400 <= status <= 599:
            raise ValueError(f"fault status must be 400..599, got {kind!r}")
        return str(status)
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind must be a status or one of {FAULT_KINDS}, got {kind!r}")
    return kind


class FaultInjector:
    """Thread-safe holder of the current FaultConfig; decides each request's fault."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._list_requests = 0
        self.set(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return replace(self._config, fail_next=list(self._config.fail_next))

    def set(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = replace(config, fail_next=list(config.fail_next))
            self._rng = random.Random(config.seed)
            self._drift_rng = random.Random(f"drift-{config.seed}")
            self._list_requests = 0

    def push(self, *kinds) -> None:
        checked = [_check_kind(kind) for kind in kinds]
        with self._lock:
            self._config.fail_next.extend(checked)

    def decide(self) -> tuple[str | None, bool]:
        """(fault kind or None, slow?) for one request."""
        with self._lock:
            c = self._config
            if c.force_status is not None:
                return str(c.force_status), False
            slow = c.slow_rate > 0 and self._rng.random() < c.slow_rate
            if c.fail_next:
                kind = c.fail_next.pop(0)
                if kind == "slow":
                    return None, True
                return (None if kind == "ok" else kind), slow
            if not (c.drop_rate or c.error_rate or c.spurious_429_rate or c.truncate_rate):
                return None, slow
            x = self._rng.random()
            for rate, kind in (
                (c.drop_rate, "drop"),
                (c.error_rate, "error"),
                (c.spurious_429_rate, "429"),
                (c.truncate_rate, "truncate"),
            ):
                if x < rate:
                    if kind == "error":
                        kind = str(c.error_statuses[int(self._rng.random() * len(c.error_statuses))])
                    return kind, slow
                x -= rate
            return None, slow

    def drift_due(self) -> dict | None:
        """Called on each list request; the drift to apply now (inserts/deletes/updates), or None."""
        with self._lock:
            c = self._config
            if c.drift_every <= 0 or not (c.drift_inserts or c.drift_deletes or c.drift_updates):
                return None
            self._list_requests += 1
            if self._list_requests % c.drift_every:
                return None
            return {
                "inserts": c.drift_inserts,
                "deletes": c.drift_deletes,
                "updates": c.drift_updates,
                "position": c.drift_position,
                "rng": self._drift_rng,
            }
