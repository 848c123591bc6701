"""LetsJobIt API v2 client: pages every visit at the key's rate-limit ceiling, through faults and drift.

Airflow-free on purpose (the hook in ``letsjobit.airflow.hooks`` only builds one from a connection),
so it can be tested and benchmarked against the simulator directly.

How a full listing is read (``iter_pages``):

* The first page gives ``totalRecords``; every other offset is then known, so pages are fetched
  concurrently by a few threads, all drawing on one :class:`~letsjobit.api.ratelimit.RateBudget`.
* Consecutive pages overlap by one record (offsets 0, 99, 198, ... for 100-record pages). A page is
  *linked* to the chain when it shares at least one ``_id`` with the last linked page. Because the
  listing keeps insertion order, two linked pages cover, between them, every record that existed at
  both fetch times; a chain of linked pages from offset 0 to a page with ``remainingRecords == 0``
  therefore delivers every visit that existed for the whole extraction. Deletions during the run
  shift later offsets and break a link; the break is repaired by re-fetching around the last linked
  record until the chain is whole again, and ``_id`` de-duplication drops what was read twice.
* Every page's meta is checked (numbers present, non-negative, consistent with the data and the
  offset); a page that fails the check is retried like a truncated answer, then reported by offset.

Faults (5xx, timeouts, dropped connections, truncated JSON) are retried with capped exponential
backoff and jitter within a time budget; 400/401/403/404 fail at once. A 429 pauses every user of the
budget for exactly what the headers announce (plus a little).

The API key goes where the account takes it (the reference shows both a Bearer header and the query
string): with ``key_placement="auto"`` (the default) the header first, and on a 401 that request once
more with the key in the query string; what worked is remembered for the key (``keystate.py``). It never
appears in a log line, an exception or a file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

import orjson
import requests
import tenacity
from filelock import FileLock
from requests.adapters import HTTPAdapter

from letsjobit import config
from letsjobit.api.keystate import SENT_PLACEMENTS, PlacementMemory, key_state_path
from letsjobit.api.ratelimit import BudgetCancelled, RateBudget, budget_state_path, parse_rate_headers

log = logging.getLogger(__name__)

DEFAULT_API_PATH = "/api/v2"
VISITS_PATH = "visits"
USER_AGENT = "letsjobit-pipeline/0.1 (+requests)"
REDACTED = "***"
KEY_PLACEMENTS = ("auto", *SENT_PLACEMENTS)
# How each placement is named in messages (never with the key).
PLACEMENT_NAMES = {"header": "the Authorization header (Bearer)", "query": "the query string"}

# Listing filters the reference documents, by API name, with the snake_case aliases we also accept.
FLAG_FILTERS = ("closed", "confirmClose", "inProgress", "skipped")
TEXT_FILTERS = ("_id", "id", "driverId", "docNo")
FILTER_ALIASES = {
    "visit_id": "_id",
    "erp_id": "id",
    "driver_id": "driverId",
    "doc_no": "docNo",
    "visit_date": "date",
    "confirm_close": "confirmClose",
    "in_progress": "inProgress",
}
FILTER_NAMES = (*TEXT_FILTERS, "date", *FLAG_FILTERS, "priority")
PAGE_META_FIELDS = ("totalRecords", "returnedRecords", "remainingRecords")


# --------------------------------------------------------------------------------------------------
# Errors: every message names the request (method, path, offset), never the key.


class LetsJobItError(Exception):
    """Base of every error this client raises."""


class LetsJobItConfigError(LetsJobItError, ValueError):
    """The settings or the connection cannot work (bad URL, plain http, missing key, bad filter)."""


class LetsJobItAPIError(LetsJobItError):
    """The API refused a request for good (4xx other than 429)."""

    def __init__(self, message: str, *, status: int | None = None, meta: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.meta = meta or {}


class LetsJobItBadRequest(LetsJobItAPIError):
    """400: the request is invalid (a filter value the API does not accept, a malformed body)."""


class LetsJobItAuthError(LetsJobItAPIError):
    """401/403: the API key is wrong or lacks the right."""


class LetsJobItNotFound(LetsJobItAPIError):
    """404: no such visit (or no such endpoint)."""


class LetsJobItWriteError(LetsJobItAPIError):
    """A write was answered but ``meta.errors`` lists records the API did not take."""


class LetsJobItTransientError(LetsJobItError):
    """A failure worth retrying: 5xx, timeout, dropped connection, truncated or malformed answer."""

    kind = "fault"


class LetsJobItMalformedPage(LetsJobItTransientError):
    """A listing page whose JSON or meta does not hold together."""

    kind = "malformed"


class LetsJobItRateLimited(LetsJobItTransientError):
    """429: the key's budget is spent; ``wait_seconds`` is the pause every user of the key takes."""

    kind = "rate_limited"

    def __init__(self, message: str, wait_seconds: float, from_headers: bool) -> None:
        super().__init__(message)
        self.wait_seconds = wait_seconds
        self.from_headers = from_headers


class LetsJobItRetryBudgetExhausted(LetsJobItError):
    """A request kept failing for longer than the retry policy's time budget."""


class LetsJobItDriftError(LetsJobItError):
    """The listing changed faster than the extraction could stitch it together."""


# --------------------------------------------------------------------------------------------------
# Settings and retry policy


@dataclass(frozen=True)
class ClientSettings:
    """Everything the client needs; the hook fills it from the Airflow connection (call args > extras >
    these defaults)."""

    base_url: str
    api_key: str = field(repr=False)
    # "auto": the header, then on a 401 the query string, remembering what worked; "header":
    # Authorization: Bearer <key> only; "query": ?<query_key_param>=<key> only.
    key_placement: str = "auto"
    # api_key: the usual spelling (the reference names no parameter; its prose says "the API_KEY").
    query_key_param: str = "api_key"
    requests_per_window: int = config.RATE_LIMIT_REQUESTS
    window_seconds: float = config.RATE_LIMIT_WINDOW_SECONDS
    # Added to every window so the server's rounding never sees a request one tick early.
    rate_margin_seconds: float = 0.05
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    # Threads fetching pages; the rate budget, not this, sets the pace (10 req/s x latency is enough).
    max_concurrency: int = 8
    allow_insecure_http: bool = False
    # Directory of the shared rate-budget file; None keeps the budget inside this process.
    rate_state_dir: Path | None = None
    progress_interval_seconds: float = 5.0
    # Re-fetches allowed to mend one break in the page chain before giving up.
    max_repair_attempts: int = 16

    def __post_init__(self) -> None:
        if not self.api_key:
            raise LetsJobItConfigError("no API key: set the connection's password (or LETSJOBIT_API_KEY)")
        if self.key_placement not in KEY_PLACEMENTS:
            raise LetsJobItConfigError(
                f"key_placement must be 'auto', 'header' or 'query', got {self.key_placement!r}"
            )
        if not self.query_key_param or quote(self.query_key_param, safe="") != self.query_key_param:
            raise LetsJobItConfigError(
                "query_key_param must be a plain parameter name such as api_key, got "
                f"{self.query_key_param!r}"
            )
        if self.max_concurrency < 1:
            raise LetsJobItConfigError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url, self.allow_insecure_http))


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry and how long to wait; injected so tests and callers can tune it.

    Budgets are in seconds of wall time per request, not in attempts: a fault is retried until
    ``fault_budget_seconds`` have passed since the request's first attempt, a 429 until
    ``rate_limit_budget_seconds`` have (so a long rate window is waited out, not given up on).
    """

    fault_budget_seconds: float = 180.0
    rate_limit_budget_seconds: float = 1800.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    backoff_jitter_seconds: float = 0.5
    # Waited on top of the reset a 429 announces.
    rate_limit_extra_seconds: float = 0.1
    # A 429 without headers: back off from this, doubling, up to one rate window.
    headerless_429_initial_seconds: float = 1.0

    def retrying(
        self, sleep: Callable[[float], Any], before_sleep: Callable | None = None
    ) -> tenacity.Retrying:
        backoff = tenacity.wait_exponential_jitter(
            initial=self.backoff_initial_seconds,
            max=self.backoff_max_seconds,
            jitter=self.backoff_jitter_seconds,
        )

        def wait(state: tenacity.RetryCallState) -> float:
            # After a 429 the pause is already on the shared budget (everyone waits, not just us).
            if isinstance(state.outcome.exception(), LetsJobItRateLimited):
                return 0.0
            return backoff(state)

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception()
            budget = (
                self.rate_limit_budget_seconds
                if isinstance(exc, LetsJobItRateLimited)
                else self.fault_budget_seconds
            )
            return (state.seconds_since_start or 0.0) >= budget

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(LetsJobItTransientError),
            stop=stop,
            wait=wait,
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


# --------------------------------------------------------------------------------------------------
# Pages and extraction statistics


@dataclass(frozen=True)
class Page:
    """One listing page as the API answered it, plus what it added to the extraction."""

    offset: int
    filters: dict
    fetched_at: datetime
    body: dict
    # The records of this page not delivered by an earlier page (de-duplicated by ``_id``).
    new_data: list = field(default_factory=list, compare=False, repr=False)

    @property
    def meta(self) -> dict:
        return self.body["meta"]

    @property
    def data(self) -> list:
        return self.body["data"]

    @property
    def total_records(self) -> int:
        return _meta_number(self.meta, "totalRecords", self.offset)

    @property
    def remaining_records(self) -> int:
        return _meta_number(self.meta, "remainingRecords", self.offset)

    @property
    def ids(self) -> list[str]:
        return [r["_id"] for r in self.data if isinstance(r, dict) and isinstance(r.get("_id"), str)]


@dataclass
class ScanStats:
    """What one extraction did; filled while it runs, read for the progress log and the manifest."""

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

    def note_drift(self, kind: str, detail: str, keep: int = 50) -> None:
        with self._lock:
            self.drift[kind] += 1
            if len(self.drift_log) < keep:
                self.drift_log.append({"kind": kind, "detail": detail})

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


# --------------------------------------------------------------------------------------------------
# Helpers


def normalize_base_url(raw: str, allow_insecure_http: bool = False) -> str:
    """The API base URL from what a person types: ``app.letsjobit.com``, ``https://host``,
    ``https://host/api/v2/`` all become ``https://host/api/v2``. Plain http is refused except on
    loopback (or when explicitly allowed), because the key would cross the network in clear."""
    text = (raw or "").strip()
    if not text:
        raise LetsJobItConfigError(
            "no API base URL: set the connection's host, e.g. https://app.letsjobit.com/api/v2"
        )
    if "://" not in text:
        text = "https://" + text.lstrip("/")
    parts = urlsplit(text)
    shown = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
    if parts.scheme not in ("http", "https"):
        raise LetsJobItConfigError(f"API base URL must be http(s), got scheme {parts.scheme!r} in {shown}")
    if not parts.hostname:
        raise LetsJobItConfigError(f"API base URL has no host: {shown}")
    if parts.username or parts.password or parts.query:
        raise LetsJobItConfigError(
            f"API base URL {shown} must not carry credentials or a query string; put the key in the "
            "connection's password"
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise LetsJobItConfigError(
            f"refusing plain http:// to {parts.hostname}: the API key would travel unencrypted. Use https, "
            "or set allow_insecure_http in the connection extras if you really mean it"
        )
    path = parts.path.rstrip("/") or DEFAULT_API_PATH
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_filters(filters: dict[str, Any] | None) -> dict[str, str]:
    """API query parameters from listing filters (API names or snake_case aliases); ``None`` values are
    dropped. Flags take bools or 0/1, dates take ``date`` objects or ``YYYY-MM-DD``."""
    params: dict[str, str] = {}
    for name, value in (filters or {}).items():
        api_name = FILTER_ALIASES.get(name, name)
        if api_name not in FILTER_NAMES:
            raise LetsJobItConfigError(
                f"unknown visits filter {name!r}; the API documents {', '.join(FILTER_NAMES)}"
            )
        if api_name in params:
            raise LetsJobItConfigError(
                f"visits filter {api_name!r} given twice (as {name!r} and another alias)"
            )
        if value is None:
            continue
        params[api_name] = _filter_value(api_name, value)
    return params


def _filter_value(name: str, value: Any) -> str:
    if name in FLAG_FILTERS:
        if isinstance(value, bool):
            return "1" if value else "0"
        if str(value).strip() in ("0", "1"):
            return str(value).strip()
        raise LetsJobItConfigError(f"filter {name} takes 0/1 or a bool, got {value!r}")
    if name == "date":
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, date):
            return value.isoformat()
        text = str(value).strip()
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise LetsJobItConfigError(f"filter date takes YYYY-MM-DD, got {value!r}") from None
    if name == "priority":
        try:
            number = int(str(value).strip())
        except ValueError:
            raise LetsJobItConfigError(f"filter priority takes a whole number, got {value!r}") from None
        return str(number)
    text = str(value)
    if not text:
        raise LetsJobItConfigError(f"filter {name} must not be empty")
    return text


def _meta_number(meta: dict, name: str, offset: int, required: bool = True) -> int | None:
    value = meta.get(name)
    if value is None:
        if required:
            raise LetsJobItMalformedPage(f"page at offset {offset}: meta.{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LetsJobItMalformedPage(f"page at offset {offset}: meta.{name} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise LetsJobItMalformedPage(
            f"page at offset {offset}: meta.{name} is not a number: {value!r}"
        ) from None
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise LetsJobItMalformedPage(f"page at offset {offset}: meta.{name} is not a count >= 0: {value!r}")
    return int(number)


def validate_page(body: Any, offset: int) -> None:
    """Refuse a listing page whose shape or meta does not hold together (the error names the offset)."""
    if not isinstance(body, dict) or not isinstance(body.get("meta"), dict):
        raise LetsJobItMalformedPage(f"page at offset {offset}: answer has no meta object")
    data = body.get("data")
    if not isinstance(data, list):
        raise LetsJobItMalformedPage(f"page at offset {offset}: data is {type(data).__name__}, not a list")
    meta = body["meta"]
    total, returned, remaining = (_meta_number(meta, name, offset) for name in PAGE_META_FIELDS)
    next_start = _meta_number(meta, "nextStart", offset, required=False)
    if returned != len(data):
        raise LetsJobItMalformedPage(
            f"page at offset {offset}: meta.returnedRecords={returned} but data holds {len(data)} records"
        )
    expected_remaining = max(0, total - offset - returned)
    if remaining != expected_remaining:
        raise LetsJobItMalformedPage(
            f"page at offset {offset}: meta.remainingRecords={remaining} but totalRecords={total} - "
            f"offset {offset} - returned {returned} = {expected_remaining}"
        )
    if remaining > 0:
        if returned == 0:
            raise LetsJobItMalformedPage(f"page at offset {offset}: no records but {remaining} remaining")
        if next_start is not None and next_start != offset + returned:
            raise LetsJobItMalformedPage(
                f"page at offset {offset}: meta.nextStart={next_start}, expected offset + returned = "
                f"{offset + returned}"
            )


class _KeyRedactingFilter(logging.Filter):
    """Scrubs the API key from urllib3's debug lines (they include the request path and query)."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


# --------------------------------------------------------------------------------------------------
# The client


class LetsJobItClient:
    """One API key against one API: reads and writes visits within the key's rate budget."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry_policy: RetryPolicy | None = None,
        budget: RateBudget | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.retry_policy = retry_policy or RetryPolicy()
        host = urlsplit(settings.base_url).netloc
        self._api_host = host
        self.budget = budget or RateBudget(
            settings.requests_per_window,
            settings.window_seconds,
            margin_seconds=settings.rate_margin_seconds,
            state_path=(
                budget_state_path(settings.rate_state_dir, host, settings.api_key)
                if settings.rate_state_dir
                else None
            ),
        )
        # Every spelling the key can take in a URL (requests encodes query values with quote_plus).
        key = settings.api_key
        self._secrets = tuple(
            sorted({key, quote(key, safe=""), quote(key, safe="/"), quote_plus(key)}, key=len, reverse=True)
        )
        self.session = session or requests.Session()
        adapter = HTTPAdapter(
            pool_connections=1, pool_maxsize=max(settings.max_concurrency, 4), max_retries=0
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update(
            {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": USER_AGENT}
        )
        # The placement requests use now; in auto mode the first 401 may change it, under this lock.
        self._placement_lock = threading.Lock()
        self._placement_memory = PlacementMemory(
            key_state_path(settings.rate_state_dir, "key-placement", host, settings.api_key)
            if settings.key_placement == "auto" and settings.rate_state_dir
            else None
        )
        self._placement = self._initial_placement()
        self._urllib3_filter = _KeyRedactingFilter(self.redact)
        logging.getLogger("urllib3.connectionpool").addFilter(self._urllib3_filter)
        self._retry_consecutive_headerless = 0

    def __repr__(self) -> str:
        placement = self.settings.key_placement
        shown = f"auto, now {self._placement}" if placement == "auto" else placement
        return f"LetsJobItClient({self.settings.base_url}, key in {shown}, {self.budget!r})"

    @property
    def key_placement(self) -> str:
        """Where requests send the key now: ``header`` or ``query``."""
        return self._placement

    def _initial_placement(self) -> str:
        if self.settings.key_placement != "auto":
            return self.settings.key_placement
        remembered = self._placement_memory.recall()
        if remembered is None:
            return "header"
        log.info(
            "Sending the API key in %s, as this key's API accepted before (%s)",
            PLACEMENT_NAMES[remembered],
            self._placement_memory.path,
        )
        return remembered

    def __enter__(self) -> LetsJobItClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        logging.getLogger("urllib3.connectionpool").removeFilter(self._urllib3_filter)
        self.session.close()

    def redact(self, text: str) -> str:
        """``text`` with every spelling of the API key replaced by ``***``."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    # -- reading -------------------------------------------------------------------------------

    def check(self) -> tuple[bool, str]:
        """One request to see that the URL and key work: ``(ok, message)`` for test_connection()."""
        try:
            page = self.fetch_page(0)
        except LetsJobItError as exc:
            return False, str(exc)
        return True, f"Connected to {self.settings.base_url}: {page.total_records} visits listed"

    def fetch_page(self, offset: int, filters: dict | None = None, stats: ScanStats | None = None) -> Page:
        """One listing page at ``offset`` (the API's ``pagination`` parameter), validated."""
        return self._fetch_page(offset, normalize_filters(filters), stats or ScanStats(), None)

    def iter_visits(self, stats: ScanStats | None = None, **filters: Any) -> Iterator[dict]:
        """Every visit matching ``filters`` exactly once (see :meth:`iter_pages`)."""
        for page in self.iter_pages(stats=stats, **filters):
            yield from page.new_data

    def iter_pages(self, stats: ScanStats | None = None, **filters: Any) -> Iterator[Page]:
        """Every listing page matching ``filters``, in the order they arrive.

        Pages overlap and may be re-fetched to mend offset drift; each page's ``new_data`` holds the
        records no earlier page delivered. Pass a :class:`ScanStats` to read the extraction's figures.
        """
        params = normalize_filters(filters)
        stats = stats if stats is not None else ScanStats()
        stats.started = time.monotonic()
        seen: set[str] = set()
        progress = _Progress(stats, self.settings.progress_interval_seconds, params)
        try:
            first = self._fetch_page(0, params, stats, None)
            stats.total_records_first = first.total_records
            stitcher = _Stitcher(first, self.settings, stats)
            stats.pages_planned = stitcher.planned_count
            log.info(
                "Listing visits%s: %s records reported, %s pages planned (page size %s, overlap 1)",
                _describe_filters(params),
                first.total_records,
                stitcher.planned_count,
                stitcher.page_size,
            )
            yield self._deliver(first, seen, stats)
            if stitcher.complete:
                return
            with _PageFetcher(self, params, stats, self.settings.max_concurrency) as fetcher:
                max_pages = 3 * stitcher.planned_count + 50
                outstanding = 0
                while not stitcher.complete:
                    for request in stitcher.requests():
                        fetcher.submit(request)
                        outstanding += 1
                    if outstanding == 0:
                        raise LetsJobItDriftError(
                            f"page chain stalled at offset {stitcher.tail.offset} with nothing left to fetch"
                        )
                    request, page, error = fetcher.result()
                    outstanding -= 1
                    if error is not None:
                        raise error
                    if stats.pages > max_pages:
                        raise LetsJobItDriftError(
                            f"gave up after {stats.pages} pages for {stitcher.planned_count} planned: the "
                            "listing keeps changing faster than it can be read consistently"
                        )
                    yield self._deliver(page, seen, stats)
                    stitcher.add(request, page)
                    progress.maybe_log(stitcher)
        finally:
            stats.wall_seconds = time.monotonic() - stats.started
        progress.log_done()

    def _deliver(self, page: Page, seen: set[str], stats: ScanStats) -> Page:
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
        with stats._lock:
            stats.pages += 1
            stats.records_read += len(page.data)
            stats.distinct_visits = len(seen)
            stats.duplicates_dropped += len(page.data) - len(fresh)
            stats.records_without_id += without_id
            if stats.total_records_last is not None and page.total_records != stats.total_records_last:
                stats.drift["total_changed"] += 1
                if len(stats.drift_log) < 50:
                    stats.drift_log.append(
                        {
                            "kind": "total_changed",
                            "detail": f"totalRecords {stats.total_records_last} -> {page.total_records} "
                            f"(page at offset {page.offset})",
                        }
                    )
                # The first few changes at INFO; a listing that keeps changing would flood the log.
                log.log(
                    logging.INFO if stats.drift["total_changed"] <= 5 else logging.DEBUG,
                    "Drift: totalRecords changed %s -> %s (page at offset %s); the page chain check will "
                    "catch any shift",
                    stats.total_records_last,
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

    def _fetch_page(
        self, offset: int, params: dict, stats: ScanStats, cancel: threading.Event | None
    ) -> Page:
        query = {**params, "pagination": str(offset)}

        def validated(body: Any) -> Any:
            validate_page(body, offset)
            return body

        body = self._call(
            "GET", VISITS_PATH, params=query, stats=stats, cancel=cancel, check=validated, offset=offset
        )
        return Page(offset=offset, filters=dict(params), fetched_at=datetime.now(UTC), body=body)

    def get_visit(self, visit_id: str) -> dict:
        """One visit by its internal ``_id``; :class:`LetsJobItNotFound` when there is none."""
        body = self._call("GET", f"{VISITS_PATH}/{quote(str(visit_id), safe='')}")
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, list):
            data = data[0] if data else None
        if not isinstance(data, dict):
            raise LetsJobItNotFound(
                f"GET visits/{visit_id}: the API returned no visit", status=200, meta=_meta_of(body)
            )
        return data

    # -- writing -------------------------------------------------------------------------------

    def upsert_visits(self, visits: Iterable[dict]) -> dict:
        """Insert or update visits (matched on their ERP ``id``); returns the API's meta.

        Raises :class:`LetsJobItWriteError` listing ``meta.errors`` when some records were refused.
        Retrying after a dropped connection is safe: the API matches records on ``id``.
        """
        batch = list(visits)
        if not batch:
            return {"recordsInserted": 0, "recordsUpdated": 0, "errors": []}
        body = self._call("POST", VISITS_PATH, json_body=batch)
        return self._write_meta("POST visits", body, f"{len(batch)} visits")

    def update_visit(self, visit_id: str, fields: dict) -> dict:
        """Update some fields of one visit; returns the API's meta (``updatedRecords``)."""
        if not fields:
            raise LetsJobItConfigError(f"update_visit({visit_id!r}) needs at least one field")
        path = f"{VISITS_PATH}/{quote(str(visit_id), safe='')}"
        body = self._call("PUT", path, json_body=fields)
        meta = self._write_meta(f"PUT visits/{visit_id}", body, f"visit {visit_id}")
        if meta.get("updatedRecords") == 0:
            raise LetsJobItNotFound(
                f"PUT visits/{visit_id}: no visit was updated (updatedRecords=0)", meta=meta
            )
        return meta

    def delete_visit(self, visit_id: str) -> dict:
        """Delete one visit; returns the API's meta (``deletedRecords``).

        A 404 after a retried attempt means the first attempt did delete it (its answer was lost):
        that returns ``deletedRecords: 0, alreadyDeleted: True`` instead of raising.
        """
        path = f"{VISITS_PATH}/{quote(str(visit_id), safe='')}"
        stats = ScanStats()
        try:
            body = self._call("DELETE", path, stats=stats)
        except LetsJobItNotFound:
            if not stats.retries:
                raise
            log.info("DELETE visits/%s: 404 on a retry, so the lost first attempt deleted it", visit_id)
            return {"deletedRecords": 0, "alreadyDeleted": True}
        return self._write_meta(f"DELETE visits/{visit_id}", body, f"visit {visit_id}")

    def _write_meta(self, what: str, body: Any, subject: str) -> dict:
        meta = _meta_of(body)
        errors = meta.get("errors") or []
        if errors:
            listed = "; ".join(self.redact(_describe_write_error(e)) for e in errors[:20])
            more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
            raise LetsJobItWriteError(
                f"{what}: the API refused {len(errors)} of {subject}: {listed}{more}", meta=meta
            )
        return meta

    # -- one request, retried --------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: Any = None,
        stats: ScanStats | None = None,
        cancel: threading.Event | None = None,
        check: Callable[[Any], Any] | None = None,
        offset: int | None = None,
    ) -> Any:
        stats = stats if stats is not None else ScanStats()
        what = f"{method} {path}" + (f" at offset {offset}" if offset is not None else "")

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            stats.count_retry(getattr(exc, "kind", "fault"))
            wait = state.upcoming_sleep or getattr(exc, "wait_seconds", 0.0)
            log.warning("%s; retry %s in %.1f s", exc, state.attempt_number, wait)

        def sleep(seconds: float) -> None:
            if cancel is not None:
                if cancel.wait(seconds):
                    raise BudgetCancelled("stopped while backing off")
            else:
                time.sleep(seconds)

        retrying = self.retry_policy.retrying(sleep=sleep, before_sleep=before_sleep)
        started = time.monotonic()
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, path, params, json_body, stats, cancel, check, what)
        except LetsJobItTransientError as exc:
            elapsed = time.monotonic() - started
            attempts = retrying.statistics.get("attempt_number", 1)
            raise LetsJobItRetryBudgetExhausted(
                f"{what}: still failing after {attempts} attempts over {elapsed:.0f} s (retry budget spent); "
                f"last error: {exc}"
            ) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _attempt(
        self,
        method: str,
        path: str,
        params: dict | None,
        json_body: Any,
        stats: ScanStats,
        cancel: threading.Event | None,
        check: Callable[[Any], Any] | None,
        what: str,
    ) -> Any:
        def send(placement: str) -> tuple[requests.Response, bytes]:
            return self._send(method, path, params, json_body, stats, cancel, what, placement)

        placement = self._placement
        response, content = send(placement)
        if response.status_code == 401 and self.settings.key_placement == "auto":
            placement, response, content = self._retry_other_placement(placement, content, send, stats, what)
        return self._interpret(response, content, stats, check, what, placement)

    def _send(
        self,
        method: str,
        path: str,
        params: dict | None,
        json_body: Any,
        stats: ScanStats,
        cancel: threading.Event | None,
        what: str,
        placement: str,
    ) -> tuple[requests.Response, bytes]:
        """One request on the wire, within the rate budget, with the key in ``placement``."""
        url = f"{self.settings.base_url}/{path}"
        query = dict(params or {})
        headers = None
        if placement == "query":
            query[self.settings.query_key_param] = self.settings.api_key
        else:
            headers = {"Authorization": f"Bearer {self.settings.api_key}"}
        slot = self.budget.acquire(cancel)
        if slot.waited_seconds > 0:
            with stats._lock:
                stats.rate_waits += 1
                stats.rate_wait_seconds += slot.waited_seconds
        stats.count("requests")
        failure: LetsJobItTransientError | None = None
        try:
            response = self.session.request(
                method,
                url,
                params=query or None,
                headers=headers,
                data=orjson.dumps(json_body) if json_body is not None else None,
                timeout=(self.settings.connect_timeout_seconds, self.settings.timeout_seconds),
            )
            content = response.content
        except requests.Timeout:
            failure = LetsJobItTransientError(f"{what}: no answer within {self.settings.timeout_seconds:g} s")
            failure.kind = "timeout"
        except requests.RequestException as exc:
            # Built outside the except block's context so the original (which holds the URL) is not chained.
            failure = LetsJobItTransientError(f"{what}: {type(exc).__name__}: {self.redact(str(exc))[:300]}")
            failure.kind = "connection"
        finally:
            self.budget.release(slot)
        if failure is not None:
            raise failure
        return response, content

    def _retry_other_placement(
        self,
        refused: str,
        refused_content: bytes,
        send: Callable[[str], tuple[requests.Response, bytes]],
        stats: ScanStats,
        what: str,
    ) -> tuple[str, requests.Response, bytes]:
        """Auto placement after a 401: the same request once with the key in the other place.

        Under one lock per client (threads) and one file lock per key (processes), so the first 401
        decides: a request refused while another was already finding the placement just uses what that
        one found. A placement that worked is remembered; one that stops working (remembered or not) gets
        the same single retry the other way.
        """
        with self._placement_lock, self._placement_file_lock():
            settled = self._placement
            if settled == refused:
                remembered = self._placement_memory.recall()
                if remembered is not None and remembered != refused:
                    settled = self._placement = remembered  # another process found it meanwhile
            if settled != refused:
                response, content = send(settled)
                return settled, response, content
            other = "query" if refused == "header" else "header"
            log.info(
                "%s: HTTP 401 with the API key in %s; sending the request once more with it in %s",
                what,
                PLACEMENT_NAMES[refused],
                self._describe_placement(other),
            )
            # Not counted in stats.retries: a refused request did nothing, while delete_visit reads a retry
            # as "an earlier attempt may have gone through".
            response, content = send(other)
            if response.status_code == 401:
                raise self._refused_both_ways(what, (refused, refused_content), (other, content))
            # A fault or a 429 says nothing about the key: the next attempt of this request decides.
            if response.status_code < 500 and response.status_code not in (408, 429):
                self._settle_placement(other, refused)
            return other, response, content

    @contextlib.contextmanager
    def _placement_file_lock(self) -> Iterator[None]:
        path = self._placement_memory.path
        if path is None:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            yield

    def _settle_placement(self, placement: str, refused: str) -> None:
        self._placement = placement
        self._placement_memory.remember(placement, self.settings.query_key_param, self._api_host)
        path = self._placement_memory.path
        log.warning(
            "The API refused the key in %s and accepted it in %s: this key's requests send it there from "
            "now on%s. Set the connection extra key_placement to %r to skip the refused attempt.",
            PLACEMENT_NAMES[refused],
            self._describe_placement(placement),
            f" (remembered in {path})" if path else "",
            placement,
        )

    def _describe_placement(self, placement: str) -> str:
        if placement == "query":
            return f"the query string (?{self.settings.query_key_param}={REDACTED})"
        return PLACEMENT_NAMES[placement]

    def _refused_both_ways(
        self, what: str, first: tuple[str, bytes], second: tuple[str, bytes]
    ) -> LetsJobItAuthError:
        answers = [
            f"in {self._describe_placement(placement)}: "
            + (self._api_message(content).removeprefix("- ") or "HTTP 401")
            for placement, content in (first, second)
        ]
        param = self.settings.query_key_param
        meta = None
        with contextlib.suppress(orjson.JSONDecodeError):
            meta = _meta_of(orjson.loads(second[1]))
        return LetsJobItAuthError(
            f"{what}: HTTP 401 both ways, the API refused the key {answers[0]}; and {answers[1]}. Check the "
            "API key (the connection's password, LETSJOBIT_API_KEY), that its account may use the API, and "
            f"the base URL {self.settings.base_url} (LETSJOBIT_API_URL). If the account expects the key "
            f"under another query parameter than {param!r} (API_KEY, apiKey, key...), set the connection "
            "extra query_key_param.",
            status=401,
            meta=meta,
        )

    def _interpret(
        self,
        response: requests.Response,
        content: bytes,
        stats: ScanStats,
        check: Callable[[Any], Any] | None,
        what: str,
        placement: str | None = None,
    ) -> Any:
        """The body of an answer, or the error it means; ``placement``: where its request sent the key."""
        status = response.status_code
        remaining, reset = parse_rate_headers(response.headers)
        if status == 429:
            stats.count("rate_limited_429")
            if reset is not None:
                self._retry_consecutive_headerless = 0
                wait = reset + self.retry_policy.rate_limit_extra_seconds
                from_headers = True
            else:
                # No headers: back off from a second, doubling, never beyond one rate window.
                self._retry_consecutive_headerless += 1
                wait = min(
                    self.retry_policy.headerless_429_initial_seconds
                    * 2 ** (self._retry_consecutive_headerless - 1),
                    self.settings.window_seconds,
                )
                from_headers = False
            self.budget.pause_for(wait)
            source = "as the headers say" if from_headers else "no rate headers, backing off"
            raise LetsJobItRateLimited(
                f"{what}: 429 Too Many Requests; pausing {wait:.2f} s ({source})", wait, from_headers
            )
        self._retry_consecutive_headerless = 0
        pause = self.budget.observe(remaining, reset)
        if pause:
            log.info("%s: X-RateLimit-Remaining is 0; everyone on this key pauses %.2f s", what, pause)
        if status >= 500 or status == 408:
            failure = LetsJobItTransientError(f"{what}: HTTP {status} {self._api_message(content)}".rstrip())
            failure.kind = f"http_{status}"
            raise failure
        if status >= 400:
            raise self._refusal(status, content, what, placement or self._placement)
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            failure = LetsJobItMalformedPage(
                f"{what}: answer is not valid JSON ({len(content)} bytes, truncated?): {exc}"
            )
            failure.kind = "bad_json"
            raise failure from None
        return check(body) if check is not None else body

    def _refusal(self, status: int, content: bytes, what: str, placement: str) -> LetsJobItAPIError:
        detail = self._api_message(content)
        meta = None
        with contextlib.suppress(orjson.JSONDecodeError):
            meta = _meta_of(orjson.loads(content))
        if status in (401, 403):
            if status == 403:
                hint = "this API key may not do that"
            else:
                hint = (
                    f"the API key was refused in {self._describe_placement(placement)}; check the "
                    "connection's password"
                )
                if self.settings.key_placement != "auto":
                    hint += (
                        ", or set the connection extra key_placement to 'auto' if the account takes the key "
                        "elsewhere"
                    )
            return LetsJobItAuthError(
                f"{what}: HTTP {status} ({hint}) {detail}".rstrip(), status=status, meta=meta
            )
        if status == 404:
            return LetsJobItNotFound(
                f"{what}: HTTP 404 not found {detail}".rstrip(), status=status, meta=meta
            )
        if status == 400:
            return LetsJobItBadRequest(
                f"{what}: HTTP 400 bad request {detail}".rstrip(), status=status, meta=meta
            )
        return LetsJobItAPIError(f"{what}: HTTP {status} {detail}".rstrip(), status=status, meta=meta)

    def _api_message(self, content: bytes) -> str:
        """The error text the API put in its answer, if any, redacted and shortened."""
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            text = content[:200].decode("utf-8", "replace").strip()
            return f"- {self.redact(text)}" if text else ""
        message = None
        if isinstance(body, dict):
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            message = body.get("error") or meta.get("error") or body.get("message") or meta.get("errors")
        return f"- {self.redact(str(message))[:300]}" if message else ""


def _meta_of(body: Any) -> dict:
    if isinstance(body, dict) and isinstance(body.get("meta"), dict):
        return body["meta"]
    return {}


def _describe_write_error(error: Any) -> str:
    if isinstance(error, dict):
        code = error.get("error", error.get("code", "?"))
        return f"[{code}] {error.get('message', error)}"
    return str(error)


def _describe_filters(params: dict) -> str:
    return (" where " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))) if params else ""


# --------------------------------------------------------------------------------------------------
# Concurrent fetching and the page chain


@dataclass(frozen=True)
class _Request:
    kind: str  # "planned" or "repair"
    index: int  # planned: position in the chain plan; repair: attempt number
    offset: int


class _Window:
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

    def links_to(self, other: _Window) -> bool:
        return not self.id_set.isdisjoint(other.id_set)


class _Stitcher:
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
        self.windows: dict[int, _Window] = {}
        self.requested: set[int] = {0}
        self.next_index = 1
        self.tail = _Window(first)
        # The chain's pages just before the tail: a re-read sharing ids with them lies left of the tail.
        self.behind: deque[_Window] = deque(maxlen=32)
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
        window = _Window(page)
        self.latest_total = window.total
        if request.kind == "repair":
            self._on_repair(window)
        elif request.index >= self.next_index:
            self.windows[request.index] = window
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
                if index not in self.windows:
                    return
                self._link(index)
                continue
            linked = [i for i, w in self.windows.items() if i >= index and self.tail.links_to(w)]
            if linked:
                # Jump to the furthest page the tail already links to (earlier ones add nothing new).
                self._link(max(linked))
                continue
            window = self.windows.get(index)
            if window is None:
                return
            self._start_repair(window)

    def _link(self, index: int) -> None:
        self._set_tail(self.windows[index])
        for i in [i for i in self.windows if i <= index]:
            del self.windows[i]
        self.next_index = index + 1

    def _set_tail(self, window: _Window) -> None:
        self.behind.append(self.tail)
        self.tail = window

    def _start_repair(self, unlinked: _Window) -> None:
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

    def _on_repair(self, window: _Window) -> None:
        """Link the re-read page to the chain, or choose where to re-read next.

        A re-read sharing ids with the tail tells exactly where the tail's latest surviving record is
        now. One sharing ids with an earlier page of the chain is part of the chain too, and fresher
        than the tail: the chain continues from it (re-reading a little, never skipping). One sharing
        nothing known lies after the tail (records before it were deleted), or, when its offset is below
        the tail's, before everything remembered. Offsets found too far left or right bound the search.
        """
        self.repair_attempts += 1
        self.repair_requested = False
        if window.offset == 0 and not window.ids and window.is_tail:
            # Everything was deleted meanwhile: no visit that existed throughout is left to read.
            self._repaired(window)
            return
        shared = [i for i, visit_id in enumerate(window.ids) if visit_id in self.tail.id_set]
        if shared:
            latest_shared = max(shared, key=lambda i: self.tail.ids.index(window.ids[i]))
            was_at = self.tail.offset + self.tail.ids.index(window.ids[latest_shared])
            shift = max(0, was_at - (window.offset + latest_shared))
            self.shift_rate = shift / max(time.monotonic() - self.tail.fetched, 1e-3)
            if latest_shared < len(window.ids) - 1 or window.is_tail:
                self._repaired(window)
                return
            # Ends on a tail record: read again starting at it, which reaches past it. Its position
            # is known exactly, so the bounds of the search so far no longer apply.
            next_offset = window.offset + max(latest_shared, 1)
            self.repair_low, self.repair_high = window.offset, None
            direction = "ends inside the chain's last page"
        elif any(window.links_to(w) for w in self.behind):
            self._repaired(window, "re-anchored on a fresh page inside the chain")
            return
        elif (
            window.ids
            and (window.offset < self.tail.offset)
            and not any(window.links_to(w) for w in self.windows.values())
        ):
            self.repair_low = max(self.repair_low, window.offset)
            next_offset = self._within_bounds(window.offset + max(len(window.ids) - 1, 1))
            direction = "lies before the pages remembered"
        else:
            self.repair_high = (
                window.offset if self.repair_high is None else min(self.repair_high, window.offset)
            )
            step = max(1, self.stride // 4) * 2 ** min(self.repair_attempts - 1, 6)
            next_offset = self._within_bounds(window.offset - step)
            direction = "lies after the chain's last page"
        if self.repair_attempts >= self.max_repair_attempts:
            raise LetsJobItDriftError(
                f"could not mend the page chain after offset {self.tail.offset} in {self.repair_attempts} "
                "re-reads: the listing changes too fast to read consistently; retry later or narrow the filters"
            )
        self.repair_offset = max(0, next_offset)
        log.info(
            "Drift repair: page at offset %s %s; re-reading at offset %s",
            window.offset,
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

    def _repaired(self, window: _Window, how: str = "links to the chain") -> None:
        self.stats.note_drift(
            "repaired", f"page at offset {window.offset} {how} after {self.repair_attempts} re-read(s)"
        )
        log.info(
            "Drift repaired: page at offset %s %s (%s re-read(s), %.1f s)",
            window.offset,
            how,
            self.repair_attempts,
            time.monotonic() - self.repair_started,
        )
        self._set_tail(window)
        self.repair_offset = None


class _PageFetcher:
    """A few threads fetching listing pages; repairs jump the queue."""

    _STOP = _Request("stop", -1, -1)

    def __init__(self, client: LetsJobItClient, params: dict, stats: ScanStats, workers: int) -> None:
        self._client = client
        self._params = params
        self._stats = stats
        self._tasks: queue.PriorityQueue = queue.PriorityQueue()
        self._results: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._seq = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, name=f"letsjobit-page-{n}", daemon=True)
            for n in range(workers)
        ]

    def __enter__(self) -> _PageFetcher:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._cancel.set()
        for _ in self._threads:
            self._tasks.put((-1, next(self._seq), self._STOP))
        for thread in self._threads:
            thread.join(timeout=self._client.settings.timeout_seconds + 5)

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
                page = self._client._fetch_page(request.offset, self._params, self._stats, self._cancel)
            except BudgetCancelled:
                return
            except BaseException as exc:  # handed to the consumer thread, which raises it
                self._results.put((request, None, exc))
            else:
                self._results.put((request, page, None))


class _Progress:
    """Progress lines a person can follow: pages done / planned, visits/s, rate waits, retries, drift."""

    def __init__(self, stats: ScanStats, interval: float, params: dict) -> None:
        self.stats = stats
        self.interval = interval
        self.params = params
        self.last = time.monotonic()

    def maybe_log(self, stitcher: _Stitcher) -> None:
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
            _describe_filters(self.params),
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
            _describe_filters(self.params),
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
