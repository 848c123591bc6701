"""`make run` and `make run-window` end to end: what the Makefile runs (``python -m letsjobit.devtools.run``),
a simulator, a throw-away Airflow home, real DAG runs and their summaries.

One `make run` on the embedded simulator is shared by the summary test and the window test after it.
Pointed at an account with only LETSJOBIT_API_URL and LETSJOBIT_API_KEY, `make run` works whether the
account takes the key only in the query string or only in the header, and leaves the key in no file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from letsjobit import config
from letsjobit.devtools import run
from letsjobit.lake import tables
from letsjobit.simulator import SimulatorConfig, SimulatorServer, data
from letsjobit.simulator.bad_record_kinds import bad_record_kind
from letsjobit.simulator.expectations import expected_outcome

pytestmark = pytest.mark.airflow


def clean_environment(root: Path, **variables: str) -> dict[str, str]:
    """A new user's shell: none of the pipeline's or Airflow's variables, a data dir of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LETSJOBIT_", "AIRFLOW"))}
    return {**env, "LETSJOBIT_DATA_DIR": str(root / "data"), **variables}


def make_run(root: Path, env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "letsjobit.devtools.run", *arguments, "--airflow-home", str(root / "airflow")],
        cwd=config.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def visits_in_lake(root: Path) -> int:
    return tables.dataset(config.DataLayout(root / "data"), "visits").count_rows()


def files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def numbers(pattern: str, text: str) -> tuple[int, ...]:
    found = re.search(pattern, text)
    assert found, f"no line matching {pattern!r} in:\n{text[-3000:]}"
    return tuple(int(group.replace(",", "")) for group in found.groups())


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("make_run")
    env = clean_environment(root)
    return root, env, make_run(root, env)


def test_make_run_loads_the_simulator_and_prints_a_summary_with_its_bad_records(first_run):
    root, _, result = first_run

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "run succeeded" in out
    # The embedded simulator's bad records, as the oracle says the run must have met them.
    settings = json.loads(run.simulator_state_path(config.DataLayout(root / "data")).read_text())
    bad_records: dict[str, str] = {}
    visits = data.generate_visits(
        settings["visits"],
        settings["seed"],
        date.fromisoformat(settings["anchor_date"]),
        bad_rate=settings["bad_record_rate"],
        unknown_field_rate=settings["unknown_field_rate"],
        bad_log=bad_records,
    )
    expected = expected_outcome(visits, bad_records)
    field = sum(issue.severity == "field" for issue in expected.issues)
    record = sum(issue.severity == "record" for issue in expected.issues)
    # Rows leave the lake only for a visit without a real date (one without _id never landed).
    with_id = {visit["_id"] for visit in visits if "_id" in visit}
    verdict = "quarantined" if expected.quarantined.keys() & with_id else "pass"
    assert field and f"validation: {verdict}, {field:,} field issue(s)" in out
    assert f"{record:,} record(s) quarantined" in out
    for kind in {bad_record_kind(name) for name in bad_records.values()}:
        if kind.check in ("visits.doc_type_known", "line_extra_data.type_documented"):
            assert f"{kind.value!r} x" in out  # an unknown value, listed as kept as sent
    assert visits_in_lake(root) == len(expected.published)
    assert str(root / "data" / "warehouse.duckdb") in out
    assert (root / "data" / "warehouse.duckdb").exists()
    assert config.SIMULATOR_DEFAULT_KEY not in out + result.stderr
    assert files_holding(root, config.SIMULATOR_DEFAULT_KEY) == []


def test_make_run_window_after_make_run_says_what_it_re_read_and_what_changed_in_the_lake(first_run):
    root, env, first = first_run
    assert first.returncode == 0, first.stdout[-3000:]
    before = visits_in_lake(root)

    result = make_run(root, env, "--window")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    updated, deleted, inserted = numbers(
        r"Simulator: before the run, (\d+) visits updated, (\d+) deleted and (\d+) inserted", out
    )
    added, changed, moved, removed = numbers(
        r"lake changes: ([\d,]+) visits added, ([\d,]+) updated \(([\d,]+) moved to another date\), "
        r"([\d,]+) removed",
        out,
    )
    assert min(updated, deleted, inserted) > 0
    assert (added, changed, moved, removed) == (inserted, updated, 0, deleted)
    assert visits_in_lake(root) == before + inserted - deleted
    # The window the DAG's timetable gives for the logical date is the one the run published...
    planned = re.search(r"its window is (\d+) visit dates, (\S+) \.\. (\S+)", out)
    reread = re.search(r"window: re-read (\d+) visit dates, (\S+) \.\. (\S+);", out)
    assert planned and reread and planned.groups() == reread.groups()
    # ...and it covers today, where the simulator's data (anchored on the day of make run) lies.
    assert date.fromisoformat(reread[2]) <= date.today() <= date.fromisoformat(reread[3])
    assert "NOTE" not in out
    assert files_holding(root, config.SIMULATOR_DEFAULT_KEY) == []


@pytest.mark.parametrize("placement", ["query", "header"])
def test_make_run_needs_only_a_url_and_a_key_whichever_way_the_account_takes_the_key(tmp_path, placement):
    key = f"account-key-{placement}-7f3e9a1c5b2d"
    account = SimulatorConfig(visits=300, seed=5, api_keys=(key,), key_placement=placement)
    with SimulatorServer(account) as sim:
        env = clean_environment(tmp_path, LETSJOBIT_API_URL=sim.base_url, LETSJOBIT_API_KEY=key)
        result = make_run(tmp_path, env)
        counters = sim.counters()

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "run succeeded" in result.stdout
    assert visits_in_lake(tmp_path) == 300
    remembered = list((tmp_path / "data" / ".state").glob("key-placement-*.json"))
    if placement == "query":
        # One refused header, then every request with the key in the query string, remembered.
        assert counters["unauthorized"] == 1
        assert len(remembered) == 1 and '"key_placement": "query"' in remembered[0].read_text()
    else:
        assert counters["unauthorized"] == 0 and remembered == []
    assert key not in result.stdout + result.stderr
    assert files_holding(tmp_path, key) == []  # the data dir, the Airflow home and its logs
