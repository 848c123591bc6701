"""LetsJobIt API v2 client: pages every visit at the key's rate-limit ceiling, through faults and drift.

Airflow-free on purpose (the hook in ``letsjobit.airflow.hooks`` only builds one from a connection),
so it can be tested and benchmarked against the simulator directly. This module is the HTTP side: the
session, one request within the rate budget and its retries, what an answer means, and the reads and
writes of visits. How ``iter_pages`` reads a listing without losing a visit is in ``paging.py``; where
the key goes, and its redaction, in ``auth.py``.

Faults (5xx, timeouts, dropped connections, truncated JSON, malformed page meta) are retried with capped
exponential backoff and jitter within a time budget; 400/401/403/404 fail at once. A 429 pauses every
user of the budget for exactly what the headers announce (plus a little). The API key never appears in a
log line, an exception or a file.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import requests
import tenacity
from requests.adapters import HTTPAdapter

from letsjobit.api.auth import REDACTED, KeyPlacement, KeyRedactingFilter, key_spellings
from letsjobit.api.errors import (
    LetsJobItAPIError,
    LetsJobItAuthError,
    LetsJobItBadRequest,
    LetsJobItConfigError,
    LetsJobItDriftError,
    LetsJobItError,
    LetsJobItMalformedPage,
    LetsJobItNotFound,
    LetsJobItRateLimited,
    LetsJobItRetryBudgetExhausted,
    LetsJobItTransientError,
    LetsJobItWriteError,
)
from letsjobit.api.pages import Page, meta_of, validate_page
from letsjobit.api.paging import PageFetcher, ScanStats, Stitcher, deliver
from letsjobit.api.progress import Progress
from letsjobit.api.ratelimit import BudgetCancelled, RateBudget, budget_for, parse_rate_headers
from letsjobit.api.settings import ClientSettings, RetryPolicy, describe_filters, normalize_filters

log = logging.getLogger(__name__)

VISITS_PATH = "visits"
USER_AGENT = "letsjobit-pipeline/0.1 (+requests)"
# Connections the session keeps open at least: a client shared by a few threads (the hook's callers)
# reuses its connections instead of opening and discarding one per request.
MIN_POOLED_CONNECTIONS = 4


class LetsJobItClient:
    """One API key against one API: reads and writes visits within the key's rate budget.

    Close it (or use it as a context manager): until then the filter that redacts its key stays on
    urllib3's logger, which every thread of the process shares.
    """

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
        self.budget = budget or budget_for(settings, host)
        self._secrets = key_spellings(settings.api_key)
        self.session = session or requests.Session()
        adapter = HTTPAdapter(
            pool_connections=1,
            pool_maxsize=max(settings.max_concurrency, MIN_POOLED_CONNECTIONS),
            max_retries=0,
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update(
            {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": USER_AGENT}
        )
        self._placement = KeyPlacement(settings, host, explain=self._api_message)
        self._urllib3_filter = KeyRedactingFilter(self.redact)
        logging.getLogger("urllib3.connectionpool").addFilter(self._urllib3_filter)
        # 429s without rate headers in a row, met by any of the page threads: each doubles the backoff.
        self._headerless_429_lock = threading.Lock()
        self._headerless_429s_in_a_row = 0

    def __repr__(self) -> str:
        placement = self.settings.key_placement
        shown = f"auto, now {self.key_placement}" if placement == "auto" else placement
        return f"LetsJobItClient({self.settings.base_url}, key in {shown}, {self.budget!r})"

    @property
    def key_placement(self) -> str:
        """Where requests send the key now: ``header`` or ``query``."""
        return self._placement.current

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

        Pages overlap and may be re-fetched to mend offset drift (``paging.py``); each page's
        ``new_data`` holds the records no earlier page delivered. Pass a :class:`ScanStats` to read the
        extraction's figures.
        """
        params = normalize_filters(filters)
        stats = stats if stats is not None else ScanStats()
        stats.started = time.monotonic()
        seen: set[str] = set()
        progress = Progress(stats, self.settings.progress_interval_seconds, params)
        try:
            first = self._fetch_page(0, params, stats, None)
            stats.total_records_first = first.total_records
            stitcher = Stitcher(first, self.settings, stats)
            stats.pages_planned = stitcher.planned_count
            log.info(
                "Listing visits%s: %s records reported, %s pages planned (page size %s, overlap 1)",
                describe_filters(params),
                first.total_records,
                stitcher.planned_count,
                stitcher.page_size,
            )
            yield deliver(first, seen, stats)
            if stitcher.complete:
                return

            def fetch(offset: int, cancel: threading.Event) -> Page:
                return self._fetch_page(offset, params, stats, cancel)

            join_timeout = self.settings.timeout_seconds + 5
            with PageFetcher(fetch, self.settings.max_concurrency, join_timeout) as fetcher:
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
                    yield deliver(page, seen, stats)
                    stitcher.add(request, page)
                    progress.maybe_log()
        finally:
            stats.wall_seconds = time.monotonic() - stats.started
        progress.log_done()

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
                f"GET visits/{visit_id}: the API returned no visit", status=200, meta=meta_of(body)
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
        meta = meta_of(body)
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

        placement = self._placement.current
        response, content = send(placement)
        if response.status_code == 401 and self.settings.key_placement == "auto":
            placement, response, content = self._placement.after_refusal(placement, content, send, what)
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
            stats.count_rate_wait(slot.waited_seconds)
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
                self._end_headerless_429s()
                wait = reset + self.retry_policy.rate_limit_extra_seconds
                from_headers = True
            else:
                wait = self._headerless_429_wait()
                from_headers = False
            self.budget.pause_for(wait)
            source = "as the headers say" if from_headers else "no rate headers, backing off"
            raise LetsJobItRateLimited(
                f"{what}: 429 Too Many Requests; pausing {wait:.2f} s ({source})", wait, from_headers
            )
        self._end_headerless_429s()
        pause = self.budget.observe(remaining, reset)
        if pause:
            log.info("%s: X-RateLimit-Remaining is 0; everyone on this key pauses %.2f s", what, pause)
        if status >= 500 or status == 408:
            failure = LetsJobItTransientError(f"{what}: HTTP {status} {self._api_message(content)}".rstrip())
            failure.kind = f"http_{status}"
            raise failure
        if status >= 400:
            raise self._refusal(status, content, what, placement or self._placement.current)
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            failure = LetsJobItMalformedPage(
                f"{what}: answer is not valid JSON ({len(content)} bytes, truncated?): {exc}"
            )
            failure.kind = "bad_json"
            raise failure from None
        return check(body) if check is not None else body

    def _headerless_429_wait(self) -> float:
        """One more 429 without rate headers: back off from a second, doubling, never beyond one window."""
        with self._headerless_429_lock:
            self._headerless_429s_in_a_row += 1
            in_a_row = self._headerless_429s_in_a_row
        return min(
            self.retry_policy.headerless_429_initial_seconds * 2 ** (in_a_row - 1),
            self.settings.window_seconds,
        )

    def _end_headerless_429s(self) -> None:
        with self._headerless_429_lock:
            self._headerless_429s_in_a_row = 0

    def _refusal(self, status: int, content: bytes, what: str, placement: str) -> LetsJobItAPIError:
        detail = self._api_message(content)
        meta = None
        with contextlib.suppress(orjson.JSONDecodeError):
            meta = meta_of(orjson.loads(content))
        if status in (401, 403):
            if status == 403:
                hint = "this API key may not do that"
            else:
                hint = (
                    f"the API key was refused in {self._placement.describe(placement)}; check the "
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


def _describe_write_error(error: Any) -> str:
    if isinstance(error, dict):
        code = error.get("error", error.get("code", "?"))
        return f"[{code}] {error.get('message', error)}"
    return str(error)
