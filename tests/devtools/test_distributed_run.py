"""The distributed run: letsjobit_visits on CeleryExecutor, PostgreSQL, Redis and two Celery workers.

Installs PostgreSQL and Redis from Debian's packages when missing (CI runs as root), starts everything as
separate processes, triggers a scheduled-style run (a window of visit dates, mapped extraction) through the
REST API and checks, while the cluster still runs: where each task instance ran, that the mapped
extraction tasks on the two workers together stayed within one API key's budget (the simulator's own
counters), and that the lake and the warehouse hold exactly the simulator's visits for the window. The
checks then fail the run on purpose, to prove the harness stops every process it started even when
something goes wrong.

The simulator's limit is scaled down (4 requests per 2 s instead of 100 per 10 s) so that the budget,
not the machine, sets the pace in a test of a few minutes; the connection tells the client the same.
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime

import duckdb
import pytest
import requests
from letsjobit import config
from letsjobit.airflow.tasks import safe_run_id
from letsjobit.devtools.distributed import RunOptions, RunReport, run
from letsjobit.devtools.services import process_group_alive
from letsjobit.lake import tables

from .helpers import ChecksPassed, most_at_once, ran_at_the_same_time_on_two_workers

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(540)]

WORKERS = ("airflow-worker-1", "airflow-worker-2")
POOL_SLOTS = 3  # below the DAG's own max_active_tis_per_dagrun (config.API_POOL_SLOTS), so the pool binds
RATE_LIMIT, RATE_WINDOW = 4, 2
SIMULATOR = (
    f"--visits 2000 --seed 7 --rate-limit {RATE_LIMIT} --rate-window {RATE_WINDOW} --rate-mode sliding"
)


def planned_dates(report: RunReport) -> list[str]:
    response = report.rest.get(
        f"/dags/{report.dag_id}/dagRuns/{report.run_id}/taskInstances/plan/xcomEntries/return_value"
        "?deserialize=true"
    )
    response.raise_for_status()
    chunks = response.json()["value"]
    return sorted(day for chunk in chunks for day in chunk["dates"])


def truth_by_date(report: RunReport, dates: list[str]) -> dict[str, set[str]]:
    origin = report.simulator_url.split("/api/", 1)[0]
    visits = requests.get(f"{origin}/_sim/truth", timeout=30).json()["data"]
    wanted: dict[str, set[str]] = {day: set() for day in dates}
    for visit in visits:
        if visit["date"] in wanted:
            wanted[visit["date"]].add(visit["_id"])
    return wanted


def lake_by_date(report: RunReport) -> dict[str, set[str]]:
    """Published visit ids by visit date (the lake's published version of visits)."""
    with duckdb.connect() as con:
        con.register("visits", tables.dataset(config.DataLayout(report.data_dir), "visits"))
        rows = con.execute("select visit_id, visit_date::varchar from visits").fetchall()
    found: dict[str, set[str]] = {}
    for visit_id, visit_date in rows:
        found.setdefault(visit_date, set()).add(visit_id)
    return found


def test_letsjobit_visits_runs_on_two_celery_workers_within_one_keys_budget_and_lands_the_lake_and_warehouse():
    seen: dict[str, RunReport] = {}

    def check(report: RunReport) -> None:
        seen["report"] = report
        tis = report.task_instances
        extract = [ti for ti in tis if ti["task_id"] == "extract"]
        assert report.state == "success"
        assert Counter(ti["state"] for ti in tis) == Counter({"success": len(tis)})
        assert {ti["hostname"] for ti in tis} == set(WORKERS)

        # Mapped extraction ran on both workers at once, never more tasks than the pool allows...
        assert len(extract) >= 4 and {ti["hostname"] for ti in extract} == set(WORKERS)
        assert {ti["pool"] for ti in extract} == {config.API_POOL}
        assert ran_at_the_same_time_on_two_workers(extract)
        assert most_at_once(extract) <= POOL_SLOTS
        # ...and together stayed within the key's budget, as the server counted it.
        counters = report.simulator_counters
        assert counters["rate_limit"] == {
            "limit": RATE_LIMIT,
            "window_seconds": RATE_WINDOW,
            "mode": "sliding",
            "count_rejected": False,
        }
        assert counters["requests_total"] > 2 * RATE_LIMIT  # enough requests for the budget to matter
        assert counters["max_requests_in_window"] <= RATE_LIMIT
        assert counters["rate_limited_429"] == 0

        # The lake holds exactly the simulator's visits of the planned window, one row each...
        dates = planned_dates(report)
        expected = truth_by_date(report, dates)
        lake = lake_by_date(report)
        assert set(lake) <= set(dates)
        assert {day: lake.get(day, set()) for day in dates} == expected
        visits = sum(len(ids) for ids in expected.values())
        assert visits > 0
        # ...and the warehouse was built from this run.
        with duckdb.connect(str(config.DataLayout(report.data_dir).warehouse), read_only=True) as warehouse:
            run_id, verdict = warehouse.execute(
                "select run_id, validation_verdict from marts.build_info"
            ).fetchone()
            fct_visits = warehouse.execute("select count(*) from marts.fct_visits").fetchone()[0]
        assert (run_id, verdict) == (safe_run_id(report.run_id), "pass")
        assert fct_visits == visits
        raise ChecksPassed

    try:
        with pytest.raises(ChecksPassed):
            run(
                RunOptions(
                    conf={"full_refresh": False},
                    logical_date=datetime.now(UTC).isoformat(),
                    pool_slots=POOL_SLOTS,
                    simulator=True,  # whatever LETSJOBIT_API_URL the shell has
                    simulator_arguments=SIMULATOR.split(),
                    conn_extra={"requests_per_window": RATE_LIMIT, "window_seconds": RATE_WINDOW},
                    run_timeout=300,
                ),
                inspect=check,
            )
        report = seen["report"]
        still_running = {name: pid for name, pid in report.pids.items() if process_group_alive(pid)}
        assert still_running == {}
        assert set(report.pids) >= {
            "postgres",
            "redis",
            "simulator",
            "scheduler",
            "dag-processor",
            "api-server",
            *WORKERS,
        }
    finally:
        if "report" in seen:
            shutil.rmtree(seen["report"].log_dir.parent, ignore_errors=True)
