"""Writes: upsert, update, delete and get one visit, with the API's meta and its errors surfaced."""

from __future__ import annotations

import pytest
from letsjobit.api.errors import LetsJobItBadRequest, LetsJobItNotFound, LetsJobItWriteError


def _new_visit(erp_id: int, **fields) -> dict:
    return {
        "driverId": "DRV-test-1",
        "date": "2026-11-02",
        "id": erp_id,
        "docNo": f"T-{erp_id}",
        "customer": "The Green Sleeve",
        "address": "999 West High Street",
        "city": "INVERURIE",
        "companyId": "LPeaJNaLQT6RqcFdt",
        **fields,
    }


def test_upsert_inserts_then_updates_and_returns_the_apis_meta(simulator, client_factory):
    client = client_factory(simulator)

    inserted = client.upsert_visits([_new_visit(990001), _new_visit(990002)])
    updated = client.upsert_visits([_new_visit(990001, city="ABERDEEN")])

    assert inserted == {"recordsUpdated": 0, "recordsInserted": 2}
    assert updated == {"recordsUpdated": 1, "recordsInserted": 0}
    assert client.get_visit("990001")["city"] == "ABERDEEN"
    assert len(simulator.store) == 252


def test_upsert_lists_every_refused_record_in_its_error(simulator, client_factory):
    client = client_factory(simulator)
    bad = [_new_visit(990003), {"id": 990004, "date": "2026-11-02"}, {"id": 990005, "driverId": "x"}]

    with pytest.raises(LetsJobItWriteError, match="refused 2 of 3 visits") as caught:
        client.upsert_visits(bad)

    message = str(caught.value)
    assert "990004" in message and "990005" in message
    assert caught.value.meta["recordsInserted"] == 1
    assert len(caught.value.meta["errors"]) == 2


def test_update_and_delete_one_visit(simulator, client_factory):
    client = client_factory(simulator)
    visit_id = simulator.store.snapshot()[3]["_id"]

    assert client.update_visit(visit_id, {"obs": "No parking available"}) == {"updatedRecords": 1}
    assert client.get_visit(visit_id)["obs"] == "No parking available"
    assert client.delete_visit(visit_id) == {"deletedRecords": 1}
    with pytest.raises(LetsJobItNotFound, match=f"visits/{visit_id}: HTTP 404"):
        client.get_visit(visit_id)
    with pytest.raises(LetsJobItNotFound):
        client.delete_visit(visit_id)


def test_update_with_an_invalid_value_fails_with_the_apis_message(simulator, client_factory):
    client = client_factory(simulator)
    visit_id = simulator.store.snapshot()[0]["_id"]

    with pytest.raises(LetsJobItBadRequest, match="invalid date"):
        client.update_visit(visit_id, {"date": "31/12/2026"})


def test_a_delete_whose_answer_was_lost_is_not_an_error_on_retry(simulator, client_factory):
    client = client_factory(simulator)
    visit_id = simulator.store.snapshot()[5]["_id"]
    simulator.fail_next("drop")  # the delete happens, its answer never arrives

    assert client.delete_visit(visit_id) == {"deletedRecords": 0, "alreadyDeleted": True}
    assert simulator.store.get(visit_id) is None


@pytest.mark.parametrize("shape", ["list", "object"])
def test_get_visit_accepts_both_answer_shapes(simulator, client_factory, shape):
    simulator.configure(single_visit_shape=shape)
    client = client_factory(simulator)
    expected = simulator.store.snapshot()[9]

    assert client.get_visit(expected["_id"]) == expected
