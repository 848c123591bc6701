"""`make run`: the whole pipeline once, end to end, on the embedded default.

1. Uses LETSJOBIT_API_URL / LETSJOBIT_API_KEY when set; otherwise starts the LetsJobIt simulator on a
   free loopback port.
2. Initialises a throw-away Airflow home under the project (.airflow/, SQLite metadata DB).
3. Provides the connection `letsjobit_default` to Airflow as an environment variable (so the key is
   neither on a command line nor stored in the metadata DB) and runs the DAG `letsjobit_visits` once as
   a full refresh with `airflow dags test`, streaming the pipeline's own progress lines.
4. Prints a short summary (rows loaded, validation verdict, a few KPI rows, where the warehouse is)
   and exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from include.letsjobit import config

log = logging.getLogger("letsjobit.demo")

AIRFLOW_HOME = config.PROJECT_ROOT / ".airflow"
SIMULATOR_VISITS = 3000
SIMULATOR_SEED = 42
# Lines of `airflow dags test` output worth showing a person: the pipeline's own loggers, task state
# changes and errors. Everything goes to the full log file.
PROGRESS = re.compile(r"\[(include\.letsjobit|letsjobit)[\w.]*\]|new_state=|Traceback|Error:|Exception:| error ")


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def airflow_env(api_url: str, api_key: str) -> dict[str, str]:
    """Environment for every Airflow command of this run."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(AIRFLOW_HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(config.PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "LETSJOBIT_DATA_DIR": str(config.data_dir()),
            "AIRFLOW_CONN_LETSJOBIT_DEFAULT": json.dumps(
                {"conn_type": config.CONN_TYPE, "host": api_url, "password": api_key}
            ),
        }
    )
    return env


@contextlib.contextmanager
def api_endpoint() -> Iterator[tuple[str, str, bool]]:
    """(base URL, key, simulated?): the configured API, or a simulator started for this run."""
    url = config.api_url()
    if url:
        yield url, config.api_key(), False
        return
    key = config.api_key()
    command = [
        sys.executable, "-m", "include.letsjobit.simulator",
        "--port", "0", "--visits", str(SIMULATOR_VISITS), "--seed", str(SIMULATOR_SEED),
    ]
    env = dict(os.environ, LETSJOBIT_API_KEY=key)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=config.PROJECT_ROOT)
    try:
        line = process.stdout.readline().strip() if process.stdout else ""
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"the simulator did not start (it printed {line!r}, exit code {process.poll()})")
        base_url = line.split(" ", 1)[1]
        log.info("Simulator: %d visits (seed %d) at %s", SIMULATOR_VISITS, SIMULATOR_SEED, base_url)
        yield base_url, key, True
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_airflow(args: list[str], env: dict[str, str], log_file: Path, show_progress: bool = False) -> int:
    """Run one Airflow command, appending its output to the log file; stream progress lines if asked."""
    with log_file.open("a") as sink:
        sink.write(f"\n$ airflow {' '.join(args)}\n")
        process = subprocess.Popen(
            [airflow_bin(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            if show_progress and PROGRESS.search(line):
                print("  " + _compact(line), flush=True)
        return process.wait()


def _compact(line: str) -> str:
    """Drop the timestamp and the source location from a structlog line."""
    line = re.sub(r"^\S+Z\s+", "", line.rstrip())
    return re.sub(r"\s+loc=\S+", "", line)


def init_airflow_home(env: dict[str, str], log_file: Path) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
    AIRFLOW_HOME.mkdir(parents=True)
    for args in (["db", "migrate"], ["pools", "set", "letsjobit_api", "4", "LetsJobIt API extraction (one key's budget)"]):
        if run_airflow(args, env, log_file) != 0:
            raise RuntimeError(f"`airflow {' '.join(args)}` failed; see {log_file}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incremental", action="store_true", help="a scheduled-style window run instead of a full refresh")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    layout = config.layout()
    layout.root.mkdir(parents=True, exist_ok=True)
    log_file = layout.root / "logs" / f"make-run-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with api_endpoint() as (api_url, api_key, simulated):
        env = airflow_env(api_url, api_key)
        print(f"Airflow home {AIRFLOW_HOME} (throw-away), data in {layout.root}, full log {log_file}", flush=True)
        init_airflow_home(env, log_file)
        conf = json.dumps({"full_refresh": not args.incremental})
        print(f"Running DAG {config.DAG_ID} with {conf} against {'the simulator' if simulated else api_url}", flush=True)
        code = run_airflow(["dags", "test", config.DAG_ID, "-c", conf], env, log_file, show_progress=True)
    elapsed = time.monotonic() - started
    if code != 0:
        print(f"\nFAILED: the DAG run failed after {elapsed:.0f} s (exit code {code}). Full log: {log_file}")
        return 1
    from include.letsjobit import summary

    print(summary.render(layout, elapsed_seconds=elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
