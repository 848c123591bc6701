"""The soak's readers: processes that query the published warehouse read-only the whole time, one
connection per query, each checking that its snapshot is one whole build.

    python -m tests.reliability.soak_readers WAREHOUSE OUT    # one reader, until SIGTERM (Readers starts it)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
from letsjobit import config
from letsjobit.devtools.truth import WAREHOUSE_SNAPSHOT_QUERY

READER_PAUSE_SECONDS = 0.05


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
                        WAREHOUSE_SNAPSHOT_QUERY
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
                [sys.executable, "-m", __spec__.name, str(warehouse), str(out)],
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


def snapshot_problem(warehouse: Path, expected_run_id: str | None) -> str | None:
    """None when the published warehouse reads as one complete build by `expected_run_id` (the last
    completed run), else what is wrong."""
    if not warehouse.exists():
        return None if expected_run_id is None else f"{warehouse} is gone"
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            run_id, visits, distinct, daily, territory, driver = connection.execute(
                WAREHOUSE_SNAPSHOT_QUERY
            ).fetchone()
    except duckdb.Error as error:
        return f"{type(error).__name__}: {error}"
    if not visits == distinct == daily == territory == driver:
        return f"build {run_id}: fct_visits {visits} ({distinct} distinct), kpis {daily}/{territory}/{driver}"
    if expected_run_id is not None and run_id != expected_run_id:
        return f"the warehouse is now built by {run_id!r}, not by the last completed run {expected_run_id!r}"
    return None


if __name__ == "__main__":
    reader_main(Path(sys.argv[1]), Path(sys.argv[2]))
