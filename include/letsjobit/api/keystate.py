"""Small state kept per API key under ``$LETSJOBIT_DATA_DIR/.state/``, in files named by a hash.

A file's name is the only link to its key: a SHA-256 of the kind of state, the API host and the key,
never the key itself, so the state directory can be listed, read or backed up without exposing it. Two
kinds live there: the key's shared rate budget (``ratelimit.py``; in Redis, under the same name, when
``rate_budget_url`` is set) and the key placement the API accepted (:class:`PlacementMemory`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from letsjobit import files

log = logging.getLogger(__name__)

# Where the client sends the key: "header" is Authorization: Bearer, "query" a query parameter.
SENT_PLACEMENTS = ("header", "query")
PLACEMENT_FORMAT_VERSION = 1


def key_state_name(kind: str, api_host: str, api_key: str) -> str:
    """``<kind>-<hash>``: the name of one key's state on one API host (a file's stem, a Redis key's tail)."""
    digest = hashlib.sha256(f"letsjobit-{kind}\0{api_host}\0{api_key}".encode()).hexdigest()
    return f"{kind}-{digest[:24]}"


def key_state_path(state_dir: Path, kind: str, api_host: str, api_key: str) -> Path:
    """``<state_dir>/<kind>-<hash>.json``: the state of one key on one API host, named by a hash only."""
    return Path(state_dir) / f"{key_state_name(kind, api_host, api_key)}.json"


class PlacementMemory:
    """The key placement an API accepted for one key, remembered across processes and runs.

    The file holds the placement, the query parameter's name, the host and when it was learned; never
    the key. ``path=None`` remembers nothing (no state directory configured).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def recall(self) -> str | None:
        """The remembered placement, or None when there is none (or the file is unreadable)."""
        if self.path is None:
            return None
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("Key placement memory %s unreadable (%s); trying the header first", self.path, exc)
            return None
        if not isinstance(state, dict) or state.get("v") != PLACEMENT_FORMAT_VERSION:
            return None
        placement = state.get("key_placement")
        return placement if placement in SENT_PLACEMENTS else None

    def remember(self, placement: str, query_key_param: str, api_host: str) -> None:
        """Write the placement atomically (``letsjobit.files``); a failure only costs the memory."""
        if self.path is None:
            return
        state = {
            "v": PLACEMENT_FORMAT_VERSION,
            "key_placement": placement,
            "query_key_param": query_key_param if placement == "query" else None,
            "api_host": api_host,
            "learned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            files.write_json(self.path, state)
        except OSError as exc:
            log.warning("Could not remember the key placement in %s: %s", self.path, exc)
