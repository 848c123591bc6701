"""Drift-safe paging: every visit that existed for the whole listing, exactly once, read concurrently.

* The first page gives ``totalRecords``; every other offset is then known, so pages are fetched
  concurrently by a few threads (:class:`PageFetcher`), all drawing on one
  :class:`~letsjobit.api.ratelimit.RateBudget`.
* Consecutive pages overlap by one record (offsets 0, 99, 198, ... for 100-record pages). A page is
  *linked* to the chain when it shares at least one ``_id`` with the last linked page. Because the
  listing keeps insertion order, two linked pages cover, between them, every record that existed at
  both fetch times; a chain of linked pages from offset 0 to a page with ``remainingRecords == 0``
  therefore delivers every visit that existed for the whole extraction. Deletions during the run
  shift later offsets and break a link; the break is repaired by re-fetching around the last linked
  record until the chain is whole again (:class:`Stitcher`), and ``_id`` de-duplication
  (:func:`deliver`) drops what was read twice.

:class:`ScanStats` holds what one extraction did, for the progress log and the raw zone's manifest.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from letsjobit.api.errors import LetsJobItDriftError
from letsjobit.api.pages import Page
from letsjobit.api.ratelimit import BudgetCancelled
from letsjobit.api.settings import ClientSettings

log = logging.getLogger(__name__)

# Drift events described one by one in ScanStats.drift_log; later ones are only counted.
DRIFT_LOG_SIZE = 50
# totalRecords changes logged at INFO; later ones at DEBUG (a listing that keeps changing would flood).
TOTAL_CHANGES_LOGGED = 5


@dataclass
class ScanStats:
    """What one extraction did; filled while it runs (by the page threads too), read for the progress log
    and the manifest."""

    started: float = field(default_factory=time.monotonic)
    total_records_first: int | None = None
    total_records_last: int | None = None
    pages_planned: int = 0
    pages: int = 0
    records_read: int = 0
    distinct_visits: int = 0
    duplicates_dropped: int = 0
    records_without_id: int = 0
    requests: int = 0
    rate_limited_429: int = 0
    retries: Counter = field(default_factory=Counter)
    rate_waits: int = 0
    rate_wait_seconds: float = 0.0
    drift: Counter = field(default_factory=Counter)
    drift_log: list = field(default_factory=list)
    wall_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str, n: float = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def count_retry(self, kind: str) -> None:
        with self._lock:
            self.retries[kind] += 1

    def count_rate_wait(self, seconds: float) -> None:
        with self._lock:
            self.rate_waits += 1
            self.rate_wait_seconds += seconds

    def count_page(self, records: int, delivered: int, without_id: int, distinct_visits: int) -> None:
        """One page delivered: ``records`` read, ``delivered`` of them new (``without_id`` among them)."""
        with self._lock:
            self.pages += 1
            self.records_read += records
            self.distinct_visits = distinct_visits
            self.duplicates_dropped += records - delivered
            self.records_without_id += without_id

    def note_drift(self, kind: str, detail: str, keep: int = DRIFT_LOG_SIZE) -> int:
        """Count a drift event and describe it (the first ``keep`` only); returns the events of its kind."""
        with self._lock:
            self.drift[kind] += 1
            if len(self.drift_log) < keep:
                self.drift_log.append({"kind": kind, "detail": detail})
            return self.drift[kind]

    def as_dict(self) -> dict:
        with self._lock:
            return {
                "total_records_reported": self.total_records_first,
                "total_records_reported_last": self.total_records_last,
                "distinct_visits": self.distinct_visits,
                "records_read": self.records_read,
                "duplicates_dropped": self.duplicates_dropped,
                "records_without_id": self.records_without_id,
                "pages_planned": self.pages_planned,
                "pages": self.pages,
                "requests": self.requests,
                "rate_limited_429": self.rate_limited_429,
                "retries": sum(self.retries.values()),
                "retries_by_kind": dict(self.retries),
                "rate_waits": self.rate_waits,
                "rate_wait_seconds": round(self.rate_wait_seconds, 3),
                "drift_events": sum(self.drift.values()),
                "drift_by_kind": dict(self.drift),
                "drift_log": list(self.drift_log),
                "wall_seconds": round(self.wall_seconds, 3),
            }


def deliver(page: Page, seen: set[str], stats: ScanStats) -> Page:
    """Fill ``page.new_data`` with the records no earlier page delivered (``seen``: their ``_id``s) and
    count the page; a record without an ``_id`` is always delivered, it cannot be de-duplicated."""
    fresh = []
    without_id = 0
    for record in page.data:
        visit_id = record.get("_id") if isinstance(record, dict) else None
        if not isinstance(visit_id, str) or not visit_id:
            without_id += 1
            fresh.append(record)
        elif visit_id not in seen:
            seen.add(visit_id)
            fresh.append(record)
    page.new_data.extend(fresh)
    stats.count_page(len(page.data), len(fresh), without_id, len(seen))
    # Only the thread consuming the pages reads and sets the last total.
    previous = stats.total_records_last
    if previous is not None and page.total_records != previous:
        changes = stats.note_drift(
            "total_changed", f"totalRecords {previous} -> {page.total_records} (page at offset {page.offset})"
        )
        log.log(
            logging.INFO if changes <= TOTAL_CHANGES_LOGGED else logging.DEBUG,
            "Drift: totalRecords changed %s -> %s (page at offset %s); the page chain check will "
            "catch any shift",
            previous,
            page.total_records,
            page.offset,
        )
    stats.total_records_last = page.total_records
    if without_id:
        log.warning(
            "Page at offset %s: %s records without an _id (delivered, not de-duplicated)",
            page.offset,
            without_id,
        )
    return page


@dataclass(frozen=True)
class _Request:
    kind: str  # "planned" or "repair"
    index: int  # planned: position in the chain plan; repair: attempt number
    offset: int


class _Span:
    """What the chain needs of a fetched page: where it was asked for and which ids it held."""

    __slots__ = ("offset", "ids", "id_set", "remaining", "total", "fetched")

    def __init__(self, page: Page) -> None:
        self.fetched = time.monotonic()
        self.offset = page.offset
        self.ids = page.ids
        self.id_set = frozenset(self.ids)
        self.remaining = page.remaining_records
        self.total = page.total_records

    @property
    def is_tail(self) -> bool:
        return self.remaining == 0

    def links_to(self, other: _Span) -> bool:
        return not self.id_set.isdisjoint(other.id_set)


class Stitcher:
    """Keeps the chain of linked pages from offset 0 to the listing's end, and says what to fetch next.

    ``tail`` is the last page linked to the chain. Planned pages are linked in offset order as they
    arrive; when the next one does not share an id with ``tail`` (records were deleted or moved between
    the two fetches), a repair page is fetched where ``tail``'s last record should now be, moving left or
    right until it links, and the chain continues from there.
    """

    def __init__(self, first: Page, settings: ClientSettings, stats: ScanStats) -> None:
        self.stats = stats
        self.max_repair_attempts = settings.max_repair_attempts
        # Pages requested ahead of the chain: enough to keep every thread busy, few enough that the
        # pages waiting to be consumed stay a small, fixed amount of memory.
        self.lookahead = max(2 * settings.max_concurrency, 8)
        self.page_size = max(len(first.data), 1)
        self.stride = self.page_size - 1 if self.page_size > 1 else 1
        total = first.total_records
        self.planned_count = 1 + max(0, math.ceil(max(0, total - self.page_size) / self.stride))
        self.offsets: dict[int, int] = {}
        self.spans: dict[int, _Span] = {}
        self.requested: set[int] = {0}
        self.next_index = 1
        self.tail = _Span(first)
        # The chain's pages just before the tail: a re-read sharing ids with them lies left of the tail.
        self.behind: deque[_Span] = deque(maxlen=32)
        self.latest_total = total
        self.repair_offset: int | None = None
        self.repair_attempts = 0
        self.repair_requested = False
        self.repair_started = 0.0
        self.repair_low: int = -1
        self.repair_high: int | None = None
        # Records per second that deletions moved the listing left, as measured by the last repair.
        self.shift_rate = 0.0
        self.complete = self.tail.is_tail
        if self.page_size == 1 and not self.complete:
            log.warning("The API answers one record a page: offset drift cannot be detected in this listing")

    def offset_of(self, index: int) -> int:
        return self.offsets.get(index, index * self.stride)

    def requests(self) -> list[_Request]:
        out = []
        if self.repair_offset is not None and not self.repair_requested:
            out.append(_Request("repair", self.repair_attempts, self.repair_offset))
            self.repair_requested = True
        for index in range(self.next_index, self.next_index + self.lookahead):
            if index in self.requested:
                continue
            if index >= self.planned_count and index not in self.offsets:
                break
            self.requested.add(index)
            out.append(_Request("planned", index, self.offset_of(index)))
        return out

    def add(self, request: _Request, page: Page) -> None:
        span = _Span(page)
        self.latest_total = span.total
        if request.kind == "repair":
            self._on_repair(span)
        elif request.index >= self.next_index:
            self.spans[request.index] = span
        self._advance()

    def _advance(self) -> None:
        while not self.complete and self.repair_offset is None:
            if self.tail.is_tail:
                self.complete = True
                return
            index = self.next_index
            if index >= self.planned_count and index not in self.offsets:
                # The plan is used up but the chain's last page was not the listing's end: it grew.
                self.offsets[index] = self.tail.offset + max(len(self.tail.ids), 1) - 1
                self.stats.note_drift(
                    "listing_grew", f"continuing past the plan at offset {self.offsets[index]}"
                )
                log.info("Drift: the listing grew; reading on from offset %s", self.offsets[index])
                return
            if self.page_size == 1:
                # One-record pages cannot overlap, so the chain cannot be checked: take them in order.
                if index not in self.spans:
                    return
                self._link(index)
                continue
            linked = [i for i, ahead in self.spans.items() if i >= index and self.tail.links_to(ahead)]
            if linked:
                # Jump to the furthest page the tail already links to (earlier ones add nothing new).
                self._link(max(linked))
                continue
            span = self.spans.get(index)
            if span is None:
                return
            self._start_repair(span)

    def _link(self, index: int) -> None:
        self._set_tail(self.spans[index])
        for i in [i for i in self.spans if i <= index]:
            del self.spans[i]
        self.next_index = index + 1

    def _set_tail(self, span: _Span) -> None:
        self.behind.append(self.tail)
        self.tail = span

    def _start_repair(self, unlinked: _Span) -> None:
        self.repair_offset = self._guess_tail_end()
        self.repair_attempts = 0
        self.repair_requested = False
        self.repair_started = time.monotonic()
        self.repair_low, self.repair_high = -1, None
        detail = (
            f"page at offset {unlinked.offset} shares no visit with the page at offset {self.tail.offset}; "
            f"totalRecords {self.tail.total} -> {self.latest_total}; re-reading from offset {self.repair_offset}"
        )
        self.stats.note_drift("chain_break", detail)
        log.warning("Drift detected: %s", detail)

    def _guess_tail_end(self) -> int:
        """Where the tail's last record probably is now, minus a small margin so the re-read overlaps it.

        Deletions shift records left. The fall in totalRecords misses deletions that inserts offset, so
        the shift rate the last repair measured, over the tail's age, is used when it says more.
        """
        age = time.monotonic() - self.tail.fetched
        deleted_estimate = max(0, self.tail.total - self.latest_total, round(self.shift_rate * age))
        margin = max(1, self.stride // 10)
        last_offset = self.tail.offset + max(len(self.tail.ids), 1) - 1
        return max(0, last_offset - deleted_estimate - margin)

    def _on_repair(self, span: _Span) -> None:
        """Link the re-read page to the chain, or choose where to re-read next.

        A re-read sharing ids with the tail tells exactly where the tail's latest surviving record is
        now. One sharing ids with an earlier page of the chain is part of the chain too, and fresher
        than the tail: the chain continues from it (re-reading a little, never skipping). One sharing
        nothing known lies after the tail (records before it were deleted), or, when its offset is below
        the tail's, before everything remembered. Offsets found too far left or right bound the search.
        """
        self.repair_attempts += 1
        self.repair_requested = False
        if span.offset == 0 and not span.ids and span.is_tail:
            # Everything was deleted meanwhile: no visit that existed throughout is left to read.
            self._repaired(span)
            return
        shared = [i for i, visit_id in enumerate(span.ids) if visit_id in self.tail.id_set]
        if shared:
            latest_shared = max(shared, key=lambda i: self.tail.ids.index(span.ids[i]))
            was_at = self.tail.offset + self.tail.ids.index(span.ids[latest_shared])
            shift = max(0, was_at - (span.offset + latest_shared))
            self.shift_rate = shift / max(time.monotonic() - self.tail.fetched, 1e-3)
            if latest_shared < len(span.ids) - 1 or span.is_tail:
                self._repaired(span)
                return
            # Ends on a tail record: read again starting at it, which reaches past it. Its position
            # is known exactly, so the bounds of the search so far no longer apply.
            next_offset = span.offset + max(latest_shared, 1)
            self.repair_low, self.repair_high = span.offset, None
            direction = "ends inside the chain's last page"
        elif any(span.links_to(chained) for chained in self.behind):
            self._repaired(span, "re-anchored on a fresh page inside the chain")
            return
        elif (
            span.ids
            and (span.offset < self.tail.offset)
            and not any(span.links_to(ahead) for ahead in self.spans.values())
        ):
            self.repair_low = max(self.repair_low, span.offset)
            next_offset = self._within_bounds(span.offset + max(len(span.ids) - 1, 1))
            direction = "lies before the pages remembered"
        else:
            self.repair_high = span.offset if self.repair_high is None else min(self.repair_high, span.offset)
            step = max(1, self.stride // 4) * 2 ** min(self.repair_attempts - 1, 6)
            next_offset = self._within_bounds(span.offset - step)
            direction = "lies after the chain's last page"
        if self.repair_attempts >= self.max_repair_attempts:
            raise LetsJobItDriftError(
                f"could not mend the page chain after offset {self.tail.offset} in {self.repair_attempts} "
                "re-reads: the listing changes too fast to read consistently; retry later or narrow the filters"
            )
        self.repair_offset = max(0, next_offset)
        log.info(
            "Drift repair: page at offset %s %s; re-reading at offset %s",
            span.offset,
            direction,
            self.repair_offset,
        )

    def _within_bounds(self, offset: int) -> int:
        """Keep the next re-read strictly between the offsets known to be too far left and right."""
        low, high = self.repair_low, self.repair_high
        if high is not None and high <= low + 1:
            # The bounds crossed: the listing moved under the search. Start the bounds afresh.
            self.repair_low, self.repair_high = -1, None
            return offset
        if high is not None and offset >= high:
            offset = (max(low, 0) + high) // 2
        if offset <= low:
            offset = low + 1 if high is None else (low + high + 1) // 2
        return offset

    def _repaired(self, span: _Span, how: str = "links to the chain") -> None:
        self.stats.note_drift(
            "repaired", f"page at offset {span.offset} {how} after {self.repair_attempts} re-read(s)"
        )
        log.info(
            "Drift repaired: page at offset %s %s (%s re-read(s), %.1f s)",
            span.offset,
            how,
            self.repair_attempts,
            time.monotonic() - self.repair_started,
        )
        self._set_tail(span)
        self.repair_offset = None


class PageFetcher:
    """A few threads fetching listing pages; repairs jump the queue.

    ``fetch(offset, cancel)`` reads one page; ``cancel`` is set when the listing ends, and a fetch
    waiting for the rate budget or backing off then raises ``BudgetCancelled``.
    """

    _STOP = _Request("stop", -1, -1)

    def __init__(
        self,
        fetch: Callable[[int, threading.Event], Page],
        workers: int,
        join_timeout_seconds: float,
    ) -> None:
        self._fetch = fetch
        self._join_timeout_seconds = join_timeout_seconds
        self._tasks: queue.PriorityQueue = queue.PriorityQueue()
        self._results: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._seq = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, name=f"letsjobit-page-{n}", daemon=True)
            for n in range(workers)
        ]

    def __enter__(self) -> PageFetcher:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._cancel.set()
        for _ in self._threads:
            self._tasks.put((-1, next(self._seq), self._STOP))
        for thread in self._threads:
            thread.join(timeout=self._join_timeout_seconds)

    def submit(self, request: _Request) -> None:
        priority = 0 if request.kind == "repair" else 1
        self._tasks.put((priority, next(self._seq), request))

    def result(self) -> tuple[_Request, Page | None, BaseException | None]:
        return self._results.get()

    def _work(self) -> None:
        while True:
            _, _, request = self._tasks.get()
            if request is self._STOP or self._cancel.is_set():
                return
            try:
                page = self._fetch(request.offset, self._cancel)
            except BudgetCancelled:
                return
            except BaseException as exc:  # handed to the consumer thread, which raises it
                self._results.put((request, None, exc))
            else:
                self._results.put((request, page, None))
