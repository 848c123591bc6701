"""Run a DAG on Airflow's distributed engine on this machine and check where its tasks ran.

What a docker-compose deployment runs in containers, this runs as separate processes on one host:
PostgreSQL (metadata DB and Celery result backend) and Redis (Celery broker) from the system packages,
``airflow db migrate`` and ``letsjobit.devtools.bootstrap``, then the scheduler, the dag-processor, the API server
and N ``airflow celery worker`` processes, each with its own hostname, plus the LetsJobIt simulator.
It triggers the DAG through the REST API, waits for the run to end, reads from the metadata DB which
worker ran each task instance, reads the simulator's counters, and stops everything it started by
process group, whatever happened. Logs go to a temporary directory; their tails are printed on failure.

``cluster(options)`` is the start-up alone, as a context manager yielding a :class:`Session` that
triggers runs and waits for them (``make scale-out`` runs two DAG runs in one). ``separate_hosts`` gives
each worker its own data directory, as on separate machines: then they share only PostgreSQL, Redis
(broker and the API key's budget) and an object store holding the lake. ``worker_queues`` sets the
Celery queues each worker takes, ``extra_env`` adds settings to every Airflow process.

    python -m letsjobit.devtools.distributed                  # letsjobit_visits, full refresh, on the simulator
    python -m letsjobit.devtools.distributed --conf '{"full_refresh": false}' --logical-date 2026-11-24T00:00:00Z
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from letsjobit import config
from letsjobit.devtools.rest import RestClient
from letsjobit.devtools.services import (
    DB_NAME,
    DB_USER,
    LOG_TAIL_LINES,
    START_TIMEOUT_SECONDS,
    DistributedRunError,
    ObjectStore,
    Processes,
    Started,
    ensure_server_binaries,
    failed_task_log_tails,
    free_port,
    log_tail,
    simulator_base_url,
    spawn_logged,
    start_object_store,
    start_postgres,
    start_redis,
    start_simulator,
    wait_until,
)

log = logging.getLogger(__name__)

PROJECT_ROOT = config.PROJECT_ROOT
ADMIN_USER = "admin"
# How often a waited-for run logs its task states, so a person can follow it.
PROGRESS_EVERY_SECONDS = 30.0


# --- Airflow ------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    """Addresses and secrets of one distributed run."""

    base: Path
    pg_port: int
    redis_port: int
    api_port: int
    admin_password: str = field(repr=False)
    data_dir: Path
    dags_folder: Path

    @property
    def home(self) -> Path:
        return self.base / "airflow"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def db_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.pg_port} user={DB_USER} dbname={DB_NAME}"


def airflow_environment(cluster: Cluster, worker_concurrency: int) -> dict[str, str]:
    """One configuration for every Airflow process, as environment variables (as the compose file does)."""
    from cryptography.fernet import Fernet

    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "LETSJOBIT_", "_AIRFLOW")) and name != "PYTHONPATH"
    }
    database = f"127.0.0.1:{cluster.pg_port}/{DB_NAME}"
    return {
        **inherited,
        "AIRFLOW_HOME": str(cluster.home),
        "LETSJOBIT_DATA_DIR": str(cluster.data_dir),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(cluster.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cluster.api_url}/execution/",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "letsjobit.devtools.worker_identity.hostname",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(cluster.home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{DB_USER}@{database}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{cluster.redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{DB_USER}@{database}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
        "AIRFLOW__API__BASE_URL": cluster.api_url,
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(cluster.home / "logs"),
        # Only the run we trigger: a scheduled run of the DAG would compete for the API budget.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # A failed try is retried after seconds, not the default 5 minutes, so a run fits a test's time.
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
    }


def airflow_command(*arguments: str) -> list[str]:
    return [str(Path(sys.executable).with_name("airflow")), *arguments]


class OneShot:
    """A command that must finish successfully, started now and waited for later."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.process = spawn_logged(argv, env, self.log_path)

    def wait(self, timeout: float) -> None:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise DistributedRunError(f"{self.name} did not finish within {timeout:.0f} s") from None
        if code != 0:
            raise DistributedRunError(
                f"{self.name} exited with code {code}\n{log_tail(self.log_path, LOG_TAIL_LINES)}"
            )


def run_once(name: str, argv: list[str], env: dict[str, str], log_dir: Path, timeout: float) -> None:
    OneShot(name, argv, env, log_dir).wait(timeout)


def api_server_healthy(cluster: Cluster) -> bool:
    return requests.get(f"{cluster.api_url}/api/v2/monitor/health", timeout=5).status_code == 200


def worker_ready(started: Started) -> bool:
    return " ready." in started.log_path.read_text(errors="replace")


def task_instances(cluster: Cluster, dag_id: str, run_id: str) -> list[dict]:
    """Every task instance of the run, from the metadata DB (hostname is the worker that ran it)."""
    import psycopg2
    import psycopg2.extras

    with (
        contextlib.closing(psycopg2.connect(cluster.db_dsn)) as connection,
        connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor,
    ):
        cursor.execute(
            "select task_id, map_index, state, hostname, queue, pool, try_number, start_date, end_date"
            " from task_instance where dag_id = %s and run_id = %s order by task_id, map_index",
            (dag_id, run_id),
        )
        return [dict(row) for row in cursor.fetchall()]


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    dag_id: str = config.DAG_ID
    dags_folder: Path = PROJECT_ROOT / "dags"
    conf: dict = field(default_factory=dict)
    # ISO timestamp of the run's logical date; None triggers it "now" with no logical date (Airflow 3's default).
    logical_date: str | None = None
    workers: int = 2
    worker_concurrency: int = 2
    pool_slots: int = config.API_POOL_SLOTS
    # None: a simulator unless LETSJOBIT_API_URL names an API (as `make run` decides).
    simulator: bool | None = None
    simulator_arguments: list[str] = field(default_factory=lambda: ["--visits", "2000", "--seed", "7"])
    # Merged over LETSJOBIT_CONN_EXTRA (config.api_connection).
    conn_extra: dict = field(default_factory=dict)
    run_timeout: float = 180.0
    keep: bool = False
    # Each worker its own LETSJOBIT_DATA_DIR, as on separate machines: the lake then goes to an object
    # store (started here) and the API key's budget to Redis, the only things the hosts share.
    separate_hosts: bool = False
    # Celery queues per worker, comma-separated (e.g. ["default,publish", "default"]); None: all "default".
    worker_queues: list[str] | None = None
    # Added to every Airflow process's environment (e.g. LETSJOBIT_PUBLISH_QUEUE).
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class RunReport:
    dag_id: str
    run_id: str
    state: str
    task_instances: list[dict]
    data_dir: Path
    log_dir: Path
    seconds: dict[str, float]
    # Every long-running process started, by name: each pid is also its process group's id.
    pids: dict[str, int] = field(default_factory=dict)
    simulator_url: str | None = None
    simulator_counters: dict | None = None
    # Signed in to the API server; usable by ``inspect`` only (the cluster stops when run() returns).
    rest: RestClient | None = field(default=None, repr=False)

    @property
    def hostnames(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ti in self.task_instances:
            counts[ti["hostname"]] = counts.get(ti["hostname"], 0) + 1
        return counts


@dataclass
class Session:
    """A started cluster: trigger DAG runs through the REST API and wait for them; read where tasks ran."""

    cluster: Cluster
    processes: Processes
    client: RestClient
    log_dir: Path
    seconds: dict[str, float]
    # Worker name -> its LETSJOBIT_DATA_DIR (all the same one unless separate_hosts).
    worker_data_dirs: dict[str, Path]
    # Worker name -> the Celery queues it takes.
    worker_queues: dict[str, list[str]]
    simulator_url: str | None = None
    object_store: ObjectStore | None = field(default=None, repr=False)
    # The environment every Airflow process got, secrets included: for the caller's own readers only.
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def simulator_root(self) -> str | None:
        return self.simulator_url.split("/api/", 1)[0] if self.simulator_url else None

    def data_dir_of_queue(self, queue: str) -> Path:
        """The data directory of the (first) worker taking ``queue``: where that queue's tasks write."""
        for name, queues in self.worker_queues.items():
            if queue in queues:
                return self.worker_data_dirs[name]
        raise DistributedRunError(f"no worker takes the queue {queue!r}: {self.worker_queues}")

    def trigger(
        self, dag_id: str, conf: dict, logical_date: str | None = None, name: str = "distributed"
    ) -> str:
        run_id = f"{name}__{time.strftime('%Y%m%dT%H%M%S')}"
        run_id = self.client.trigger(dag_id, run_id, conf, logical_date)
        log.info(
            "triggered %s run %s (conf %s, logical date %s)", dag_id, run_id, conf, logical_date or "now"
        )
        return run_id

    def wait(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Wait for the run to end; its state (success or failed). Logs its task states as it goes."""
        started = time.monotonic()
        last_progress = started

        def ended() -> str | None:
            nonlocal last_progress
            state = self.client.run_state(dag_id, run_id)
            if state or time.monotonic() - last_progress < PROGRESS_EVERY_SECONDS:
                return state
            last_progress = time.monotonic()
            states = Counter(ti["state"] or "none" for ti in task_instances(self.cluster, dag_id, run_id))
            log.info(
                "run %s after %.0f s: %s",
                run_id,
                last_progress - started,
                ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "no task yet",
            )
            return None

        state = wait_until(f"run {run_id} to finish", ended, timeout, self.processes, interval=1.0)
        log.info("run %s ended %s after %.0f s", run_id, state, time.monotonic() - started)
        return state

    def simulator_counters(self) -> dict | None:
        if not self.simulator_root:
            return None
        return requests.get(f"{self.simulator_root}/_sim/counters", timeout=10).json()

    def report(self, dag_id: str, run_id: str, state: str) -> RunReport:
        return RunReport(
            dag_id=dag_id,
            run_id=run_id,
            state=state,
            task_instances=task_instances(self.cluster, dag_id, run_id),
            data_dir=self.data_dir_of_queue(config.publish_queue(self.env)),
            log_dir=self.log_dir,
            seconds=self.seconds,
            pids={started.name: started.process.pid for started in self.processes.started},
            simulator_url=self.simulator_url,
            simulator_counters=self.simulator_counters(),
            rest=self.client,
        )


@contextlib.contextmanager
def cluster(options: RunOptions) -> Iterator[Session]:
    """Start PostgreSQL, Redis, the simulator, Airflow's components and the workers; stop them all after.

    Raises DistributedRunError (with the tails of every log) when anything fails; stops every process
    it started in any case. The temporary directory is removed after a clean exit unless ``keep``.
    """
    seconds: dict[str, float] = {}
    clock = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.monotonic()
        seconds[phase] = round(now - clock, 1)
        clock = now

    binaries = ensure_server_binaries()
    lap("install")
    base = Path(tempfile.mkdtemp(prefix="letsjobit-distributed-"))
    base.chmod(0o711)  # the PostgreSQL user must reach its own directory below
    log_dir = base / "logs"
    log_dir.mkdir()
    processes = Processes(log_dir)
    bootstrapping: OneShot | None = None
    succeeded = False
    try:
        pg_port = start_postgres(processes, binaries, base)
        redis_port = start_redis(processes, binaries.redis_server, base)
        cluster = Cluster(
            base=base,
            pg_port=pg_port,
            redis_port=redis_port,
            api_port=free_port(),
            admin_password=secrets.token_urlsafe(16),
            data_dir=base / "data",
            dags_folder=Path(options.dags_folder).resolve(),
        )
        cluster.home.mkdir()
        env = {**airflow_environment(cluster, options.worker_concurrency), **options.extra_env}
        object_store = None
        if options.separate_hosts:
            object_store = start_object_store(processes)
            env.update(object_store.lake_env())
            # db 0 is Celery's broker; the budget gets its own database, as docs/operations.md suggests.
            env["LETSJOBIT_RATE_BUDGET_URL"] = f"redis://127.0.0.1:{cluster.redis_port}/2"
        lap("postgres_redis")

        use_simulator = options.simulator if options.simulator is not None else not config.api_url()
        simulator = (
            start_simulator(
                processes, {**env, "LETSJOBIT_API_KEY": config.api_key()}, options.simulator_arguments
            )
            if use_simulator
            else None
        )
        run_once("db-migrate", airflow_command("db", "migrate"), env, log_dir, timeout=300)
        lap("db_migrate")
        simulator_url = simulator_base_url(processes, simulator) if simulator else None
        # Neither a simulator nor LETSJOBIT_API_URL: a placeholder keeps the connection valid; the DAG
        # must not call it.
        connection = config.api_connection(
            url=simulator_url or config.api_url() or "http://127.0.0.1:9/api/v2", extra=options.conn_extra
        )
        bootstrap_env = {
            **env,
            "_AIRFLOW_WWW_USER_PASSWORD": cluster.admin_password,
            # letsjobit.devtools.bootstrap reads the connection back from these, as compose's airflow-init does.
            "LETSJOBIT_API_URL": connection["host"],
            "LETSJOBIT_API_KEY": connection["password"],
            "LETSJOBIT_CONN_EXTRA": json.dumps(connection["extra"]),
        }
        bootstrap = [
            sys.executable,
            "-m",
            "letsjobit.devtools.bootstrap",
            "--admin-username",
            ADMIN_USER,
            "--pool-slots",
            str(options.pool_slots),
        ]
        # Bootstrap beside the components' slow start; only the API server needs its passwords file first.
        bootstrapping = OneShot("bootstrap", bootstrap, bootstrap_env, log_dir)
        processes.start("scheduler", airflow_command("scheduler"), env=env)
        processes.start("dag-processor", airflow_command("dag-processor"), env=env)
        workers, worker_data_dirs, worker_queues = [], {}, {}
        for number in range(1, options.workers + 1):
            name = f"airflow-worker-{number}"
            queues = options.worker_queues[number - 1] if options.worker_queues else "default"
            data_dir = base / "hosts" / name / "data" if options.separate_hosts else cluster.data_dir
            worker_env = {
                **env,
                "AIRFLOW_WORKER_NAME": name,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "LETSJOBIT_DATA_DIR": str(data_dir),
            }
            worker_data_dirs[name] = data_dir
            worker_queues[name] = queues.split(",")
            workers.append(
                processes.start(
                    name,
                    airflow_command(
                        "celery", "worker", "--celery-hostname", f"{name}@%h", "--queues", queues
                    ),
                    env=worker_env,
                )
            )
        bootstrapping.wait(timeout=180)
        lap("bootstrap")
        processes.start(
            "api-server",
            airflow_command(
                "api-server", "--host", "127.0.0.1", "--port", str(cluster.api_port), "--workers", "1"
            ),
            env=env,
        )
        wait_until(
            "the API server to be healthy",
            lambda: api_server_healthy(cluster),
            START_TIMEOUT_SECONDS,
            processes,
        )
        client = RestClient(cluster.api_url, ADMIN_USER, cluster.admin_password)
        for worker in workers:
            wait_until(
                f"{worker.name} to be ready",
                lambda worker=worker: worker_ready(worker),
                START_TIMEOUT_SECONDS,
                processes,
            )
        wait_until(
            f"the DAG {options.dag_id} to be parsed",
            lambda: client.dag_parsed(options.dag_id),
            START_TIMEOUT_SECONDS,
            processes,
        )
        lap("services_ready")
        yield Session(
            cluster=cluster,
            processes=processes,
            client=client,
            log_dir=log_dir,
            seconds=seconds,
            worker_data_dirs=worker_data_dirs,
            worker_queues=worker_queues,
            simulator_url=simulator_url,
            object_store=object_store,
            env=env,
        )
        succeeded = True
    except BaseException as error:
        log.error(
            "distributed run failed: %s\n%s\n%s",
            error,
            processes.tails(),
            failed_task_log_tails(base / "airflow"),
        )
        raise
    finally:
        stop_clock = time.monotonic()
        if bootstrapping and bootstrapping.process.poll() is None:
            bootstrapping.process.kill()
            bootstrapping.process.wait()
        processes.stop([s.name for s in processes.started if s.name not in ("postgres", "redis")])
        processes.stop()
        seconds["stop"] = round(time.monotonic() - stop_clock, 1)
        if succeeded and not options.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            log.info("logs and data kept in %s", base)


def run(options: RunOptions, inspect: Callable[[RunReport], None] | None = None) -> RunReport:
    """Start the cluster, run the DAG once, stop the cluster. ``inspect`` runs while the data still exists.

    Raises DistributedRunError when the run does not succeed (and whatever ``inspect`` raises).
    """
    with cluster(options) as session:
        clock = time.monotonic()
        run_id = session.trigger(options.dag_id, options.conf, options.logical_date)
        state = session.wait(options.dag_id, run_id, options.run_timeout)
        session.seconds["dag_run"] = round(time.monotonic() - clock, 1)
        log.info("seconds per phase: %s", session.seconds)  # the run's end is logged by wait
        report = session.report(options.dag_id, run_id, state)
        if state != "success":
            raise DistributedRunError(f"run {run_id} ended {state}: {_describe(report.task_instances)}")
        if inspect:
            inspect(report)
        return report


def _describe(tis: list[dict]) -> str:
    return ", ".join(f"{ti['task_id']}[{ti['map_index']}]={ti['state']}@{ti['hostname']}" for ti in tis)


def parse_args(argv: list[str] | None) -> RunOptions:
    parser = argparse.ArgumentParser(
        description="Run a DAG on CeleryExecutor with PostgreSQL and Redis on this machine."
    )
    parser.add_argument("--dag-id", default=config.DAG_ID)
    parser.add_argument("--dags-folder", type=Path, default=PROJECT_ROOT / "dags")
    parser.add_argument("--conf", default='{"full_refresh": true}', help="JSON conf of the DAG run")
    parser.add_argument("--logical-date", default=None, help="ISO timestamp (default: none, as a manual run)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--pool-slots", type=int, default=config.API_POOL_SLOTS)
    parser.add_argument(
        "--no-simulator",
        dest="simulator",
        action="store_false",
        default=None,
        help="no simulator (default: one unless LETSJOBIT_API_URL is set)",
    )
    parser.add_argument("--simulator-args", default="--visits 2000 --seed 7")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds the DAG run may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    return RunOptions(
        dag_id=args.dag_id,
        dags_folder=args.dags_folder,
        conf=json.loads(args.conf),
        logical_date=args.logical_date,
        workers=args.workers,
        worker_concurrency=args.worker_concurrency,
        pool_slots=args.pool_slots,
        simulator=args.simulator,
        simulator_arguments=args.simulator_args.split(),
        run_timeout=args.timeout,
        keep=args.keep,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = parse_args(argv)
    try:
        report = run(options)
    except DistributedRunError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print(f"{report.dag_id} {report.run_id}: {report.state}")
    print(f"task instances per worker: {report.hostnames}")
    print(f"seconds: {report.seconds}")
    if report.simulator_counters is not None:
        print(f"simulator counters: {report.simulator_counters}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
