"""config.api_connection: the one reader of LETSJOBIT_API_URL, LETSJOBIT_API_KEY and LETSJOBIT_CONN_EXTRA."""

from __future__ import annotations

import pytest
from letsjobit import config


@pytest.fixture(autouse=True)
def no_connection_variables(monkeypatch):
    for name in ("LETSJOBIT_API_URL", "LETSJOBIT_API_KEY", "LETSJOBIT_CONN_EXTRA"):
        monkeypatch.delenv(name, raising=False)


def test_the_connection_comes_from_the_three_variables(monkeypatch):
    monkeypatch.setenv("LETSJOBIT_API_URL", "https://app.letsjobit.com/api/v2")
    monkeypatch.setenv("LETSJOBIT_API_KEY", "key-from-env-1234")
    monkeypatch.setenv("LETSJOBIT_CONN_EXTRA", '{"key_placement": "query", "query_key_param": "apiKey"}')

    assert config.api_connection() == {
        "conn_type": "letsjobit",
        "host": "https://app.letsjobit.com/api/v2",
        "password": "key-from-env-1234",
        "extra": {"key_placement": "query", "query_key_param": "apiKey"},
    }


def test_a_started_simulator_and_a_callers_extras_take_precedence(monkeypatch):
    monkeypatch.setenv("LETSJOBIT_CONN_EXTRA", '{"max_concurrency": 2, "timeout": 12}')

    connection = config.api_connection(
        url="http://127.0.0.1:5000/api/v2", key="sim-key-5678", extra={"max_concurrency": 4}
    )

    assert connection["host"] == "http://127.0.0.1:5000/api/v2"
    assert connection["password"] == "sim-key-5678"
    assert connection["extra"] == {"max_concurrency": 4, "timeout": 12}


def test_without_a_key_the_simulators_local_key_is_used(monkeypatch):
    monkeypatch.setenv("LETSJOBIT_API_URL", "http://127.0.0.1:5000/api/v2")
    assert config.api_connection()["password"] == config.SIMULATOR_DEFAULT_KEY
    assert config.api_connection()["extra"] == {}


def test_without_a_url_the_error_names_the_variable():
    with pytest.raises(config.ConfigError, match="LETSJOBIT_API_URL is not set"):
        config.api_connection()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"api_key": "s3cret-in-extra", ', "LETSJOBIT_CONN_EXTRA is not valid JSON"),
        ('["s3cret-in-extra"]', "LETSJOBIT_CONN_EXTRA must be a JSON object.*got a JSON list"),
        ('"s3cret-in-extra"', "LETSJOBIT_CONN_EXTRA must be a JSON object.*got a JSON str"),
    ],
)
def test_unusable_extras_name_the_variable_without_echoing_its_value(monkeypatch, raw, message):
    monkeypatch.setenv("LETSJOBIT_API_URL", "https://app.letsjobit.com/api/v2")
    monkeypatch.setenv("LETSJOBIT_CONN_EXTRA", raw)

    with pytest.raises(config.ConfigError, match=message) as caught:
        config.api_connection()

    assert "s3cret" not in str(caught.value)


def test_blank_extras_are_none(monkeypatch):
    monkeypatch.setenv("LETSJOBIT_CONN_EXTRA", "  ")
    assert config.conn_extra() == {}


def test_the_lake_defaults_to_the_data_dirs_lake_folder_and_takes_no_aws_options_there(monkeypatch, tmp_path):
    monkeypatch.setenv("LETSJOBIT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LETSJOBIT_LAKE_URL", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-a-local-lake")

    layout = config.layout()

    assert layout.lake_location.url == str(tmp_path.resolve() / "lake") and layout.lake_location.is_local
    assert layout.table_uri("visits") == str(tmp_path.resolve() / "lake" / "visits")
    assert layout.lake_location.storage_options == {}


def test_an_object_store_lake_url_is_logged_without_its_credentials(monkeypatch):
    monkeypatch.setenv("LETSJOBIT_LAKE_URL", "s3://AKIDEXAMPLE:s3cret-in-url@bucket/prefix/lake")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-in-env")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")

    location = config.lake_location()

    assert location.redacted == "s3://bucket/prefix/lake" == str(location)
    assert location.storage_options["AWS_REGION"] == "eu-west-2"
    assert "s3cret" not in repr(location) and "s3cret" not in repr(
        config.DataLayout(config.data_dir(), location)
    )
