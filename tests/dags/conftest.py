"""Parse DAGs in an isolated Airflow home with no connections or secrets available, and no network."""

import os
import socket
from collections.abc import Iterator

import pytest


class NetworkBlocked(RuntimeError):
    """A socket connection was attempted while tests/dags blocks the network."""


@pytest.fixture(scope="session", autouse=True)
def isolated_airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_home")
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # No connection exists: parsing a DAG must not need one.
    os.environ.pop("AIRFLOW_CONN_LETSJOBIT_DEFAULT", None)
    yield home


@pytest.fixture(scope="module")
def network_attempts() -> Iterator[list[str]]:
    """While the module's tests run, every socket connection raises NetworkBlocked; yields the attempts.

    The attempts are kept as well as refused (a test compares the list before and after it parses), so
    a DAG that swallows the error still fails. Module-scoped: the module's DagBag parses under it, and
    other test folders (which start real servers on loopback) never see it.
    """
    attempts: list[str] = []

    def refuse(how: str, address) -> None:
        attempts.append(f"{how} {address!r}")
        raise NetworkBlocked(f"{how} {address!r}: a DAG must not touch the network at parse time")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", lambda self, address: refuse("socket.connect", address))
        patch.setattr(socket.socket, "connect_ex", lambda self, address: refuse("socket.connect_ex", address))
        patch.setattr(
            socket, "create_connection", lambda address, *_, **__: refuse("socket.create_connection", address)
        )
        yield attempts
