"""A real Redis on loopback for the shared rate budget's tests, password-protected like a real deployment.

``redis_server``: one private ``redis-server`` per test module (Debian's, installed with apt-get when
missing, as ``make distributed`` does). ``redis_url``: its URL, the server emptied for the test.
``redis_factory()``: a server of the test's own, which the test may stop.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from letsjobit.devtools import services


@dataclass
class RedisServer:
    port: int
    password: str
    processes: services.Processes

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db)

    def stop(self) -> None:
        self.processes.stop()


def start_redis_server(base: Path) -> RedisServer:
    log_dir = base / "logs"
    log_dir.mkdir(parents=True)
    processes = services.Processes(log_dir)
    password = secrets.token_urlsafe(12)
    try:
        port = services.start_redis(processes, services.ensure_redis_server(), base, password=password)
    except BaseException:
        processes.stop()
        raise
    return RedisServer(port, password, processes)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="letsjobit-redis-") as base:
        server = start_redis_server(Path(base))
        yield server
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.client().flushall()
    return redis_server.url()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    started: list[RedisServer] = []

    def start() -> RedisServer:
        server = start_redis_server(tmp_path / f"redis-{len(started)}")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
