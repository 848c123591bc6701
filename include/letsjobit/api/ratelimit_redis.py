"""The rate budget's state in Redis, so the API key's one budget is shared by workers on every host.

:class:`RedisStore` is a :class:`~letsjobit.api.ratelimit.BudgetStore`: the window arithmetic stays in
``RateBudget``, the same as for the file budget; this module only makes each change atomic across hosts.
A change is optimistic (compare-and-set), in two Lua scripts run with EVALSHA:

1. ``LOAD`` returns the state and the Redis server's ``TIME`` in one atomic step;
2. the budget applies its change to that state at that time;
3. ``STORE`` writes the new state only if the state is still the one loaded, else the change is run
   again on the fresh state. A change that alters nothing (a poll while every slot is taken) writes
   nothing, so waiting users never make each other retry.

Every time stamp is the Redis server's clock, never a worker's: hosts whose clocks disagree still share
one window, and only the differences between the server's own stamps are compared. (A step of the Redis
host's clock itself would move the window; NTP's slewing does not.)

The state is one string key, ``letsjobit:rate-budget-<hash>``, the hash of the API host and key that
names the file budget (``keystate.py``), never the key; it holds slot ids and time stamps only. Every
write sets its TTL to when nothing in it can matter any more (the newest slot's keep time, a pause's
end) plus a minute, so an abandoned key's state goes away by itself.

If Redis stops answering (after reconnects for about 3 s, which ride out a restart), the request fails with
:class:`~letsjobit.api.errors.LetsJobItRateBudgetUnavailable`: falling back to a per-host budget would
let the hosts together exceed the key's limit.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from letsjobit.api.errors import LetsJobItConfigError, LetsJobItRateBudgetUnavailable
from letsjobit.api.ratelimit import MAX_SERVER_PAUSE_SECONDS, STATE_FORMAT_VERSION, fresh_state
from letsjobit.api.settings import RATE_BUDGET_URL_SETTING, REDACTED, redact_url, url_secrets

log = logging.getLogger(__name__)

KEY_PREFIX = "letsjobit:"
# How long one Redis command may take, and the reconnects (0.1 s doubling: 3.1 s in all) that ride out a
# blip before a request fails. Ours rather than redis-py's, which would also retry refused credentials.
SOCKET_TIMEOUT_SECONDS = 5.0
RECONNECTS = 5
RECONNECT_BACKOFF_SECONDS = 0.1
# Kept beyond the last moment the state matters, so a slow clock or a late reader never finds it gone.
TTL_SLACK_SECONDS = 60
# Compare-and-set attempts before a change gives up; each loses only to another user's committed change.
MAX_CONFLICTS = 200

T = TypeVar("T")

# KEYS[1]: the state. Returns {state or "", seconds, microseconds}: what the state was at that time.
LOAD_SCRIPT = """
local now = redis.call('TIME')
return {redis.call('GET', KEYS[1]) or '', now[1], now[2]}
"""
# KEYS[1]: the state; ARGV: the state loaded, the new state, its TTL in seconds. 1 if written.
STORE_SCRIPT = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


class RedisStore:
    """One API key's budget state in Redis at ``url``, under ``letsjobit:<name>``.

    ``keep_seconds``: how long after its stamp a slot may still count (the budget's longest: the stale
    in-flight limit or one window), for the key's TTL. ``reconnects``: attempts after a lost connection
    before a change fails. Connects on first use.
    """

    def __init__(self, url: str, name: str, *, keep_seconds: float, reconnects: int = RECONNECTS) -> None:
        self.key = KEY_PREFIX + name
        self.shown_url = redact_url(url)
        self.keep_seconds = float(keep_seconds)
        self.reconnects = reconnects
        self._secrets = url_secrets(url)
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        self._load = self._redis.register_script(LOAD_SCRIPT)
        self._store = self._redis.register_script(STORE_SCRIPT)

    def describe(self) -> str:
        return f"shared via Redis {self.shown_url} key {self.key}"

    def close(self) -> None:
        self._redis.close()

    def transact(self, change: Callable[[dict, float], T]) -> T:
        # Running a change again after a lost answer is safe: each change sets a slot or a max(), by id.
        for attempt in range(self.reconnects + 1):
            try:
                return self._transact(change)
            except redis.AuthenticationError as exc:
                raise LetsJobItConfigError(
                    f"{RATE_BUDGET_URL_SETTING}: Redis at {self.shown_url} refused the credentials "
                    f"({self._redact(str(exc))})"
                ) from None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt == self.reconnects:
                    raise self._unavailable(exc) from None
                time.sleep(RECONNECT_BACKOFF_SECONDS * 2**attempt)
            except redis.RedisError as exc:
                raise self._unavailable(exc) from None
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _transact(self, change: Callable[[dict, float], T]) -> T:
        for _ in range(MAX_CONFLICTS):
            loaded, seconds, microseconds = self._load(keys=[self.key])
            now = int(seconds) + int(microseconds) / 1e6
            state = self._decode(loaded)
            result = change(state, now)
            state["v"] = STATE_FORMAT_VERSION
            written = json.dumps(state, separators=(",", ":")).encode()
            if written == loaded:
                return result
            if self._store(keys=[self.key], args=[loaded, written, self._ttl(state, now)]):
                return result
        raise LetsJobItRateBudgetUnavailable(
            f"the shared rate budget in Redis at {self.shown_url}: {MAX_CONFLICTS} changes in a row lost to "
            "other users' changes"
        )

    def _unavailable(self, exc: Exception) -> LetsJobItRateBudgetUnavailable:
        return LetsJobItRateBudgetUnavailable(
            f"the shared rate budget in Redis at {self.shown_url} is unavailable "
            f"({type(exc).__name__}: {self._redact(str(exc))[:300]}); stopping rather than pacing this host "
            "alone, which could exceed the API key's limit across hosts"
        )

    def _decode(self, loaded: bytes) -> dict:
        if not loaded:
            return fresh_state()
        try:
            state = json.loads(loaded)
        except ValueError as exc:
            # Only something else writing the key could do this; the server's headers still pace us.
            log.warning("Rate budget state %s in Redis unreadable (%s); starting a fresh log", self.key, exc)
            return fresh_state()
        if not isinstance(state, dict) or state.get("v") != STATE_FORMAT_VERSION:
            return fresh_state()
        return state

    def _ttl(self, state: dict, now: float) -> int:
        stamps = [stamp for stamp, _ in state["entries"].values()]
        matters_until = max(
            [float(state.get("blocked_until", 0.0)), *(s + self.keep_seconds for s in stamps)]
        )
        # Bounded: a stamp from the future (the server's clock stepped back) must not keep the key for ever.
        longest = MAX_SERVER_PAUSE_SECONDS + self.keep_seconds
        return max(1, math.ceil(min(matters_until - now, longest))) + TTL_SLACK_SECONDS

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text
