"""The throw-away Airflow home of `make run`: the user's own AIRFLOW__* and AIRFLOW_CONN_* variables reach
Airflow; only the settings the home must own replace theirs."""

from __future__ import annotations

import json
import subprocess

import pytest
from letsjobit import config
from letsjobit.devtools.airflow_runner import AirflowHome, airflow_bin

pytestmark = pytest.mark.airflow

USERS_SMTP = {"conn_type": "smtp", "host": "127.0.0.1", "port": 2525, "login": "alerts"}


@pytest.fixture
def users_environment(monkeypatch, tmp_path):
    """What a user may have exported before `make run`: their own settings, and some the home must own."""
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(USERS_SMTP))
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "77")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", '{"type": "console"}')
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "users-real-home"))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "users-dags"))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://prod-db/airflow")
    monkeypatch.setenv(config.CONN_ENV_VAR, json.dumps({"conn_type": "letsjobit", "host": "https://x"}))
    monkeypatch.delenv("LETSJOBIT_CONN_EXTRA", raising=False)


@pytest.fixture
def home(tmp_path, users_environment):
    return AirflowHome(
        path=tmp_path / "airflow",
        api_url="http://127.0.0.1:9/api/v2",
        api_key="key-of-this-test-4321",
        data_dir=tmp_path / "data",
        log_file=tmp_path / "airflow.log",
    )


def test_the_users_own_settings_pass_through_and_the_homes_own_win(home, tmp_path):
    env = home.env

    assert json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"]) == USERS_SMTP
    assert env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] == "77"  # a default of the home, the user's wins
    assert env["AIRFLOW__OPENLINEAGE__TRANSPORT"] == '{"type": "console"}'
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(config.PROJECT_ROOT / "dags")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    assert json.loads(env[config.CONN_ENV_VAR])["host"] == "http://127.0.0.1:9/api/v2"
    assert home.replaced_user_settings() == [
        "AIRFLOW_CONN_LETSJOBIT_DEFAULT",
        "AIRFLOW_HOME",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    ]


def test_airflow_itself_sees_the_users_settings_through_the_home(home):
    def airflow(*args: str) -> str:
        result = subprocess.run(
            [airflow_bin(), *args], env=home.env, capture_output=True, text=True, timeout=300, check=True
        )
        return result.stdout.strip().splitlines()[-1]

    assert airflow("config", "get-value", "core", "dagbag_import_timeout") == "77"
    assert airflow("config", "get-value", "core", "dags_folder") == str(config.PROJECT_ROOT / "dags")
    (smtp,) = json.loads(airflow("connections", "get", "smtp_default", "-o", "json"))
    assert (smtp["conn_type"], smtp["host"], smtp["port"], smtp["login"]) == (
        "smtp",
        "127.0.0.1",
        "2525",
        "alerts",
    )
