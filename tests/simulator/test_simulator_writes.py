"""POST (upsert by ERP id), PUT and DELETE /visits, and the admin endpoints other processes use."""

from __future__ import annotations

import orjson
import pytest
import requests

from tests.simulator.helpers import get


def _send(sim, method: str, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {sim.api_key}", **(headers or {})}
    return requests.request(method, sim.base_url + path, headers=headers, timeout=10, **kwargs)


def _posted_visit(sim) -> dict:
    visit = sim.store.new_visit()
    del visit["_id"]
    return visit


def test_post_inserts_new_visits_at_the_end_and_stamps_them(simulator):
    visits = [_posted_visit(simulator), _posted_visit(simulator)]

    answer = _send(simulator, "POST", "/visits", json=visits)

    assert answer.status_code == 200
    assert answer.json() == {"meta": {"recordsUpdated": 0, "recordsInserted": 2}, "data": None}
    stored = simulator.store.snapshot()[-2:]
    assert [v["id"] for v in stored] == [v["id"] for v in visits]
    assert all(v["_id"] and v["modifieddAt"] and v["createdUser"] == "API" for v in stored)
    assert get(simulator).json()["meta"]["totalRecords"] == 252


def test_post_updates_by_erp_id_in_place(simulator):
    target = simulator.store.snapshot()[10]
    ids_before = simulator.store.ids()

    answer = _send(
        simulator, "POST", "/visits", json=[{**target, "obs": "updated by the ERP", "_id": "ignored"}]
    )

    assert answer.json()["meta"] == {"recordsUpdated": 1, "recordsInserted": 0}
    assert simulator.store.ids() == ids_before  # an update never moves a visit
    updated = simulator.store.get(target["_id"])
    assert updated["obs"] == "updated by the ERP"
    assert updated["modifieddAt"] != target["modifieddAt"]


def test_post_reports_bad_records_and_still_inserts_the_good_ones(simulator):
    good = _posted_visit(simulator)
    no_doc = {**_posted_visit(simulator), "docNo": ""}
    bad_line = {**_posted_visit(simulator), "lines": [{"description": "no action flag"}]}
    bad_extra = {
        **_posted_visit(simulator),
        "lines": [
            {"actionItem": True, "description": "x", "extraData": [{"type": "slider", "caption": "c"}]}
        ],
    }

    answer = _send(simulator, "POST", "/visits", json=[no_doc, good, bad_line, "nonsense", bad_extra])

    meta = answer.json()["meta"]
    assert answer.status_code == 200
    assert meta["recordsInserted"] == 1 and meta["recordsUpdated"] == 0
    assert [e["index"] for e in meta["errors"]] == [0, 2, 3, 4]
    messages = [e["message"] for e in meta["errors"]]
    assert "missing required field 'docNo'" in messages[0]
    assert "lines[0]: missing required field 'actionItem'" in messages[1]
    assert "expected a visit object" in messages[2]
    assert "invalid type 'slider'" in messages[3] and "missing required field 'name'" in messages[3]
    assert simulator.store.get(str(good["id"])) is not None


def test_post_also_accepts_one_object_and_the_reference_example_path(simulator):
    answer = _send(simulator, "POST", "/visits/1", json=_posted_visit(simulator))

    assert answer.json()["meta"]["recordsInserted"] == 1


@pytest.mark.parametrize("body", [b"not json", b"", b'"a string"'])
def test_post_with_a_body_that_is_not_visits_is_400(simulator, body):
    answer = _send(simulator, "POST", "/visits", data=body, headers={"Content-Type": "application/json"})

    assert answer.status_code == 400
    assert answer.json()["data"] is None


def test_put_updates_fields_of_one_visit(simulator):
    target = simulator.store.snapshot()[5]

    answer = _send(
        simulator, "PUT", f"/visits/{target['_id']}", json={"date": "2026-12-20", "obs": "No parking"}
    )

    assert answer.json() == {"meta": {"updatedRecords": 1}, "data": None}
    updated = simulator.store.get(target["_id"])
    assert (updated["date"], updated["obs"]) == ("2026-12-20", "No parking")
    assert updated["driverId"] == target["driverId"]


def test_put_by_erp_id_and_its_errors(simulator):
    target = simulator.store.snapshot()[6]
    other = simulator.store.snapshot()[7]

    assert _send(simulator, "PUT", f"/visits/{target['id']}", json={"priority": 1}).status_code == 200
    assert _send(simulator, "PUT", "/visits/missing", json={"priority": 1}).status_code == 404
    assert _send(simulator, "PUT", f"/visits/{target['_id']}", json={"date": "20/12/2026"}).status_code == 400
    assert _send(simulator, "PUT", f"/visits/{target['_id']}", json=[1]).status_code == 400
    assert _send(simulator, "PUT", f"/visits/{target['_id']}", json={"id": other["id"]}).status_code == 400


def test_delete_removes_the_visit_and_shifts_later_offsets(simulator):
    ids = simulator.store.ids()

    answer = _send(simulator, "DELETE", f"/visits/{ids[0]}")

    assert answer.json() == {"meta": {"deletedRecords": 1}, "data": None}
    assert get(simulator, f"/visits/{ids[0]}").status_code == 404
    assert _send(simulator, "DELETE", f"/visits/{ids[0]}").status_code == 404
    assert get(simulator, params={"pagination": 100}).json()["data"][0]["_id"] == ids[101]


def _admin(sim, method: str, name: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{sim.root_url}/_sim/{name}", timeout=10, **kwargs)


def test_admin_counters_reset_and_health(simulator):
    get(simulator)

    counters = _admin(simulator, "GET", "counters").json()
    _admin(simulator, "POST", "reset")

    assert counters["requests_total"] == 1 and counters["by_kind"] == {"list": 1}
    assert _admin(simulator, "GET", "counters").json()["requests_total"] == 0
    assert _admin(simulator, "GET", "health").json()["visits"] == 250
    assert simulator.api_key not in str(counters)


def test_admin_faults_replace_or_merge(simulator):
    set_answer = _admin(simulator, "POST", "faults", json={"force_status": 500})
    assert set_answer.json()["force_status"] == 500
    assert get(simulator).status_code == 500

    _admin(simulator, "POST", "faults", json={"fail_next": [503], "merge": True})
    assert _admin(simulator, "GET", "faults").json()["force_status"] == 500
    _admin(simulator, "POST", "faults", json={"fail_next": [503]})  # replaces: force_status cleared

    assert [get(simulator).status_code for _ in range(2)] == [503, 200]
    assert _admin(simulator, "POST", "faults", json={"error_rate": 7}).status_code == 400
    assert _admin(simulator, "POST", "faults", json={"bogus": 1}).status_code == 400


def test_admin_truth_and_mutate(simulator):
    truth = _admin(simulator, "GET", "truth").json()
    first = truth["data"][0]

    done = _admin(
        simulator,
        "POST",
        "mutate",
        json={
            "ops": [
                {"op": "update", "id": first["_id"], "fields": {"closed": 1}},
                {"op": "delete", "id": first["id"]},
            ],
            "inserts": 3,
            "updates": 2,
        },
    ).json()

    assert truth["meta"]["totalRecords"] == 250 and len(truth["data"]) == 250
    assert done["deleted"] == [str(first["id"])] and len(done["inserted"]) == 3 and len(done["updated"]) == 3
    assert done["visits"] == 252 == len(simulator.store)
    assert (
        _admin(simulator, "POST", "mutate", json={"ops": [{"op": "delete", "id": "nope"}]}).status_code == 404
    )


def test_admin_config_changes_latency_and_the_rate_limit(simulator):
    answer = _admin(simulator, "POST", "config", json={"rate_limit": 2, "rate_limit_mode": "sliding"})

    assert answer.json()["rate_limit"] == 2
    assert [get(simulator).status_code for _ in range(3)] == [200, 200, 429]
    assert _admin(simulator, "POST", "config", json={"visits": 3}).status_code == 400


def test_admin_changes_list_every_version_a_visit_took_since_a_store_version(simulator):
    version = _admin(simulator, "GET", "truth").json()["meta"]["version"]
    first = simulator.store.snapshot()[0]
    simulator.store.update(first["_id"], {"date": "2026-10-24"})
    simulator.store.update(first["_id"], {"date": "2026-10-22"})  # and back: the truth cannot tell
    simulator.store.delete(first["_id"])
    inserted = simulator.store.insert(simulator.store.new_visit())

    answer = _admin(simulator, "GET", "changes", params={"since": version}).json()

    assert answer["meta"] == {"since": version, "version": version + 4}
    assert [(c["version"], c["_id"]) for c in answer["data"]] == [
        (version + 1, first["_id"]),
        (version + 2, first["_id"]),
        (version + 3, first["_id"]),
        (version + 4, inserted),
    ]
    assert [c["visit"] and c["visit"]["date"] for c in answer["data"][:3]] == [
        "2026-10-24",
        "2026-10-22",
        None,
    ]
    assert _admin(simulator, "GET", "changes", params={"since": version + 4}).json()["data"] == []
    assert _admin(simulator, "GET", "changes", params={"since": "x"}).status_code == 400


def test_changes_refuse_a_version_the_history_no_longer_reaches(monkeypatch, simulator):
    from letsjobit.simulator import store as store_module

    monkeypatch.setattr(store_module, "CHANGE_HISTORY", 2)
    store = store_module.VisitStore(simulator.store.snapshot()[:5])
    for visit_id in store.ids()[:3]:
        store.update(visit_id, {"closed": 1})

    assert len(orjson.loads(store.changes_bytes(1))) == 2  # versions 2 and 3: all there is after 1
    with pytest.raises(ValueError, match="no longer kept"):
        store.changes_bytes(0)
