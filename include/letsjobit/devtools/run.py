"""`make run` and `make run-window`: the pipeline end to end through real `airflow dags test` runs.

`make run` (a full refresh):
1. The connection `letsjobit_default` comes from LETSJOBIT_API_URL, LETSJOBIT_API_KEY and
   LETSJOBIT_CONN_EXTRA (``config.api_connection``). Without LETSJOBIT_API_URL the LetsJobIt simulator
   is started on a free loopback port (its seed, anchor date and rates are recorded in the data
   directory's ``.state/demo-simulator.json`` for `make run-window`). It serves a few deliberately bad
   records (0.5% of the visits: a rating of 9, a new extraData type, ...) and fields the reference does
   not list, so the first run already shows the data-quality policy at work: those values are NULLed or
   kept and recorded, the visits published.
2. A throw-away Airflow home under the project (.airflow/, SQLite metadata DB) gets the connection as an
   environment variable (so the key is neither on a command line nor stored in the metadata DB), and
   the user's own AIRFLOW__* and AIRFLOW_CONN_* variables (see ``AirflowHome.own_settings``).
3. The DAG `letsjobit_visits` runs once as a full refresh, streaming the pipeline's own progress lines.
4. A short summary (rows loaded, validation verdict, a few KPI rows, where the warehouse is); the exit
   code is non-zero if anything failed.

`make run-window` (after `make run`, on the same LETSJOBIT_DATA_DIR): one scheduled-style window run,
``airflow dags test letsjobit_visits <now>`` with the DAG's default look-back and look-ahead. Airflow
infers the data interval of that logical date as the latest complete one before it, which is the
interval of the scheduler's most recent daily run, so the window covers the days around today, where
the simulator's data (anchored on the day of `make run`) lies. The simulator is restarted with the
recorded seed and anchor, so its source is what `make run` loaded; a fresh simulator would offer no
change to find, so a few visits of the window's dates are first changed deterministically
(``simulator/drift.py``; ``--no-drift`` skips it). Against a real API the changes are the API's own.
The summary says which visit dates were re-read and which visits the lake gained, changed and lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import requests

from letsjobit import config
from letsjobit.devtools.airflow_runner import PROGRESS, AirflowHome, compact
from letsjobit.lake import changes as lake_changes
from letsjobit.simulator.drift import window_drift_ops
from letsjobit.simulator.process import simulator_process

log = logging.getLogger("letsjobit.demo")

AIRFLOW_HOME = config.PROJECT_ROOT / ".airflow"
SIMULATOR_VISITS = 3000
SIMULATOR_SEED = 42
SIMULATOR_BAD_RECORD_RATE = 0.005  # a few bad values, none above a check's threshold
SIMULATOR_UNKNOWN_FIELD_RATE = 0.01


@dataclass(frozen=True)
class Endpoint:
    """The API a run talks to: the configured one, or a simulator started for the run."""

    url: str | None  # None: the configured LETSJOBIT_API_URL
    key: str | None  # None: the configured LETSJOBIT_API_KEY
    simulator_root: str | None = None
    anchor_date: date | None = None

    @property
    def simulated(self) -> bool:
        return self.simulator_root is not None


def simulator_state_path(layout: config.DataLayout) -> Path:
    return layout.state / "demo-simulator.json"


@contextlib.contextmanager
def api_endpoint(layout: config.DataLayout, window: bool) -> Iterator[Endpoint]:
    """The configured API, or a simulator: a fresh one for `make run`, the recorded one for a window."""
    if config.api_url():
        yield Endpoint(url=None, key=None)
        return
    state_path = simulator_state_path(layout)
    settings = {
        "visits": SIMULATOR_VISITS,
        "seed": SIMULATOR_SEED,
        "anchor_date": date.today().isoformat(),
        "bad_record_rate": SIMULATOR_BAD_RECORD_RATE,
        "unknown_field_rate": SIMULATOR_UNKNOWN_FIELD_RATE,
    }
    if window:
        if state_path.exists():
            settings = json.loads(state_path.read_text())
        else:
            print(f"No `make run` recorded in {layout.root}: the simulator is anchored on today", flush=True)
    key = config.api_key()
    arguments = ["--visits", str(settings["visits"]), "--seed", str(settings["seed"])]
    for name in ("bad_record_rate", "unknown_field_rate"):  # 0 for a `make run` recorded before them
        arguments += [f"--{name.replace('_', '-')}", str(settings.get(name, 0.0))]
    with simulator_process(*arguments, "--anchor-date", settings["anchor_date"], api_key=key) as sim:
        log.info(
            "Simulator: %d visits (seed %d, anchored on %s), %.1f%% with a deliberately bad value, at %s",
            settings["visits"],
            settings["seed"],
            settings["anchor_date"],
            100 * settings.get("bad_record_rate", 0.0),
            sim.base_url,
        )
        if not window:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps(settings) + "\n")
        yield Endpoint(
            url=sim.base_url,
            key=key,
            simulator_root=sim.root_url,
            anchor_date=date.fromisoformat(settings["anchor_date"]),
        )


def show_progress(line: str) -> None:
    if PROGRESS.search(line):
        print("  " + compact(line), flush=True)


def change_the_simulated_source(endpoint: Endpoint, dates: list[date]) -> dict[str, list[str]]:
    """Apply the deterministic window drift through the simulator's admin API; returns the ids touched."""
    truth = requests.get(f"{endpoint.simulator_root}/_sim/truth", timeout=60).json()["data"]
    ops = window_drift_ops(truth, dates, endpoint.anchor_date)
    answer = requests.post(f"{endpoint.simulator_root}/_sim/mutate", json={"ops": ops}, timeout=60)
    answer.raise_for_status()
    return answer.json()


def describe_user_settings(home: AirflowHome) -> None:
    replaced = home.replaced_user_settings()
    if replaced:
        print(
            f"Replaced for this run (the throw-away home must own them): {', '.join(replaced)}; your other "
            "AIRFLOW__* and AIRFLOW_CONN_* variables pass through",
            flush=True,
        )
    if config.CONN_ENV_VAR in replaced:
        print(
            f"  ({config.CONN_ENV_VAR} is built from LETSJOBIT_API_URL, LETSJOBIT_API_KEY and "
            "LETSJOBIT_CONN_EXTRA: set those instead)",
            flush=True,
        )


def run_full_refresh(home: AirflowHome, endpoint: Endpoint, layout: config.DataLayout) -> int:
    target = "the simulator" if endpoint.simulated else config.api_url()
    print(f"Running DAG {config.DAG_ID} with a full refresh against {target}", flush=True)
    return home.dags_test(config.DAG_ID, {"full_refresh": True}, on_line=show_progress)


def run_window(
    home: AirflowHome, endpoint: Endpoint, layout: config.DataLayout, drift: bool
) -> tuple[int, list[str]]:
    """One scheduled-style window run; returns its exit code and the summary lines about the window."""
    from letsjobit.devtools import summary

    logical_date = datetime.now(UTC).replace(microsecond=0)
    dates = home.window_dates(config.DAG_ID, logical_date)
    print(
        f"Window run of {config.DAG_ID} at logical date {logical_date.isoformat()}: its window is "
        f"{len(dates)} visit dates, {dates[0]} .. {dates[-1]}",
        flush=True,
    )
    if endpoint.simulated and drift:
        done = change_the_simulated_source(endpoint, dates)
        print(
            f"Simulator: before the run, {len(done['updated'])} visits updated, {len(done['deleted'])} "
            f"deleted and {len(done['inserted'])} inserted among the window's dates (the same for the same "
            "seed)",
            flush=True,
        )
    before = lake_changes.snapshot(layout)
    if not before:
        print(
            f"The lake at {layout.lake_location.redacted} is empty: every visit the window reads will be new",
            flush=True,
        )
    previous = summary.last_publication(layout).get("run_id")
    code = home.dags_test(
        config.DAG_ID, {"full_refresh": False}, logical_date=logical_date.isoformat(), on_line=show_progress
    )
    if code != 0:
        return code, []
    publication = summary.last_publication(layout)
    if publication.get("run_id") == previous:
        raise RuntimeError(f"the window run published nothing (the last publication is still {previous})")
    changes = lake_changes.compare(before, lake_changes.snapshot(layout))
    return 0, summary.render_window(publication.get("partitions") or [], changes, planned=dates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--window",
        action="store_true",
        help="one scheduled-style window run on the data of an earlier run (make run-window)",
    )
    parser.add_argument(
        "--no-drift",
        dest="drift",
        action="store_false",
        help="window run on the simulator: do not change its visits before the run",
    )
    parser.add_argument(
        "--airflow-home", type=Path, default=AIRFLOW_HOME, help="throw-away Airflow home (wiped)"
    )
    parser.add_argument(
        "--dags-folder",
        type=Path,
        default=config.PROJECT_ROOT / "dags",
        help="the DAGs to run (default: the project's dags/; a benchmark passes its variant's folder)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    layout = config.layout()
    layout.root.mkdir(parents=True, exist_ok=True)
    name = "make-run-window" if args.window else "make-run"
    log_file = layout.root / "logs" / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        config.conn_extra()  # an unusable LETSJOBIT_CONN_EXTRA fails before anything starts
        with api_endpoint(layout, window=args.window) as endpoint:
            home = AirflowHome(
                args.airflow_home,
                endpoint.url,
                endpoint.key,
                layout.root,
                log_file,
                dags_folder=args.dags_folder.resolve(),
            )
            print(
                f"Airflow home {args.airflow_home} (throw-away), data in {layout.root}, full log {log_file}",
                flush=True,
            )
            describe_user_settings(home)
            home.init()
            if args.window:
                code, window_lines = run_window(home, endpoint, layout, args.drift)
            else:
                code, window_lines = run_full_refresh(home, endpoint, layout), []
    except config.ConfigError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    if code != 0:
        print(f"\nFAILED: the DAG run failed after {elapsed:.0f} s (exit code {code}). Full log: {log_file}")
        return 1
    from letsjobit.devtools import summary

    print(summary.render(layout, elapsed_seconds=elapsed))
    for line in window_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
