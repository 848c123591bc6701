"""The warehouse build of ``letsjobit.warehouse.build.build`` cut in three, for the cosmos variant of the DAG.

A build is one transaction in one process today: plan, snapshot the lake, prepare the sources, ``dbt
build``, publish. With astronomer-cosmos the ``dbt build`` becomes one Airflow task per model, so the
steps around it become tasks of their own:

- ``prepare`` (a task before the task group): the lake snapshot, the plan (full or incremental), the
  new file ``.warehouse-build/warehouse.duckdb`` with its ``lake.*`` and ``build.*`` sources, as today;
- the cosmos task group: one ``dbt build --select <model>`` per model into that file (profile
  ``profile_path()``, written by ``write_profile``; the manifest cosmos renders the group from,
  ``manifest_path()``, written by ``write_manifest``);
- ``publish`` (a task after it): drop the build-only relations, fsync, rename over ``warehouse.duckdb``,
  keep the replaced file as the standby, as today.

What the cut loses (why the pipeline keeps one task): the build's file lock can no longer span the
build (each step takes it, nothing holds it between the tasks), and every task of the group must run on
the host whose disk holds the build file. This module reuses the build module's private steps on
purpose: it is measurement code, and the steps must be exactly today's for the timing to compare.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock
from letsjobit import config, files
from letsjobit.airflow import tasks
from letsjobit.lake import snapshot
from letsjobit.warehouse import build, dbt_runner, project

log = logging.getLogger(__name__)

STATE_DIR_NAME = "cosmos"  # under the data directory's .state/: the profile and the manifest


def state_dir(layout: config.DataLayout) -> Path:
    return layout.state / STATE_DIR_NAME


def profile_path(layout: config.DataLayout) -> Path:
    return state_dir(layout) / "profiles.yml"


def manifest_path(layout: config.DataLayout) -> Path:
    return state_dir(layout) / "target" / "manifest.json"


def build_path(layout: config.DataLayout) -> Path:
    return layout.warehouse.parent / build.BUILD_DIR / layout.warehouse.name


def write_profile(layout: config.DataLayout) -> Path:
    """The profile the one-task build writes (same file, settings and threads), for cosmos's tasks."""
    path = build_path(layout)
    files.write_text(
        profile_path(layout),
        yaml.safe_dump(dbt_runner.profile(path, path.parent / "spill", 1, None), sort_keys=False),
    )
    return profile_path(layout)


def write_manifest(layout: config.DataLayout) -> Path:
    """``dbt parse`` into ``state_dir``: the manifest a deployment would build with its image, so that
    cosmos renders the task group from it (LoadMode.DBT_MANIFEST) without running dbt at parse time."""
    write_profile(layout)
    build_path(layout).parent.mkdir(parents=True, exist_ok=True)
    dbt_runner.run(build_path(layout), state_dir(layout), command="parse")
    shutil.rmtree(build_path(layout).parent, ignore_errors=True)  # the spill folder the runner made
    return manifest_path(layout)


def prepare(published: dict[str, Any]) -> dict[str, Any]:
    """Everything ``build.build`` does before ``dbt build``; returns what the group and ``publish`` need."""
    started = time.time()
    layout = config.layout()
    partitions = published.get("partitions")
    requested = None if partitions is None else {date.fromisoformat(day) for day in partitions}
    run_id = published["run_id"]
    validation = build.ValidationInfo.of(published.get("validation"))
    digest = project.digest(
        project.PROJECT_DIR, f"runner-{build.RUNNER_VERSION}", f"dbt-duckdb-{build._dbt_duckdb_version()}"
    )
    layout.warehouse.parent.mkdir(parents=True, exist_ok=True)
    layout.state.mkdir(parents=True, exist_ok=True)
    with FileLock(str(layout.state / "warehouse.lock")):
        path = build_path(layout)
        workdir = path.parent
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
        (workdir / "spill").mkdir()
        # The snapshot's files stay in the workdir until publish: the group's staging views read them.
        lake = snapshot.take(layout, workdir / "lake_snapshot")
        plan = build._plan(layout, path, requested, digest, dict(lake.fingerprints))
        log.info(
            "warehouse build %s: %s (%s), %d partitions", run_id, plan.mode, plan.reason, len(plan.changed)
        )
        connection = build._connect(path)
        try:
            build._prepare_build_relations(connection, plan, lake, run_id, validation, digest, workdir)
        finally:
            connection.close()
    write_profile(layout)
    return {
        "run_id": run_id,
        "mode": plan.mode,
        "full_refresh": plan.mode == "full",
        "reason": plan.reason,
        "changed_partitions": sorted(day.isoformat() for day in plan.changed),
        "started": started,
    }


def publish(prepared: dict[str, Any]) -> dict[str, Any]:
    """Everything ``build.build`` does after ``dbt build``: finish the file and swap it in."""
    layout = config.layout()
    path = build_path(layout)
    # `airflow dags test` runs every task in its one process: dbt-duckdb's instance still holds the file.
    dbt_runner._close_database()
    with FileLock(str(layout.state / "warehouse.lock")):
        try:
            connection = build._connect(path)
            try:
                row_counts = build._finish(connection)
            finally:
                connection.close()
            build._publish(path, layout.warehouse, build._standby(layout))
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
    tasks.record_warehouse_lineage(layout)
    seconds = round(time.time() - prepared["started"], 3)
    log.info("warehouse %s published (%s build, %.2fs)", layout.warehouse, prepared["mode"], seconds)
    return {**prepared, "path": str(layout.warehouse), "row_counts": row_counts, "seconds": seconds}
