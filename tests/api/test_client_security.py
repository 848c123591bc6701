"""The API key never shows: not in logs (ours, urllib3's), not in exceptions; plain http is refused."""

from __future__ import annotations

import json
import logging
import traceback
from urllib.parse import quote, quote_plus

import pytest
from letsjobit.api.errors import LetsJobItAuthError, LetsJobItConfigError, LetsJobItError
from letsjobit.api.settings import ClientSettings, RetryPolicy, normalize_base_url
from letsjobit.simulator import FaultConfig


def _all_text(caplog, error: BaseException | None) -> str:
    text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    if error is not None:
        text += "".join(traceback.format_exception(error))
        seen = error
        while seen is not None:  # every chained exception, shown or suppressed
            text += repr(seen) + str(seen)
            seen = seen.__cause__ or seen.__context__
    return text


@pytest.mark.parametrize("placement", ["query", "header", "auto"])
def test_the_key_is_in_no_log_line_or_exception_when_requests_fail(
    simulator, client_factory, caplog, placement
):
    key = simulator.api_key
    # auto against a query-only account: a 401 on the header, then the fallback to the query string.
    simulator.configure(page_size=50, key_placement="query" if placement == "auto" else "any")
    client = client_factory(
        simulator,
        key_placement=placement,
        retry_policy=RetryPolicy(
            fault_budget_seconds=1.0, backoff_initial_seconds=0.01, backoff_max_seconds=0.02
        ),
    )
    simulator.fail_next("drop", "500", "truncate", "short", "429-no-headers", "ok", "drop")
    with caplog.at_level(logging.DEBUG):
        assert len(list(client.iter_visits())) == 250
        simulator.set_faults(FaultConfig(force_status=503))
        with pytest.raises(LetsJobItError) as caught:
            list(client.iter_visits())

    assert "HTTP 503" in str(caught.value)
    assert "urllib3" in caplog.text or placement == "header"  # urllib3's debug lines were captured
    assert key not in _all_text(caplog, caught.value)
    if placement == "auto":
        assert "accepted it in the query string" in caplog.text


# Characters a URL encodes: the key must be redacted in every spelling a request line can show.
AWKWARD_KEY = "k+y/with=odd&chars 0123456789"


def _files_holding(root, secret: str) -> list[str]:
    spellings = {secret, quote(secret, safe=""), quote(secret, safe="/"), quote_plus(secret)}
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and any(s.encode() in path.read_bytes() for s in spellings)
    ]


def test_a_key_refused_both_ways_is_in_no_log_line_exception_or_file(
    simulator, client_factory, caplog, tmp_path
):
    client = client_factory(simulator, api_key=AWKWARD_KEY)

    with caplog.at_level(logging.DEBUG), pytest.raises(LetsJobItAuthError, match="both ways") as caught:
        list(client.iter_visits())

    text = _all_text(caplog, caught.value)
    for spelling in (AWKWARD_KEY, quote(AWKWARD_KEY, safe=""), quote_plus(AWKWARD_KEY)):
        assert spelling not in text
    assert "api_key=***" in caplog.text  # urllib3's request line was captured, redacted
    assert _files_holding(tmp_path, AWKWARD_KEY) == []


def test_the_fallback_to_the_query_string_leaves_the_key_in_no_log_line_or_file(
    simulator_factory, client_factory, caplog, tmp_path
):
    sim = simulator_factory(key_placement="query", api_keys=(AWKWARD_KEY,))
    client = client_factory(sim)

    with caplog.at_level(logging.DEBUG):
        assert len(list(client.iter_visits())) == 250

    assert client.key_placement == "query"
    text = _all_text(caplog, None)
    for spelling in (AWKWARD_KEY, quote(AWKWARD_KEY, safe=""), quote_plus(AWKWARD_KEY)):
        assert spelling not in text
    assert "api_key=***" in caplog.text
    assert _files_holding(tmp_path, AWKWARD_KEY) == []
    (remembered,) = (tmp_path / "state").glob("key-placement-*.json")
    assert set(json.loads(remembered.read_text())) == {
        "v",
        "key_placement",
        "query_key_param",
        "api_host",
        "learned_at",
    }


def test_a_refused_key_is_not_echoed(simulator, client_factory, caplog):
    wrong = "wrong-key-abcdef-987654"
    client = client_factory(simulator, api_key=wrong, key_placement="query")

    with caplog.at_level(logging.DEBUG), pytest.raises(LetsJobItAuthError) as caught:
        list(client.iter_visits())

    assert wrong not in _all_text(caplog, caught.value)


def test_a_dropped_connection_error_does_not_carry_the_url_with_the_key(simulator_factory, client_factory):
    sim = simulator_factory()
    client = client_factory(
        sim,
        key_placement="query",
        retry_policy=RetryPolicy(fault_budget_seconds=0.2, backoff_initial_seconds=0.01),
    )
    sim.stop()  # nothing listens any more: requests raises ConnectionError with the full URL inside

    with pytest.raises(LetsJobItError) as caught:
        list(client.iter_visits())

    assert "Connection" in str(caught.value)
    assert sim.api_key not in _all_text(type("C", (), {"text": "", "records": []})(), caught.value)


def test_settings_and_client_reprs_hide_the_key(simulator, client_factory):
    client = client_factory(simulator)
    assert simulator.api_key not in repr(client.settings)
    assert simulator.api_key not in repr(client)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://app.letsjobit.com/api/v2", "https://app.letsjobit.com/api/v2"),
        ("https://app.letsjobit.com/api/v2/", "https://app.letsjobit.com/api/v2"),
        ("app.letsjobit.com", "https://app.letsjobit.com/api/v2"),
        ("app.letsjobit.com/api/v2", "https://app.letsjobit.com/api/v2"),
        ("https://app.letsjobit.com", "https://app.letsjobit.com/api/v2"),
        ("https://app.letsjobit.com:8443/api/v2", "https://app.letsjobit.com:8443/api/v2"),
        ("http://127.0.0.1:8080/api/v2", "http://127.0.0.1:8080/api/v2"),
        ("http://localhost:8080", "http://localhost:8080/api/v2"),
        ("http://[::1]:9000/api/v2", "http://[::1]:9000/api/v2"),
    ],
)
def test_base_url_forms_people_type(raw, expected):
    assert normalize_base_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("http://app.letsjobit.com/api/v2", "refusing plain http"),
        ("http://10.0.0.5/api/v2", "refusing plain http"),
        ("ftp://app.letsjobit.com", "must be http"),
        ("https://user:pw@app.letsjobit.com/api/v2", "must not carry credentials"),
        ("https://app.letsjobit.com/api/v2?api_key=x", "must not carry credentials"),
        ("", "no API base URL"),
    ],
)
def test_unsafe_or_unusable_base_urls_are_refused(raw, message):
    with pytest.raises(LetsJobItConfigError, match=message) as caught:
        normalize_base_url(raw)
    assert "pw" not in str(caught.value) and "api_key=x" not in str(caught.value)


def test_plain_http_to_a_remote_host_only_when_explicitly_allowed():
    settings = ClientSettings(
        base_url="http://api.internal/api/v2", api_key="k" * 20, allow_insecure_http=True
    )
    assert settings.base_url == "http://api.internal/api/v2"


def test_a_missing_key_is_a_clear_configuration_error():
    with pytest.raises(LetsJobItConfigError, match="no API key"):
        ClientSettings(base_url="https://app.letsjobit.com/api/v2", api_key="")
