"""LetsJobIt visits: extract -> stage -> audit -> publish the lake -> build the warehouse.

Wiring only: every task calls one function of letsjobit.airflow.tasks. Nothing here touches the
network, reads secrets or imports heavy libraries at parse time.

Two DAGs:
- letsjobit_visits: daily, over a window of visit dates around its data interval (or everything with
  the `full_refresh` param); publishes the lake (asset `letsjobit_lake`) and rebuilds the warehouse.
- letsjobit_warehouse: runs on its own whenever the lake asset changes, and rebuilds the warehouse
  unless the lake's latest publication is already built (so it never repeats the daily run's build).

Every task runs inside ``tasks.fail_fast()``: an error that waiting cannot heal (the key refused, a
bad request, a failed gate) fails it at once, without retries. A failed run sends one mail, and a run
that publishes with data issues one quality mail, when LETSJOBIT_ALERT_EMAILS is set (include/letsjobit/airflow/alerts.py).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task
from letsjobit import config
from letsjobit.airflow import alerts, tasks

LAKE = Asset("letsjobit_lake")
# Stage, audit, publish and the warehouse builds use one host's disk: its workers alone take this queue.
PUBLISH_QUEUE = config.publish_queue()
WAREHOUSE = Asset("letsjobit_warehouse")

default_args = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": config.task_retry_delay(),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": tasks.log_task_failure,
}


@dag(
    dag_id="letsjobit_visits",
    description="LetsJobIt API v2 visits -> parquet lake -> DuckDB warehouse",
    # A real data interval (a bare cron string would give a zero-width one in Airflow 3).
    schedule=CronDataIntervalTimetable("0 4 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # One writer at a time: runs replace lake partitions and swap the warehouse file.
    max_active_runs=1,
    max_active_tasks=8,
    default_args=default_args,
    # Run level, so one failed run sends one mail however many tasks failed.
    on_failure_callback=alerts.on_run_failure,
    on_success_callback=alerts.on_run_success,
    params={
        "full_refresh": Param(
            False, type="boolean", description="Extract every visit and replace the whole lake"
        ),
        "lookback_days": Param(
            14, type="integer", minimum=0, description="Visit dates before the interval to re-read"
        ),
        "lookahead_days": Param(
            7, type="integer", minimum=0, description="Visit dates after the interval to re-read"
        ),
    },
    tags=["letsjobit", "extract", "warehouse"],
    doc_md=__doc__,
)
def letsjobit_visits():
    @task
    def plan(params=None, data_interval_start=None, data_interval_end=None, dag_run=None) -> list[dict]:
        with tasks.fail_fast():
            return tasks.plan_chunks(
                full_refresh=params["full_refresh"],
                interval_start=data_interval_start,
                interval_end=data_interval_end,
                lookback_days=params["lookback_days"],
                lookahead_days=params["lookahead_days"],
                run_after=dag_run.run_after if dag_run is not None else None,
            )

    # The pool bounds how many chunks call the API at once; the key's rate budget is shared by all of them.
    @task(pool=config.API_POOL, max_active_tis_per_dagrun=config.API_POOL_SLOTS, retries=3)
    def extract(chunk: dict) -> dict:
        with tasks.fail_fast():
            return tasks.extract_chunk_from_connection(
                tasks.safe_run_id(get_current_context()["run_id"]), chunk
            )

    @task(queue=PUBLISH_QUEUE)
    def stage(extracted: list[dict]) -> dict:
        with tasks.fail_fast():
            return tasks.stage(tasks.safe_run_id(get_current_context()["run_id"]))

    @task(queue=PUBLISH_QUEUE)
    def audit(extracted: list[dict], staged: dict) -> dict:
        # A failed gate fails the same way again: fail_fast fails it now, no retries (nothing is published).
        with tasks.fail_fast():
            return tasks.audit(
                tasks.safe_run_id(get_current_context()["run_id"]), tasks.materialise(extracted), staged
            )

    @task(outlets=[LAKE], queue=PUBLISH_QUEUE)
    def publish(extracted: list[dict], audited: dict) -> dict:
        context = get_current_context()
        with tasks.fail_fast():
            published = tasks.publish(
                tasks.safe_run_id(context["run_id"]), tasks.materialise(extracted), audited
            )
        context["outlet_events"][LAKE].extra = {
            "run_id": published["run_id"],
            "partitions": published["partitions"],
        }
        return published

    @task(outlets=[WAREHOUSE], queue=PUBLISH_QUEUE)
    def build_warehouse(published: dict) -> dict:
        with tasks.fail_fast():
            return tasks.build_warehouse(published)

    extracted = extract.expand(chunk=plan())
    staged = stage(extracted)
    audited = audit(extracted, staged)
    build_warehouse(publish(extracted, audited))


@dag(
    dag_id="letsjobit_warehouse",
    description="Rebuild the DuckDB warehouse when the LetsJobIt lake changes",
    schedule=[LAKE],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    on_failure_callback=alerts.on_run_failure,
    tags=["letsjobit", "warehouse"],
    doc_md=__doc__,
)
def letsjobit_warehouse():
    @task(outlets=[WAREHOUSE], queue=PUBLISH_QUEUE)
    def rebuild_if_stale() -> dict:
        with tasks.fail_fast():
            return tasks.rebuild_if_stale()

    rebuild_if_stale()


letsjobit_visits()
letsjobit_warehouse()
