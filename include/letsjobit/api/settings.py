"""The client's settings and retry policy, and what a person types turned into what the API takes.

``ClientSettings`` holds everything one client needs (the hook fills it from the Airflow connection);
``RetryPolicy`` says which failures are retried and for how long. ``normalize_base_url``,
``normalize_rate_budget_url`` and ``normalize_filters`` turn a typed URL and listing filters into what
the client takes, refusing what cannot work with a :class:`~letsjobit.api.errors.LetsJobItConfigError`;
``redact_url`` shows a URL without its password.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import tenacity

from letsjobit import config
from letsjobit.api.errors import LetsJobItConfigError, LetsJobItRateLimited, LetsJobItTransientError
from letsjobit.api.keystate import SENT_PLACEMENTS

DEFAULT_API_PATH = "/api/v2"
KEY_PLACEMENTS = ("auto", *SENT_PLACEMENTS)

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

RATE_BUDGET_URL_SCHEMES = ("redis", "rediss", "unix")
RATE_BUDGET_URL_SETTING = "rate_budget_url (connection extra, or LETSJOBIT_RATE_BUDGET_URL)"
# What a secret is shown as (the API key in auth.py, a password in a URL).
REDACTED = "***"


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
    # Redis URL of the budget every host shares (redis://[:password@]host[:port][/db]); beats rate_state_dir.
    # Not in the repr: it may hold a password.
    rate_budget_url: str | None = field(default=None, repr=False)
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
        object.__setattr__(self, "rate_budget_url", normalize_rate_budget_url(self.rate_budget_url))


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


def normalize_rate_budget_url(raw: str | None) -> str | None:
    """The shared rate budget's Redis URL, checked; ``None`` when unset or blank (the file budget).

    Takes what redis-py's ``from_url`` takes: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://``
    (TLS) or ``unix://[[user]:password@]/path/to/socket[?db=N]``, with redis-py's query options. A refusal
    names the setting and shows the URL with its password replaced by ``***``.
    """
    text = (raw or "").strip()
    if not text:
        return None
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS, parse_url

    def refuse(problem: str) -> LetsJobItConfigError:
        return LetsJobItConfigError(
            f"{RATE_BUDGET_URL_SETTING} {redact_url(text)!r}: {problem}; expected e.g. "
            "redis://:PASSWORD@redis-host:6379/2, rediss://... (TLS) or unix:///run/redis.sock?db=2"
        )

    parts = urlsplit(text)
    if parts.scheme not in RATE_BUDGET_URL_SCHEMES:
        raise refuse(f"the scheme must be redis, rediss or unix, not {parts.scheme or 'none'!r}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise refuse("the port is not a number from 0 to 65535") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise refuse("no socket path")
    else:
        if not parts.hostname:
            raise refuse("no host")
        if parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise refuse(f"the database {unquote(parts.path.strip('/'))!r} is not a number")
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name not in URL_QUERY_ARGUMENT_PARSERS and name not in ("username", "password", "client_name"):
            raise refuse(f"unknown query parameter {name!r}")
    try:
        parse_url(text)
    except ValueError as exc:
        raise refuse(_redact_text(str(exc), text).rstrip(".")) from None
    return text


def redact_url(url: str) -> str:
    """``url`` with the password in its user info and in a ``password=`` query parameter replaced by ``***``.

    User info without a colon is hidden whole: ``redis://secret@host`` may mean a password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return REDACTED if "@" in url else url
    netloc_end = min(
        (i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest)
    )
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if colon else f"{REDACTED}@{hostport}"
    tail = re.sub(r"(?i)([?&]password=)[^&#]*", rf"\g<1>{REDACTED}", tail)
    return f"{scheme}://{netloc}{tail}"


def url_secrets(url: str | None) -> list[str]:
    """The passwords a URL carries, as typed and decoded, to register with a log masker."""
    if not url:
        return []
    found = set()
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        secret = userinfo.partition(":")[2] if ":" in userinfo else userinfo
        found |= {secret, unquote(secret)}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() == "password":
            found.add(value)
    return sorted(secret for secret in found if secret)


def _redact_text(text: str, url: str) -> str:
    for secret in url_secrets(url):
        text = text.replace(secret, REDACTED)
    return text


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


def describe_filters(params: dict) -> str:
    """`` where a=1, b=2`` for a log line about a listing (empty without filters)."""
    return (" where " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))) if params else ""
