"""The DAG end to end: real `airflow dags test` runs against the simulator over loopback.

Checks the lake and the warehouse against the simulator's ground truth and the KPIs against the test
oracle's recomputation from the served records (letsjobit.devtools.truth):
a full refresh, an overlapping scheduled-style window run that is idempotent and picks up changes, and
a run that fails in the middle (the API answering 500 beyond every retry) and is then re-run.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from letsjobit import config
from letsjobit.devtools.airflow_runner import AirflowHome
from letsjobit.devtools.truth import kpi_mismatches
from letsjobit.lake import tables
from letsjobit.simulator import SimulatorConfig, SimulatorServer

from tests.conftest import TEST_ANCHOR_DATE, TEST_API_KEY
from tests.e2e.helpers import dags_test

pytestmark = pytest.mark.airflow

# A scheduled-style run at the day after the anchor: its data interval (the day before the anchor)
# widened by the look-back and look-ahead days re-reads anchor-4 .. anchor.
WINDOW_RUN_DATE = (TEST_ANCHOR_DATE + timedelta(days=1)).isoformat()
WINDOW_CONF = {"full_refresh": False, "lookback_days": 3, "lookahead_days": 1}


def warehouse_kpis(path) -> dict[date, tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select visit_date, visits, closed_visits, skipped_visits, rated_visits, round(nps, 6) "
            "from marts.kpi_daily"
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def fingerprint(path) -> str:
    """A digest of the warehouse's visits as a reader sees them."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select visit_id, visit_date, closed, signee_rating from marts.fct_visits order by visit_id"
        ).fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def sim():
    server = SimulatorServer(
        SimulatorConfig(
            visits=600, seed=11, anchor_date=TEST_ANCHOR_DATE, days=20, days_ahead=5, api_keys=(TEST_API_KEY,)
        )
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def airflow(sim, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    home = AirflowHome(
        path=root / "airflow",
        api_url=sim.base_url,
        api_key=TEST_API_KEY,
        data_dir=root / "data",
        log_file=root / "airflow.log",
        retry_delay_seconds=1,
        conn_extra={"fault_budget_seconds": 3},
    )
    home.init()
    return home


def run(airflow: AirflowHome, **kwargs) -> int:
    return dags_test(airflow, **kwargs)[0]


def test_full_refresh_lands_every_visit_and_exact_kpis(sim, airflow):
    assert run(airflow, conf={"full_refresh": True}) == 0, f"DAG run failed; see {airflow.log_file}"

    truth = sim.store.snapshot()
    layout = config.DataLayout(airflow.data_dir)
    lake_ids = set(tables.read_table(layout, "visits").column("visit_id").to_pylist())
    assert lake_ids == {visit["_id"] for visit in truth}
    assert kpi_mismatches(layout.warehouse, truth, sim.store.bad_records) == []


def test_window_run_replaces_its_dates_and_is_idempotent(sim, airflow):
    layout = config.DataLayout(airflow.data_dir)
    window = {TEST_ANCHOR_DATE + timedelta(days=offset) for offset in range(-4, 1)}
    in_window = [v for v in sim.store.snapshot() if date.fromisoformat(v["date"]) in window]
    outside = [v for v in sim.store.snapshot() if date.fromisoformat(v["date"]) not in window]
    # Changes at the source between runs: inside the window they must show; outside they must not yet.
    sim.store.update(
        in_window[0]["_id"], {"closed": 1, "skipped": 0, "signeeRating": "5", "closeDate": "2026-11-01 10:00"}
    )
    sim.store.delete(in_window[1]["_id"])
    sim.store.update(outside[0]["_id"], {"signeeRating": "1"})
    before_outside = {d: k for d, k in warehouse_kpis(layout.warehouse).items() if d not in window}

    assert run(airflow, logical_date=WINDOW_RUN_DATE, conf=WINDOW_CONF) == 0
    first = fingerprint(layout.warehouse)
    assert run(airflow, logical_date=WINDOW_RUN_DATE, conf=WINDOW_CONF) == 0
    assert fingerprint(layout.warehouse) == first, "a second identical run changed the warehouse"

    kpis = warehouse_kpis(layout.warehouse)
    assert kpi_mismatches(layout.warehouse, sim.store.snapshot(), sim.store.bad_records, window) == []
    assert {d: k for d, k in kpis.items() if d not in window} == before_outside
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        assert (
            con.execute("select count(*) - count(distinct visit_id) from marts.fct_visits").fetchone()[0] == 0
        )
        assert (
            con.execute(
                "select count(*) from marts.fct_visits where visit_id = ?", [in_window[1]["_id"]]
            ).fetchone()[0]
            == 0
        )


def test_failed_run_keeps_last_good_warehouse_and_rerun_recovers(sim, airflow):
    layout = config.DataLayout(airflow.data_dir)
    good = fingerprint(layout.warehouse)
    visits_table = Path(layout.table_uri("visits"))
    lake_files = sorted(p.relative_to(layout.lake) for p in visits_table.rglob("*"))
    sim.store.update(sim.store.snapshot()[5]["_id"], {"signeeRating": "2"})

    sim.set_faults(force_status=500)
    try:
        assert run(airflow, conf={"full_refresh": True}) != 0
    finally:
        sim.set_faults(force_status=None)
    assert fingerprint(layout.warehouse) == good, "a failed run changed the published warehouse"
    assert sorted(p.relative_to(layout.lake) for p in visits_table.rglob("*")) == lake_files  # no commit

    assert run(airflow, conf={"full_refresh": True}) == 0
    assert kpi_mismatches(layout.warehouse, sim.store.snapshot(), sim.store.bad_records) == []
