"""`make run` with the warehouse built by astronomer-cosmos (one task per dbt model) against today's one task.

Each variant is `python -m letsjobit.devtools.run` (what `make run` runs: simulator, full refresh through
`airflow dags test`, summary), timed from outside as wall time:

- one_task: the project as it is, with the project's .venv and its dags/ folder;
- cosmos: bench/cosmos/letsjobit_visits_cosmos.py (the same DAG with build_warehouse replaced by
  prepare -> cosmos DbtTaskGroup -> publish), run by a venv that has astronomer-cosmos on top of the
  project's locks (``--dags-folder bench/cosmos``).

The machine's load varies, so the variants run in alternating pairs (cosmos, one_task, cosmos, ...)
after one untimed warm-up run each (so both start with dbt's partial-parse state and the page cache
warm, as a worker's second run would). Each variant keeps its own data directory and Airflow home under
bench/out/cosmos/. Per pair it prints ``COSMOS pair=N cosmos_s=X one_task_s=Y`` and the load average,
then the medians, and where the time went per task (from each run's Airflow metadata DB); everything
is also written to bench/out/cosmos/results.json.

astronomer-cosmos is not in the project's locks; make the measurement venv first (from the repository root):

    python3 -m venv .venv-cosmos
    .venv/bin/uv pip install --python .venv-cosmos/bin/python -r requirements.txt \
        -r requirements-dashboard.txt -r requirements-dev.txt astronomer-cosmos==1.15.1
    .venv/bin/uv pip install --python .venv-cosmos/bin/python --no-deps -e .
    .venv/bin/python bench/cosmos/measure.py --pairs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT = ROOT / "bench" / "out" / "cosmos"
COSMOS_GROUP = "dbt."  # task ids of the cosmos task group
BUILD_TASKS = ("build_warehouse", "prepare_warehouse_build", "publish_warehouse")

WRITE_STATE = """
import sys
sys.path.insert(0, sys.argv[1])
from letsjobit import config
import cosmos_build
layout = config.layout()
print(cosmos_build.write_manifest(layout), cosmos_build.write_profile(layout))
"""


def variant_dirs(name: str) -> tuple[Path, Path]:
    return OUT / name / "data", OUT / name / "airflow"


def environment(name: str) -> dict[str, str]:
    data, _ = variant_dirs(name)
    env = {**os.environ, "LETSJOBIT_DATA_DIR": str(data)}
    if name == "cosmos":
        # cosmos keeps dbt's partial-parse file between tasks here (default: a folder in /tmp).
        env["AIRFLOW__COSMOS__CACHE_DIR"] = str(OUT / name / "cosmos-cache")
        # The DAG's helper module lives beside it (Airflow 3 does not put the DAGs folder on sys.path).
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return env


def prepare_cosmos(python: Path) -> None:
    """The manifest cosmos renders the task group from and the profile its tasks use."""
    result = subprocess.run(
        [str(python), "-c", WRITE_STATE, str(HERE)],
        env=environment("cosmos"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"could not write the cosmos manifest: {result.stderr[-3000:]}")
    print(f"cosmos manifest and profile: {result.stdout.strip().splitlines()[-1]}", flush=True)


def run_once(name: str, python: Path) -> dict:
    data, home = variant_dirs(name)
    data.mkdir(parents=True, exist_ok=True)
    command = [str(python), "-m", "letsjobit.devtools.run", "--airflow-home", str(home)]
    if name == "cosmos":
        command += ["--dags-folder", str(HERE)]
    load = os.getloadavg()
    started = time.monotonic()
    result = subprocess.run(command, env=environment(name), cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(
            f"{name} run failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return {
        "variant": name,
        "seconds": round(seconds, 1),
        "load_before": [round(value, 2) for value in load],
        "load_after": [round(value, 2) for value in os.getloadavg()],
        "tasks": task_times(home / "airflow.db"),
    }


def task_times(database: Path) -> dict:
    """Task counts and seconds of the run, from its Airflow metadata DB."""
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "select task_id, map_index, duration, (julianday(start_date) - 2440587.5) * 86400.0, "
            "(julianday(end_date) - 2440587.5) * 86400.0 from task_instance order by start_date"
        ).fetchall()
        model_seconds = {}
        for (value,) in connection.execute(
            "select value from xcom where task_id = 'build_warehouse' and key = 'return_value'"
        ).fetchall():
            model_seconds = json.loads(value).get("model_seconds", {})
    finally:
        connection.close()
    group = [row for row in rows if row[0].startswith(COSMOS_GROUP)]
    summary = {
        "task_instances": len(rows),
        "run_span_s": round(max(row[4] for row in rows) - min(row[3] for row in rows), 1),
        "by_task": {row[0] + (f"[{row[1]}]" if row[1] >= 0 else ""): round(row[2] or 0.0, 2) for row in rows},
    }
    build = [row for row in rows if row[0] in BUILD_TASKS] + group
    summary["build_task_instances"] = len(build)
    summary["build_tasks_s"] = round(sum(row[2] or 0.0 for row in build), 1)
    summary["build_span_s"] = round(max(row[4] for row in build) - min(row[3] for row in build), 1)
    if group:
        summary["group_tasks"] = len(group)
        summary["group_tasks_s"] = round(sum(row[2] or 0.0 for row in group), 1)
        summary["group_span_s"] = round(max(row[4] for row in group) - min(row[3] for row in group), 1)
    if model_seconds:
        summary["dbt_model_seconds_sum"] = round(sum(model_seconds.values()), 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1, help="untimed runs of each variant first")
    parser.add_argument("--python", type=Path, default=Path(sys.executable), help="today's venv")
    parser.add_argument("--cosmos-python", type=Path, default=ROOT / ".venv-cosmos" / "bin" / "python")
    args = parser.parse_args(argv)
    pythons = {"cosmos": args.cosmos_python, "one_task": args.python}
    OUT.mkdir(parents=True, exist_ok=True)
    prepare_cosmos(args.cosmos_python)
    runs: list[dict] = []
    for _ in range(args.warmups):
        for name in ("cosmos", "one_task"):
            run = run_once(name, pythons[name])
            print(f"warm-up {name}: {run['seconds']} s (load {run['load_before'][0]})", flush=True)
    pairs = []
    for pair in range(1, args.pairs + 1):
        cosmos = run_once("cosmos", pythons["cosmos"])
        one_task = run_once("one_task", pythons["one_task"])
        runs += [cosmos, one_task]
        pairs.append((cosmos["seconds"], one_task["seconds"]))
        print(
            f"COSMOS pair={pair} cosmos_s={cosmos['seconds']} one_task_s={one_task['seconds']} "
            f"diff_s={cosmos['seconds'] - one_task['seconds']:+.1f} "
            f"load={cosmos['load_before'][0]}/{one_task['load_before'][0]}",
            flush=True,
        )
    medians = {
        "cosmos_s": statistics.median(c for c, _ in pairs),
        "one_task_s": statistics.median(o for _, o in pairs),
        "diff_s": statistics.median(c - o for c, o in pairs),
    }
    print("COSMOS median " + " ".join(f"{key}={value:.1f}" for key, value in medians.items()))
    for run in runs:
        tasks = run["tasks"]
        print(
            f"  {run['variant']}: {run['seconds']} s, {tasks['task_instances']} task instances, build "
            f"{tasks['build_task_instances']} tasks, {tasks['build_tasks_s']} s in them, "
            f"{tasks['build_span_s']} s first start to last end"
            + (
                f"; {tasks['group_tasks_s'] / tasks['group_tasks']:.2f} s per cosmos task"
                if "group_tasks" in tasks
                else f"; {tasks.get('dbt_model_seconds_sum', 0)} s of it in dbt's models"
            )
        )
    (OUT / "results.json").write_text(
        json.dumps({"pairs": pairs, "medians": medians, "runs": runs}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
