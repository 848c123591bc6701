"""Soak the pipeline: consecutive DAG runs through faults, drift, SIGKILLs and readers; prove nothing is lost.

    .venv/bin/python bench/soak.py            # the long form (`make soak`): 12 runs, 4 kills
    .venv/bin/python bench/soak.py --short    # the short form `make test` runs (3 runs, 1 kill)

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
  being written; stage: the staged parquet is being written; publish: the lake journal says
  "publishing"; build: a warehouse build folder exists), then re-runs them for the same logical date
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

Exit code 0 when every invariant held.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import requests
from letsjobit import config
from letsjobit.devtools.airflow_runner import AirflowHome, airflow_bin
from letsjobit.simulator import expectations
from letsjobit.simulator.data import record_key
from letsjobit.simulator.expectations import Expectation, expected_outcome, flag, rating
from letsjobit.simulator.process import simulator_process

log = logging.getLogger("soak")

ANCHOR_DATE = date(2026, 11, 1)
PHASES = ("extract", "stage", "publish", "build")
# Rates the client's retry policy survives (it retries each request for minutes): the point is that
# nothing is lost through faults, not that runs fail.
DEFAULT_FAULTS = {
    "error_rate": 0.03,
    "spurious_429_rate": 0.02,
    "spurious_429_reset_seconds": 1.0,
    "slow_rate": 0.03,
    "slow_ms": 800.0,
    "truncate_rate": 0.02,
    "drop_rate": 0.02,
}
# Queued at the start of each run (spread out, so one request does not meet them all), so that each kind
# shows up even in a short run.
QUEUED_FAULTS = [
    "short",
    "ok",
    "ok",
    "429-no-headers",
    "ok",
    "ok",
    "503",
    "ok",
    "ok",
    "truncate",
    "ok",
    "drop",
]
IN_RUN_DRIFT = {"drift_every": 3, "drift_inserts": 1, "drift_deletes": 1, "drift_updates": 2}
BETWEEN_RUN_DRIFT = {"inserts": 6, "deletes": 4, "updates": 15}
# Longest random wait between seeing a phase start and the SIGKILL (the phase lasts about this long).
# Longest random wait between the phase's first sign and the SIGKILL; the parquet writing of a few
# thousand visits lasts a fraction of a second, so the stage kill lands at its first file.
KILL_DELAY_SECONDS = {"extract": 0.3, "stage": 0.0, "publish": 0.0, "build": 0.5}
READER_PAUSE_SECONDS = 0.05
# Every KPI but the repeat-visit ones: a covered date's repeat measure depends on the 30 days before it,
# which a window run does not re-read (the e2e tests check those after full refreshes).
REPEAT_KPIS = ("equipment_visits", "repeat_visits", "repeat_visit_rate")
KPI_COLUMNS = tuple(c for c in expectations.KPI_COLUMNS if c not in REPEAT_KPIS)
# The issue row's columns compared with the oracle's: its ISSUE_COLUMNS and the partition it lands in.
ISSUE_COLUMNS = (*expectations.ISSUE_COLUMNS, "visit_date")


# --- plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    number: int
    logical_date: date
    full_refresh: bool
    kill_phase: str | None = None
    in_run_drift: bool = False

    @property
    def kind(self) -> str:
        return "full refresh" if self.full_refresh else "window"


@dataclass
class SoakSettings:
    runs: list[RunPlan]
    visits: int = 1500
    seed: int = 20261124
    days: int = 30
    days_ahead: int = 10
    latency_ms: float = 100.0
    readers: int = 2
    lookback_days: int = 3
    lookahead_days: int = 2
    faults: dict = field(default_factory=lambda: dict(DEFAULT_FAULTS))
    # Bad records of every kind and fields the reference does not list, at a rate a real API might have.
    bad_record_rate: float = 0.02
    unknown_field_rate: float = 0.01
    workdir: Path | None = None
    keep: bool = False
    attempt_timeout_seconds: float = 900.0


def short_plan() -> list[RunPlan]:
    """`make test`: a full refresh, a window killed while extracting and re-run, a window with drift
    while it pages. (Each attempt costs ~45 s of CPU whatever it does: Airflow's start, the gate.)"""
    return [
        RunPlan(1, ANCHOR_DATE, full_refresh=True),
        RunPlan(2, ANCHOR_DATE + timedelta(days=1), full_refresh=False, kill_phase="extract"),
        RunPlan(3, ANCHOR_DATE + timedelta(days=2), full_refresh=False, in_run_drift=True),
    ]


def long_plan(runs: int = 12, kills: int = 4, seed: int = 0) -> list[RunPlan]:
    """`make soak`: daily windows with a full refresh first, in the middle and last; kills spread over
    the runs in between, cycling through every phase."""
    rng = random.Random(seed)
    full = {1, runs // 2 + 1, runs}
    candidates = [n for n in range(2, runs + 1)]
    killed = sorted(rng.sample(candidates, min(kills, len(candidates))))
    phases = {number: PHASES[index % len(PHASES)] for index, number in enumerate(killed)}
    return [
        RunPlan(
            number,
            ANCHOR_DATE + timedelta(days=number - 1),
            full_refresh=number in full,
            kill_phase=phases.get(number),
            in_run_drift=number % 3 == 0,
        )
        for number in range(1, runs + 1)
    ]


# --- ground truth, recomputed independently ------------------------------------------------------


def real_date(value: Any) -> date | None:
    """A record's date when it is a real YYYY-MM-DD (a visit without one cannot be placed), else None."""
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


def visit_view(record: dict) -> tuple:
    """What the soak compares of a visit, by the KPI contract: (visit_date, closed, skipped, rating)."""
    return (
        real_date(record.get("date")),
        flag(record.get("closed")),
        flag(record.get("skipped")),
        rating(record.get("signeeRating")),
    )


def closed_and_skipped(record: dict) -> bool:
    """Both closed and skipped (a bad record of that kind): published as sent, and recorded."""
    return flag(record.get("closed")) and flag(record.get("skipped"))


def expected_kpis(records: Iterable[dict], bad_records: dict) -> dict[date, dict[str, Any]]:
    """kpi_daily by the KPI contract, from the served records (the test oracle's recomputation)."""
    daily = expectations.expected_kpis(records, bad_records)["kpi_daily"]
    return {day: row for (day,), row in daily.items()}


def issue_key(row: tuple) -> str | None:
    """The ground-truth key of an issue row: its visit_id, else the ERP id in the record it carries."""
    visit_id, raw_value = row[1], row[5]
    if visit_id is not None:
        return visit_id
    with contextlib.suppress(ValueError, TypeError):
        record = json.loads(raw_value)
        if isinstance(record, dict) and "id" in record:
            return str(record["id"])
    return None


def issue_mismatches(
    actual: Iterable[tuple], expected: Expectation, keys: set[str]
) -> tuple[int, list[tuple], list[tuple]]:
    """For the issue rows of a run's covered dates (``actual``, as ISSUE_COLUMNS tuples) and the visits
    that held still during the run (``keys``): how many rows the oracle expects of them, and the rows
    only the warehouse has and only the oracle has."""
    wanted = Counter((*issue.row(), issue.visit_date) for issue in expected.issues if issue.key in keys)
    got = Counter(row for row in actual if issue_key(row) in keys)
    return (
        sum(wanted.values()),
        sorted((got - wanted).elements(), key=expectations.issue_sort_key),
        sorted((wanted - got).elements(), key=expectations.issue_sort_key),
    )


def same_number(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is None and right is None
    return abs(float(left) - float(right)) <= 1e-9 * max(1.0, abs(float(right)))


@dataclass
class RunCheck:
    """The warehouse after one completed run, against the truth."""

    run_id: str
    covered_dates: int | None  # None: every date (full refresh)
    in_scope: int = 0  # visits unchanged for the whole run on a covered date
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    ghosts: int = 0  # rows on a covered date of a visit that is not (or no longer) there on that date
    kpi_dates: int = 0
    kpi_dates_skipped: int = 0  # covered dates where a visit changed while the run was paging
    kpi_mismatches: int = 0
    issues_checked: int = 0  # issue rows the oracle expects of visits unchanged for the whole run
    issues_mismatched: int = 0  # issue rows in the warehouse or the oracle only
    quarantined: int = 0  # visits unchanged for the whole run that cannot be placed: absent, as they must be
    absent_elsewhere: int = 0  # not in the warehouse, date outside the window (moved out of an older one)
    closed_and_skipped: int = 0  # closed and skipped at the end of the run: published, recorded as an issue
    build_is_this_run: bool = False
    samples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.samples) < 10:
            self.samples.append(text)

    @property
    def clean(self) -> bool:
        return self.build_is_this_run and not (
            self.lost
            or self.duplicated
            or self.mismatched
            or self.ghosts
            or self.kpi_mismatches
            or self.issues_mismatched
        )


def check_warehouse(
    layout: config.DataLayout,
    truth_start: dict[str, dict],
    truth_end: dict[str, dict],
    changes: Iterable[dict] = (),
    bad_records: dict | None = None,
) -> RunCheck:
    """The warehouse against the source's truth at the run's start and end.

    Truths are keyed by ``record_key`` (a visit served without ``_id`` by its ERP id). ``changes`` (the
    simulator's ``/_sim/changes`` over the run: ``{"_id", "visit"}``, ``visit`` None for a deletion)
    adds the versions a visit took in between: a run reads each visit once, at some moment, so a visit
    changed twice during it may rightly show the middle version. ``bad_records``: the simulator's
    ground truth at the end (``GET /_sim/bad_records``), for the oracle.
    """
    bad_records = bad_records or {}
    # A visit both closed and skipped (a bad record of that kind) is a field issue
    # (visits.not_closed_and_skipped, kept): published with its values as sent, so it is checked like any.
    contradictory = sum(closed_and_skipped(record) for record in truth_end.values())
    meanwhile: dict[str, list[dict]] = defaultdict(list)
    touched = set()
    for change in changes:
        touched.add(change["_id"])
        if change.get("visit") is not None:
            meanwhile[change["_id"]].append(change["visit"])
    publication = json.loads(layout.last_publication.read_text())
    partitions = publication["partitions"]
    covered = None if partitions is None else {date.fromisoformat(day) for day in partitions}
    check = RunCheck(run_id=publication["run_id"], covered_dates=None if covered is None else len(covered))
    check.closed_and_skipped = contradictory

    def is_covered(day: date) -> bool:
        return covered is None or day in covered

    with duckdb.connect(str(layout.warehouse), read_only=True) as connection:
        built = connection.execute("select run_id from marts.build_info").fetchone()[0]
        rows = connection.execute(
            "select visit_id, visit_date, closed, skipped, signee_rating from marts.fct_visits"
        ).fetchall()
        kpi_rows = connection.execute(
            f"select visit_date, {', '.join(KPI_COLUMNS)} from marts.kpi_daily"
        ).fetchall()
        issue_rows = connection.execute(
            f"select {', '.join(ISSUE_COLUMNS)} from marts.fct_data_issues"
        ).fetchall()
    check.build_is_this_run = built == check.run_id
    if not check.build_is_this_run:
        check.note(f"warehouse built by run {built!r}, lake published by {check.run_id!r}")

    warehouse: dict[str, list[tuple]] = defaultdict(list)
    for visit_id, visit_date, closed, skipped, signee_rating in rows:
        warehouse[visit_id].append((visit_date, bool(closed), bool(skipped), signee_rating))
    check.duplicated = len(rows) - len(warehouse)
    for visit_id, copies in warehouse.items():
        if len(copies) > 1:
            check.note(f"visit {visit_id} appears {len(copies)} times: {copies}")

    stable = {
        key
        for key in truth_start.keys() & truth_end.keys()
        if truth_start[key] == truth_end[key] and key not in touched
    }
    changed_during_run = (truth_start.keys() | truth_end.keys() | touched) - stable
    # What a full listing of the end truth owes: which visits are published, which cannot be placed.
    owed = expected_outcome(truth_end.values(), bad_records)

    def versions_of(visit_id: str) -> set[tuple]:
        records = [truth[visit_id] for truth in (truth_start, truth_end) if visit_id in truth]
        return {visit_view(record) for record in records + meanwhile.get(visit_id, [])}

    unplaceable = {truth_end[key].get("_id") for key in stable & owed.quarantined.keys()} - {None}
    check.quarantined = len(stable & owed.quarantined.keys())
    for key in stable & owed.quarantined.keys():
        if truth_end[key].get("_id") in warehouse:
            check.ghosts += 1
            check.note(
                f"published: visit {key} cannot be placed ({owed.quarantined[key]}) but is in the warehouse"
            )
    for visit_id in stable - owed.quarantined.keys():
        expected = visit_view(truth_end[visit_id])
        if not is_covered(expected[0]):
            if visit_id not in warehouse:
                check.absent_elsewhere += 1
            continue
        check.in_scope += 1
        copies = warehouse.get(visit_id)
        if not copies:
            check.lost += 1
            check.note(f"lost: visit {visit_id} {expected}")
        elif copies[0] != expected:
            check.mismatched += 1
            check.note(f"mismatch: visit {visit_id} warehouse {copies[0]} truth {expected}")
    for visit_id in changed_during_run:
        versions = versions_of(visit_id)
        copies = warehouse.get(visit_id)
        if copies and copies[0] not in versions and any(v[0] and is_covered(v[0]) for v in versions):
            check.mismatched += 1
            check.note(f"mismatch: visit {visit_id} (changed during the run) {copies[0]} not in {versions}")
        if not copies and len(versions) == 1 and visit_id in truth_start and visit_id in owed.published:
            if all(v[0] is not None and is_covered(v[0]) for v in versions):
                check.lost += 1
                check.note(f"lost: visit {visit_id} (changed during the run) {versions}")

    allowed = {
        (visit_id, visit_view(record)[0])
        for truth in (truth_start, truth_end, meanwhile)
        for visit_id, records in truth.items()
        for record in (records if isinstance(records, list) else [records])
    }
    for visit_id, copies in warehouse.items():
        for copy in copies:
            if visit_id in unplaceable:
                continue  # counted above
            if is_covered(copy[0]) and (visit_id, copy[0]) not in allowed:
                check.ghosts += 1
                check.note(f"ghost: visit {visit_id} on {copy[0]} is not in the source on that date")

    covered_issues = [row for row in issue_rows if covered is None or row[-1] in covered]
    listed = owed if covered is None else expected_outcome(truth_end.values(), bad_records, dates=covered)
    check.issues_checked, extra, missing = issue_mismatches(covered_issues, listed, stable)
    check.issues_mismatched = len(extra) + len(missing)
    for side, rows in (("the warehouse", extra), ("the oracle", missing)):
        for row in rows[:3]:
            check.note(f"issue row in {side} only: {row}")

    unsettled = {version[0] for visit_id in changed_during_run for version in versions_of(visit_id)}
    expected = expected_kpis(truth_end.values(), bad_records)
    actual = {row[0]: dict(zip(KPI_COLUMNS, row[1:], strict=True)) for row in kpi_rows}
    for day in sorted(d for d in expected.keys() | actual.keys() if is_covered(d)):
        if day in unsettled:
            check.kpi_dates_skipped += 1
            continue
        check.kpi_dates += 1
        want, got = expected.get(day), actual.get(day)
        if want is None or got is None or not all(same_number(got[c], want[c]) for c in KPI_COLUMNS):
            check.kpi_mismatches += 1
            check.note(f"kpi_daily {day}: warehouse {got} expected {want}")
    return check


# --- readers -------------------------------------------------------------------------------------

READER_QUERY = """
select
    (select run_id from marts.build_info) as run_id,
    (select count(*) from marts.fct_visits) as visits,
    (select count(distinct visit_id) from marts.fct_visits) as distinct_visits,
    (select coalesce(sum(visits), 0) from marts.kpi_daily) as daily,
    (select coalesce(sum(visits), 0) from marts.kpi_territory_daily) as territory,
    (select coalesce(sum(visits), 0) from marts.kpi_driver_daily) as driver
"""


def reader_main(warehouse: Path, out: Path, pause: float = READER_PAUSE_SECONDS) -> None:
    """A reader process: query the published warehouse read-only until SIGTERM, then write figures."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    out.with_name(out.name + ".ready").touch()  # SIGTERM now ends the loop and writes the figures
    figures: dict[str, Any] = {"queries": 0, "errors": 0, "inconsistent": 0, "waiting": 0, "samples": []}
    builds: list[str] = []
    while not stopping.is_set():
        if not warehouse.exists():
            figures["waiting"] += 1
        else:
            try:
                connection = duckdb.connect(str(warehouse), read_only=True)
                try:
                    run_id, visits, distinct, daily, territory, driver = connection.execute(
                        READER_QUERY
                    ).fetchone()
                finally:
                    connection.close()
            except duckdb.Error as error:
                figures["errors"] += 1
                if len(figures["samples"]) < 10:
                    figures["samples"].append(f"error: {type(error).__name__}: {error}")
            else:
                figures["queries"] += 1
                if not builds or builds[-1] != run_id:
                    builds.append(run_id)
                if not visits == distinct == daily == territory == driver:
                    figures["inconsistent"] += 1
                    if len(figures["samples"]) < 10:
                        figures["samples"].append(
                            f"inconsistent snapshot of build {run_id}: fct_visits {visits} "
                            f"({distinct} distinct), kpi_daily {daily}, territory {territory}, driver {driver}"
                        )
        stopping.wait(pause)
    figures["builds_seen"] = builds
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(figures))
    os.replace(tmp, out)


class Readers:
    """Reader processes, started before the first run and stopped after the last."""

    def __init__(self, warehouse: Path, folder: Path, count: int) -> None:
        self.outputs = [folder / f"reader-{n}.json" for n in range(count)]
        self.processes = [
            subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "reader", str(warehouse), str(out)],
                cwd=config.PROJECT_ROOT,
                stdout=subprocess.DEVNULL,
            )
            for out in self.outputs
        ]

    def wait_until_ready(self, timeout: float = 120.0) -> None:
        """Block until every reader handles SIGTERM (before that, stopping it would lose its figures)."""
        deadline = time.monotonic() + timeout
        for process, out in zip(self.processes, self.outputs, strict=True):
            ready = out.with_name(out.name + ".ready")
            while not ready.exists():
                if process.poll() is not None:
                    raise RuntimeError(f"reader {out.name} exited ({process.returncode}) before it was ready")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reader {out.name} was not ready within {timeout:.0f} s")
                time.sleep(0.1)

    def stop(self) -> dict[str, Any]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        totals: dict[str, Any] = {
            "queries": 0,
            "errors": 0,
            "inconsistent": 0,
            "samples": [],
            "builds_seen": 0,
        }
        for process, out in zip(self.processes, self.outputs, strict=True):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if not out.exists():
                totals["errors"] += 1
                totals["samples"].append(
                    f"reader {out.name} died without its figures (exit {process.returncode})"
                )
                continue
            figures = json.loads(out.read_text())
            for name in ("queries", "errors", "inconsistent"):
                totals[name] += figures[name]
            totals["samples"] += figures["samples"]
            totals["builds_seen"] = max(totals["builds_seen"], len(figures["builds_seen"]))
        return totals


# --- the simulator's admin API -------------------------------------------------------------------


class SimulatorAdmin:
    def __init__(self, root_url: str) -> None:
        self.root = root_url.rstrip("/") + "/_sim"
        self.session = requests.Session()

    def get(self, name: str) -> Any:
        response = self.session.get(f"{self.root}/{name}", timeout=60)
        response.raise_for_status()
        return response.json()

    def post(self, name: str, payload: dict) -> Any:
        response = self.session.post(f"{self.root}/{name}", json=payload, timeout=60)
        response.raise_for_status()
        return response.json()

    def truth(self) -> dict[str, dict]:
        return self.truth_and_version()[0]

    def truth_and_version(self) -> tuple[dict[str, dict], int]:
        """Every visit by its ground-truth key (``_id``, or the ERP id of one without), and the store version."""
        answer = self.get("truth")
        return {record_key(record): record for record in answer["data"]}, int(answer["meta"]["version"])

    def truth_and_bad_records(self) -> tuple[dict[str, dict], dict[str, dict]]:
        """The visits and the bad records with their outcomes (``GET /_sim/bad_records``), of one moment."""
        truth, version = self.truth_and_version()
        answer = self.get("bad_records")
        if int(answer["meta"]["version"]) != version:
            raise RuntimeError(
                f"the source changed between reading its truth ({version}) and its bad records"
            )
        return truth, answer["data"]

    def changes(self, since: int) -> list[dict]:
        """Every version visits took after store version ``since`` (GET /_sim/changes)."""
        return self.get(f"changes?since={since}")["data"]


def drift_between_runs(
    admin: SimulatorAdmin, plan: RunPlan, settings: SoakSettings, rng: random.Random
) -> dict:
    """Change the source before a run: random drift, plus targeted changes to visits of its window."""
    truth = list(admin.truth().values())
    near = [
        record
        for record in truth
        if visit_view(record)[0] is not None
        and abs((visit_view(record)[0] - plan.logical_date).days) <= settings.lookback_days
    ]
    rng.shuffle(near)
    changes: list[Callable[[dict], dict]] = [
        lambda _: {  # closed, so no longer skipped: contradictions are the bad records' (they have truth)
            "closed": 1,
            "skipped": 0,
            "inProgress": 0,
            "signeeRating": "5",
            "closeDate": f"{plan.logical_date} 10:00",
        },
        lambda _: {"signeeRating": rng.choice([1, "2", 3, "4"])},
        lambda _: {"signeeRating": ""},
        lambda _: {"skipped": "1", "closed": 0},
        lambda record: {"date": str(visit_view(record)[0] + timedelta(days=1))},
        # Moved far beyond every upcoming window: gone from this window until a full refresh.
        lambda _: {"date": str(plan.logical_date + timedelta(days=settings.days_ahead + 5))},
    ]
    ops = [
        {"op": "update", "id": record_key(record), "fields": change(record)}
        for record, change in zip(near, changes, strict=False)
    ]
    if len(near) > len(ops):
        ops.append({"op": "delete", "id": record_key(near[len(ops)])})
    return admin.post("mutate", {"ops": ops, **BETWEEN_RUN_DRIFT})


# --- runs and kills ------------------------------------------------------------------------------


def phase_markers(layout: config.DataLayout, phase: str) -> set[str]:
    """The files a run leaves while it is inside `phase` (debris of killed attempts included)."""
    if phase == "extract":
        return {str(path) for path in layout.raw.glob("run_id=*/.part-*.tmp")}
    if phase == "stage":  # the staged parquet files appear as the writers open them
        return {str(path) for path in layout.staging.glob(".*.tmp-*/staged/**/*.parquet")}
    if phase == "publish":
        publishing = set()
        for journal in layout.journals.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                if json.loads(journal.read_text()).get("state") == "publishing":
                    publishing.add(str(journal))
        return publishing
    if phase == "build":
        return {str(path) for path in layout.root.glob(".warehouse-build-*")}
    raise ValueError(f"unknown phase {phase!r}; known: {PHASES}")


@dataclass
class Attempt:
    run: int
    number: int
    exit_code: int | None
    seconds: float
    kill_phase: str | None = None
    killed: bool = False
    killed_in_phase: bool = False
    survivors: list[int] = field(default_factory=list)  # processes of the run alive after its SIGKILL
    log: str = ""


def run_attempt(
    home: AirflowHome,
    plan: RunPlan,
    attempt: int,
    conf: dict,
    logs: Path,
    kill_phase: str | None,
    rng: random.Random,
    timeout: float,
) -> Attempt:
    """One `airflow dags test` in its own process group; SIGKILLs the group once `kill_phase` starts."""
    layout = config.DataLayout(home.data_dir)
    log_path = logs / f"run-{plan.number:02d}-attempt-{attempt}.log"
    command = [
        airflow_bin(), "dags", "test", config.DAG_ID, plan.logical_date.isoformat(), "-c", json.dumps(conf),
    ]  # fmt: skip
    started = time.monotonic()
    result = Attempt(plan.number, attempt, None, 0.0, kill_phase=kill_phase, log=str(log_path))
    before = phase_markers(layout, kill_phase) if kill_phase else set()  # debris of earlier kills

    def inside() -> bool:
        return bool(phase_markers(layout, kill_phase) - before)

    with log_path.open("w") as sink:
        process = subprocess.Popen(
            command, env=home.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            if kill_phase:
                while process.poll() is None and not inside():
                    time.sleep(0.01)
                if process.poll() is None:
                    time.sleep(rng.uniform(0, KILL_DELAY_SECONDS[kill_phase]))
                    result.killed_in_phase = inside()
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                        result.killed = True
            result.exit_code = process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    result.seconds = round(time.monotonic() - started, 1)
    if result.killed:
        time.sleep(0.5)  # the group's other members are gone a moment after its leader
        result.survivors = processes_of(home)
        for pid in result.survivors:  # our own descendants, which the kill should have ended
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    log.info(
        "run %d attempt %d: exit %s in %.1f s%s",
        plan.number, attempt, result.exit_code, result.seconds,
        f" (SIGKILL during {kill_phase}{'' if result.killed_in_phase else ', phase already over'})"
        if result.killed else "",
    )  # fmt: skip
    return result


def processes_of(home: AirflowHome) -> list[int]:
    """Processes still running with this Airflow home (after a kill: any would be a run living on)."""
    marker = f"AIRFLOW_HOME={home.path}".encode()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
    return pids


def snapshot_problem(warehouse: Path, expected_run_id: str | None) -> str | None:
    """None when the published warehouse reads as one complete build by `expected_run_id` (the last
    completed run), else what is wrong."""
    if not warehouse.exists():
        return None if expected_run_id is None else f"{warehouse} is gone"
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            run_id, visits, distinct, daily, territory, driver = connection.execute(READER_QUERY).fetchone()
    except duckdb.Error as error:
        return f"{type(error).__name__}: {error}"
    if not visits == distinct == daily == territory == driver:
        return f"build {run_id}: fct_visits {visits} ({distinct} distinct), kpis {daily}/{territory}/{driver}"
    if expected_run_id is not None and run_id != expected_run_id:
        return f"the warehouse is now built by {run_id!r}, not by the last completed run {expected_run_id!r}"
    return None


def debris(layout: config.DataLayout) -> list[str]:
    """Temporary files and folders of attempts that died, still on disk."""
    patterns = [
        (layout.raw, "run_id=*/.part-*.tmp"),
        (layout.staging, ".*.tmp-*"),
        (layout.root, ".warehouse-build-*"),
        (layout.lake, "**/.*.tmp-*"),
        (layout.lake, "**/.*.tmp"),  # letsjobit.files' temporaries (journal, manifests)
    ]
    found = {str(path) for root, pattern in patterns if root.exists() for path in root.glob(pattern)}
    return sorted(found)


def find_secret(roots: Iterable[Path], secret: str) -> list[str]:
    """Files under `roots` holding `secret` (gzip files are searched decompressed too)."""
    needle = secret.encode()
    hits = []
    for root in roots:
        for path in root.rglob("*") if root.is_dir() else [root]:
            if not path.is_file() or path.is_symlink():
                continue
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                if needle in data:
                    hits.append(str(path))
                elif path.suffix == ".gz":
                    with contextlib.suppress(OSError, EOFError, gzip.BadGzipFile):
                        if needle in gzip.decompress(data):
                            hits.append(str(path))
    return hits


# --- the soak ------------------------------------------------------------------------------------


@dataclass
class RunReport:
    plan: RunPlan
    attempts: list[Attempt]
    check: RunCheck | None
    seconds: float
    drift: dict = field(default_factory=dict)
    snapshot_after_kill: list[str] = field(default_factory=list)


@dataclass
class SoakReport:
    settings: SoakSettings
    runs: list[RunReport]
    counters: dict
    readers: dict
    key_leaks: list[str]
    debris: list[str]
    bad_records: dict[str, int]  # kind -> bad records of it in the source at the end (GET /_sim/bad_records)
    seconds: float
    cpu_seconds: float
    load_average: float  # of the machine over the last 5 minutes, at the end
    workdir: str

    @property
    def kills(self) -> int:
        return sum(attempt.killed for run in self.runs for attempt in run.attempts)

    @property
    def failed_attempts(self) -> int:
        return sum(
            1
            for run in self.runs
            for attempt in run.attempts
            if not attempt.killed and attempt.exit_code != 0
        )

    def total(self, name: str) -> int:
        return sum(getattr(run.check, name) for run in self.runs if run.check)

    @property
    def unchecked_runs(self) -> int:
        return sum(run.check is None for run in self.runs)

    @property
    def snapshots_broken_after_kill(self) -> int:
        return sum(len(run.snapshot_after_kill) for run in self.runs)

    @property
    def client_429(self) -> int:
        return int(self.counters.get("rate_limited_429", 0))

    def failures(self) -> list[str]:
        """Every invariant that did not hold, in words (empty: the soak passed)."""
        problems = []
        for name in ("lost", "duplicated", "mismatched", "ghosts", "kpi_mismatches", "issues_mismatched"):
            if self.total(name):
                problems.append(f"{self.total(name)} {name.replace('_', ' ')}")
        problems += [
            f"run {run.plan.number} not checked: no completed attempt" for run in self.runs if not run.check
        ]
        problems += [
            f"run {run.plan.number}: {sample}"
            for run in self.runs
            if run.check and not run.check.build_is_this_run
            for sample in run.check.samples[:1]
        ]
        if self.failed_attempts:
            problems.append(f"{self.failed_attempts} attempts failed without being killed")
        if self.readers["errors"] or self.readers["inconsistent"]:
            problems.append(
                f"readers: {self.readers['errors']} errors, {self.readers['inconsistent']} inconsistent snapshots"
            )
        survivors = sum(len(a.survivors) for run in self.runs for a in run.attempts)
        if survivors:
            problems.append(f"{survivors} processes of killed runs were still running after the SIGKILL")
        if self.snapshots_broken_after_kill:
            problems.append(f"{self.snapshots_broken_after_kill} broken warehouse snapshots after a kill")
        if self.key_leaks:
            problems.append(f"API key found in {len(self.key_leaks)} files: {self.key_leaks[:3]}")
        if self.client_429:
            problems.append(f"{self.client_429} 429s caused by the client")
        return problems

    def table(self) -> str:
        lines = [
            "| run | kind | logical date | attempts | killed during | wall s | visits checked | lost | "
            "duplicated | mismatched | ghosts | issues checked | issues mismatched | KPI dates | KPI mismatches |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for run in self.runs:
            check = run.check
            kills = ", ".join(
                a.kill_phase + ("" if a.killed_in_phase else " (after)") for a in run.attempts if a.killed
            )
            cells = [
                str(run.plan.number),
                run.plan.kind + (" + drift" if run.plan.in_run_drift else ""),
                run.plan.logical_date.isoformat(),
                str(len(run.attempts)),
                kills or "-",
                f"{run.seconds:.0f}",
            ]
            if check:
                cells += [
                    str(check.in_scope), str(check.lost), str(check.duplicated), str(check.mismatched),
                    str(check.ghosts), str(check.issues_checked), str(check.issues_mismatched),
                    str(check.kpi_dates), str(check.kpi_mismatches),
                ]  # fmt: skip
            else:
                cells += ["not checked"] + [""] * 8
            lines.append("| " + " | ".join(cells) + " |")
        faults = self.counters.get("faults", {})
        fault_text = ", ".join(f"{kind} {count}" for kind, count in sorted(faults.items())) or "none"
        drift = self.counters.get("drift", {})
        totals = [
            ("runs (attempts)", f"{len(self.runs)} ({sum(len(r.attempts) for r in self.runs)})"),
            (
                "visits in the source",
                f"{self.settings.visits} at start, {self.counters.get('visits', '?')} at end",
            ),
            ("API requests", str(self.counters.get("requests_total", "?"))),
            ("faults injected by kind", f"{sum(faults.values())}: {fault_text}"),
            ("drift while paging", ", ".join(f"{k} {v}" for k, v in sorted(drift.items())) or "none"),
            ("kills (SIGKILL of the run's process group)", str(self.kills)),
            ("failed attempts (not killed)", str(self.failed_attempts)),
            ("reader queries", str(self.readers["queries"])),
            ("reader errors", str(self.readers["errors"])),
            ("inconsistent reader snapshots", str(self.readers["inconsistent"])),
            ("builds seen by one reader", str(self.readers["builds_seen"])),
            ("visits checked (sum over runs)", str(self.total("in_scope"))),
            ("visits lost", str(self.total("lost"))),
            ("visits duplicated", str(self.total("duplicated"))),
            ("visits with wrong values", str(self.total("mismatched"))),
            (
                "ghost rows (deleted or moved visits, or visits that cannot be placed)",
                str(self.total("ghosts")),
            ),
            (
                "bad records in the source at the end; fields the reference does not list",
                f"{sum(self.bad_records.values())} of {len(self.bad_records)} kinds "
                f"({self.settings.bad_record_rate:.1%} of the generated visits); unknown fields on "
                f"{self.settings.unknown_field_rate:.1%} of visits, lines and extraData entries",
            ),
            ("visits that cannot be placed, checked absent (sum over runs)", str(self.total("quarantined"))),
            ("issue rows checked (sum over runs)", str(self.total("issues_checked"))),
            ("issue rows mismatched", str(self.total("issues_mismatched"))),
            (
                "most visits absent at once, moved out of a window (back at the next full refresh)",
                str(max((run.check.absent_elsewhere for run in self.runs if run.check), default=0)),
            ),
            (
                "most visits both closed and skipped at once (published, recorded as data issues)",
                str(max((run.check.closed_and_skipped for run in self.runs if run.check), default=0)),
            ),
            ("KPI dates checked", str(self.total("kpi_dates"))),
            ("KPI mismatches", str(self.total("kpi_mismatches"))),
            ("429s caused by the client", str(self.client_429)),
            ("429s injected", str(self.counters.get("injected_429", "?"))),
            ("API key found in files", str(len(self.key_leaks))),
            ("temporary files left by killed attempts", str(len(self.debris))),
            ("wall time", f"{self.seconds:.0f} s"),
            ("CPU time (soak, Airflow runs, readers, simulator)", f"{self.cpu_seconds:.0f} s"),
            ("machine load average (5 min, at the end; 2 cores)", f"{self.load_average:g}"),
        ]
        lines += ["", "| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in totals]
        return "\n".join(lines)


def cpu_seconds() -> float:
    """CPU time of this process and of every child it has waited for (Airflow runs, readers, simulator)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_soak(settings: SoakSettings) -> SoakReport:
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["reader"]:
        reader_main(Path(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="the short form `make test` runs")
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--visits", type=int, default=5000)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261124)
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


def short_settings(**changes: Any) -> SoakSettings:
    """The short form: 1,500 visits, 3 runs, 1 kill, 2 readers (about 2 minutes on 2 idle cores)."""
    return replace(SoakSettings(runs=short_plan()), **changes)


__all__ = [
    "RunPlan",
    "SoakReport",
    "SoakSettings",
    "check_warehouse",
    "expected_kpis",
    "long_plan",
    "run_soak",
    "short_plan",
    "short_settings",
]

if __name__ == "__main__":
    sys.exit(main())
