"""The gate on a real run: simulator over loopback -> client -> raw pages -> lake staging -> audit -> publish."""

from __future__ import annotations

import pyarrow.parquet as pq

from include.letsjobit import extract, lake, validate
from include.letsjobit.client import ClientSettings, LetsJobItClient
from include.letsjobit.validate import Verdict

# What the simulator's deliberately invalid records become: caught by a gate check, or coerced to NULL
# and recorded as a reject by the lake (then the visit is published with that value NULL).
CAUGHT_BY = {
    "rating_out_of_range": "visits.signee_rating_in_range",
    "latitude_out_of_range": "visits.lat_in_range",
    "longitude_out_of_range": "visits.lng_in_range",
    "impossible_date": "visits.visit_date_not_null",
    "negative_duration": "visits.duration_in_range",
}
REJECTED_BY_THE_LAKE = {"priority_not_a_number", "flag_not_a_flag", "lines_not_a_list"}


def client_of(sim, layout) -> LetsJobItClient:
    """A client for ``sim`` whose rate budget matches the simulator's limit and lives under the layout."""
    return LetsJobItClient(
        ClientSettings(
            base_url=sim.base_url,
            api_key=sim.api_key,
            requests_per_window=sim.config.rate_limit or 1000,
            window_seconds=sim.config.rate_window_seconds,
            rate_state_dir=layout.state,
        )
    )


def test_invalid_simulated_visits_are_quarantined_and_the_rest_published(simulator_factory, layout):
    sim = simulator_factory(
        visits=400, bad_record_rate=0.05, bad_record_kinds=(*CAUGHT_BY, *REJECTED_BY_THE_LAKE)
    )
    bad_records = dict(sim.store.bad_records)
    assert set(bad_records.values()) <= set(CAUGHT_BY) | REJECTED_BY_THE_LAKE
    client = client_of(sim, layout)
    extracted = extract.extract_to_raw(client, "sim_run", "full", {}, layout)
    staged = lake.stage_run("sim_run", layout)

    result = validate.audit_run("sim_run", layout, extracted.distinct_visits, staged.rows)
    lake.publish_run("sim_run", layout, None)

    assert result.verdict is Verdict.QUARANTINED
    quarantined = {
        row["visit_id"]: row["failed_checks"]
        for row in pq.read_table(result.quarantine_paths["visits"]).to_pylist()
    }
    expected = {visit_id: [CAUGHT_BY[kind]] for visit_id, kind in bad_records.items() if kind in CAUGHT_BY}
    assert quarantined == expected
    published_ids = set(lake.read_table(layout.table("visits")).column("visit_id").to_pylist())
    assert len(published_ids) == 400 - len(expected)
    assert not published_ids & set(expected)


def test_a_visit_rescheduled_between_two_listings_of_a_window_run_reconciles(
    simulator_factory, layout, monkeypatch
):
    """Chunk A lists the visit under its old date, then it moves, then chunk B lists it under the new one:
    both listings count it, staging keeps it once, and the reconciliation must still balance."""
    from include.letsjobit import pipeline

    monkeypatch.setenv("LETSJOBIT_DATA_DIR", str(layout.root))
    sim = simulator_factory(visits=300)
    by_date: dict[str, list[str]] = {}
    for record in sim.store.snapshot():
        by_date.setdefault(record["date"], []).append(record["_id"])
    old_date, new_date = sorted(by_date, key=lambda day: -len(by_date[day]))[:2]
    moved = by_date[old_date][0]
    client = client_of(sim, layout)
    run_id = "window_run"
    first = pipeline.extract_chunk(client, run_id, {"chunk": "a", "dates": [old_date]})
    sim.store.update(moved, {"date": new_date})
    second = pipeline.extract_chunk(client, run_id, {"chunk": "b", "dates": [new_date]})
    extracted = [first, second]
    staged = pipeline.stage(run_id)

    assert staged["visits_in_several_parts"] == 1
    assert (
        sum(chunk["expected_visits"] for chunk in extracted)
        == len(by_date[old_date]) + len(by_date[new_date]) + 1
    )
    assert staged["rows"]["visits"] == len(by_date[old_date]) + len(by_date[new_date])
    assert pipeline.expected_visits(extracted, staged) == staged["rows"]["visits"]
    audited = pipeline.audit(run_id, extracted, staged)
    assert "reconciliation" not in " ".join(audited["failed_checks"])
    assert audited["verdict"] != Verdict.FAIL.value
