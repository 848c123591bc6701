"""The servers a run on one machine needs, as child processes: PostgreSQL and Redis from the system
packages (installed with apt when missing), an S3-compatible object store (moto's server, from the dev
set), the LetsJobIt simulator, and their process groups.

Everything started goes into one :class:`Processes`, which stops it all by process group, whatever
happened; :func:`wait_until` polls a readiness check with a deadline and the child's log tail.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from letsjobit import config

log = logging.getLogger(__name__)

PROJECT_ROOT = config.PROJECT_ROOT
SYSTEM_PACKAGES = ("postgresql", "redis-server")
DB_USER = "airflow"
DB_NAME = "airflow"
LOG_TAIL_LINES = 40
STOP_GRACE_SECONDS = 15.0
# How long a component may take to come up; generous, because CI machines are shared and slow at times.
START_TIMEOUT_SECONDS = 240.0


class DistributedRunError(RuntimeError):
    """The distributed run could not start, or the DAG run did not succeed; the message says which."""


# --- system packages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerBinaries:
    postgres_bin: Path  # holds initdb, postgres
    redis_server: Path


def find_server_binaries() -> ServerBinaries | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[4])
    )
    redis_server = find_redis_server()
    if not candidates or not redis_server:
        return None
    return ServerBinaries(postgres_bin=Path(candidates[-1]).parent, redis_server=redis_server)


def find_redis_server() -> Path | None:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    return Path(found) if found else None


def ensure_server_binaries() -> ServerBinaries:
    """PostgreSQL and Redis from Debian's packages, installed with apt-get when missing (needs root)."""
    binaries = find_server_binaries()
    if binaries:
        return binaries
    apt_install(SYSTEM_PACKAGES)
    binaries = find_server_binaries()
    if not binaries:
        raise DistributedRunError(
            f"apt-get installed {SYSTEM_PACKAGES} but initdb or redis-server is not found"
        )
    return binaries


def ensure_redis_server() -> Path:
    """redis-server alone (the tests of the shared rate budget), from Debian's package when missing."""
    redis_server = find_redis_server()
    if redis_server:
        return redis_server
    apt_install(("redis-server",))
    redis_server = find_redis_server()
    if not redis_server:
        raise DistributedRunError("apt-get installed redis-server but redis-server is not found")
    return redis_server


def apt_install(packages: tuple[str, ...]) -> None:
    """Install Debian packages with apt-get, their own system services left stopped (needs root)."""
    if os.geteuid() != 0:
        raise DistributedRunError(
            f"{', '.join(packages)} missing and this is not root: apt-get install {' '.join(packages)}"
        )
    log.info("installing %s with apt-get", ", ".join(packages))
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _services_not_started_by_apt():
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            check=True,
            env=environment,
        )


@contextlib.contextmanager
def _services_not_started_by_apt() -> Iterator[None]:
    """Debian's policy-rc.d hook: the packages' own system services stay stopped; we start private ones."""
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


# --- processes ----------------------------------------------------------------------------------------


@dataclass
class Started:
    name: str
    process: subprocess.Popen
    log_path: Path
    stop_signal: int


def spawn_logged(argv: list[str], env: dict[str, str], log_path: Path, **popen: Any) -> subprocess.Popen:
    """Start ``argv`` in the project root, its stdout and stderr appended to ``log_path``."""
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            **popen,
        )


class Processes:
    """Long-running processes, each the leader of its own process group, logging to one file each."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Started] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> Started:
        log_path = self.log_dir / f"{name}.log"
        process = spawn_logged(argv, env, log_path, start_new_session=True, user=user)
        started = Started(name, process, log_path, stop_signal)
        self.started.append(started)
        log.info("started %s (pid %d)", name, process.pid)
        return started

    def check_alive(self) -> None:
        for started in self.started:
            if started.process.poll() is not None:
                raise DistributedRunError(
                    f"{started.name} (pid {started.process.pid}) exited with code {started.process.returncode}"
                )

    def stop(self, names: list[str] | None = None) -> None:
        """Signal each group, wait up to the grace period, then SIGKILL whatever is left of the group."""
        chosen = [started for started in self.started if names is None or started.name in names]
        for started in chosen:
            _signal_group(started.process.pid, started.stop_signal)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for started in chosen:
            with contextlib.suppress(subprocess.TimeoutExpired):
                started.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for started in chosen:
            # The group can outlive its leader (Celery pool children, task processes): kill it whole.
            _signal_group(started.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                started.process.wait(timeout=5)
            log.info(
                "stopped %s (pid %d, exit %s)", started.name, started.process.pid, started.process.returncode
            )
        self.started = [started for started in self.started if started not in chosen]

    def tails(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(log_tail(path, lines) for path in sorted(self.log_dir.glob("*.log")))


def process_group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` still exists (a stopped Processes leaves none)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal_number)


def log_tail(path: Path, lines: int, width: int = 500) -> str:
    text = [line[:width] for line in path.read_text(errors="replace").splitlines()[-lines:]]
    return f"----- {path.name} (last {len(text)} lines) -----\n" + "\n".join(text)


def failed_task_log_tails(airflow_home: Path, lines: int = 8) -> str:
    """The ends of the task attempt logs that recorded an error (JSON lines, one event each)."""
    failed = [
        path
        for path in sorted((airflow_home / "logs").glob("dag_id=*/**/*.log"))
        if '"level":"error"' in path.read_text(errors="replace")
    ]
    return "\n".join(f"{path.relative_to(airflow_home)}\n{log_tail(path, lines)}" for path in failed)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(
    what: str, check: Callable[[], Any], timeout: float, processes: Processes, interval: float = 0.5
) -> Any:
    """Poll ``check`` until it returns something truthy; fail early if a started process died."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            result = check()
        except (OSError, requests.RequestException) as error:
            last_error, result = error, None
        if result:
            return result
        time.sleep(interval)
    raise DistributedRunError(
        f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})"
    )


# --- servers ------------------------------------------------------------------------------------------


def start_postgres(processes: Processes, binaries: ServerBinaries, base: Path) -> int:
    """A private cluster on a free loopback port, trusted local logins, durability off (throw-away)."""
    user = None
    pg_dir = base / "postgres"
    pg_dir.mkdir()
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = _postgres_system_user()
        shutil.chown(pg_dir, user=user, group=user)
    data = pg_dir / "data"
    port = free_port()
    subprocess.run(
        [
            str(binaries.postgres_bin / "initdb"),
            "-D",
            str(data),
            "-U",
            DB_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        user=user,
        cwd=pg_dir,
        stdout=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"},
    )
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(pg_dir),
        "max_connections": "200",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    argv = [str(binaries.postgres_bin / "postgres"), "-D", str(data)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to disconnect.
    processes.start(
        "postgres",
        argv,
        env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"},
        user=user,
        stop_signal=signal.SIGINT,
    )

    import psycopg2

    def create_database() -> bool:
        with contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=port, user=DB_USER, dbname="postgres")
        ) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"create database {DB_NAME}")
        return True

    wait_until(
        "PostgreSQL to accept connections",
        lambda: _swallow(psycopg2.OperationalError, create_database),
        30,
        processes,
    )
    return port


def _swallow(error_type: type[Exception], function: Callable[[], Any]) -> Any:
    try:
        return function()
    except error_type:
        return None


def _postgres_system_user() -> str:
    import pwd

    for name in ("postgres", "letsjobit-pg"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "letsjobit-pg"], check=True)
    return "letsjobit-pg"


def start_redis(processes: Processes, redis_server: Path, base: Path, *, password: str | None = None) -> int:
    """A private Redis on a free loopback port, nothing persisted; ``password``: required of clients."""
    import redis

    port = free_port()
    redis_dir = base / "redis"
    redis_dir.mkdir()
    argv = [
        str(redis_server),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(redis_dir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip
    if password:
        argv += ["--requirepass", password]
    processes.start("redis", argv, env={"PATH": os.environ.get("PATH", "")})
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_connect_timeout=1)
    wait_until("Redis to answer PING", lambda: _swallow(redis.ConnectionError, client.ping), 20, processes)
    return port


@dataclass(frozen=True)
class ObjectStore:
    """An S3-compatible server on loopback: its endpoint, one bucket, and the credentials it was given."""

    endpoint: str
    bucket: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    def lake_env(self, prefix: str = "lake") -> dict[str, str]:
        """LETSJOBIT_LAKE_URL on the bucket and the AWS variables deltalake and pyarrow read."""
        return {
            "LETSJOBIT_LAKE_URL": f"s3://{self.bucket}/{prefix}",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",  # loopback: plain http
        }


def start_object_store(processes: Processes, bucket: str = "letsjobit") -> ObjectStore:
    """moto's standalone S3 server on a free loopback port (stopped with the others), with ``bucket``.

    Its own process: delta-rs blocks in Rust holding the GIL while it waits for an answer, so a server
    thread in the caller's interpreter could never give it one. moto takes any credentials; these are
    random so that nothing printed could be mistaken for a real pair.
    """
    import secrets

    import boto3

    port = free_port()
    processes.start(
        "object-store",
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={"PATH": os.environ.get("PATH", "")},
    )
    store = ObjectStore(
        endpoint=f"http://127.0.0.1:{port}",
        bucket=bucket,
        access_key=f"letsjobit-{secrets.token_hex(4)}",
        secret_key=secrets.token_urlsafe(24),
    )
    wait_until(
        "the object store to answer",
        lambda: requests.get(f"{store.endpoint}/moto-api/", timeout=2).ok,
        60,
        processes,
        interval=0.2,
    )
    boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name=store.region,
        aws_access_key_id=store.access_key,
        aws_secret_access_key=store.secret_key,
    ).create_bucket(Bucket=bucket)
    return store


def start_simulator(processes: Processes, env: dict[str, str], arguments: list[str]) -> Started:
    return processes.start(
        "simulator",
        [sys.executable, "-m", "letsjobit.simulator", "--port", "0", *arguments],
        env=env,
    )


def simulator_base_url(processes: Processes, simulator: Started) -> str:
    """The base URL the simulator prints on its ``LISTENING`` line once it serves."""

    def listening_url() -> str | None:
        for line in simulator.log_path.read_text(errors="replace").splitlines():
            if line.startswith("LISTENING "):
                return line.split(" ", 1)[1].strip()
        return None

    return wait_until("the simulator to print LISTENING", listening_url, START_TIMEOUT_SECONDS, processes)
