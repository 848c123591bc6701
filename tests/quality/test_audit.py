"""The validation gate on deliberately broken staged runs: exact issue rows, verdicts, quarantine, audited output."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from letsjobit import config
from letsjobit.lake import schema
from letsjobit.quality import audit
from letsjobit.quality.audit import Thresholds, ValidationFailed, Verdict

from .conftest import (
    DATES,
    RUN_ID,
    extra,
    flattener_issue,
    good_rows,
    keys_of,
    line,
    read_audited,
    read_staged,
    tree_digest,
    visit,
    write_staged,
)

ROOT = Path(__file__).resolve().parents[2]
TRUE_SHARES = Thresholds(min_rows=0)  # shares over the table's own rows, however small the test run


def counts(rows: dict[str, list[dict]]) -> dict[str, int]:
    return {name: len(table_rows) for name, table_rows in rows.items() if name in schema.TABLES}


def run_audit(layout, rows, **kwargs):
    kwargs.setdefault("expected_visits", len(rows["visits"]))
    kwargs.setdefault("rows_flattened", counts(rows))
    return audit.audit_run(RUN_ID, layout, **kwargs)


def failed_audit(layout, rows, **kwargs) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        run_audit(layout, rows, **kwargs)
    return raised.value


def quarantined(result, table: str) -> list[dict]:
    return pq.read_table(result.quarantine_paths[table]).to_pylist()


def issue_rows(layout) -> list[tuple]:
    """The audited issues as (table, keys, field, raw value, check, severity, action), sorted."""
    rows = read_audited(layout, "data_issues").to_pylist()
    return sorted(
        (
            (r["table_name"], r["visit_id"], r["line_index"], r["extra_index"], r["field"], r["raw_value"],
             r["check_name"], r["severity"], r["action"])
            for r in rows
        ),
        key=repr,
    )  # fmt: skip


def published(layout, table: str) -> dict[tuple, dict]:
    """The audited rows of a table (what publishing takes) by key."""
    return {tuple(r[c] for c in schema.KEYS[table]): r for r in read_audited(layout, table).to_pylist()}


def test_clean_run_passes_links_the_staged_files_and_writes_summary_report_data_docs_and_latest(layout):
    rows = good_rows(30)
    write_staged(layout, rows)
    staged_before = tree_digest(layout.staging / RUN_ID)

    result = run_audit(layout, rows)

    assert result.verdict is Verdict.PASS
    assert result.failed_checks == [] and result.field_issues == 0 and result.quarantined_records == 0
    assert result.quarantine_paths == {}
    assert not layout.quarantine_dir(RUN_ID).exists()
    staged_files = sorted((layout.staging / RUN_ID / "visits").rglob("*.parquet"))
    audited_files = sorted((layout.audited(RUN_ID) / "visits").rglob("*.parquet"))
    assert [p.relative_to(layout.audited(RUN_ID)) for p in audited_files] == [
        p.relative_to(layout.staging / RUN_ID) for p in staged_files
    ]
    assert all(a.stat().st_ino == s.stat().st_ino for a, s in zip(audited_files, staged_files, strict=True))
    assert read_audited(layout, "data_issues").num_rows == 0
    summary = json.loads(result.report_json.read_text())
    assert summary["verdict"] == "pass"
    assert summary["counts"]["visits"] == {"staged": 30, "quarantined": 0, "clean": 30, "values_nulled": 0}
    assert summary["issues"] == {} and summary["warnings"] == []
    assert summary["unknown_values"] == {"visits.doc_type_known": {}, "line_extra_data.type_documented": {}}
    assert {c["status"] for c in summary["checks"]} == {"passed"}
    assert json.loads(result.latest_json.read_text()) == summary
    assert result.report_html.read_text().count("passed") >= len(summary["checks"])
    assert result.data_docs_html.is_file()
    assert (result.data_docs_html.parent / "expectations" / "visits.html").is_file()
    # XCom gets paths and counts: both forms are JSON-able.
    assert json.loads(json.dumps(result.as_dict()))["verdict"] == "pass"
    json.dumps(dataclasses.asdict(result), default=str)
    digest = tree_digest(layout.staging / RUN_ID)
    assert {k: v for k, v in digest.items() if not k.startswith("_audited")} == staged_before


def test_files_that_also_hold_visit_date_and_null_date_partition_are_read(layout):
    rows = good_rows(6)
    write_staged(layout, rows, visit_date_in_files=True)

    assert run_audit(layout, rows).verdict is Verdict.PASS


FIELD_PROBLEMS = {
    # visit: (changed values, field, raw value, check, action)
    "v00001": ({"signee_rating": 9}, "signeeRating", "9", "visits.signee_rating_in_range", "nulled"),
    "v00002": ({"lat": 91.5}, "lat", "91.5", "visits.lat_in_range", "nulled"),
    "v00003": ({"lng": -180.5}, "lng", "-180.5", "visits.lng_in_range", "nulled"),
    "v00004": ({"priority": 11}, "priority", "11", "visits.priority_in_range", "nulled"),
    "v00005": ({"total_jobs": -1}, "totalJobs", "-1", "visits.total_jobs_in_range", "nulled"),
    "v00006": ({"duration": -5}, "duration", "-5", "visits.duration_in_range", "nulled"),
    "v00007": ({"doc_type": "SURVEY"}, "docType", "SURVEY", "visits.doc_type_known", "kept"),
    "v00008": (
        {"closed": True, "close_date": None}, "closeDate", '{"closeDate":null,"closed":true}',
        "visits.close_date_when_closed", "kept",
    ),
    "v00009": (
        {"closed": True, "skipped": True}, "skipped", '{"closed":true,"skipped":true}',
        "visits.not_closed_and_skipped", "kept",
    ),
}  # fmt: skip


def test_each_field_problem_is_one_issue_row_and_its_visit_lines_and_extra_data_are_published(layout):
    rows = good_rows(100)
    by_id = {row["visit_id"]: row for row in rows["visits"]}
    for visit_id, (values, *_) in FIELD_PROBLEMS.items():
        by_id[visit_id].update(values)
    rows["line_extra_data"][20]["type"] = "checkbox"  # a new input type: kept as sent
    odd_extra = rows["line_extra_data"][20]
    write_staged(layout, rows)
    staged_before = tree_digest(layout.staging / RUN_ID)

    result = run_audit(layout, rows)

    assert result.verdict is Verdict.PASS  # nothing quarantined: every record is published
    assert issue_rows(layout) == sorted(
        [
            ("visits", visit_id, None, None, field, raw, check, "field", action)
            for visit_id, (_, field, raw, check, action) in FIELD_PROBLEMS.items()
        ]
        + [
            ("line_extra_data", odd_extra["visit_id"], odd_extra["line_index"], odd_extra["extra_index"],
             "type", "checkbox", "line_extra_data.type_documented", "field", "kept"),
        ],
        key=repr,
    )  # fmt: skip
    visits = published(layout, "visits")
    assert len(visits) == 100 and len(published(layout, "visit_lines")) == 200
    assert len(published(layout, "line_extra_data")) == 200
    nulled = {"v00001": "signee_rating", "v00002": "lat", "v00003": "lng", "v00004": "priority",
              "v00005": "total_jobs", "v00006": "duration"}  # fmt: skip
    for visit_id, column in nulled.items():
        assert visits[(visit_id,)][column] is None
        assert visits[(visit_id,)]["erp_id"] == f"erp-{visit_id}"  # the rest of the record as staged
    assert visits[("v00007",)]["doc_type"] == "SURVEY"
    assert (visits[("v00008",)]["closed"], visits[("v00008",)]["close_date"]) == (True, None)
    assert (visits[("v00009",)]["closed"], visits[("v00009",)]["skipped"]) == (True, True)
    assert visits[("v00010",)]["signee_rating"] == 4
    assert result.counts["visits"] == {"staged": 100, "quarantined": 0, "clean": 100, "values_nulled": 6}
    assert result.field_issues == 10 and result.quarantined_records == 0
    assert result.unknown_values == {
        "visits.doc_type_known": {"SURVEY": 1},
        "line_extra_data.type_documented": {"checkbox": 1},
    }
    statuses = {c.name: c.status for c in result.checks}
    assert statuses["visits.signee_rating_in_range"] == "nulled"
    assert statuses["visits.not_closed_and_skipped"] == "kept"
    # The staging area is never changed: the audited output holds the NULLs.
    assert read_staged(layout, "visits").filter(pa.compute.equal(read_staged(layout, "visits")["visit_id"],
                                                                 "v00001"))["signee_rating"].to_pylist() == [9]  # fmt: skip
    digest = tree_digest(layout.staging / RUN_ID)
    assert {k: v for k, v in digest.items() if not k.startswith("_audited")} == staged_before


def test_record_level_quarantine_happens_only_for_a_missing_date_and_orphans(layout):
    rows = good_rows(100)
    for table in schema.TABLES:  # a visit without a date: it and its dependants sit in the NULL partition
        for row in rows[table]:
            if row["visit_id"] == "v00008":
                row["visit_date"] = None
    rows["visit_lines"].append(line("ghost", 0, DATES[0]))  # its visit is not in the run
    rows["line_extra_data"].append(extra("ghost", 0, 0, DATES[0]))  # taken along with its line
    rows["line_extra_data"].append(extra("v00001", 7, 0, DATES[1]))  # its line is not in the run
    misplaced = rows["visit_lines"][10]  # v00005's first line, in another partition than its visit
    misplaced["visit_date"] = DATES[0]
    for row in rows["visits"][20:25]:
        row["signee_rating"] = 7  # field problems cost nothing
    write_staged(layout, rows)

    result = run_audit(layout, rows)

    assert result.verdict is Verdict.QUARANTINED
    record_issues = [r for r in issue_rows(layout) if r[7] == "record"]
    assert record_issues == sorted(
        [
            ("visits", "v00008", None, None, "date", None, "visits.date_valid", "record", "quarantined"),
            ("visit_lines", "ghost", 0, None, "lines", "ghost", "visit_lines.visit_exists", "record", "quarantined"),
            ("visit_lines", "v00005", 0, None, "date", DATES[0].isoformat(),
             "visit_lines.visit_date_matches_visit", "record", "quarantined"),
            ("line_extra_data", "v00001", 7, 0, "extraData", '{"line_index":7,"visit_id":"v00001"}',
             "line_extra_data.line_exists", "record", "quarantined"),
        ],
        key=repr,
    )  # fmt: skip
    assert {row["visit_id"] for row in quarantined(result, "visits")} == {"v00008"}
    got = quarantined(result, "visits")[0]
    assert got["failed_checks"] == ["visits.date_valid"] and got["quarantined_with"] is None
    q_lines = {(r["visit_id"], r["line_index"]): r for r in quarantined(result, "visit_lines")}
    assert set(q_lines) == {("v00008", 0), ("v00008", 1), ("ghost", 0), ("v00005", 0)}
    assert (
        q_lines[("v00008", 0)]["quarantined_with"] == "visits"
        and q_lines[("v00008", 0)]["failed_checks"] == []
    )
    assert q_lines[("ghost", 0)]["failed_checks"] == ["visit_lines.visit_exists"]
    q_extras = {(r["visit_id"], r["line_index"]) for r in quarantined(result, "line_extra_data")}
    assert q_extras == {("v00008", 0), ("v00008", 1), ("ghost", 0), ("v00001", 7), ("v00005", 0)}
    # What is published is everything else, the visits with out-of-range ratings included.
    kept_out = {
        "visits": {("v00008",)},
        "visit_lines": {("v00008", 0), ("v00008", 1), ("ghost", 0), ("v00005", 0)},
        "line_extra_data": {
            ("v00008", 0, 0),
            ("v00008", 1, 0),
            ("ghost", 0, 0),
            ("v00001", 7, 0),
            ("v00005", 0, 0),
        },
    }
    for table in schema.TABLES:
        audited = set(keys_of(read_audited(layout, table), table))
        staged = set(keys_of(read_staged(layout, table), table))
        assert staged - audited == kept_out[table] and audited <= staged
    assert not (layout.audited(RUN_ID) / "visits" / "visit_date=__HIVE_DEFAULT_PARTITION__").exists()
    assert result.counts["visits"] == {"staged": 100, "quarantined": 1, "clean": 99, "values_nulled": 5}
    assert result.quarantined_records == 4 and result.field_issues == 5


def test_the_flatteners_issues_are_published_with_the_gates_and_a_bad_date_is_one_row(layout):
    rows = good_rows(100)
    for table in schema.TABLES:
        for row in rows[table]:
            if row["visit_id"] == "v00004":
                row["visit_date"] = None
    rows["visits"][5]["signee_rating"] = 9
    staged_issues = [
        flattener_issue("v00002", "visits.priority_parses", "urgent"),
        flattener_issue("v00004", "visits.date_valid", "2026-02-30", visit_date=DATES[1]),
        flattener_issue(None, "visits.id_present", '{"docNo":"H-1"}', visit_date=None),
    ]
    write_staged(layout, rows | {"data_issues": staged_issues})

    result = run_audit(layout, rows)

    assert [(r[1], r[4], r[5], r[6], r[8]) for r in issue_rows(layout)] == sorted(
        [
            ("v00002", "priority", "urgent", "visits.priority_parses", "nulled"),
            (
                "v00004",
                "date",
                "2026-02-30",
                "visits.date_valid",
                "quarantined",
            ),  # the flattener's, not twice
            (None, "_id", '{"docNo":"H-1"}', "visits.id_present", "quarantined"),
            ("v00005", "signeeRating", "9", "visits.signee_rating_in_range", "nulled"),
        ],
        key=repr,
    )
    assert {r["visit_id"] for r in quarantined(result, "visits")} == {"v00004"}
    issues = {(r["check_name"], r["visit_date"]) for r in read_audited(layout, "data_issues").to_pylist()}
    assert ("visits.date_valid", DATES[1]) in issues and ("visits.id_present", None) in issues
    assert result.issues["visits.date_valid"]["count"] == 1
    priority = result.issues["visits.priority_parses"]
    assert priority == {
        "table": "visits", "field": "priority", "severity": "field", "action": "nulled", "count": 1,
        "share": priority["share"], "threshold": 0.05, "status": "nulled",
    }  # fmt: skip
    assert priority["share"] == pytest.approx(1 / 101)  # the visit that never landed (no _id) counts


def test_a_systemic_share_fails_the_run_naming_check_share_threshold_and_examples_and_nothing_is_written(
    layout,
):
    rows = good_rows(100)
    for row in rows["visits"][:30]:
        row["signee_rating"] = 9  # the API switched its rating scale
    write_staged(layout, rows)
    staged_before = tree_digest(layout.staging)

    error = failed_audit(layout, rows)

    assert error.result.failed_checks == ["visits.signee_rating_in_range"]
    assert (
        "visits.signee_rating_in_range: 30 of 100 rows (30.00%), above the threshold of 5.00%, e.g. ['9']"
        in str(error)
    )
    assert tree_digest(layout.staging) == staged_before
    assert not layout.audited(RUN_ID).exists()
    assert not layout.quarantine_dir(RUN_ID).exists()
    summary = json.loads(error.result.report_json.read_text())
    assert summary["verdict"] == "fail" and summary["issues"]["visits.signee_rating_in_range"]["count"] == 30
    assert json.loads(error.result.latest_json.read_text())["verdict"] == "fail"


def test_the_flatteners_issues_count_towards_their_threshold(layout):
    rows = good_rows(100)
    write_staged(
        layout,
        rows
        | {
            "data_issues": [
                flattener_issue(f"v{n:05d}", "visits.priority_parses", "urgent") for n in range(8)
            ]
        },
    )

    error = failed_audit(layout, rows)

    assert error.result.failed_checks == ["visits.priority_parses"]
    assert "8 of 100 rows (8.00%), above the threshold of 5.00%, e.g. ['urgent']" in str(error)


def test_unknown_values_never_fail_the_run_and_are_reported_and_warned(layout):
    rows = good_rows(100)
    for n, row in enumerate(rows["visits"][:40]):
        row["doc_type"] = "SURVEY" if n % 2 else "RECALL"
    for row in rows["line_extra_data"][:150]:
        row["type"] = "checkbox"
    write_staged(layout, rows)

    result = run_audit(layout, rows)

    assert result.verdict is Verdict.PASS
    assert result.unknown_values == {
        "visits.doc_type_known": {"SURVEY": 20, "RECALL": 20},
        "line_extra_data.type_documented": {"checkbox": 150},
    }
    assert [w["check"] for w in result.warnings] == [
        "visits.doc_type_known",
        "line_extra_data.type_documented",
    ]
    assert len(published(layout, "line_extra_data")) == 200


def test_a_share_above_the_warning_level_within_its_threshold_is_a_warning(layout):
    rows = good_rows(200)
    for row in rows["visits"][:6]:
        row["lat"] = 95.0  # 3%: above the 1% warning share, within the 5% threshold
    rows["visits"][10]["lng"] = 190.0  # 0.5%: no warning
    write_staged(layout, rows)

    result = run_audit(layout, rows)

    assert result.verdict is Verdict.PASS
    (warning,) = result.warnings
    assert (warning["check"], warning["count"], warning["share"], warning["threshold"]) == (
        "visits.lat_in_range", 6, 0.03, 0.05,
    )  # fmt: skip
    assert json.loads(result.report_json.read_text())["warnings"][0]["check"] == "visits.lat_in_range"


def test_thresholds_are_configurable_per_check_and_overall(layout):
    rows = good_rows(100)
    for row in rows["visits"][:30]:
        row["signee_rating"] = 9
    for table in schema.TABLES:
        for row in rows[table]:
            if row["visit_id"] in {"v00050", "v00051", "v00052"}:
                row["visit_date"] = None
    write_staged(layout, rows)

    relaxed = run_audit(layout, rows, thresholds=Thresholds(per_check={"visits.signee_rating_in_range": 0.5}))
    never = run_audit(layout, rows, thresholds=Thresholds(per_check={"visits.signee_rating_in_range": None}))
    error = failed_audit(
        layout,
        rows,
        thresholds=Thresholds(per_check={"visits.signee_rating_in_range": None}, quarantine_share=0.02),
    )

    assert relaxed.verdict is never.verdict is Verdict.QUARANTINED
    assert relaxed.counts["visits"]["values_nulled"] == 30
    assert error.result.failed_checks == [
        "visits.quarantine_share", "visit_lines.quarantine_share", "line_extra_data.quarantine_share",
    ]  # fmt: skip
    stricter = failed_audit(layout, rows, thresholds=Thresholds(per_check={"visits.date_valid": 0.01}))
    assert stricter.result.failed_checks == ["visits.date_valid", "visits.signee_rating_in_range"]
    with pytest.raises(ValueError, match="visits.no_such_check"):
        Thresholds(per_check={"visits.no_such_check": 0.1})
    with pytest.raises(ValueError, match="visits.key_unique"):
        Thresholds(per_check={"visits.key_unique": 0.1})  # a contract has no threshold


def test_the_one_default_floor_judges_a_small_run_so_one_bad_record_is_quarantined_not_fatal(layout):
    """A window of two visits, one without a date: 50% of the table, but one record. Over the default
    floor of 100 rows it is a 1% problem: quarantined, the other visit published. Without it, it fails."""
    rows = good_rows(2)
    for table in schema.TABLES:
        for row in rows[table]:
            if row["visit_id"] == "v00000":
                row["visit_date"] = None
    write_staged(layout, rows)

    strict = failed_audit(layout, rows, thresholds=TRUE_SHARES)
    assert "visits.date_valid: 1 of 2 rows (50.00%)" in str(strict)
    result = run_audit(layout, rows)

    assert Thresholds().min_rows == 100
    assert result.verdict is Verdict.QUARANTINED
    assert [row["visit_id"] for row in quarantined(result, "visits")] == ["v00000"]
    summary = json.loads(result.report_json.read_text())
    check = next(c for c in summary["checks"] if c["name"] == "visits.date_valid")
    assert "1 of 2 rows (1.00%, judged over 100 rows" in check["detail"]
    assert summary["thresholds"]["min_rows"] == 100


def test_the_floor_does_not_hide_a_large_share_of_a_large_run(layout):
    rows = good_rows(200)
    for row in rows["visits"][:20]:
        row["lat"] = -95.0  # 10% of 200 rows: above 5% over the true count, as the floor is below it
    write_staged(layout, rows)

    error = failed_audit(layout, rows)

    assert "visits.lat_in_range" in error.result.failed_checks


def test_reaudit_is_deterministic_and_never_sees_its_own_output(layout):
    rows = good_rows(100)
    rows["visits"][5]["signee_rating"] = 6
    for table in schema.TABLES:
        for row in rows[table]:
            if row["visit_id"] == "v00007":
                row["visit_date"] = None
    write_staged(layout, rows)
    first = run_audit(layout, rows)
    audited_after_first = tree_digest(layout.audited(RUN_ID))
    quarantine_after_first = tree_digest(layout.quarantine_dir(RUN_ID))
    # What an audit that crashed while building its output would have left behind.
    (layout.staging / RUN_ID / f"{config.AUDIT_SCRATCH_PREFIX}0dead000" / "visits").mkdir(parents=True)

    second = run_audit(layout, rows)

    assert second.verdict is first.verdict is Verdict.QUARANTINED
    assert tree_digest(layout.audited(RUN_ID)) == audited_after_first
    assert tree_digest(layout.quarantine_dir(RUN_ID)) == quarantine_after_first
    assert second.counts == first.counts
    assert second.counts["visits"] == {"staged": 100, "quarantined": 1, "clean": 99, "values_nulled": 1}
    rating = next(c for c in second.checks if c.name == "visits.signee_rating_in_range")
    assert (rating.status, rating.unexpected_count) == ("nulled", 1)
    assert not list((layout.staging / RUN_ID).glob(f"{config.AUDIT_SCRATCH_PREFIX}*"))


def test_a_failed_reaudit_withdraws_the_earlier_audited_output(layout):
    rows = good_rows(100)
    for row in rows["visits"][:3]:
        row["signee_rating"] = 9
    write_staged(layout, rows)
    run_audit(layout, rows)
    assert layout.audited(RUN_ID).is_dir()

    failed_audit(layout, rows, thresholds=Thresholds(per_check={"visits.signee_rating_in_range": 0.01}))

    assert not layout.audited(RUN_ID).exists()


CRASH_SCRIPT = """
import os, sys
from pathlib import Path
from letsjobit.quality import audit, staged
from letsjobit.config import DataLayout

calls = {"n": 0}
original = staged._rewrite

def dies_on_second_rewrite(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == 2:
        os._exit(137)
    return original(*args, **kwargs)

staged._rewrite = dies_on_second_rewrite
audit.audit_run(sys.argv[2], DataLayout(Path(sys.argv[1])), expected_visits=None)
print("finished")
"""


def test_an_audit_killed_while_writing_its_output_leaves_nothing_publishable_and_a_rerun_completes(
    layout, tmp_path
):
    rows = good_rows(90)
    for row in rows["visits"][:3]:  # one per date: three visits files to rewrite
        row["priority"] = 0
    write_staged(layout, rows)
    staged_before = tree_digest(layout.staging / RUN_ID)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH_SCRIPT), str(layout.root), RUN_ID],
        capture_output=True, text=True, env=env, timeout=180, cwd=ROOT,
    )  # fmt: skip

    assert done.returncode == 137, done.stderr
    assert not layout.audited(RUN_ID).exists()
    assert list((layout.staging / RUN_ID).glob(f"{config.AUDIT_SCRATCH_PREFIX}*"))  # its scratch
    assert tree_digest(layout.staging / RUN_ID).keys() - staged_before.keys() != set()
    assert {
        k: v for k, v in tree_digest(layout.staging / RUN_ID).items() if k in staged_before
    } == staged_before
    result = audit.audit_run(RUN_ID, layout, expected_visits=None)
    clean = type(layout)(tmp_path / "clean")
    write_staged(clean, rows)
    audit.audit_run(RUN_ID, clean, expected_visits=None)
    assert result.counts["visits"]["values_nulled"] == 3
    assert tree_digest(layout.audited(RUN_ID)) == tree_digest(clean.audited(RUN_ID))


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


def test_a_broken_issues_table_is_a_schema_break(layout):
    rows = good_rows(10)
    issues_schema = schema.DATA_ISSUES.remove(schema.DATA_ISSUES.get_field_index("check_name"))
    write_staged(
        layout,
        rows | {"data_issues": [flattener_issue("v00001", "visits.priority_parses", "urgent")]},
        schemas={"data_issues": issues_schema},
    )

    error = failed_audit(layout, rows)

    assert error.result.failed_checks == ["schema.data_issues"]


def test_count_mismatches_fail_reconciliation(layout):
    rows = good_rows(10)
    write_staged(layout, rows)
    flattened = counts(rows) | {"visit_lines": 21, "data_issues": 3}

    error = failed_audit(layout, rows, expected_visits=12, rows_flattened=flattened)

    assert error.result.failed_checks == ["visits.rows_match_api", "visit_lines.rows_match_flattened"]
    assert "visits.rows_match_api: 10 rows, expected 12" in str(error)


def test_every_failed_check_is_named_at_once(layout):
    rows = good_rows(20)
    rows["visits"].append(visit("v00001", DATES[1]))
    for row in rows["visits"][:3]:
        row["signee_rating"] = 8
    write_staged(layout, rows)

    error = failed_audit(layout, rows, expected_visits=20, thresholds=TRUE_SHARES)

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

    result = audit.audit_run(RUN_ID, layout, expected_visits=None)

    statuses = {c.name: c.status for c in result.checks}
    assert statuses["visits.rows_match_api"] == "skipped"
    assert statuses["visit_lines.rows_match_flattened"] == "skipped"
    assert result.verdict is Verdict.PASS


def test_importing_the_gate_does_not_import_great_expectations_or_pandas():
    code = "import sys, letsjobit.quality.audit; print(sorted(m for m in ('great_expectations', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_run_without_extra_data_passes(layout):
    rows = good_rows(5, extras_per_line=0)
    write_staged(layout, rows)

    result = run_audit(layout, rows)

    assert result.verdict is Verdict.PASS
    assert result.counts["line_extra_data"]["staged"] == 0


def test_issue_rows_carry_the_staged_rows_date_and_fetch_time(layout):
    rows = good_rows(100)
    rows["visits"][4]["lat"] = 500.0
    write_staged(layout, rows)

    run_audit(layout, rows)

    (issue,) = read_audited(layout, "data_issues").to_pylist()
    assert (issue["visit_id"], issue["visit_date"]) == ("v00004", DATES[1])
    assert issue["fetched_at"] == rows["visits"][4]["fetched_at"] and issue["run_id"] == RUN_ID
    assert issue["reason"] == "lat in [-90, 90]" and issue["page_offset"] is None
    assert isinstance(issue["fetched_at"], dt.datetime)
