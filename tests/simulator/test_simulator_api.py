"""GET /visits and /visits/{ID}: paging, filters, auth and error shapes, over loopback."""

from __future__ import annotations

import http.client
import logging
import socket

import pytest
import requests

from tests.simulator.helpers import fetch_all, get, is_true


def test_pages_of_100_cover_every_visit_once_in_store_order(simulator):
    visits, metas = fetch_all(simulator)

    truth = simulator.store.snapshot()
    assert [v["_id"] for v in visits] == [v["_id"] for v in truth]
    assert visits == truth
    assert [m["returnedRecords"] for m in metas] == [100, 100, 50]
    assert [m["remainingRecords"] for m in metas] == [150, 50, 0]
    assert [m["nextStart"] for m in metas] == [100, 200, 250]
    assert {m["totalRecords"] for m in metas} == {250}


def test_pagination_may_start_anywhere_and_as_a_number_string(simulator):
    body = get(simulator, params={"pagination": "130"}).json()

    assert [v["_id"] for v in body["data"]] == simulator.store.ids()[130:230]
    assert body["meta"] == {
        "totalRecords": 250,
        "returnedRecords": 100,
        "remainingRecords": 20,
        "nextStart": 230,
    }


def test_pagination_past_the_end_is_an_empty_page(simulator):
    body = get(simulator, params={"pagination": 1000}).json()

    assert body["data"] == []
    assert body["meta"]["returnedRecords"] == 0
    assert body["meta"]["remainingRecords"] == 0
    assert body["meta"]["totalRecords"] == 250


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "10e2"])
def test_invalid_pagination_is_a_400_in_the_error_shape(simulator, value):
    answer = get(simulator, params={"pagination": value})

    assert answer.status_code == 400
    assert answer.json()["data"] is None
    assert value in answer.json()["meta"]["error"]


def test_bearer_header_authenticates(simulator):
    assert get(simulator).status_code == 200


@pytest.mark.parametrize("param", ["api_key", "API_KEY", "apiKey", "key"])
def test_key_in_the_query_string_authenticates(simulator, param):
    answer = requests.get(simulator.base_url + "/visits", params={param: simulator.api_key}, timeout=10)

    assert answer.status_code == 200
    assert answer.json()["meta"]["totalRecords"] == 250


@pytest.mark.parametrize("how", ["header", "query", "none", "basic"])
def test_wrong_or_missing_key_is_401_without_echoing_it(simulator, how):
    wrong = "wrong-key-123456"
    kwargs = {
        "header": {"headers": {"Authorization": f"Bearer {wrong}"}},
        "query": {"params": {"api_key": wrong}},
        "none": {},
        "basic": {"headers": {"Authorization": f"Basic {wrong}"}},
    }[how]
    answer = requests.get(simulator.base_url + "/visits", timeout=10, **kwargs)

    assert answer.status_code == 401
    assert answer.json()["data"] is None
    assert "Unauthorized" in answer.json()["meta"]["error"]
    assert wrong not in answer.text
    assert simulator.counters()["unauthorized"] == 1


def _answers_by_placement(sim) -> dict[str, int]:
    """The status of a listing request with the right key in each place (and in both at once)."""
    header = {"Authorization": f"Bearer {sim.api_key}"}
    return {
        "header": requests.get(sim.base_url + "/visits", headers=header, timeout=10).status_code,
        "query": requests.get(
            sim.base_url + "/visits", params={"api_key": sim.api_key}, timeout=10
        ).status_code,
        "both": requests.get(
            sim.base_url + "/visits", headers=header, params={"API_KEY": sim.api_key}, timeout=10
        ).status_code,
    }


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        ("any", {"header": 200, "query": 200, "both": 200}),
        ("header", {"header": 200, "query": 401, "both": 200}),
        ("query", {"header": 401, "query": 200, "both": 200}),
    ],
)
def test_an_account_can_take_the_key_in_one_place_only(simulator_factory, placement, expected):
    sim = simulator_factory(key_placement=placement)

    assert _answers_by_placement(sim) == expected


def test_a_query_only_account_says_where_it_wants_the_key_and_can_change_at_run_time(simulator):
    simulator.configure(key_placement="query")
    refused = requests.get(
        simulator.base_url + "/visits", headers={"Authorization": f"Bearer {simulator.api_key}"}, timeout=10
    )
    assert refused.status_code == 401
    assert "query string" in refused.json()["meta"]["error"]
    assert simulator.api_key not in refused.text

    simulator.configure(key_placement="header")
    assert _answers_by_placement(simulator) == {"header": 200, "query": 401, "both": 200}


def _expected(truth: list[dict], name: str, value) -> list[str]:
    """The reference's filter rules, restated independently of the simulator's code."""

    def keep(visit: dict) -> bool:
        if name == "docNo":
            return str(value).lower() in str(visit.get("docNo", "")).lower()
        if name in ("closed", "confirmClose", "inProgress", "skipped"):
            return is_true(visit.get(name)) == (str(value) == "1")
        if name == "priority":
            return str(visit.get("priority")) == str(value)
        return name in visit and str(visit[name]) == str(value)

    return [v["_id"] for v in truth if keep(v)]


def _filter_cases(truth: list[dict]) -> list[tuple[str, object]]:
    sample = truth[17]
    return [
        ("_id", sample["_id"]),
        ("id", str(sample["id"])),
        ("id", truth[5]["id"]),
        ("date", sample["date"]),
        ("driverId", sample["driverId"]),
        ("docNo", sample["docNo"][-4:]),
        ("docNo", "h-0001"),
        ("closed", 1),
        ("closed", 0),
        ("confirmClose", 1),
        ("confirmClose", 0),
        ("inProgress", 1),
        ("inProgress", 0),
        ("skipped", 1),
        ("skipped", 0),
        ("priority", 3),
        ("priority", 1),
        ("priority", "2"),
    ]


def test_every_documented_filter_matches_the_ground_truth(simulator_factory):
    sim = simulator_factory(visits=600, rate_limit=0)
    truth = sim.store.snapshot()
    session = requests.Session()

    for name, value in _filter_cases(truth):
        visits, _ = fetch_all(sim, {name: value}, session=session)
        expected = _expected(truth, name, value)
        assert [v["_id"] for v in visits] == expected, (name, value)
        assert expected or name in ("inProgress",), f"filter {name}={value} matched nothing: a weak test"


def test_filters_combine_with_and(simulator):
    truth = simulator.store.snapshot()
    driver = truth[0]["driverId"]

    visits, _ = fetch_all(simulator, {"driverId": driver, "closed": 1})

    assert [v["_id"] for v in visits] == [
        v["_id"] for v in truth if v["driverId"] == driver and is_true(v["closed"])
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("closed", "2"),
        ("skipped", "yes"),
        ("priority", "high"),
        ("date", "2026-13-01"),
        ("date", "01/11/2026"),
    ],
)
def test_invalid_filter_values_are_400(simulator, name, value):
    answer = get(simulator, params={name: value})

    assert answer.status_code == 400
    assert name in answer.json()["meta"]["error"]


def test_get_one_visit_by_internal_or_erp_id(simulator):
    visit = simulator.store.snapshot()[42]

    by_internal = get(simulator, f"/visits/{visit['_id']}").json()
    by_erp = get(simulator, f"/visits/{visit['id']}").json()

    assert by_internal["data"] == [visit] == by_erp["data"]
    assert by_internal["meta"]["totalRecords"] == 1


def test_single_visit_can_be_served_as_an_object(simulator_factory):
    sim = simulator_factory(single_visit_shape="object")
    visit = sim.store.snapshot()[3]

    assert get(sim, f"/visits/{visit['_id']}").json()["data"] == visit


def test_unknown_visit_is_404(simulator):
    answer = get(simulator, "/visits/nope")

    assert answer.status_code == 404
    assert answer.json() == {"meta": {"error": "Not Found: no visit with ID 'nope'"}, "data": None}


def test_unknown_path_is_404_and_wrong_method_is_405(simulator):
    headers = {"Authorization": f"Bearer {simulator.api_key}"}

    assert get(simulator, "/leads").status_code == 404
    assert requests.patch(simulator.base_url + "/visits/x", headers=headers, timeout=10).status_code == 405
    assert requests.delete(simulator.base_url + "/visits", headers=headers, timeout=10).status_code == 405
    assert (
        requests.put(simulator.base_url + "/visits", headers=headers, json={}, timeout=10).status_code == 405
    )


def test_the_v2_path_without_api_prefix_works_too(simulator):
    answer = requests.get(
        simulator.root_url + "/v2/visits", params={"api_key": simulator.api_key}, timeout=10
    )

    assert answer.status_code == 200


def test_keep_alive_serves_many_requests_on_one_connection(simulator):
    connection = http.client.HTTPConnection("127.0.0.1", simulator.port, timeout=10)
    headers = {"Authorization": f"Bearer {simulator.api_key}"}

    statuses = []
    for start in (0, 100, 200, 0):
        connection.request("GET", f"/api/v2/visits?pagination={start}", headers=headers)
        answer = connection.getresponse()
        answer.read()
        statuses.append(answer.status)
    connection.close()

    assert statuses == [200, 200, 200, 200]


def test_the_key_never_reaches_the_simulator_log(simulator, caplog):
    caplog.set_level(logging.DEBUG, logger="letsjobit.simulator")
    key = simulator.api_key
    for param in ("api_key", "API_KEY", "apiKey", "key"):
        requests.get(simulator.base_url + "/visits", params={param: key, "pagination": "x"}, timeout=10)
        requests.get(simulator.base_url + "/visits/nope", params={param: key}, timeout=10)
    get(simulator)
    with socket.create_connection(("127.0.0.1", simulator.port), timeout=10) as raw:
        raw.sendall(f"GET /api/v2/visits?api_key={key} HTTP/1.1 junk\r\n\r\n".encode())
        malformed_answer = raw.recv(65536).decode()

    assert malformed_answer.startswith("HTTP/1.1 400")
    assert key not in malformed_answer

    assert "/visits" in caplog.text
    assert key not in caplog.text
