"""How the dashboard is served: the one `streamlit run` command line used by `make dashboard`, the
docker-compose service and the browser tests.

    python -m letsjobit.dashboard [--address 127.0.0.1] [--port 8501] [--published-address ADDRESS] [--behind-auth-proxy]

Beyond loopback it starts only with a sign-in in front (dashboard/access.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from letsjobit.dashboard import access

APP = Path(__file__).resolve().with_name("app.py")
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501


def command(address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.address", address,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        # The OIDC sign-in's settings ([auth]) and the viewers' list, whatever the working directory.
        "--secrets.files", str(access.SECRETS_FILE),
        # Viewers, not authors: no "Deploy" button or developer menu, no rerun on source edits.
        "--client.toolbarMode", "viewer",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m letsjobit.dashboard", description="Serve the LetsJobIt KPI dashboard."
    )
    parser.add_argument(
        "--address", default=DEFAULT_ADDRESS, help="interface to listen on (0.0.0.0 in a container)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--published-address",
        help="where viewers reach it, when not --address (a container's host binding, from compose)",
    )
    parser.add_argument(
        "--behind-auth-proxy",
        action="store_true",
        help="an authenticating reverse proxy is in front: allow a non-loopback address without [auth]",
    )
    args = parser.parse_args(argv)
    protection = access.check_exposure(
        args.published_address or args.address, access.read_secrets(), args.behind_auth_proxy
    )
    print(f"LetsJobIt dashboard: {protection}", file=sys.stderr)  # the launcher's one line before streamlit
    argv = command(args.address, args.port)
    os.execv(argv[0], argv)  # noqa: S606 (no shell: a fixed argv) -- streamlit takes over this process, so signals reach it directly
