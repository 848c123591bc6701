"""Run one full listing in its own process (the two-process rate budget test starts two of these).

    python -m tests.api.rate_worker BASE_URL KEY STATE_DIR LIMIT WINDOW_SECONDS

Prints one JSON line: distinct visits, requests, 429s seen.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from letsjobit.api.client import LetsJobItClient
from letsjobit.api.paging import ScanStats
from letsjobit.api.settings import ClientSettings, RetryPolicy


def main(base_url: str, key: str, state_dir: str, limit: str, window: str) -> None:
    settings = ClientSettings(
        base_url=base_url,
        api_key=key,
        rate_state_dir=Path(state_dir),
        requests_per_window=int(limit),
        window_seconds=float(window),
        progress_interval_seconds=60,
    )
    policy = RetryPolicy(
        backoff_initial_seconds=0.01, backoff_max_seconds=0.05, rate_limit_extra_seconds=0.02
    )
    stats = ScanStats()
    with LetsJobItClient(settings, retry_policy=policy) as client:
        ids = {visit["_id"] for visit in client.iter_visits(stats=stats)}
    sys.stdout.write(
        json.dumps(
            {"visits": len(ids), "requests": stats.requests, "rate_limited_429": stats.rate_limited_429}
        )
        + "\n"
    )


if __name__ == "__main__":
    main(*sys.argv[1:6])
