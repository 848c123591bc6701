"""The CLI prints LISTENING once ready, serves, stops on SIGTERM, and never logs the key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests

from include.letsjobit import config


def test_cli_prints_listening_serves_and_stops_on_sigterm_without_logging_the_key():
    key = "cli-secret-key-5b7e2a"
    env = {**os.environ, "LETSJOBIT_API_KEY": key}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "include.letsjobit.simulator",
            "--port",
            "0",
            "--visits",
            "120",
            "--seed",
            "3",
            "--anchor-date",
            "2026-11-01",
            "--log-level",
            "DEBUG",
        ],
        cwd=config.PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("LISTENING http://127.0.0.1:")
        base_url = line.split(" ", 1)[1]
        assert base_url.endswith("/api/v2")

        answer = requests.get(base_url + "/visits", params={"api_key": key, "pagination": 100}, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["meta"]["returnedRecords"] == 20
        assert requests.get(base_url + "/visits", params={"key": "nope"}, timeout=10).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)

    assert process.returncode == 0
    assert stdout == ""  # exactly one line was printed
    assert "/visits" in stderr  # requests were logged ...
    assert key not in stderr  # ... without the key
