"""`make run`'s driver end to end: simulator subprocess, throw-away Airflow home, DAG run, summary."""

import os
import subprocess
import sys

import pytest

from include.letsjobit import config

pytestmark = pytest.mark.airflow


def test_make_run_driver_loads_the_simulator_and_prints_a_summary(tmp_path):
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
    assert "validation: pass" in out
    assert str(tmp_path / "data" / "warehouse.duckdb") in out
    assert config.SIMULATOR_DEFAULT_KEY not in out + result.stderr
    assert (tmp_path / "data" / "warehouse.duckdb").exists()
