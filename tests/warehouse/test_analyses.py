"""The analyst's side: the example analyses run, the README shows them as they are, the CLI opens the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from letsjobit import config
from letsjobit.warehouse import build as warehouse
from letsjobit.warehouse import dictionary
from letsjobit.warehouse.models import load_analyses

from tests.warehouse import lakes

ANALYSES = load_analyses(config.SQL_DIR)


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory) -> Path:
    layout = config.DataLayout(tmp_path_factory.mktemp("analyses") / "data")
    lakes.publish_sample(layout)
    warehouse.build(layout, run_id="sample")
    return layout.warehouse


def test_there_are_five_example_analyses():
    assert len(ANALYSES) >= 5


@pytest.mark.parametrize("path", ANALYSES, ids=[path.stem for path in ANALYSES])
def test_each_analysis_runs_and_answers(sample_warehouse, path):
    connection = warehouse.connect_read_only(sample_warehouse)
    try:
        rows = connection.execute(dictionary.analysis_sql(path)).fetchall()
    finally:
        connection.close()

    assert rows, f"{path.name} returned nothing on the sample warehouse"


def _duckdb_cli() -> str | None:
    local = Path(sys.executable).parent / "duckdb"
    return str(local) if local.exists() else shutil.which("duckdb")


@pytest.mark.skipif(_duckdb_cli() is None, reason="the duckdb CLI (requirements-dev) is not installed")
def test_the_pinned_duckdb_cli_opens_the_warehouse(sample_warehouse):
    result = subprocess.run(
        [
            _duckdb_cli(),
            "-readonly",
            "-csv",
            str(sample_warehouse),
            "select fct_visits_rows, marts.close_rate(sum(closed_visits), sum(visits)) as close_rate "
            "from marts.build_info, marts.kpi_daily group by all",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    connection = warehouse.connect_read_only(sample_warehouse)
    try:
        (close_rate,) = connection.execute(
            "select count(*) filter (where closed) / count(*) from marts.fct_visits"
        ).fetchone()
    finally:
        connection.close()
    header, values = result.stdout.split()
    assert header == "fct_visits_rows,close_rate"
    assert values.split(",")[0] == "300" and float(values.split(",")[1]) == pytest.approx(close_rate)


def test_python_reads_the_warehouse_the_way_the_readme_says(sample_warehouse):
    connection = duckdb.connect(str(sample_warehouse), read_only=True)
    try:
        frame = connection.sql("select * from marts.kpi_daily order by visit_date").df()
    finally:
        connection.close()

    assert {"visits", "nps", "close_rate", "skip_rate", "avg_rating", "csat"} <= set(frame.columns)
