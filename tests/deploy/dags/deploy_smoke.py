"""A small DAG for the distributed run's own harness test: mapped tasks in the API pool, then a join.

Each mapped task holds its pool slot for a moment so that, with two Celery workers, both get work; the
join writes one JSON file to the data directory so the run can check a shared output exists.
"""

from __future__ import annotations

import json
import os
import time

from airflow.sdk import dag, get_current_context, task

from include.letsjobit import config

CHUNKS = 6
HOLD_SECONDS = 2.0


@dag(
    dag_id="deploy_smoke", schedule=None, catchup=False, tags=["deploy", "test"], default_args={"retries": 0}
)
def deploy_smoke():
    @task(pool=config.API_POOL)
    def work(chunk: int) -> dict:
        time.sleep(HOLD_SECONDS)
        ti = get_current_context()["ti"]
        return {"chunk": chunk, "hostname": ti.hostname, "pid": os.getpid()}

    @task
    def join(results: list[dict]) -> str:
        target = config.layout().reports / "deploy_smoke.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(sorted(results, key=lambda result: result["chunk"])))
        os.replace(temporary, target)
        return str(target)

    join(work.expand(chunk=list(range(CHUNKS))))


deploy_smoke()
