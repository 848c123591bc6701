"""The gate on a real run: simulator over loopback -> client -> raw pages -> lake staging -> audit -> publish."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from letsjobit.api.client import LetsJobItClient
from letsjobit.api.settings import ClientSettings
from letsjobit.lake import extract, publish, schema, stage, tables
from letsjobit.quality import audit
from letsjobit.quality.audit import Verdict
from letsjobit.simulator.bad_record_kinds import BAD_RECORD_KIND_NAMES
from letsjobit.simulator.expectations import ISSUE_COLUMNS, expected_outcome, issue_sort_key

# The issue row's columns compared with the oracle: its ISSUE_COLUMNS and the partition it lands in.
COMPARED = (*ISSUE_COLUMNS, "visit_date")
FIELDS = {
    "visits": schema.VISIT_FIELDS,
    "visit_lines": schema.LINE_FIELDS,
    "line_extra_data": schema.EXTRA_DATA_FIELDS,
}
COLUMN_OF = {table: {f.api_name: f.column for f in fields} for table, fields in FIELDS.items()}


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


def rows_of(table: pa.Table, columns) -> list[tuple]:
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True), key=issue_sort_key)


def test_every_kind_of_bad_record_is_its_oracle_issue_row_and_only_record_cases_cost_their_visit(
    simulator_factory, layout
):
    sim = simulator_factory(visits=1200, bad_record_rate=0.2, unknown_field_rate=0.05, rate_limit=0)
    bad_records = dict(sim.store.bad_records)
    assert set(bad_records.values()) == set(BAD_RECORD_KIND_NAMES), "the sample lacks some kind"
    expected = expected_outcome(sim.store.snapshot(), bad_records)
    client = client_of(sim, layout)
    extracted = extract.extract_to_raw(client, "sim_run", "full", {}, layout)
    staged = stage.stage_run("sim_run", layout)

    result = audit.audit_run("sim_run", layout, extracted.distinct_visits, staged.rows)
    publish.publish_run("sim_run", layout, None)

    issues = tables.read_table(layout, "data_issues")
    wanted = sorted(((*issue.row(), issue.visit_date) for issue in expected.issues), key=issue_sort_key)
    assert rows_of(issues, COMPARED) == wanted
    assert result.verdict is Verdict.QUARANTINED
    assert result.field_issues == sum(issue.severity == "field" for issue in expected.issues)
    assert result.quarantined_records == sum(issue.severity == "record" for issue in expected.issues)

    lake = {name: tables.read_table(layout, name) for name in schema.TABLES}
    assert {name: table.num_rows for name, table in lake.items()} == expected.row_counts
    assert set(lake["visits"].column("visit_id").to_pylist()) == expected.published
    # Only a visit that cannot be placed is quarantined whole; one without _id never even landed.
    quarantined = pq.read_table(result.quarantine_paths["visits"]).column("visit_id").to_pylist()
    assert set(quarantined) == set(expected.quarantined) - {
        issue.key for issue in expected.issues if issue.visit_id is None
    }
    by_key = {
        name: {tuple(row[c] for c in schema.KEYS[name]): row for row in table.to_pylist()}
        for name, table in lake.items()
    }
    extra_fields = {
        (name, *key, *(None,) * (3 - len(key))): json.loads(row["extra_fields"])
        for name, rows in by_key.items()
        for key, row in rows.items()
        if row["extra_fields"] is not None
    }
    assert extra_fields == expected.extra_fields  # fields the reference does not list, at every level

    # A NULLed value is NULL in its column; an unknown value is kept as sent.
    for issue in expected.issues:
        if issue.severity != "field":
            continue
        keys = (issue.visit_id, issue.line_index, issue.extra_index)[: len(schema.KEYS[issue.table_name])]
        value = by_key[issue.table_name][keys][COLUMN_OF[issue.table_name][issue.field]]
        if issue.action == "nulled":
            assert value is None, issue
        elif issue.check_name in ("visits.doc_type_known", "line_extra_data.type_documented"):
            assert value == issue.raw_value, issue


def test_a_visit_rescheduled_between_two_listings_of_a_window_run_reconciles(
    simulator_factory, layout, monkeypatch
):
    """Chunk A lists the visit under its old date, then it moves, then chunk B lists it under the new one:
    both listings count it, staging keeps it once, and the reconciliation must still balance."""
    from letsjobit.airflow import tasks

    monkeypatch.setenv("LETSJOBIT_DATA_DIR", str(layout.root))
    sim = simulator_factory(visits=300)
    by_date: dict[str, list[str]] = {}
    for record in sim.store.snapshot():
        by_date.setdefault(record["date"], []).append(record["_id"])
    old_date, new_date = sorted(by_date, key=lambda day: -len(by_date[day]))[:2]
    moved = by_date[old_date][0]
    client = client_of(sim, layout)
    run_id = "window_run"
    first = tasks.extract_chunk(client, run_id, {"chunk": "a", "dates": [old_date]})
    sim.store.update(moved, {"date": new_date})
    second = tasks.extract_chunk(client, run_id, {"chunk": "b", "dates": [new_date]})
    extracted = [first, second]
    staged = tasks.stage(run_id)

    assert staged["visits_in_several_parts"] == 1
    assert (
        sum(chunk["expected_visits"] for chunk in extracted)
        == len(by_date[old_date]) + len(by_date[new_date]) + 1
    )
    assert staged["rows"]["visits"] == len(by_date[old_date]) + len(by_date[new_date])
    assert tasks.expected_visits(extracted, staged) == staged["rows"]["visits"]
    audited = tasks.audit(run_id, extracted, staged)
    assert "reconciliation" not in " ".join(audited["failed_checks"])
    assert audited["verdict"] != Verdict.FAIL.value
