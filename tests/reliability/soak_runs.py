"""One soak run's moving parts: the simulator's admin API, the drift between runs, one `airflow dags
test` attempt with its SIGKILL at a phase, and what a killed attempt may leave behind."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from deltalake.exceptions import DeltaError
from letsjobit import config
from letsjobit.devtools.airflow_runner import AirflowHome, airflow_bin
from letsjobit.lake import tables
from letsjobit.simulator.data import record_key

from tests.reliability.soak_checks import visit_view
from tests.reliability.soak_plan import BETWEEN_RUN_DRIFT, KILL_DELAY_SECONDS, PHASES, RunPlan, SoakSettings

log = logging.getLogger("soak")


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


def phase_markers(layout: config.DataLayout, phase: str) -> set[str]:
    """The files a run leaves while it is inside `phase` (debris of killed attempts included)."""
    if phase == "extract":
        return {str(path) for path in layout.raw.glob("run_id=*/.part-*.tmp")}
    if phase == "stage":  # the staged parquet files appear as the writers open them
        return {str(path) for path in layout.staging.glob(".*.tmp-*/staged/**/*.parquet")}
    if phase == "publish":  # the lake's publication record names a publication under way
        with contextlib.suppress(OSError, ValueError, DeltaError):  # being replaced right now: look again
            pending = tables.read_state(layout.lake_location).publishing
            return {f"publishing {pending.run_id} since {pending.at}"} if pending else set()
        return set()
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


def debris(layout: config.DataLayout) -> list[str]:
    """Temporary files and folders of attempts that died, still on disk."""
    patterns = [
        (layout.raw, "run_id=*/.part-*.tmp"),
        (layout.staging, ".*.tmp-*"),
        (layout.root, ".warehouse-build-*"),
        (layout.lake, "**/.*.tmp-*"),
        (
            layout.lake,
            "**/.*.tmp",
        ),  # letsjobit.files' temporaries (manifests, raw parts, the last publication)
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
