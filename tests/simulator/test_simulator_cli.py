"""The CLI prints LISTENING once ready, serves, stops on SIGTERM, and never logs the key."""

from __future__ import annotations

import subprocess

import requests

from include.letsjobit.simulator.process import simulator_process


def test_cli_prints_listening_serves_and_stops_on_sigterm_without_logging_the_key():
    key = "cli-secret-key-5b7e2a"
    settings = ["--visits", "120", "--seed", "3", "--anchor-date", "2026-11-01", "--log-level", "DEBUG"]

    with simulator_process(*settings, api_key=key, stderr=subprocess.PIPE) as sim:
        assert sim.base_url.startswith("http://127.0.0.1:") and sim.base_url.endswith("/api/v2")
        answer = requests.get(
            sim.base_url + "/visits", params={"api_key": key, "pagination": 100}, timeout=10
        )
        refused = requests.get(sim.base_url + "/visits", params={"key": "nope"}, timeout=10)
        health = requests.get(sim.root_url + "/_sim/health", timeout=10)
    stdout, stderr = sim.process.communicate(timeout=20)

    assert answer.status_code == 200 and answer.json()["meta"]["returnedRecords"] == 20
    assert refused.status_code == 401
    assert health.json()["visits"] == 120
    assert sim.process.returncode == 0  # SIGTERM is a clean stop
    assert stdout == ""  # LISTENING was the only line
    assert "/visits" in stderr  # requests were logged ...
    assert key not in stderr  # ... without the key


def test_cli_key_placement_flag_plays_a_query_only_account():
    key = "cli-secret-key-9c1d4f"
    with simulator_process("--visits", "10", "--key-placement", "query", api_key=key) as sim:
        in_query = requests.get(sim.base_url + "/visits", params={"apiKey": key}, timeout=10)
        in_header = requests.get(
            sim.base_url + "/visits", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )

    assert (in_query.status_code, in_header.status_code) == (200, 401)
