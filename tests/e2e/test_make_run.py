"""`make run`'s driver end to end: simulator subprocess, throw-away Airflow home, DAG run, summary."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from include.letsjobit import config, demo
from include.letsjobit.simulator import data
from include.letsjobit.simulator.expectations import expected_outcome

pytestmark = pytest.mark.airflow


def test_make_run_driver_loads_the_simulator_and_prints_a_summary_with_its_bad_records(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LETSJOBIT_", "AIRFLOW"))}
    env["LETSJOBIT_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-m", "include.letsjobit.demo", "--airflow-home", str(tmp_path / "airflow")],
        cwd=config.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "run succeeded" in out
    assert str(tmp_path / "data" / "warehouse.duckdb") in out
    assert config.SIMULATOR_DEFAULT_KEY not in out + result.stderr
    assert (tmp_path / "data" / "warehouse.duckdb").exists()

    # The embedded simulator's bad records, as the oracle says the run must have met them.
    bad_records: dict[str, str] = {}
    visits = data.generate_visits(
        demo.SIMULATOR_VISITS,
        demo.SIMULATOR_SEED,
        datetime.now(UTC).date(),  # the simulator's default anchor
        bad_rate=demo.SIMULATOR_BAD_RECORD_RATE,
        unknown_field_rate=demo.SIMULATOR_UNKNOWN_FIELD_RATE,
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
    for kind in {data.bad_record_kind(name) for name in bad_records.values()}:
        if kind.check in ("visits.doc_type_known", "line_extra_data.type_documented"):
            assert f"{kind.value!r} x" in out  # an unknown value, listed as kept as sent
