"""The validation gate on deliberately broken staged runs: exact verdicts, quarantine contents, staging after."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.letsjobit import schema, validate
from include.letsjobit.validate import ValidationFailed, Verdict

from .conftest import (
    DATES,
    RUN_ID,
    extra,
    good_rows,
    keys_of,
    line,
    read_staged,
    tree_digest,
    visit,
    write_staged,
)


def counts(rows: dict[str, list[dict]]) -> dict[str, int]:
    return {name: len(table_rows) for name, table_rows in rows.items()}


def audit(layout, rows, **kwargs):
    kwargs.setdefault("expected_visits", len(rows["visits"]))
    kwargs.setdefault("rows_flattened", counts(rows))
    return validate.audit_run(RUN_ID, layout, **kwargs)


def failed_audit(layout, rows, **kwargs) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        audit(layout, rows, **kwargs)
    return raised.value


def quarantined(result, table: str) -> list[dict]:
    return pq.read_table(result.quarantine_paths[table]).to_pylist()


def test_clean_run_passes_and_writes_summary_report_data_docs_and_latest(layout):
    rows = good_rows(30)
    write_staged(layout, rows)
    staged_before = tree_digest(layout.staging)

    result = audit(layout, rows)

    assert result.verdict is Verdict.PASS
    assert result.failed_checks == []
    assert result.quarantine_paths == {}
    assert not validate.quarantine_dir(layout, RUN_ID).exists()
    assert tree_digest(layout.staging) == staged_before
    summary = json.loads(result.report_json.read_text())
    assert summary["verdict"] == "pass"
    assert summary["counts"]["visits"] == {
        "staged": 30,
        "quarantined": 0,
        "quarantined_earlier": 0,
        "clean": 30,
    }
    assert {c["status"] for c in summary["checks"]} == {"passed"}
    assert json.loads(result.latest_json.read_text()) == summary
    assert result.report_html.read_text().count("passed") >= len(summary["checks"])
    assert result.data_docs_html.is_file()
    assert (result.data_docs_html.parent / "expectations" / "visits.html").is_file()
    # XCom gets paths and counts: both forms are JSON-able.
    assert json.loads(json.dumps(result.as_dict()))["verdict"] == "pass"
    json.dumps(dataclasses.asdict(result), default=str)


def test_files_that_also_hold_visit_date_and_null_date_partition_are_read(layout):
    rows = good_rows(6)
    write_staged(layout, rows, visit_date_in_files=True)

    assert audit(layout, rows).verdict is Verdict.PASS


def test_each_row_level_problem_quarantines_exactly_its_visit_with_dependants(layout):
    rows = good_rows(100)
    bad = {
        "v00001": ("visits.signee_rating_in_range", {"signee_rating": 9}),
        "v00002": ("visits.lat_in_range", {"lat": 91.5}),
        "v00003": ("visits.lng_in_range", {"lng": -180.5}),
        "v00004": ("visits.priority_in_range", {"priority": 11}),
        "v00005": ("visits.total_jobs_in_range", {"total_jobs": -1}),
        "v00006": ("visits.close_date_when_closed", {"closed": True, "close_date": None}),
        "v00007": ("visits.not_closed_and_skipped", {"closed": True, "skipped": True}),
    }
    for row in rows["visits"]:
        if row["visit_id"] in bad:
            row.update(bad[row["visit_id"]][1])
    # A visit without a date: it and its dependants sit in the hive NULL partition.
    for table in schema.TABLES:
        for row in rows[table]:
            if row["visit_id"] == "v00008":
                row["visit_date"] = None
    # An extra data row of an undocumented type goes alone: its line and visit are fine.
    rows["line_extra_data"][20]["type"] = "checkbox"
    odd_extra = keys_of(pa.Table.from_pylist([rows["line_extra_data"][20]]), "line_extra_data")[0]
    bad_visits = {*bad, "v00008"}
    write_staged(layout, rows)

    result = audit(layout, rows)

    assert result.verdict is Verdict.QUARANTINED
    got = {row["visit_id"]: row for row in quarantined(result, "visits")}
    assert set(got) == bad_visits
    for visit_id, (check, values) in bad.items():
        assert got[visit_id]["failed_checks"] == [check]
        assert json.loads(got[visit_id]["failed_values"])[check].items() >= values.items()
        assert got[visit_id]["quarantined_with"] is None
    assert got["v00008"]["failed_checks"] == ["visits.visit_date_not_null"]
    q_lines = quarantined(result, "visit_lines")
    assert {r["visit_id"] for r in q_lines} == bad_visits and len(q_lines) == 2 * len(bad_visits)
    assert {(r["quarantined_with"], tuple(r["failed_checks"])) for r in q_lines} == {("visits", ())}
    q_extras = quarantined(result, "line_extra_data")
    own = [r for r in q_extras if r["failed_checks"]]
    assert [(r["visit_id"], r["line_index"], r["extra_index"]) for r in own] == [odd_extra]
    assert own[0]["failed_checks"] == ["line_extra_data.type_documented"]
    assert json.loads(own[0]["failed_values"]) == {"line_extra_data.type_documented": {"type": "checkbox"}}
    assert {r["visit_id"] for r in q_extras if not r["failed_checks"]} == bad_visits
    # What stays staged is exactly the good rows.
    for table in schema.TABLES:
        expected = [r for r in rows[table] if r["visit_id"] not in bad_visits]
        if table == "line_extra_data":
            expected = [r for r in expected if r["type"] != "checkbox"]
        assert keys_of(read_staged(layout, table), table) == keys_of(pa.Table.from_pylist(expected), table)
    assert not (layout.staging / RUN_ID / "visits" / "visit_date=__HIVE_DEFAULT_PARTITION__").exists()
    assert result.counts["visits"] == {"staged": 100, "quarantined": 8, "quarantined_earlier": 0, "clean": 92}
    assert result.counts["line_extra_data"]["quarantined"] == 2 * 8 + 1
    statuses = {c.name: c.status for c in result.checks}
    assert statuses["visits.signee_rating_in_range"] == "quarantined"
    assert statuses["visits.quarantine_share"] == "passed"


def test_reaudit_of_a_quarantined_run_changes_nothing_and_still_reconciles(layout):
    rows = good_rows(40)
    rows["visits"][5]["signee_rating"] = 6
    write_staged(layout, rows)
    first = audit(layout, rows)
    staged_after_first = tree_digest(layout.staging)
    quarantine_after_first = quarantined(first, "visits")
    # What an audit that crashed before swapping its rewrites in would have left behind.
    leftover = next((layout.staging / RUN_ID / "visits").rglob("part-*.parquet"))
    leftover.with_name(f".{leftover.name}{validate.REWRITE_SUFFIX}").write_bytes(b"half written")

    second = audit(layout, rows)

    assert second.verdict is Verdict.QUARANTINED
    assert second.failed_checks == []
    assert tree_digest(layout.staging) == staged_after_first
    assert quarantined(second, "visits") == quarantine_after_first
    assert second.counts["visits"] == {"staged": 39, "quarantined": 1, "quarantined_earlier": 1, "clean": 39}
    rating = next(c for c in second.checks if c.name == "visits.signee_rating_in_range")
    assert (rating.status, rating.unexpected_count) == ("quarantined", 1)


def test_row_problems_above_threshold_fail_and_leave_staging_untouched(layout):
    rows = good_rows(20)
    for row in rows["visits"][:2]:
        row["lat"] = -95.0  # 10% of the visits, above the 5% default
    write_staged(layout, rows)
    staged_before = tree_digest(layout.staging)

    error = failed_audit(layout, rows)

    assert error.result.failed_checks == ["visits.lat_in_range"]
    assert "visits.lat_in_range: 2 of 20 rows (10.00%)" in str(error)
    assert tree_digest(layout.staging) == staged_before
    assert not validate.quarantine_dir(layout, RUN_ID).exists()
    assert json.loads(error.result.report_json.read_text())["verdict"] == "fail"
    assert json.loads(error.result.latest_json.read_text())["verdict"] == "fail"


def test_thresholds_are_configurable_per_check_and_overall(layout):
    rows = good_rows(20)
    for row in rows["visits"][:2]:
        row["lat"] = -95.0
    write_staged(layout, rows)

    error = failed_audit(
        layout,
        rows,
        thresholds=validate.Thresholds(per_check={"visits.lat_in_range": 0.2}, quarantine_share=0.05),
    )

    assert error.result.failed_checks == [
        "visits.quarantine_share",
        "visit_lines.quarantine_share",
        "line_extra_data.quarantine_share",
    ]
    with pytest.raises(ValueError, match="visits.no_such_check"):
        validate.Thresholds(per_check={"visits.no_such_check": 0.1})


def test_a_small_run_is_judged_over_the_floor_so_one_bad_visit_is_quarantined_not_fatal(layout):
    """A window of two visits, one closed and skipped: 50% of the table, but one record. Over a floor of
    100 rows it is a 1% problem: quarantined, the other visit published. Without the floor it fails."""
    rows = good_rows(2)
    rows["visits"][0].update(closed=True, skipped=True)
    write_staged(layout, rows)

    strict = failed_audit(layout, rows)
    assert "visits.not_closed_and_skipped: 1 of 2 rows (50.00%)" in str(strict)
    result = audit(layout, rows, thresholds=validate.Thresholds(min_rows=100))

    assert result.verdict is Verdict.QUARANTINED
    assert [row["visit_id"] for row in quarantined(result, "visits")] == [rows["visits"][0]["visit_id"]]
    summary = json.loads(result.report_json.read_text())
    check = next(c for c in summary["checks"] if c["name"] == "visits.not_closed_and_skipped")
    assert "1 of 2 rows (1.00%, judged over 100 rows" in check["detail"]
    assert summary["thresholds"]["min_rows"] == 100


def test_the_floor_does_not_hide_a_large_share_of_a_large_run(layout):
    rows = good_rows(200)
    for row in rows["visits"][:20]:
        row["lat"] = -95.0  # 10% of 200 rows: above 5% over the true count, as the floor is below it
    write_staged(layout, rows)

    error = failed_audit(layout, rows, thresholds=validate.Thresholds(min_rows=100))

    assert "visits.lat_in_range" in error.result.failed_checks


def test_duplicate_keys_fail_the_contract(layout):
    rows = good_rows(10)
    rows["visits"].append(visit("v00003", DATES[2]))  # same visit in another partition
    rows["visit_lines"].append(line("v00004", 0, DATES[1]))
    write_staged(layout, rows)
    staged_before = tree_digest(layout.staging)

    error = failed_audit(layout, rows, expected_visits=11)

    assert error.result.failed_checks == ["visits.key_unique", "visit_lines.key_unique"]
    assert "v00003" in str(error)
    assert tree_digest(layout.staging) == staged_before


def test_orphan_lines_and_extra_data_fail_the_contract(layout):
    rows = good_rows(10)
    rows["visit_lines"].append(line("ghost", 0, DATES[0]))
    rows["line_extra_data"].append(extra("v00001", 7, 0, DATES[1]))
    write_staged(layout, rows)

    error = failed_audit(layout, rows)

    assert error.result.failed_checks == ["visit_lines.visit_exists", "line_extra_data.line_exists"]


def test_line_in_another_date_partition_than_its_visit_fails(layout):
    rows = good_rows(6)
    rows["visit_lines"][0]["visit_date"] = DATES[2]
    write_staged(layout, rows)

    error = failed_audit(layout, rows)

    assert error.result.failed_checks == ["visit_lines.visit_date_matches_visit"]


def test_missing_column_is_a_schema_break_and_nothing_else_is_misreported(layout):
    rows = good_rows(10)
    write_staged(
        layout, rows, schemas={"visits": schema.VISITS.remove(schema.VISITS.get_field_index("signee_rating"))}
    )

    error = failed_audit(layout, rows)

    assert error.result.failed_checks == ["schema.visits"]
    assert "missing column signee_rating" in str(error)
    statuses = {c.name: c.status for c in error.result.checks}
    assert statuses["visits.key_unique"] == "skipped"
    assert statuses["visit_lines.visit_exists"] == "skipped"
    assert statuses["visit_lines.key_unique"] == "passed"


def test_changed_types_are_a_schema_break(layout):
    rows = good_rows(10)
    for row in rows["visits"]:
        row["priority"] = str(row["priority"])
    visits = schema.VISITS.set(schema.VISITS.get_field_index("priority"), pa.field("priority", pa.string()))
    lines = schema.VISIT_LINES.set(
        schema.VISIT_LINES.get_field_index("line_index"), pa.field("line_index", pa.int64())
    )
    write_staged(layout, rows, schemas={"visits": visits, "visit_lines": lines})

    error = failed_audit(layout, rows)

    assert error.result.failed_checks == ["schema.visits", "schema.visit_lines"]
    assert "column priority is string, expected int64" in str(error)
    assert "column line_index is int64, expected int32" in str(error)


def test_count_mismatches_fail_reconciliation(layout):
    rows = good_rows(10)
    write_staged(layout, rows)
    flattened = counts(rows) | {"visit_lines": 21, "rejects": 3}

    error = failed_audit(layout, rows, expected_visits=12, rows_flattened=flattened)

    assert error.result.failed_checks == ["visits.rows_match_api", "visit_lines.rows_match_flattened"]
    assert "visits.rows_match_api: 10 rows, expected 12" in str(error)


def test_every_failed_check_is_named_at_once(layout):
    rows = good_rows(20)
    rows["visits"].append(visit("v00001", DATES[1]))
    for row in rows["visits"][:3]:
        row["signee_rating"] = 8
    write_staged(layout, rows)

    error = failed_audit(layout, rows, expected_visits=20)

    assert error.result.failed_checks == [
        "visits.key_unique",
        "visits.signee_rating_in_range",
        "visits.rows_match_api",
    ]
    for name in error.result.failed_checks:
        assert name in str(error)


def test_reconciliation_is_skipped_when_the_run_gives_no_counts(layout):
    rows = good_rows(5)
    write_staged(layout, rows)

    result = validate.audit_run(RUN_ID, layout, expected_visits=None)

    statuses = {c.name: c.status for c in result.checks}
    assert statuses["visits.rows_match_api"] == "skipped"
    assert statuses["visit_lines.rows_match_flattened"] == "skipped"
    assert result.verdict is Verdict.PASS


def test_importing_the_gate_does_not_import_great_expectations_or_pandas():
    code = "import sys, include.letsjobit.validate; print(sorted(m for m in ('great_expectations', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_run_without_extra_data_passes(layout):
    rows = good_rows(5, extras_per_line=0)
    write_staged(layout, rows)

    result = audit(layout, rows)

    assert result.verdict is Verdict.PASS
    assert result.counts["line_extra_data"]["staged"] == 0
