"""Write -> audit -> publish with the real lake: a failed audit publishes nothing, a passed one publishes
the audited rows and their issues."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from letsjobit.devtools import summary
from letsjobit.lake import publish, schema, tables
from letsjobit.quality import audit
from letsjobit.quality.audit import ValidationFailed, Verdict

from .conftest import DATES, good_rows, keys_of, tree_digest, visit, write_staged


def counts(rows):
    return {name: len(table_rows) for name, table_rows in rows.items()}


def write_audit_publish(layout, run_id: str, rows) -> audit.AuditResult:
    """What the DAG does: publish only when the audit returns."""
    write_staged(layout, rows, run_id=run_id, visit_date_in_files=True)
    result = audit.audit_run(run_id, layout, len(rows["visits"]), counts(rows))
    publish.publish_run(run_id, layout, None)
    return result


def published(layout) -> dict[str, pa.Table]:
    return {name: tables.read_table(layout, name) for name in schema.TABLES}


def test_failed_audit_leaves_the_published_lake_as_it_was(layout):
    write_audit_publish(layout, "run_good", good_rows(20))
    before = {name: tree_digest(Path(layout.table_uri(name))) for name in schema.TABLES}
    broken = good_rows(25)
    broken["visits"].append(visit("v00002", DATES[1]))  # a duplicate key: a contract break

    with pytest.raises(ValidationFailed, match="visits.key_unique"):
        write_audit_publish(layout, "run_broken", broken)

    assert {name: tree_digest(Path(layout.table_uri(name))) for name in schema.TABLES} == before
    assert published(layout)["visits"].num_rows == 20


def test_a_systemic_problem_publishes_nothing(layout):
    write_audit_publish(layout, "run_good", good_rows(20))
    before = {name: tree_digest(Path(layout.table_uri(name))) for name in schema.LAKE_TABLES}
    broken = good_rows(100)
    for row in broken["visits"][:30]:
        row["signee_rating"] = 9

    with pytest.raises(ValidationFailed, match=r"visits.signee_rating_in_range: 30 of 100 rows \(30.00%\)"):
        write_audit_publish(layout, "run_rescaled", broken)

    assert {name: tree_digest(Path(layout.table_uri(name))) for name in schema.LAKE_TABLES} == before
    with pytest.raises(publish.PublishError, match="validation gate"):
        publish.publish_run("run_rescaled", layout, None)


def test_a_bad_rating_costs_only_itself_and_a_visit_without_date_is_quarantined_with_its_children(layout):
    rows = good_rows(40)
    rows["visits"][7]["signee_rating"] = 0  # out of range: NULL (unrated), the visit published
    rated_badly = rows["visits"][7]["visit_id"]
    for table in schema.TABLES:
        for row in rows[table]:
            if row["visit_id"] == "v00011":
                row["visit_date"] = None

    result = write_audit_publish(layout, "run_quarantined", rows)

    assert result.verdict is Verdict.QUARANTINED
    lake_tables = published(layout)
    for name in schema.TABLES:
        clean = [r for r in rows[name] if r["visit_id"] != "v00011"]
        assert keys_of(lake_tables[name], name) == keys_of(pa.Table.from_pylist(clean), name)
    ratings = dict(
        zip(
            *(lake_tables["visits"].column(c).to_pylist() for c in ("visit_id", "signee_rating")), strict=True
        )
    )
    assert ratings[rated_badly] is None and ratings["v00008"] == 4
    issues = tables.read_table(layout, "data_issues").to_pylist()
    assert sorted((i["visit_id"], i["check_name"], i["action"]) for i in issues) == [
        (rated_badly, "visits.signee_rating_in_range", "nulled"),
        ("v00011", "visits.date_valid", "quarantined"),
    ]
    # What `make run` prints of it.
    (line,) = summary.validation_lines(json.loads(result.latest_json.read_text()))
    assert (
        "1 field issue(s)" in line
        and "1 record(s) quarantined (5 row(s) with their lines and extraData)" in line
    )
