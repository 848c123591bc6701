"""The API key: where it goes (the Authorization header or the query string), and that it never shows.

The reference shows the key both ways, so an account may take either. With ``key_placement="auto"`` (the
default) requests send the header first; on a 401 :meth:`KeyPlacement.after_refusal` sends that request
once more with the key in the other place, and remembers what worked for the key
(:class:`~letsjobit.api.keystate.PlacementMemory`), so later requests, other task processes and later
runs start there. ``header`` and ``query`` never switch. Messages name the placement, never the key,
and :class:`KeyRedactingFilter` scrubs every spelling of it from urllib3's debug lines.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote, quote_plus

import orjson
import requests
from filelock import FileLock

from letsjobit.api.errors import LetsJobItAuthError
from letsjobit.api.keystate import PlacementMemory, key_state_path
from letsjobit.api.pages import meta_of
from letsjobit.api.settings import REDACTED, ClientSettings

log = logging.getLogger(__name__)

# How each placement is named in messages (never with the key).
PLACEMENT_NAMES = {"header": "the Authorization header (Bearer)", "query": "the query string"}


def key_spellings(key: str) -> tuple[str, ...]:
    """Every spelling the key can take in a URL (requests encodes query values with quote_plus), longest
    first so that a redaction never leaves part of a longer one."""
    return tuple(
        sorted({key, quote(key, safe=""), quote(key, safe="/"), quote_plus(key)}, key=len, reverse=True)
    )


class KeyRedactingFilter(logging.Filter):
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


# Sends the request being answered once more, with the key in the placement given.
Send = Callable[[str], tuple[requests.Response, bytes]]


class KeyPlacement:
    """Where one client's requests send the key now (``current``), and the auto mode's retry after a 401.

    ``explain(content)`` gives the API's own message from an answer, redacted, for the errors.
    """

    def __init__(self, settings: ClientSettings, api_host: str, explain: Callable[[bytes], str]) -> None:
        self.settings = settings
        self.mode = settings.key_placement
        self._api_host = api_host
        self._explain = explain
        # In auto mode the first 401 may change ``current``, under this lock.
        self._lock = threading.Lock()
        self.memory = PlacementMemory(
            key_state_path(settings.rate_state_dir, "key-placement", api_host, settings.api_key)
            if self.mode == "auto" and settings.rate_state_dir
            else None
        )
        self.current = self._initial()

    def _initial(self) -> str:
        if self.mode != "auto":
            return self.mode
        remembered = self.memory.recall()
        if remembered is None:
            return "header"
        log.info(
            "Sending the API key in %s, as this key's API accepted before (%s)",
            PLACEMENT_NAMES[remembered],
            self.memory.path,
        )
        return remembered

    def describe(self, placement: str) -> str:
        """The placement as messages name it (the query parameter shown, the key never)."""
        if placement == "query":
            return f"the query string (?{self.settings.query_key_param}={REDACTED})"
        return PLACEMENT_NAMES[placement]

    def after_refusal(
        self, refused: str, refused_content: bytes, send: Send, what: str
    ) -> tuple[str, requests.Response, bytes]:
        """Auto placement after a 401: the same request once with the key in the other place.

        Under one lock per client (threads) and one file lock per key (processes), so the first 401
        decides: a request refused while another was already finding the placement just uses what that
        one found. A placement that worked is remembered; one that stops working (remembered or not) gets
        the same single retry the other way.
        """
        with self._lock, self._file_lock():
            settled = self.current
            if settled == refused:
                remembered = self.memory.recall()
                if remembered is not None and remembered != refused:
                    settled = self.current = remembered  # another process found it meanwhile
            if settled != refused:
                response, content = send(settled)
                return settled, response, content
            other = "query" if refused == "header" else "header"
            log.info(
                "%s: HTTP 401 with the API key in %s; sending the request once more with it in %s",
                what,
                PLACEMENT_NAMES[refused],
                self.describe(other),
            )
            # Not counted in stats.retries: a refused request did nothing, while delete_visit reads a retry
            # as "an earlier attempt may have gone through".
            response, content = send(other)
            if response.status_code == 401:
                raise self._refused_both_ways(what, (refused, refused_content), (other, content))
            # A fault or a 429 says nothing about the key: the next attempt of this request decides.
            if response.status_code < 500 and response.status_code not in (408, 429):
                self._settle(other, refused)
            return other, response, content

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        path = self.memory.path
        if path is None:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            yield

    def _settle(self, placement: str, refused: str) -> None:
        self.current = placement
        self.memory.remember(placement, self.settings.query_key_param, self._api_host)
        path = self.memory.path
        log.warning(
            "The API refused the key in %s and accepted it in %s: this key's requests send it there from "
            "now on%s. Set the connection extra key_placement to %r to skip the refused attempt.",
            PLACEMENT_NAMES[refused],
            self.describe(placement),
            f" (remembered in {path})" if path else "",
            placement,
        )

    def _refused_both_ways(
        self, what: str, first: tuple[str, bytes], second: tuple[str, bytes]
    ) -> LetsJobItAuthError:
        answers = [
            f"in {self.describe(placement)}: " + (self._explain(content).removeprefix("- ") or "HTTP 401")
            for placement, content in (first, second)
        ]
        param = self.settings.query_key_param
        meta = None
        with contextlib.suppress(orjson.JSONDecodeError):
            meta = meta_of(orjson.loads(second[1]))
        return LetsJobItAuthError(
            f"{what}: HTTP 401 both ways, the API refused the key {answers[0]}; and {answers[1]}. Check the "
            "API key (the connection's password, LETSJOBIT_API_KEY), that its account may use the API, and "
            f"the base URL {self.settings.base_url} (LETSJOBIT_API_URL). If the account expects the key "
            f"under another query parameter than {param!r} (API_KEY, apiKey, key...), set the connection "
            "extra query_key_param.",
            status=401,
            meta=meta,
        )
