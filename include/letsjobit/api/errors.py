"""Every error the LetsJobIt API client raises; each message names the request (method, path, offset),
never the key.

``LetsJobItTransientError`` and its subclasses are retried (``RetryPolicy``); the others end a request
at once. ``LetsJobItAPIError`` carries the answer's status and ``meta``.
"""

from __future__ import annotations


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


class LetsJobItRateBudgetUnavailable(LetsJobItError):
    """The shared rate budget (Redis) cannot be reached: requests stop rather than pace this host alone."""


class LetsJobItDriftError(LetsJobItError):
    """The listing changed faster than the extraction could stitch it together."""
