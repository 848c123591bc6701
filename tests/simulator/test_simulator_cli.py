"""The CLI prints LISTENING once ready, serves, stops on SIGTERM, and never logs the key."""

from __future__ import annotations

import subprocess

import pytest
import requests
from letsjobit.simulator.__main__ import parse_args
from letsjobit.simulator.process import simulator_process


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


def test_cli_takes_the_bad_record_settings_and_refuses_an_unknown_kind(capsys):
    args = parse_args(
        [
            "--bad-record-rate",
            "0.03",
            "--bad-record-kinds",
            "missing_id, rating_six",
            "--unknown-field-rate",
            "0.01",
        ]
    )

    assert (args.bad_record_rate, args.unknown_field_rate) == (0.03, 0.01)
    assert args.bad_record_kinds == ("rating_six", "missing_id")  # catalogue order
    assert parse_args([]).bad_record_kinds is None  # all kinds
    with pytest.raises(SystemExit):
        parse_args(["--bad-record-kinds", "rating_six,nope"])
    assert "unknown bad record kind 'nope'" in capsys.readouterr().err


def test_cli_serves_the_bad_records_it_was_asked_for_and_their_ground_truth():
    settings = ["--visits", "200", "--anchor-date", "2026-11-01", "--bad-record-rate", "0.25"]
    settings += ["--bad-record-kinds", "missing_id,new_doc_type", "--unknown-field-rate", "0.1"]

    with simulator_process(*settings) as sim:
        truth = requests.get(sim.root_url + "/_sim/truth", timeout=10).json()
        bad = requests.get(sim.root_url + "/_sim/bad_records", timeout=10).json()

    assert set(bad["meta"]["kinds"]) == {"missing_id", "new_doc_type"}
    assert bad["data"].keys() == truth["meta"]["bad_records"].keys()
    served_without_id = {str(v["id"]) for v in truth["data"] if "_id" not in v}
    assert served_without_id == {
        key for key, kind in truth["meta"]["bad_records"].items() if kind == "missing_id"
    }
    assert any("travelTime" in v or "customerReference" in v or "geofence" in v for v in truth["data"])


def test_cli_key_placement_flag_plays_a_query_only_account():
    key = "cli-secret-key-9c1d4f"
    with simulator_process("--visits", "10", "--key-placement", "query", api_key=key) as sim:
        in_query = requests.get(sim.base_url + "/visits", params={"apiKey": key}, timeout=10)
        in_header = requests.get(
            sim.base_url + "/visits", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )

    assert (in_query.status_code, in_header.status_code) == (200, 401)
