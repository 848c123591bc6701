"""letsjobit_visits with astronomer-cosmos: the warehouse built by one Airflow task per dbt model.

A measurement copy of the letsjobit_visits DAG of dags/letsjobit_visits.py (same dag_id, tasks, params
and schedule) whose build_warehouse task is replaced by prepare_warehouse_build -> a cosmos DbtTaskGroup
-> publish_warehouse: the same new-file-then-swap build, with ``dbt build`` run model by model. Set up as
fairly to cosmos as it goes: the group is rendered from a manifest built beforehand (LoadMode.DBT_MANIFEST,
no dbt at parse time), each task runs dbt in-process (ExecutionMode.LOCAL, InvocationMode.DBT_RUNNER),
a model's tests run in the model's task (TestBehavior.BUILD), and no assets are emitted per model.

Run it through bench/cosmos/measure.py (which writes the manifest and the profile first); it needs
astronomer-cosmos, which is not in the project's locks. The letsjobit_warehouse DAG is left out: only
letsjobit_visits is measured.
"""

from __future__ import annotations

from datetime import timedelta

import cosmos_build  # beside this file; measure.py puts this folder on PYTHONPATH
import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
)
from letsjobit import config
from letsjobit.airflow import alerts, tasks
from letsjobit.warehouse import dbt_runner, project

LAYOUT = config.layout()
LAKE = Asset("letsjobit_lake")
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
def letsjobit_visits():  # the same dag_id: `make run` runs it unchanged
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

    @task
    def stage(extracted: list[dict]) -> dict:
        with tasks.fail_fast():
            return tasks.stage(tasks.safe_run_id(get_current_context()["run_id"]))

    @task
    def audit(extracted: list[dict], staged: dict) -> dict:
        # A failed gate fails the same way again: fail_fast fails it now, no retries (nothing is published).
        with tasks.fail_fast():
            return tasks.audit(
                tasks.safe_run_id(get_current_context()["run_id"]), tasks.materialise(extracted), staged
            )

    @task(outlets=[LAKE])
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

    # The one build_warehouse task of dags/letsjobit_visits.py, cut in three (bench/cosmos/cosmos_build.py).
    @task
    def prepare_warehouse_build(published: dict) -> dict:
        with tasks.fail_fast():
            return cosmos_build.prepare(published)

    @task(outlets=[WAREHOUSE])
    def publish_warehouse(prepared: dict) -> dict:
        with tasks.fail_fast():
            return cosmos_build.publish(prepared)

    extracted = extract.expand(chunk=plan())
    staged = stage(extracted)
    audited = audit(extracted, staged)
    prepared = prepare_warehouse_build(publish(extracted, audited))
    models = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=project.PROJECT_DIR, manifest_path=cosmos_build.manifest_path(LAYOUT)
        ),
        profile_config=ProfileConfig(
            profile_name=dbt_runner.PROFILE,
            target_name="build",
            profiles_yml_filepath=cosmos_build.profile_path(LAYOUT),
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # One task per model, running the model and its own tests (`dbt build --select`); a test of
            # several models (relationships) gets its own task after all of them.
            test_behavior=TestBehavior.BUILD,
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,
        ),
        operator_args={
            "install_deps": False,
            # Full or incremental is the plan's decision (a model change forces a full build), as today.
            "full_refresh": "{{ ti.xcom_pull(task_ids='prepare_warehouse_build')['full_refresh'] }}",
        },
    )
    prepared >> models >> publish_warehouse(prepared)


letsjobit_visits()
