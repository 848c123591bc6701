"""`make run`: the whole pipeline once, end to end, on the embedded default.

1. Uses LETSJOBIT_API_URL / LETSJOBIT_API_KEY when set; otherwise starts the LetsJobIt simulator on a
   free loopback port, serving a few deliberately bad records (0.5% of the visits: a rating of 9, a
   new extraData type, ...) and fields the reference does not list, so the first run already shows the
   data-quality policy at work: those values are NULLed or kept and recorded, the visits published.
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
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from include.letsjobit import config
from include.letsjobit.airflow_runner import PROGRESS, AirflowHome, compact
from include.letsjobit.simulator.process import simulator_process

log = logging.getLogger("letsjobit.demo")

AIRFLOW_HOME = config.PROJECT_ROOT / ".airflow"
SIMULATOR_VISITS = 3000
SIMULATOR_SEED = 42
SIMULATOR_BAD_RECORD_RATE = 0.005  # a few bad values, none above a check's threshold
SIMULATOR_UNKNOWN_FIELD_RATE = 0.01


@contextlib.contextmanager
def api_endpoint() -> Iterator[tuple[str, str, bool]]:
    """(base URL, key, simulated?): the configured API, or a simulator started for this run."""
    url = config.api_url()
    if url:
        yield url, config.api_key(), False
        return
    key = config.api_key()
    with simulator_process(
        "--visits", str(SIMULATOR_VISITS), "--seed", str(SIMULATOR_SEED),
        "--bad-record-rate", str(SIMULATOR_BAD_RECORD_RATE),
        "--unknown-field-rate", str(SIMULATOR_UNKNOWN_FIELD_RATE),
        api_key=key,
    ) as sim:  # fmt: skip
        log.info(
            "Simulator: %d visits (seed %d), %.1f%% with a deliberately bad value, at %s",
            SIMULATOR_VISITS, SIMULATOR_SEED, 100 * SIMULATOR_BAD_RECORD_RATE, sim.base_url,
        )  # fmt: skip
        yield sim.base_url, key, True


def show_progress(line: str) -> None:
    if PROGRESS.search(line):
        print("  " + compact(line), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--incremental", action="store_true", help="a scheduled-style window run instead of a full refresh"
    )
    parser.add_argument(
        "--airflow-home", type=Path, default=AIRFLOW_HOME, help="throw-away Airflow home (wiped)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    layout = config.layout()
    layout.root.mkdir(parents=True, exist_ok=True)
    log_file = layout.root / "logs" / f"make-run-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with api_endpoint() as (api_url, api_key, simulated):
        home = AirflowHome(args.airflow_home, api_url, api_key, layout.root, log_file)
        print(
            f"Airflow home {args.airflow_home} (throw-away), data in {layout.root}, full log {log_file}",
            flush=True,
        )
        home.init()
        conf = {"full_refresh": not args.incremental}
        print(
            f"Running DAG {config.DAG_ID} with {conf} against {'the simulator' if simulated else api_url}",
            flush=True,
        )
        code = home.dags_test(config.DAG_ID, conf, on_line=show_progress)
    elapsed = time.monotonic() - started
    if code != 0:
        print(f"\nFAILED: the DAG run failed after {elapsed:.0f} s (exit code {code}). Full log: {log_file}")
        return 1
    from include.letsjobit import summary

    print(summary.render(layout, elapsed_seconds=elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
