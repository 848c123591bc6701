"""Write -> audit -> publish with the real lake: a failed audit publishes nothing, a quarantine publishes clean rows."""

from __future__ import annotations

import pyarrow as pa
import pytest

from include.letsjobit import lake, schema, validate
from include.letsjobit.validate import ValidationFailed, Verdict

from .conftest import DATES, good_rows, keys_of, tree_digest, visit, write_staged


def counts(rows):
    return {name: len(table_rows) for name, table_rows in rows.items()}


def write_audit_publish(layout, run_id: str, rows) -> validate.AuditResult:
    """What the DAG does: publish only when the audit returns."""
    write_staged(layout, rows, run_id=run_id, visit_date_in_files=True)
    result = validate.audit_run(run_id, layout, len(rows["visits"]), counts(rows))
    lake.publish_run(run_id, layout, None)
    return result


def published(layout) -> dict[str, pa.Table]:
    return {name: lake.read_table(layout.table(name)) for name in schema.TABLES}


def test_failed_audit_leaves_the_published_lake_as_it_was(layout):
    write_audit_publish(layout, "run_good", good_rows(20))
    before = {name: tree_digest(layout.table(name)) for name in schema.TABLES}
    broken = good_rows(25)
    broken["visits"].append(visit("v00002", DATES[1]))  # a duplicate key: a contract break

    with pytest.raises(ValidationFailed, match="visits.key_unique"):
        write_audit_publish(layout, "run_broken", broken)

    assert {name: tree_digest(layout.table(name)) for name in schema.TABLES} == before
    assert published(layout)["visits"].num_rows == 20


def test_quarantined_run_publishes_exactly_the_clean_rows_without_orphans(layout):
    rows = good_rows(40)
    rows["visits"][7]["signee_rating"] = 0  # out of range: the flattener should have made it NULL
    bad_visit = rows["visits"][7]["visit_id"]

    result = write_audit_publish(layout, "run_quarantined", rows)

    assert result.verdict is Verdict.QUARANTINED
    lake_tables = published(layout)
    for name in schema.TABLES:
        clean = [r for r in rows[name] if r["visit_id"] != bad_visit]
        assert keys_of(lake_tables[name], name) == keys_of(pa.Table.from_pylist(clean), name)
