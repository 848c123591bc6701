"""Run one full listing in its own process (the two-process rate budget test starts two of these).

    python -m tests.api.rate_worker BASE_URL KEY STATE_DIR LIMIT WINDOW_SECONDS [RATE_BUDGET_URL]

With RATE_BUDGET_URL the budget is in Redis there, as on a host of its own. Prints one JSON line:
distinct visits, requests, 429s seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from letsjobit.api.client import LetsJobItClient
from letsjobit.api.paging import ScanStats
from letsjobit.api.settings import ClientSettings, RetryPolicy
from letsjobit.config import PROJECT_ROOT


def main(base_url: str, key: str, state_dir: str, limit: str, window: str, rate_budget_url: str = "") -> None:
    settings = ClientSettings(
        base_url=base_url,
        api_key=key,
        rate_state_dir=Path(state_dir),
        requests_per_window=int(limit),
        window_seconds=float(window),
        progress_interval_seconds=60,
        rate_budget_url=rate_budget_url or None,
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


def run_workers(sim, state_dirs, rate_budget_url: str = "") -> list[dict]:
    """One full listing per state dir, each in its own process (with ``rate_budget_url``: in Redis)."""
    limit, window = str(sim.config.rate_limit), str(sim.config.rate_window_seconds)
    argv = [sys.executable, "-m", "tests.api.rate_worker", sim.base_url, sim.api_key]
    procs = [
        subprocess.Popen(
            [*argv, str(state_dir), limit, window, rate_budget_url],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for state_dir in state_dirs
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


if __name__ == "__main__":
    main(*sys.argv[1:7])
