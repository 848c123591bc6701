"""Key placement auto: the header first, on a 401 once in the query string, and what worked remembered.

Against simulators that take the key only in the header, only in the query string, or either way; the
remembered placement is shared by clients (processes) on one state directory and re-learned when it
stops working.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from letsjobit.api.errors import LetsJobItAuthError, LetsJobItNotFound
from letsjobit.api.keystate import PlacementMemory, key_state_path

from tests.conftest import truth_ids


def placement_file(client):
    host = client.settings.base_url.split("://", 1)[1].split("/", 1)[0]
    return key_state_path(client.settings.rate_state_dir, "key-placement", host, client.settings.api_key)


def warnings_about_the_placement(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "accepted it in" in r.getMessage()
    ]


def counted_answers(sim, timeout: float = 5.0) -> dict[str, int]:
    """The simulator's answers by status once it has counted them all: it counts an answer just after
    sending it, so the client can hold the last one before the count does."""
    deadline = time.monotonic() + timeout
    while sim.counters()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return sim.counters()["by_status"]


def test_auto_stays_on_the_header_when_the_account_takes_it(simulator_factory, client_factory, caplog):
    sim = simulator_factory(key_placement="header")
    client = client_factory(sim)

    with caplog.at_level(logging.INFO):
        ids = [v["_id"] for v in client.iter_visits()]

    assert sorted(ids) == sorted(truth_ids(sim))
    assert client.key_placement == "header"
    assert sim.counters()["unauthorized"] == 0
    assert not placement_file(client).exists()  # nothing learned: the header is where auto starts anyway
    assert warnings_about_the_placement(caplog) == []


def test_auto_retries_a_refused_header_once_in_the_query_string_and_remembers_it(
    simulator_factory, client_factory, caplog
):
    sim = simulator_factory(key_placement="query")
    client = client_factory(sim)

    with caplog.at_level(logging.INFO):
        ids = [v["_id"] for v in client.iter_visits()]

    assert sorted(ids) == sorted(truth_ids(sim))
    assert client.key_placement == "query"
    assert sim.counters()["unauthorized"] == 1  # the first request only; every later one went to the query
    warnings = warnings_about_the_placement(caplog)
    assert len(warnings) == 1
    assert "query string (?api_key=***)" in warnings[0] and "Authorization header" in warnings[0]
    stored = json.loads(placement_file(client).read_text())
    assert stored["key_placement"] == "query" and stored["query_key_param"] == "api_key"


def test_a_new_client_for_the_same_key_starts_where_the_last_one_succeeded(
    simulator_factory, client_factory, caplog
):
    sim = simulator_factory(key_placement="query")
    list(client_factory(sim).iter_visits())
    sim.reset_counters()
    caplog.clear()

    with caplog.at_level(logging.INFO):
        later = client_factory(sim)
        assert len(list(later.iter_visits())) == 250

    assert later.key_placement == "query"
    assert sim.counters()["unauthorized"] == 0
    assert warnings_about_the_placement(caplog) == []
    assert "as this key's API accepted before" in caplog.text


def test_a_client_started_before_another_learned_the_placement_uses_what_it_learned(
    simulator_factory, client_factory, caplog
):
    sim = simulator_factory(key_placement="query")
    early = client_factory(sim)  # like a second task process started at the same time
    list(client_factory(sim).iter_visits())
    sim.reset_counters()
    caplog.clear()

    with caplog.at_level(logging.INFO):
        assert len(list(early.iter_visits())) == 250

    assert early.key_placement == "query"
    assert sim.counters()["unauthorized"] == 1  # its own header attempt, then the remembered placement
    assert "sending the request once more" not in caplog.text
    assert warnings_about_the_placement(caplog) == []


def test_a_remembered_placement_that_stops_working_is_learned_again(
    simulator_factory, client_factory, caplog
):
    sim = simulator_factory(key_placement="query")
    list(client_factory(sim).iter_visits())
    sim.configure(key_placement="header")  # the account moved to header-only
    sim.reset_counters()
    caplog.clear()

    with caplog.at_level(logging.INFO):
        client = client_factory(sim)
        assert client.key_placement == "query"
        assert len(list(client.iter_visits())) == 250

    assert client.key_placement == "header"
    assert sim.counters()["unauthorized"] == 1
    assert "accepted it in the Authorization header" in warnings_about_the_placement(caplog)[0]
    assert PlacementMemory(placement_file(client)).recall() == "header"


def test_concurrent_requests_refused_at_once_find_the_placement_once(
    simulator_factory, client_factory, caplog
):
    sim = simulator_factory(key_placement="query", latency_ms=150)  # all eight are in flight together
    client = client_factory(sim)
    visit_ids = truth_ids(sim)[:8]
    start = threading.Barrier(len(visit_ids))
    fetched, failures = {}, []

    def fetch(visit_id: str) -> None:
        start.wait()
        try:
            fetched[visit_id] = client.get_visit(visit_id)["_id"]
        except Exception as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=fetch, args=(visit_id,)) for visit_id in visit_ids]
    with caplog.at_level(logging.INFO):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert failures == []
    assert fetched == {visit_id: visit_id for visit_id in visit_ids}
    assert len(warnings_about_the_placement(caplog)) == 1
    assert caplog.text.count("sending the request once more") == 1
    # Each refused request was sent once more, with the placement the first one found.
    assert counted_answers(sim) == {"401": 8, "200": 8}


def test_a_key_refused_both_ways_is_one_clear_error_and_nothing_is_remembered(simulator, client_factory):
    client = client_factory(simulator, api_key="wrong-key-5e6f7a8b9c")

    with pytest.raises(LetsJobItAuthError) as caught:
        list(client.iter_visits())

    message = str(caught.value)
    assert "HTTP 401 both ways" in message
    assert "in the Authorization header (Bearer): Unauthorized" in message
    assert "in the query string (?api_key=***): Unauthorized" in message
    assert "LETSJOBIT_API_KEY" in message and simulator.base_url in message and "query_key_param" in message
    assert simulator.counters()["unauthorized"] == 2
    assert not placement_file(client).exists()


@pytest.mark.parametrize("placement", ["header", "query"])
def test_an_explicit_placement_is_never_changed(simulator_factory, client_factory, placement):
    other = {"header": "query", "query": "header"}[placement]
    sim = simulator_factory(key_placement=other)
    client = client_factory(sim, key_placement=placement)

    with pytest.raises(LetsJobItAuthError, match="key_placement to 'auto'"):
        list(client.iter_visits())

    assert sim.counters()["unauthorized"] == 1
    assert client.key_placement == placement


def test_a_custom_query_parameter_name_is_used_for_the_fallback(simulator_factory, client_factory):
    sim = simulator_factory(key_placement="query")
    client = client_factory(sim, query_key_param="apiKey")

    assert len(list(client.iter_visits())) == 250
    assert json.loads(placement_file(client).read_text())["query_key_param"] == "apiKey"


def test_writes_refused_in_the_header_go_through_once_in_the_query_string(simulator_factory, client_factory):
    sim = simulator_factory(key_placement="query")
    client = client_factory(sim)
    visit_id = truth_ids(sim)[0]

    # The refused first attempt did nothing, so the 404 of its retry is a 404, not "already deleted".
    with pytest.raises(LetsJobItNotFound):
        client.delete_visit("no-such-visit")
    client.update_visit(visit_id, {"obs": "Gate code 4512"})
    assert client.delete_visit(visit_id) == {"deletedRecords": 1}

    assert sim.store.get(visit_id) is None
    assert sim.counters()["unauthorized"] == 1


def test_a_placement_file_written_before_letsjobit_files_is_still_recalled_and_rewritten_alike(tmp_path):
    path = tmp_path / "key-placement-0123.json"
    # As PlacementMemory wrote it by hand: json.dumps(indent=1) and a newline, same keys.
    old = {
        "v": 1,
        "key_placement": "query",
        "query_key_param": "apiKey",
        "api_host": "127.0.0.1:8000",
        "learned_at": "2026-11-24T10:00:00+00:00",
    }
    path.write_text(json.dumps(old, indent=1) + "\n")
    memory = PlacementMemory(path)

    assert memory.recall() == "query"
    memory.remember("header", "apiKey", "127.0.0.1:8000")

    stored = json.loads(path.read_text())
    assert set(stored) == set(old)
    assert (stored["key_placement"], stored["query_key_param"]) == ("header", None)
    assert PlacementMemory(path).recall() == "header"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left beside it
