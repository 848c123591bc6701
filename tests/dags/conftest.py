"""Parse DAGs in an isolated Airflow home with no connections or secrets available."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_home")
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # No connection exists: parsing a DAG must not need one.
    os.environ.pop("AIRFLOW_CONN_LETSJOBIT_DEFAULT", None)
    yield home
