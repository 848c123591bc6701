"""letsjobit.devtools.bootstrap (compose's airflow-init, make distributed) stores the connection config.api_connection
reads from LETSJOBIT_API_URL, LETSJOBIT_API_KEY and LETSJOBIT_CONN_EXTRA, in a real migrated metadata DB."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from letsjobit import config
from letsjobit.devtools.airflow_runner import AirflowHome, airflow_bin

from tests.conftest import TEST_API_KEY

pytestmark = pytest.mark.airflow

API_URL = "https://app.letsjobit.com/api/v2"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    root = tmp_path_factory.mktemp("bootstrap")
    home = AirflowHome(root / "airflow", API_URL, TEST_API_KEY, root / "data", root / "airflow.log")
    home.init()
    # The metadata DB, not an environment variable, must answer for the connection here.
    env = {name: value for name, value in home.env.items() if name != config.CONN_ENV_VAR}
    env["_AIRFLOW_WWW_USER_PASSWORD"] = "admin-password-for-this-test"  # noqa: S105 - a test value
    return env


def bootstrap(env: dict[str, str], **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "letsjobit.devtools.bootstrap", "--pool-slots", "3"],
        env={**env, **variables},
        cwd=config.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bootstrap_stores_the_connection_with_the_extras_of_letsjobit_conn_extra(migrated):
    result = bootstrap(
        migrated,
        LETSJOBIT_API_URL=API_URL,
        LETSJOBIT_API_KEY=TEST_API_KEY,
        LETSJOBIT_CONN_EXTRA='{"key_placement": "query", "query_key_param": "apiKey"}',
    )
    assert result.returncode == 0, result.stderr[-2000:]

    shown = subprocess.run(
        [airflow_bin(), "connections", "get", config.CONN_ID, "-o", "json"],
        env=migrated,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    (stored,) = json.loads(shown.stdout.strip().splitlines()[-1])
    assert (stored["conn_type"], stored["host"]) == (config.CONN_TYPE, API_URL)
    assert stored["extra_dejson"] == {"key_placement": "query", "query_key_param": "apiKey"}
    assert stored["password"] == TEST_API_KEY
    assert TEST_API_KEY not in result.stdout + result.stderr


def test_bootstrap_refuses_extras_that_are_not_a_json_object_and_says_which_variable(migrated):
    result = bootstrap(
        migrated,
        LETSJOBIT_API_URL=API_URL,
        LETSJOBIT_API_KEY=TEST_API_KEY,
        LETSJOBIT_CONN_EXTRA='["allow_insecure_http"]',
    )

    assert result.returncode == 2
    assert "LETSJOBIT_CONN_EXTRA must be a JSON object" in result.stderr
