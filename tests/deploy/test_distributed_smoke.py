"""The distributed run's harness on a small DAG of its own, while letsjobit_visits cannot run yet.

Once the hook, the lake and the warehouse are all present, test_distributed_run.py runs the real DAG
through the same harness and proves everything this test does, so this one steps aside.

Installs PostgreSQL and Redis from Debian's packages when missing (CI runs as root), starts everything as
separate processes, triggers the DAG through the REST API and checks, while the cluster still runs, where
each task instance ran. The checks then fail the run on purpose, to prove the harness stops every
process it started even when something goes wrong.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from deploy.distributed_run import RunOptions, RunReport, run

from .helpers import ChecksPassed, most_at_once, pipeline_complete, process_group_alive

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.timeout(480),
    pytest.mark.skipif(pipeline_complete(), reason="test_distributed_run.py runs the real DAG instead"),
]

SMOKE_DAGS = Path(__file__).parent / "dags"
POOL_SLOTS = 3
WORKERS = ("airflow-worker-1", "airflow-worker-2")


def test_mapped_tasks_run_on_both_celery_workers_within_the_api_pool_and_everything_stops_after():
    seen: dict[str, object] = {}

    def check(report: RunReport) -> None:
        work = [ti for ti in report.task_instances if ti["task_id"] == "work"]
        assert report.state == "success"
        assert all(ti["state"] == "success" for ti in report.task_instances)
        assert {ti["hostname"] for ti in work} == set(WORKERS)
        assert {ti["pool"] for ti in work} == {"letsjobit_api"}
        assert all(isinstance(ti["start_date"], datetime) for ti in work)
        assert most_at_once(work) <= POOL_SLOTS
        # The join read every mapped result over XCom and wrote to the shared data directory.
        written = json.loads((report.data_dir / "reports" / "deploy_smoke.json").read_text())
        assert [result["chunk"] for result in written] == list(range(len(work)))
        assert {result["hostname"] for result in written} == set(WORKERS)
        assert set(report.pids) >= {"postgres", "redis", "scheduler", "dag-processor", "api-server", *WORKERS}
        seen["report"] = report
        raise ChecksPassed

    try:
        with pytest.raises(ChecksPassed):
            run(
                RunOptions(
                    dag_id="deploy_smoke",
                    dags_folder=SMOKE_DAGS,
                    simulator=False,
                    pool_slots=POOL_SLOTS,
                    run_timeout=150,
                ),
                inspect=check,
            )
        report = seen["report"]
        assert isinstance(report, RunReport)
        still_running = {name: pid for name, pid in report.pids.items() if process_group_alive(pid)}
        assert still_running == {}
    finally:
        if "report" in seen:
            shutil.rmtree(seen["report"].log_dir.parent, ignore_errors=True)
