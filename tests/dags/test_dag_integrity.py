"""Every DAG file parses fast, without import errors, network or secrets, and follows the house rules.

Parsing happens with every socket connection refused (conftest's ``network_attempts``): a DAG that
reached for the network at parse time fails with an import error, or, if it swallowed the error, by
the attempt it left."""

import socket
import time
from pathlib import Path

import pytest

from tests.dags.conftest import NetworkBlocked

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))


def parse(folder: Path, network_attempts: list[str]):
    """A DagBag of ``folder`` and the connections attempted while it parsed."""
    from airflow.dag_processing.dagbag import DagBag

    before = len(network_attempts)
    bag = DagBag(dag_folder=str(folder))
    return bag, network_attempts[before:]


@pytest.fixture(scope="module")
def parsed(network_attempts):
    return parse(DAGS_FOLDER, network_attempts)


@pytest.fixture(scope="module")
def dagbag(parsed):
    return parsed[0]


def test_dags_import_without_errors_or_network(parsed):
    dagbag, attempts = parsed

    assert dagbag.import_errors == {}
    assert attempts == []
    assert {"letsjobit_visits", "letsjobit_warehouse"} <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_each_dag_file_parses_in_under_a_second_without_network(dag_file, network_attempts):
    started = time.perf_counter()
    bag, attempts = parse(dag_file, network_attempts)

    assert bag.import_errors == {}
    assert time.perf_counter() - started < 1.0
    assert attempts == []


def test_the_network_is_blocked_while_the_dags_parse(network_attempts):
    before = len(network_attempts)

    with pytest.raises(NetworkBlocked):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with pytest.raises(NetworkBlocked), socket.socket() as sock:
        sock.connect(("127.0.0.1", 9))

    assert len(network_attempts) == before + 2


def test_every_task_has_owner_retries_and_timeout(dagbag):
    for dag in dagbag.dags.values():
        assert dag.tags, dag.dag_id
        for task in dag.tasks:
            assert task.owner == "data-platform", task.task_id
            assert task.retries >= 2, task.task_id
            assert task.execution_timeout is not None, task.task_id


def test_visits_dag_contract(dagbag):
    dag = dagbag.dags["letsjobit_visits"]
    assert dag.params["full_refresh"] is False
    assert dag.max_active_runs == 1
    assert not dag.catchup
    # A real data interval: each daily run covers one day.
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert [t.task_id for t in dag.topological_sort()] == [
        "plan",
        "extract",
        "stage",
        "audit",
        "publish",
        "build_warehouse",
    ]
    assert dag.get_task("extract").pool == "letsjobit_api"


def test_warehouse_dag_runs_when_the_lake_changes(dagbag):
    dag = dagbag.dags["letsjobit_warehouse"]
    publish = dagbag.dags["letsjobit_visits"].get_task("publish")
    assert [a.name for a in publish.outlets] == ["letsjobit_lake"]
    assert "letsjobit_lake" in str(dag.timetable.asset_condition)


def test_mapped_extract_keeps_its_retry_delay_through_serialisation(dagbag):
    from airflow.serialization.serialized_objects import DagSerialization
    from letsjobit import config

    serialized = DagSerialization.to_dict(dagbag.dags["letsjobit_visits"])
    tasks = [task.get("__var", task) for task in serialized["dag"]["tasks"]]
    extract = next(task for task in tasks if task["task_id"] == "extract")
    # Serialised explicitly: the scheduler would otherwise wait a hard-coded 300 s before retrying it.
    assert extract["partial_kwargs"]["retry_delay"]["__var"] == config.task_retry_delay().total_seconds()


WRITES_THE_HOSTS_DISK = {
    "letsjobit_visits": {"stage", "audit", "publish", "build_warehouse"},
    "letsjobit_warehouse": {"rebuild_if_stale"},
}


def queues(bag) -> dict[tuple[str, str], str]:
    return {(dag.dag_id, task.task_id): task.queue for dag in bag.dags.values() for task in dag.tasks}


def test_tasks_that_use_one_hosts_disk_go_to_the_publish_queue_and_extraction_to_every_worker(
    network_attempts, monkeypatch
):
    monkeypatch.setenv("LETSJOBIT_PUBLISH_QUEUE", "publish")
    bag, _ = parse(DAGS_FOLDER, network_attempts)

    found = queues(bag)
    expected = {
        (dag_id, task_id): "publish" if task_id in owned else "default"
        for (dag_id, task_id) in found
        for owned in [WRITES_THE_HOSTS_DISK[dag_id]]
    }
    assert found == expected
    assert found[("letsjobit_visits", "extract")] == found[("letsjobit_visits", "plan")] == "default"


def test_without_a_publish_queue_every_task_is_on_the_default_queue(dagbag):
    assert set(queues(dagbag).values()) == {"default"}
