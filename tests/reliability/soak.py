"""Soak the pipeline: consecutive DAG runs through faults, drift, SIGKILLs and readers; prove nothing is lost.

    .venv/bin/python -m tests.reliability.soak                       # the long form (`make soak`): 12 runs, 4 kills
    .venv/bin/python -m tests.reliability.soak --short               # the short form `make test` runs (3 runs, 1 kill)
    .venv/bin/python -m tests.reliability.soak --runs 24 --kills 8   # longer; --visits, --seed, --workdir DIR too

Run from the repository root (``tests`` is a package of the repository, not of the install).

What it does, all with real components:

- starts the simulator as a separate process (the API key only in its environment), serving bad records
  of every kind and fields the reference does not list (``--bad-record-rate``, ``--unknown-field-rate``),
  with random faults (5xx, spurious 429s with and without headers, slow answers, truncated JSON, short
  bodies, dropped connections) at rates the client's retry policy is built to survive, and in some runs
  offset drift while the run pages (inserts, deletes, updates);
- runs `airflow dags test letsjobit_visits` in a throw-away Airflow home (`AirflowHome`), run after run:
  scheduled-style windows at consecutive logical dates and full refreshes; between runs it changes the
  source through `/_sim/mutate` (random inserts, deletes and updates, plus targeted updates of `closed`,
  `signeeRating` and `date` of visits in the next window, one of them moved out of it);
- kills some runs with SIGKILL to their whole process group at a chosen phase (extract: the raw part is
  being written; stage: the staged parquet is being written; publish: the lake's publication record
  names one under way; build: a warehouse build folder exists), then re-runs them for the same logical date
  (`airflow dags test` names each attempt `manual__<now>`, so the re-run is a new run id over the same
  window, and must also recover whatever the killed attempt left half done);
- keeps reader processes querying the marts read-only the whole time, one connection per query, each
  query checking one snapshot: fct_visits unique by visit_id, and the visits of kpi_daily,
  kpi_territory_daily and kpi_driver_daily summing to fct_visits' count;
- after each completed run, compares the warehouse with the simulator's ground truth (GET /_sim/truth
  before and after the run, GET /_sim/bad_records) through the test oracle
  (include/letsjobit/simulator/expectations.py, which shares no code with the pipeline): every visit
  that existed unchanged for the whole run and whose date the run covered is present exactly once with
  its latest date, closed, skipped and rating, unless it cannot be placed (no ``_id``, no real date:
  then it is absent); no row of a covered date belongs to a visit that is not there (a deleted or moved
  visit); the issues of the covered dates (``marts.fct_data_issues``) are exactly the oracle's rows for
  those visits; kpi_daily equals the KPI contract recomputed from the served records;
- searches every file under the data dir, the Airflow home and the logs for the API key;
- prints a table: runs, faults injected by kind, kills, reader queries and errors, visits lost,
  duplicated and mismatched, issue rows checked and mismatched, KPI mismatches, 429s the client caused
  (the simulator's own `rate_limited_429`, not the injected ones), wall time.

Exit code 0 when every invariant held. This module drives the runs; the plan, the checks against the
truth, the readers, one attempt's moving parts and the report are its siblings ``soak_plan``,
``soak_checks``, ``soak_readers``, ``soak_runs`` and ``soak_report``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from letsjobit import config
from letsjobit.devtools.airflow_runner import AirflowHome
from letsjobit.simulator.process import simulator_process

from tests.reliability.soak_checks import check_warehouse
from tests.reliability.soak_plan import (
    ANCHOR_DATE,
    IN_RUN_DRIFT,
    QUEUED_FAULTS,
    RunPlan,
    SoakSettings,
    long_plan,
    short_settings,
)
from tests.reliability.soak_readers import Readers, snapshot_problem
from tests.reliability.soak_report import RunReport, SoakReport, cpu_seconds
from tests.reliability.soak_runs import (
    Attempt,
    SimulatorAdmin,
    debris,
    drift_between_runs,
    find_secret,
    run_attempt,
)

log = logging.getLogger("soak")


def run_soak(settings: SoakSettings) -> SoakReport:
    """Every run of ``settings`` against one simulator process, with readers throughout; the report."""
    started = time.monotonic()
    cpu_started = cpu_seconds()
    work = settings.workdir or Path(tempfile.mkdtemp(prefix="letsjobit-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    api_key = f"soak-{secrets.token_hex(12)}"
    rng = random.Random(settings.seed)
    simulator_args = [
        "--visits", str(settings.visits), "--seed", str(settings.seed),
        "--anchor-date", ANCHOR_DATE.isoformat(), "--days", str(settings.days),
        "--days-ahead", str(settings.days_ahead), "--latency-ms", str(settings.latency_ms),
        "--bad-record-rate", str(settings.bad_record_rate),
        "--unknown-field-rate", str(settings.unknown_field_rate),
    ]  # fmt: skip
    runs: list[RunReport] = []
    with (
        (logs / "simulator.log").open("w") as simulator_log,
        simulator_process(*simulator_args, api_key=api_key, stderr=simulator_log) as sim,
    ):
        admin = SimulatorAdmin(sim.root_url)
        home = AirflowHome(
            path=work / "airflow",
            api_url=sim.base_url,
            api_key=api_key,
            data_dir=work / "data",
            log_file=logs / "airflow-setup.log",
            retry_delay_seconds=1,
        )
        home.init()
        layout = config.DataLayout(home.data_dir)
        readers = Readers(layout.warehouse, logs, settings.readers)
        readers.wait_until_ready()
        try:
            admin.post("reset", {"counters": True})
            previous_run_id = None
            for plan in settings.runs:
                runs.append(soak_one_run(home, admin, plan, settings, logs, rng, previous_run_id))
                if runs[-1].check:
                    previous_run_id = runs[-1].check.run_id
        finally:
            reader_figures = readers.stop()
        counters = admin.get("counters")
        bad_records = admin.get("bad_records")["meta"]["kinds"]
    leaks = find_secret([work], api_key)
    report = SoakReport(
        settings=settings,
        runs=runs,
        counters=counters,
        readers=reader_figures,
        key_leaks=leaks,
        debris=debris(layout),
        bad_records=bad_records,
        seconds=round(time.monotonic() - started, 1),
        cpu_seconds=round(cpu_seconds() - cpu_started, 1),
        load_average=round(os.getloadavg()[1], 1),
        workdir=str(work),
    )
    if not settings.keep and not report.failures() and settings.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return report


def soak_one_run(
    home: AirflowHome,
    admin: SimulatorAdmin,
    plan: RunPlan,
    settings: SoakSettings,
    logs: Path,
    rng: random.Random,
    previous_run_id: str | None,
) -> RunReport:
    """One planned run: drift the source, then attempts (the first killed if planned) until one completes
    and is checked against the truth, at most three."""
    started = time.monotonic()
    layout = config.DataLayout(home.data_dir)
    drift = {} if plan.number == 1 else drift_between_runs(admin, plan, settings, rng)
    faults = {
        **settings.faults,
        "seed": settings.seed + plan.number,
        "fail_next": list(QUEUED_FAULTS),
        **(IN_RUN_DRIFT if plan.in_run_drift else {}),
    }
    conf = (
        {"full_refresh": True}
        if plan.full_refresh
        else {
            "full_refresh": False,
            "lookback_days": settings.lookback_days,
            "lookahead_days": settings.lookahead_days,
        }
    )
    attempts: list[Attempt] = []
    snapshot_after_kill: list[str] = []
    check = None
    for number in (1, 2, 3):
        kill = plan.kill_phase if number == 1 else None
        admin.post("faults", faults)
        truth_start, version_start = admin.truth_and_version()
        attempt = run_attempt(home, plan, number, conf, logs, kill, rng, settings.attempt_timeout_seconds)
        attempts.append(attempt)
        admin.post("faults", {})  # no faults or drift while the truth is read and the warehouse checked
        if attempt.killed:
            # A run killed while it builds may or may not have swapped its file in: either build is whole.
            expected = None if plan.kill_phase == "build" else previous_run_id
            problem = snapshot_problem(layout.warehouse, expected)
            if problem:
                snapshot_after_kill.append(problem)
            continue
        if attempt.exit_code != 0:
            log.warning(
                "run %d attempt %d failed (exit %s); see %s",
                plan.number,
                number,
                attempt.exit_code,
                attempt.log,
            )
            continue
        truth_end, bad_records = admin.truth_and_bad_records()
        check = check_warehouse(layout, truth_start, truth_end, admin.changes(version_start), bad_records)
        for sample in check.samples:
            log.warning("run %d: %s", plan.number, sample)
        break
    return RunReport(
        plan=plan,
        attempts=attempts,
        check=check,
        seconds=round(time.monotonic() - started, 1),
        drift={name: len(ids) for name, ids in drift.items() if isinstance(ids, list)},
        snapshot_after_kill=snapshot_after_kill,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="the short form `make test` runs")
    parser.add_argument("--runs", type=int, default=12, help="DAG runs of the long form (default 12)")
    parser.add_argument(
        "--kills", type=int, default=4, help="runs SIGKILLed once, phases in turn (default 4)"
    )
    parser.add_argument("--visits", type=int, default=5000, help="visits in the source (default 5000)")
    parser.add_argument("--readers", type=int, default=2, help="reader processes (default 2)")
    parser.add_argument("--seed", type=int, default=20261124, help="seeds the source, faults and plan")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder even on success")
    parser.add_argument("--table-out", type=Path, help="also write the table (markdown) to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.short:
        settings = short_settings(workdir=args.workdir, keep=args.keep)
    else:
        settings = SoakSettings(
            runs=long_plan(args.runs, args.kills, args.seed),
            visits=args.visits,
            # Visits scheduled as far ahead as the runs go, so that every window has some.
            days_ahead=max(SoakSettings.days_ahead, args.runs),
            seed=args.seed,
            readers=args.readers,
            workdir=args.workdir,
            keep=args.keep,
        )
    report = run_soak(settings)
    table = report.table()
    print(table)
    if args.table_out:
        args.table_out.parent.mkdir(parents=True, exist_ok=True)
        args.table_out.write_text(table + "\n")
    problems = report.failures()
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        print(f"Everything is kept in {report.workdir}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
