"""Progress of a listing in lines a person can follow: every few seconds while it runs, and once at the end."""

from __future__ import annotations

import logging
import time

from letsjobit.api.paging import ScanStats
from letsjobit.api.settings import describe_filters

log = logging.getLogger(__name__)


class Progress:
    """Progress lines a person can follow: pages done / planned, visits/s, rate waits, retries, drift."""

    def __init__(self, stats: ScanStats, interval: float, params: dict) -> None:
        self.stats = stats
        self.interval = interval
        self.params = params
        self.last = time.monotonic()

    def maybe_log(self) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        s = self.stats
        elapsed = max(now - s.started, 1e-9)
        log.info(
            "Visits%s: page %s/%s (%.0f%%), %s visits, %.0f visits/s, %s waits for the rate budget "
            "(%.1f s summed over threads), %s 429s, "
            "%s retries, %s drift events",
            describe_filters(self.params),
            s.pages,
            max(s.pages_planned, s.pages),
            100.0 * min(s.pages / max(s.pages_planned, 1), 1.0),
            s.distinct_visits,
            s.distinct_visits / elapsed,
            s.rate_waits,
            s.rate_wait_seconds,
            s.rate_limited_429,
            sum(s.retries.values()),
            sum(s.drift.values()),
        )

    def log_done(self) -> None:
        s = self.stats
        log.info(
            "Visits%s done: %s distinct visits (%s reported at start, %s at end) in %s pages / %s requests, "
            "%.1f s, %.0f visits/s; %s waits for the rate budget (%.1f s summed over threads), %s 429s, "
            "%s retries%s, drift: %s",
            describe_filters(self.params),
            s.distinct_visits,
            s.total_records_first,
            s.total_records_last,
            s.pages,
            s.requests,
            s.wall_seconds,
            s.distinct_visits / max(s.wall_seconds, 1e-9),
            s.rate_waits,
            s.rate_wait_seconds,
            s.rate_limited_429,
            sum(s.retries.values()),
            f" {dict(s.retries)}" if s.retries else "",
            dict(s.drift) or "none",
        )
