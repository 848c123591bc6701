"""Offset drift: visits inserted and deleted while the listing is paged are neither lost nor doubled."""

from __future__ import annotations

import logging

import pytest
from letsjobit.api.paging import ScanStats
from letsjobit.simulator import FaultConfig

from tests.conftest import truth_ids


@pytest.mark.parametrize(
    ("drift", "position"),
    [
        ({"drift_deletes": 2}, "end"),
        ({"drift_deletes": 3, "drift_inserts": 3}, "end"),
        ({"drift_deletes": 2, "drift_inserts": 4}, "random"),
        ({"drift_deletes": 4, "drift_inserts": 2}, "start"),
        ({"drift_inserts": 5}, "random"),
        ({"drift_deletes": 5, "drift_updates": 5}, "end"),
    ],
)
def test_every_visit_that_existed_throughout_is_delivered_exactly_once(
    simulator_factory, client_factory, caplog, drift, position
):
    sim = simulator_factory(rate_limit=0, page_size=10, insert_position=position)
    before = set(truth_ids(sim))
    sim.set_faults(FaultConfig(drift_every=2, seed=5, **drift))
    client = client_factory(sim, max_concurrency=4)
    stats = ScanStats()

    with caplog.at_level(logging.INFO, logger="letsjobit.api"):
        ids = [v["_id"] for v in client.iter_visits(stats=stats)]

    persistent = before & set(truth_ids(sim))
    assert sim.counters()["drift"]["events"] > 0
    assert len(ids) == len(set(ids)), "a visit was delivered twice"
    assert persistent <= set(ids), f"{len(persistent - set(ids))} visits that existed throughout were lost"
    if drift.get("drift_deletes"):
        assert stats.drift["chain_break"] >= 1 and stats.drift["repaired"] == stats.drift["chain_break"]
        assert "Drift detected" in caplog.text and "Drift repaired" in caplog.text
    if drift.get("drift_deletes", 0) != drift.get("drift_inserts", 0):
        assert stats.drift["total_changed"] >= 1


def test_the_listing_growing_at_the_end_is_read_to_its_new_end(simulator_factory, client_factory):
    sim = simulator_factory(rate_limit=0, page_size=10, insert_position="end")
    sim.set_faults(FaultConfig(drift_every=1, drift_inserts=3, seed=2))
    client = client_factory(sim, max_concurrency=2)
    stats = ScanStats()

    ids = [v["_id"] for v in client.iter_visits(stats=stats)]

    # Every visit present at the end except those inserted after the last page was read.
    assert set(ids) <= set(truth_ids(sim))
    assert len(ids) == len(set(ids)) >= 250
    assert stats.drift["listing_grew"] >= 1


def test_drift_is_reported_in_the_extraction_figures(simulator_factory, client_factory):
    sim = simulator_factory(rate_limit=0, page_size=10)
    sim.set_faults(FaultConfig(drift_every=2, drift_deletes=3, seed=1))
    client = client_factory(sim)
    stats = ScanStats()

    list(client.iter_visits(stats=stats))

    report = stats.as_dict()
    assert report["drift_events"] == sum(report["drift_by_kind"].values()) > 0
    assert report["drift_log"] and all({"kind", "detail"} <= set(e) for e in report["drift_log"])
    assert report["total_records_reported_last"] < report["total_records_reported"]
