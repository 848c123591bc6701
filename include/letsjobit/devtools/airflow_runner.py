"""Run real Airflow commands against a private Airflow home: used by `make run` and the end-to-end tests.

The connection `letsjobit_default` is given to Airflow as an environment variable (AIRFLOW_CONN_...,
built by ``config.api_connection``), so the API key is neither on a command line nor stored in the
metadata DB. The caller's own ``AIRFLOW__*`` and ``AIRFLOW_CONN_*`` variables (an SMTP connection, a
lineage transport, ...) reach every Airflow command; only the settings that make this home what it is
(``HOME_SETTINGS``) replace theirs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from letsjobit import config

# Run in a child process with the home's environment (importing Airflow configures logging and creates
# folders under AIRFLOW_HOME, which the caller's process must not get): the visit dates a window run of
# the DAG re-reads for a logical date, from the DAG's own timetable (as `airflow dags test` infers the
# data interval) and its params' defaults.
WINDOW_DATES_SCRIPT = """
import json, sys
import pendulum
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.encoders import coerce_to_core_timetable
from letsjobit.airflow import tasks

dag = DagBag().dags[sys.argv[1]]
timetable = coerce_to_core_timetable(dag.timetable)
interval = timetable.infer_manual_data_interval(run_after=pendulum.parse(sys.argv[2]))
dates = tasks.window_dates(
    interval.start, interval.end, dag.params["lookback_days"], dag.params["lookahead_days"]
)
print(json.dumps([day.isoformat() for day in dates]))
"""


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


@dataclass
class AirflowHome:
    """A throw-away Airflow home (SQLite metadata DB) wired to the project's DAGs and plugins."""

    path: Path
    # None: LETSJOBIT_API_URL / LETSJOBIT_API_KEY (see config.api_connection).
    api_url: str | None
    api_key: str | None
    data_dir: Path
    log_file: Path
    # Seconds before a failed task's first retry; short here so a person or a test sees a failure soon.
    retry_delay_seconds: int = 5
    # Connection extras (key placement, rate budget, retry budget...): see the hook.
    conn_extra: dict = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Another folder of DAGs defining the same dag_ids (a benchmark's variant of the pipeline's DAG).
    dags_folder: Path = config.PROJECT_ROOT / "dags"

    @property
    def env(self) -> dict[str, str]:
        """The caller's environment, with this home's defaults where the caller set nothing, and the
        settings this home must own (``own_settings``) in any case."""
        env = dict(os.environ)
        for name, value in self.default_settings().items():
            env.setdefault(name, value)
        env.update(self.own_settings())
        env.update(self.extra_env)
        return env

    def default_settings(self) -> dict[str, str]:
        """Settings a user's own variable may replace."""
        return {
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "LETSJOBIT_TASK_RETRY_DELAY_SECONDS": str(self.retry_delay_seconds),
        }

    def own_settings(self) -> dict[str, str]:
        """Settings that win over the user's, each because the run cannot work (or would harm) otherwise:
        the home is wiped by ``init`` (never the user's real one), its DAGs (``dags_folder``) and plugins
        are this project's, its metadata DB is the home's own throw-away SQLite file (never a user's
        database, which ``init`` would migrate and the run would write into), its data directory is the one
        the caller chose, and the `letsjobit_default` connection comes from the LETSJOBIT_* variables
        (``config.api_connection``).
        """
        return {
            "AIRFLOW_HOME": str(self.path),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.PROJECT_ROOT / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.path / 'airflow.db'}",
            "LETSJOBIT_DATA_DIR": str(self.data_dir),
            config.CONN_ENV_VAR: json.dumps(
                config.api_connection(self.api_url, self.api_key, self.conn_extra)
            ),
        }

    def replaced_user_settings(self) -> list[str]:
        """Names of the caller's variables this home replaces with its own values (never the values)."""
        own = {**self.own_settings(), **self.extra_env}
        return sorted(name for name, value in own.items() if name in os.environ and os.environ[name] != value)

    def init(self) -> None:
        """A fresh metadata DB and the API pool."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        for args in (
            ["db", "migrate"],
            [
                "pools",
                "set",
                config.API_POOL,
                str(config.API_POOL_SLOTS),
                "LetsJobIt API extraction (one key's budget)",
            ],
        ):
            code = self.run(args)
            if code != 0:
                raise RuntimeError(f"`airflow {' '.join(args)}` failed (exit {code}); see {self.log_file}")

    def run(
        self, args: list[str], on_line: Callable[[str], None] | None = None, timeout: float | None = None
    ) -> int:
        """Run one Airflow command, appending its output to the log file; returns its exit code."""
        with self.log_file.open("a") as sink:
            sink.write(f"\n$ airflow {' '.join(args)}\n")
            sink.flush()
            process = subprocess.Popen(
                [airflow_bin(), *args],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert process.stdout is not None
            for line in process.stdout:
                sink.write(line)
                if on_line:
                    on_line(line)
            return process.wait(timeout=timeout)

    def window_dates(self, dag_id: str, logical_date: datetime) -> list[date]:
        """The visit dates a window run of ``dag_id`` at ``logical_date`` re-reads (its param defaults)."""
        result = subprocess.run(
            [sys.executable, "-c", WINDOW_DATES_SCRIPT, dag_id, logical_date.isoformat()],
            env=self.env,
            cwd=config.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"could not read the window of {dag_id}: {result.stderr.strip()[-2000:]}")
        return [date.fromisoformat(day) for day in json.loads(result.stdout.strip().splitlines()[-1])]

    def dags_test(
        self,
        dag_id: str = config.DAG_ID,
        conf: dict | None = None,
        logical_date: str | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> int:
        args = ["dags", "test", dag_id]
        if logical_date:
            args.append(logical_date)
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        return self.run(args, on_line=on_line)


# Lines of `airflow dags test` output worth showing a person: the pipeline's own loggers, task state
# changes and errors. Everything goes to the full log file.
PROGRESS = re.compile(
    r"\[(include\.letsjobit|letsjobit)[\w.]*\]|new_state=|Traceback|Error:|Exception:|\[error"
)


def compact(line: str) -> str:
    """A structlog line without its timestamp and source location."""
    line = re.sub(r"^\S+Z\s+", "", line.rstrip())
    return re.sub(r"\s+loc=\S+", "", line)
