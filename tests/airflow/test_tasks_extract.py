"""The extract task's client: built from the connection, and closed when the chunk is done."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import truth_ids

URLLIB3_LOGGER = "urllib3.connectionpool"


@pytest.fixture
def pipeline(tmp_path, tmp_path_factory, monkeypatch, simulator):
    # An Airflow home and a data directory of the test's own; the connection points at the simulator.
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    monkeypatch.setenv("LETSJOBIT_DATA_DIR", str(tmp_path / "data"))
    connection = {"conn_type": "letsjobit", "host": simulator.base_url, "password": simulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_LETSJOBIT_DEFAULT", json.dumps(connection))
    from letsjobit.airflow import tasks

    return tasks


def test_an_extraction_leaves_no_key_redacting_filter_on_urllib3s_logger(pipeline, simulator):
    filters_before = list(logging.getLogger(URLLIB3_LOGGER).filters)

    extracted = pipeline.extract_chunk_from_connection("run_1", {"chunk": "all", "dates": None})

    assert extracted["expected_visits"] == len(truth_ids(simulator))
    assert logging.getLogger(URLLIB3_LOGGER).filters == filters_before


def test_a_failed_extraction_closes_its_client_too(pipeline, simulator):
    from letsjobit.api.errors import LetsJobItBadRequest
    from letsjobit.simulator import FaultConfig

    simulator.set_faults(FaultConfig(force_status=400))
    filters_before = list(logging.getLogger(URLLIB3_LOGGER).filters)

    with pytest.raises(LetsJobItBadRequest):
        pipeline.extract_chunk_from_connection("run_1", {"chunk": "all", "dates": None})

    assert logging.getLogger(URLLIB3_LOGGER).filters == filters_before
