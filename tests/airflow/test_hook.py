"""LetsJobItHook: reads its connection (JSON in AIRFLOW_CONN_*), precedence of settings, test_connection,
the key masked in Airflow's logs, and the declarative connection form Airflow loads from provider info."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jsonschema
import pytest
from letsjobit.airflow.provider import get_provider_info
from letsjobit.api.errors import LetsJobItConfigError

from tests.conftest import truth_ids


@pytest.fixture
def hooks_module(tmp_path_factory, monkeypatch):
    # An Airflow home of its own unless the run already chose one; no data dir outside the test.
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    from letsjobit.airflow import hooks

    return hooks


@pytest.fixture
def connection(monkeypatch, tmp_path, simulator):
    monkeypatch.setenv("LETSJOBIT_DATA_DIR", str(tmp_path / "data"))

    def define(conn_id: str = "letsjobit_default", **fields) -> dict:
        conn = {"conn_type": "letsjobit", "host": simulator.base_url, "password": simulator.api_key, **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn

    return define


def test_hook_reads_its_connection_and_lists_every_visit(hooks_module, connection, simulator, tmp_path):
    connection(extra={"max_concurrency": "3", "timeout": "12"})
    hook = hooks_module.LetsJobItHook()

    client = hook.get_client()
    ids = [v["_id"] for v in hook.iter_visits()]

    assert sorted(ids) == sorted(truth_ids(simulator))
    assert client is hook.get_conn()  # built once
    assert client.settings.base_url == simulator.base_url
    assert client.settings.max_concurrency == 3 and client.settings.timeout_seconds == 12.0
    assert client.settings.rate_state_dir == tmp_path / "data" / ".state"
    assert list((tmp_path / "data" / ".state").glob("rate-budget-*.json"))
    hook.close()


def test_call_arguments_beat_extras_which_beat_defaults(hooks_module, connection):
    connection(extra={"max_concurrency": 3, "requests_per_window": 50, "allow_insecure_http": "false"})

    settings = hooks_module.LetsJobItHook(max_concurrency=2, window_seconds=5).client_settings()

    assert settings.max_concurrency == 2  # argument over extra
    assert settings.requests_per_window == 50  # extra over default
    assert settings.window_seconds == 5.0
    assert settings.timeout_seconds == 30.0  # default
    assert settings.allow_insecure_http is False


def test_a_named_connection_and_its_query_key_placement(hooks_module, connection, simulator):
    connection("letsjobit_backfill", extra={"key_placement": "query"})
    hook = hooks_module.LetsJobItHook(letsjobit_conn_id="letsjobit_backfill")

    assert hook.get_client().settings.key_placement == "query"
    assert len(list(hook.iter_visits(closed=1))) > 0


def test_a_connection_without_extras_finds_an_account_that_takes_the_key_in_the_query_string(
    hooks_module, connection, simulator, tmp_path
):
    simulator.configure(key_placement="query")
    connection()

    ok, message = hooks_module.LetsJobItHook().test_connection()
    hook = hooks_module.LetsJobItHook()

    assert ok, message
    assert hook.client_settings().key_placement == "auto"
    assert len(list(hook.iter_visits())) == 250
    assert hook.get_client().key_placement == "query"
    assert simulator.counters()["unauthorized"] == 1  # learned once, by test_connection, then remembered
    assert list((tmp_path / "data" / ".state").glob("key-placement-*.json"))


def test_test_connection_reports_success_and_failure(hooks_module, connection, simulator):
    connection()
    ok, message = hooks_module.LetsJobItHook().test_connection()
    assert ok and "250 visits" in message

    connection(password="wrong-key-0123456789")
    ok, message = hooks_module.LetsJobItHook().test_connection()
    assert not ok and "401" in message and "wrong-key-0123456789" not in message

    connection(host="http://app.letsjobit.com/api/v2")
    ok, message = hooks_module.LetsJobItHook().test_connection()
    assert not ok and "refusing plain http" in message


def test_the_key_is_registered_with_airflows_secrets_masker(hooks_module, connection, simulator):
    connection()
    hooks_module.LetsJobItHook().client_settings()

    from airflow.sdk._shared.secrets_masker import redact

    assert simulator.api_key not in str(redact(f"GET /visits?api_key={simulator.api_key}"))


def test_the_rate_budget_url_comes_from_the_extras_else_the_environment_and_its_password_is_masked(
    hooks_module, connection, monkeypatch
):
    connection()
    assert hooks_module.LetsJobItHook().client_settings().rate_budget_url is None  # the file budget

    monkeypatch.setenv("LETSJOBIT_RATE_BUDGET_URL", "redis://:env-pass-123@redis-a:6379/2")
    client = hooks_module.LetsJobItHook().get_client()
    assert client.settings.rate_budget_url == "redis://:env-pass-123@redis-a:6379/2"
    assert "shared via Redis redis://:***@redis-a:6379/2" in repr(client) and "env-pass" not in repr(client)

    connection(extra={"rate_budget_url": "redis://:extra-pass-456@redis-b:6379/3"})
    settings = hooks_module.LetsJobItHook().client_settings()
    assert settings.rate_budget_url == "redis://:extra-pass-456@redis-b:6379/3"  # the extra over the variable
    assert "extra-pass" not in repr(settings)

    from airflow.sdk._shared.secrets_masker import redact

    assert "extra-pass-456" not in str(redact("connecting with extra-pass-456"))

    connection(extra={"rate_budget_url": "http://:bad-pass-789@redis-c"})
    with pytest.raises(LetsJobItConfigError, match="rate_budget_url") as refused:
        hooks_module.LetsJobItHook().client_settings()
    assert "bad-pass-789" not in str(refused.value)


def test_unusable_connections_fail_with_a_clear_message(hooks_module, connection):
    connection(password="")
    with pytest.raises(LetsJobItConfigError, match="no API key"):
        hooks_module.LetsJobItHook().client_settings()
    connection(extra={"max_concurrency": "lots"})
    with pytest.raises(LetsJobItConfigError, match="max_concurrency"):
        hooks_module.LetsJobItHook().client_settings()
    with pytest.raises(TypeError, match="unknown settings: colour"):
        hooks_module.LetsJobItHook(colour="red")


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("https://app.letsjobit.com/api/v2", None, None, "https://app.letsjobit.com/api/v2"),
        ("app.letsjobit.com", "api/v2", None, "https://app.letsjobit.com/api/v2"),  # from a conn URI
        ("app.letsjobit.com", "api/v2", 443, "https://app.letsjobit.com:443/api/v2"),
        ("app.letsjobit.com", None, None, "https://app.letsjobit.com/api/v2"),
        ("app.letsjobit.com", "https", None, "https://app.letsjobit.com/api/v2"),  # HttpHook style
        ("127.0.0.1", "http", 8080, "http://127.0.0.1:8080/api/v2"),
        ("app.letsjobit.com/api/v2/", None, None, "https://app.letsjobit.com/api/v2"),
    ],
)
def test_base_url_from_the_forms_a_connection_takes(hooks_module, host, schema, port, expected):
    conn = SimpleNamespace(conn_id="c", host=host, schema=schema, port=port)
    assert hooks_module.base_url_from_connection(conn) == expected


def test_hook_class_attributes_match_the_provider_info(hooks_module):
    hook = hooks_module.LetsJobItHook
    (conn_type,) = get_provider_info()["connection-types"]
    assert (hook.conn_name_attr, hook.default_conn_name, hook.conn_type, hook.hook_name) == (
        "letsjobit_conn_id",
        "letsjobit_default",
        "letsjobit",
        "LetsJobIt",
    )
    assert conn_type["connection-type"] == hook.conn_type
    assert conn_type["hook-class-name"] == f"{hook.__module__}.{hook.__name__}"
    assert conn_type["hook-name"] == hook.hook_name


def test_provider_info_is_valid_for_airflows_schemas():
    import airflow

    root = __import__("pathlib").Path(airflow.__file__).parent
    info = get_provider_info()
    jsonschema.validate(info, json.loads((root / "provider_info.schema.json").read_text()))
    yaml_schema = json.loads((root / "provider.yaml.schema.json").read_text())
    conn_schema = yaml_schema["properties"]["connection-types"]
    jsonschema.validate(info["connection-types"], conn_schema)
    fields = info["connection-types"][0]["conn-fields"]
    assert {
        "key_placement",
        "requests_per_window",
        "window_seconds",
        "timeout",
        "max_concurrency",
        "allow_insecure_http",
    } <= set(fields)
    assert fields["key_placement"]["schema"]["enum"] == ["auto", "header", "query"]
    assert fields["key_placement"]["schema"]["default"] == "auto"
    behaviour = info["connection-types"][0]["ui-field-behaviour"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}


def test_retry_budgets_come_from_the_connection_extras(hooks_module, connection):
    connection(extra={"fault_budget_seconds": "4", "rate_limit_budget_seconds": 90})
    policy = hooks_module.LetsJobItHook().get_conn().retry_policy
    assert (policy.fault_budget_seconds, policy.rate_limit_budget_seconds) == (4.0, 90.0)

    connection(extra={"fault_budget_seconds": "soon"})
    with pytest.raises(LetsJobItConfigError, match="fault_budget_seconds"):
        hooks_module.LetsJobItHook().get_conn()
