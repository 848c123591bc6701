"""The gate on a real run: simulator over loopback -> client -> raw pages -> lake staging -> audit -> publish."""

from __future__ import annotations

import pyarrow.parquet as pq

from include.letsjobit import extract, lake, validate
from include.letsjobit.client import ClientSettings, LetsJobItClient
from include.letsjobit.validate import Verdict

# What the simulator's deliberately invalid records become under the quality policy: (check, action).
# Only a visit without a usable date is kept out; every other bad value costs only itself.
EXPECTED = {
    "rating_out_of_range": ("visits.signee_rating_in_range", "nulled"),
    "latitude_out_of_range": ("visits.lat_in_range", "nulled"),
    "longitude_out_of_range": ("visits.lng_in_range", "nulled"),
    "impossible_date": ("visits.date_valid", "quarantined"),
    "priority_not_a_number": ("visits.priority_parses", "nulled"),
    "flag_not_a_flag": ("visits.closed_parses", "nulled"),
    "negative_duration": ("visits.duration_in_range", "nulled"),
    "lines_not_a_list": ("visits.lines_is_list", "quarantined"),  # the visit stays, its lines are recorded
}
QUARANTINED_WHOLE = {"impossible_date"}


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


def test_every_simulated_bad_record_is_one_issue_row_and_only_an_impossible_date_costs_its_visit(
    simulator_factory, layout
):
    sim = simulator_factory(visits=400, bad_record_rate=0.05, bad_record_kinds=tuple(EXPECTED))
    bad_records = dict(sim.store.bad_records)
    assert set(bad_records.values()) <= set(EXPECTED)
    client = client_of(sim, layout)
    extracted = extract.extract_to_raw(client, "sim_run", "full", {}, layout)
    staged = lake.stage_run("sim_run", layout)

    result = validate.audit_run("sim_run", layout, extracted.distinct_visits, staged.rows)
    lake.publish_run("sim_run", layout, None)

    issues = lake.read_table(layout.table("data_issues")).to_pylist()
    assert sorted((i["visit_id"], i["check_name"], i["action"]) for i in issues) == sorted(
        (visit_id, *EXPECTED[kind]) for visit_id, kind in bad_records.items()
    )
    lost = {visit_id for visit_id, kind in bad_records.items() if kind in QUARANTINED_WHOLE}
    assert lost, "the sample should hold an impossible date"
    assert {row["visit_id"] for row in pq.read_table(result.quarantine_paths["visits"]).to_pylist()} == lost
    published = lake.read_table(layout.table("visits"))
    assert set(published.column("visit_id").to_pylist()) == {v["_id"] for v in sim.store.snapshot()} - lost
    expected_lines = sum(
        len(v["lines"])
        for v in sim.store.snapshot()
        if isinstance(v.get("lines"), list) and v["_id"] not in lost
    )
    assert lake.read_table(layout.table("visit_lines")).num_rows == expected_lines
    rating_of = dict(
        zip(*(published.column(c).to_pylist() for c in ("visit_id", "signee_rating")), strict=True)
    )
    for visit_id, kind in bad_records.items():
        if kind == "rating_out_of_range":
            assert rating_of[visit_id] is None  # unrated, still counted as a visit


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
