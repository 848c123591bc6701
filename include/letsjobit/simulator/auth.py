"""Who may call the API: the key in ``Authorization: Bearer KEY`` or a query parameter, per key placement.

An account takes its key either way (the reference shows both), or only one of the two (``key_placement``).
The key itself never leaves this module's callers in the clear: counters show a fingerprint, logged
request paths have the key-bearing query parameters redacted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from urllib.parse import parse_qsl, quote

from .errors import ApiError

KEY_PARAMS = ("api_key", "API_KEY", "apiKey", "key")
# Where an account takes its key: either way (the reference shows both), only the header, only the query.
KEY_PLACEMENTS = ("any", "header", "query")


def authenticate(authorization: str, params: dict[str, str], keys: Collection[str], placement: str) -> str:
    """The valid key a request carries (its ``Authorization`` header, its query ``params``); 401 otherwise."""
    # An account that takes the key one way only does not look at the other: it is as if it were absent.
    if placement == "query":
        authorization = ""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
        if key in keys:
            return key
        raise ApiError(401, "Unauthorized: invalid API key in the Authorization header")
    if placement != "header":
        for name in KEY_PARAMS:
            if name in params:
                if params[name] in keys:
                    return params[name]
                raise ApiError(401, f"Unauthorized: invalid API key in the {name} query parameter")
    expected = {
        "any": "send Authorization: Bearer KEY or ?api_key=KEY",
        "header": "this account takes it as Authorization: Bearer KEY",
        "query": "this account takes it in the query string, ?api_key=KEY",
    }[placement]
    raise ApiError(401, f"Unauthorized: no API key ({expected})")


def key_fingerprint(key: str) -> str:
    """How a key appears in counters: never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def redact_path(path: str) -> str:
    """A request path with the values of key-bearing query parameters replaced."""
    if "?" not in path:
        return path
    base, _, query = path.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    return (
        base
        + "?"
        + "&".join(f"{quote(name)}={'***' if name in KEY_PARAMS else quote(value)}" for name, value in pairs)
    )
