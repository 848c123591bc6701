"""`make scale-out`: the pipeline on two "hosts" of this machine, sharing only what real hosts would share.

Starts (through ``distributed.cluster``) PostgreSQL, Redis, an S3-compatible object store holding the
lake, the scheduler, the dag-processor, the API server and two Celery workers with separate data
directories: worker 1 takes the default and the publish queue (it owns warehouse.duckdb), worker 2 the
default queue only; both draw on the API key's budget in Redis. The simulator runs at the API's
documented limit (100 requests per 10 s, sliding window). Through the REST API it triggers a full
refresh of letsjobit_visits, changes some visits through the simulator's admin API, then triggers a
window run (mapped extraction across both workers) while a reader thread queries the warehouse
read-only on the owning host.

Checked: both workers extracted; at most 100 requests in any 10 s and no 429 the client caused; the Delta
tables hold exactly the simulator's visits, lines and extraData; the warehouse's KPIs equal the
simulator's ground truth; the reader saw no error; every process started is stopped. The last line
printed is ``SCALE-OUT PASS key=value ...`` or ``SCALE-OUT FAIL ...`` with the figures.

    python -m letsjobit.devtools.scale_out                  # 20,000 visits
    python -m letsjobit.devtools.scale_out --visits 3000    # the short form of the test
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import requests

from letsjobit import config
from letsjobit.devtools import distributed, summary, truth
from letsjobit.devtools.services import process_group_alive
from letsjobit.lake import schema
from letsjobit.simulator.drift import window_drift_ops

log = logging.getLogger(__name__)

DEFAULT_VISITS = 20_000
PUBLISH_QUEUE = "publish"
OWNER, OTHER = "airflow-worker-1", "airflow-worker-2"
# The visit dates changed between the runs: inside the window run's dates (the 14 days before its
# interval, the 7 after), so that run must pick up every change.
CHANGED_DAYS_BEFORE = range(1, 8)
READER_PAUSE_SECONDS = 0.1


@dataclass
class ScaleOutOptions:
    visits: int = DEFAULT_VISITS
    seed: int = 7
    run_timeout: float = 900.0
    keep: bool = False
    # The key's budget the simulator enforces and the client is told (the API's documented 100 per 10 s;
    # the short test scales it down so that the budget, not the machine, sets the pace of a small run).
    rate_limit: int = config.RATE_LIMIT_REQUESTS
    rate_window: int = int(config.RATE_LIMIT_WINDOW_SECONDS)


@dataclass
class ScaleOutReport:
    """The figures of one scale-out run and every check that failed (none: it passed)."""

    figures: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # The names of the long-running processes the run started (every one is checked stopped).
    processes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def line(self) -> str:
        figures = " ".join(f"{key}={value}" for key, value in self.figures.items())
        if self.passed:
            return f"SCALE-OUT PASS {figures}"
        return f"SCALE-OUT FAIL {'; '.join(self.problems)} | {figures}"


class WarehouseReader(threading.Thread):
    """Queries the warehouse read-only, one connection per query, until stopped; counts what happened."""

    def __init__(self, warehouse: Path) -> None:
        super().__init__(name="warehouse-reader", daemon=True)
        self.warehouse = warehouse
        self.stopping = threading.Event()
        self.queries = 0
        self.errors: list[str] = []
        self.inconsistent = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with duckdb.connect(str(self.warehouse), read_only=True) as connection:
                    _, visits, distinct, daily, territory, driver = connection.execute(
                        truth.WAREHOUSE_SNAPSHOT_QUERY
                    ).fetchone()
            except duckdb.Error as error:
                self.errors.append(f"{type(error).__name__}: {error}")
            else:
                self.queries += 1
                self.inconsistent += not visits == distinct == daily == territory == driver
            self.stopping.wait(READER_PAUSE_SECONDS)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def cluster_options(options: ScaleOutOptions, anchor: date) -> distributed.RunOptions:
    return distributed.RunOptions(
        simulator=True,  # whatever LETSJOBIT_API_URL the shell has: the checks need the simulator's truth
        simulator_arguments=[
            "--visits",
            str(options.visits),
            "--seed",
            str(options.seed),
            "--anchor-date",
            anchor.isoformat(),
            "--rate-limit",
            str(options.rate_limit),
            "--rate-window",
            str(options.rate_window),
            "--rate-mode",
            "sliding",
        ],  # fmt: skip
        conn_extra=scaled_budget(options),
        separate_hosts=True,
        worker_queues=[f"default,{PUBLISH_QUEUE}", "default"],
        extra_env={"LETSJOBIT_PUBLISH_QUEUE": PUBLISH_QUEUE},
        run_timeout=options.run_timeout,
        keep=options.keep,
    )


def scaled_budget(options: ScaleOutOptions) -> dict:
    """What the connection tells the client of a budget other than the documented one (none: the default)."""
    documented = (config.RATE_LIMIT_REQUESTS, int(config.RATE_LIMIT_WINDOW_SECONDS))
    if (options.rate_limit, options.rate_window) == documented:
        return {}
    return {"requests_per_window": options.rate_limit, "window_seconds": options.rate_window}


def change_the_source(simulator_root: str, anchor: date) -> dict:
    """Update, delete and insert a few visits dated inside the coming window run (the admin API)."""
    served = truth.simulator_truth(simulator_root)
    days = [anchor - timedelta(days=before) for before in CHANGED_DAYS_BEFORE]
    ops = window_drift_ops(served.visits, days, anchor)
    answer = requests.post(f"{simulator_root}/_sim/mutate", json={"ops": ops}, timeout=60)
    answer.raise_for_status()
    return answer.json()


def lake_layout(session: distributed.Session) -> config.DataLayout:
    """The lake as the owning worker sees it (object store URL and the AWS variables of the cluster)."""
    env = session.env
    options = {name: env[name] for name in config.AWS_STORAGE_VARIABLES if env.get(name)}
    location = config.LakeLocation(env["LETSJOBIT_LAKE_URL"], options)
    return config.DataLayout(session.data_dir_of_queue(PUBLISH_QUEUE), location)


def run(options: ScaleOutOptions) -> ScaleOutReport:
    report = ScaleOutReport()
    problems = report.problems
    started = time.monotonic()
    anchor = datetime.now(UTC).date()
    pids: dict[str, int] = {}
    reader: WarehouseReader | None = None
    try:
        with distributed.cluster(cluster_options(options, anchor)) as session:
            pids = {started.name: started.process.pid for started in session.processes.started}
            dag_id = config.DAG_ID
            full = session.trigger(dag_id, {"full_refresh": True}, name="scale_out_full")
            runs = {full: session.wait(dag_id, full, options.run_timeout)}
            if runs[full] == "success":  # else the window run would only repeat the failure
                change_the_source(session.simulator_root, anchor)
                reader = WarehouseReader(lake_layout(session).warehouse)
                reader.start()
                # Now (a logical date in the future is refused): its interval is the latest complete day.
                window = session.trigger(
                    dag_id, {"full_refresh": False}, datetime.now(UTC).isoformat(), name="scale_out_window"
                )
                runs[window] = session.wait(dag_id, window, options.run_timeout)
                reader.stop()
            check(session, options, runs, reader, report)
    # Whatever went wrong is a FAIL line with its figures, not a traceback in place of the last line.
    except Exception as error:  # noqa: BLE001
        first_line = (str(error).splitlines() or [""])[0][:300]
        problems.append(f"the run failed: {type(error).__name__}: {first_line}")
    finally:
        if reader is not None:
            reader.stop()
    return finish(report, pids, started)


def finish(report: ScaleOutReport, pids: dict[str, int], started: float) -> ScaleOutReport:
    """The last checks, once the cluster is stopped: nothing it started still runs; the time taken."""
    problems = report.problems
    report.processes = sorted(pids)
    still_running = sorted(name for name, pid in pids.items() if process_group_alive(pid))
    if not pids:
        problems.append("no process was started")
    if still_running:
        problems.append(f"still running after the stop: {', '.join(still_running)}")
    report.figures["processes_stopped"] = len(pids) - len(still_running)
    report.figures["seconds"] = round(time.monotonic() - started)
    return report


def check(
    session: distributed.Session,
    options: ScaleOutOptions,
    runs: dict[str, str],
    reader: WarehouseReader | None,
    report: ScaleOutReport,
) -> None:
    """Every check of the module's docstring but the processes' stop, while the cluster still runs."""
    problems, figures = report.problems, report.figures
    dag_id = config.DAG_ID
    for run_id, state in runs.items():
        if state != "success":
            tis = session.report(dag_id, run_id, state).task_instances
            failed = [
                f"{ti['task_id']}[{ti['map_index']}]={ti['state']}" for ti in tis if ti["state"] != "success"
            ]
            problems.append(f"run {run_id} ended {state}: {', '.join(failed)}")
    tis = [ti for run_id in runs for ti in distributed.task_instances(session.cluster, dag_id, run_id)]
    extracts = Counter(ti["hostname"] for ti in tis if ti["task_id"] == "extract")
    figures["extracts_per_worker"] = ",".join(f"{host}:{count}" for host, count in sorted(extracts.items()))
    if set(extracts) != {OWNER, OTHER}:
        problems.append(f"extraction did not run on both workers: {dict(extracts)}")
    owned = {ti["hostname"] for ti in tis if ti["queue"] == PUBLISH_QUEUE}
    if owned != {OWNER}:
        problems.append(f"the publish queue's tasks ran on {sorted(owned)}, not on {OWNER} alone")

    counters = session.simulator_counters()
    figures["requests"] = counters["requests_total"]
    figures["max_per_window"] = counters["max_requests_in_window"]
    figures["rate_limited_429"] = counters["rate_limited_429"]
    figures["budget"] = f"{options.rate_limit}/{options.rate_window}s"
    if counters["max_requests_in_window"] > options.rate_limit:
        problems.append(f"{counters['max_requests_in_window']} requests in one window")
    if counters["rate_limited_429"]:
        problems.append(f"{counters['rate_limited_429']} requests refused with 429")

    served = truth.simulator_truth(session.simulator_root)
    layout = lake_layout(session)
    counts = summary.lake_counts(layout)
    figures.update({table: counts[table] for table in schema.TABLES})
    problems += truth.lake_mismatches(layout, served.visits, served.bad_records)[:5]
    kpis = truth.kpi_mismatches(layout.warehouse, served.visits, served.bad_records)
    figures["kpi_mismatches"] = len(kpis)
    problems += kpis[:5]

    if reader is None:  # the full refresh failed, said above
        return
    figures["reader_queries"] = reader.queries
    figures["reader_errors"] = len(reader.errors)
    if not reader.queries:
        problems.append("the reader ran no query")
    if reader.errors:
        problems.append(f"the reader saw {len(reader.errors)} error(s), e.g. {reader.errors[0][:200]}")
    if reader.inconsistent:
        problems.append(f"the reader saw {reader.inconsistent} inconsistent snapshot(s)")


def parse_args(argv: list[str] | None) -> ScaleOutOptions:
    parser = argparse.ArgumentParser(description="The pipeline on two hosts' worth of processes, checked.")
    parser.add_argument("--visits", type=int, default=DEFAULT_VISITS, help="visits the simulator serves")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each DAG run may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--rate-limit", type=int, default=config.RATE_LIMIT_REQUESTS, help="requests per window"
    )
    parser.add_argument(
        "--rate-window", type=int, default=int(config.RATE_LIMIT_WINDOW_SECONDS), help="seconds"
    )
    args = parser.parse_args(argv)
    return ScaleOutOptions(
        visits=args.visits,
        seed=args.seed,
        run_timeout=args.timeout,
        keep=args.keep,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    report = run(parse_args(argv))
    print(report.line(), flush=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
