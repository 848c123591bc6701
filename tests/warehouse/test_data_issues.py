"""The lake's data issues in the warehouse: marts.fct_data_issues and marts.kpi_data_issues_daily."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

from letsjobit.lake import tables
from letsjobit.warehouse import build as warehouse

from tests.warehouse import lakes
from tests.warehouse.conftest import query, query_dicts

DAY1, DAY2 = date(2026, 11, 1), date(2026, 11, 2)
COLUMNS = [field.name for field in lakes.ISSUES_SCHEMA]


def _issues_of_two_days():
    """Issues of every kind the lake records, over two days and the null partition."""
    first = lakes.visit("v1", DAY1)
    second = lakes.visit("v2", DAY2)
    line = lakes.line(first, 0)
    no_id = {"visit_date": DAY2, "page_offset": 100}
    issues = [
        lakes.issue(first, "visits.signee_rating_in_range", "signeeRating", "9"),
        lakes.issue(first, "visits.lat_in_range", "lat", "200.5"),
        lakes.issue(second, "visits.signee_rating_in_range", "signeeRating", "-1"),
        lakes.issue(second, "visits.priority_parses", "priority", "urgent", reason="not an integer"),
        lakes.issue(
            first, "line_extra_data.type_documented", "type", "week", action="kept",
            line_index=0, extra_index=0, reason="type not documented",
        ),
        lakes.issue(
            first, "line_extra_data.type_documented", "type", "week", action="kept",
            line_index=0, extra_index=1, reason="type not documented",
        ),
        # two records without a usable _id on one page, sent identical: two issues, two records
        lakes.issue(None, "visits.id_present", "_id", '{"docNo": "H-1"}', severity="record",
                    action="quarantined", reason="no _id", **no_id),
        lakes.issue(None, "visits.id_present", "_id", '{"docNo": "H-1"}', severity="record",
                    action="quarantined", reason="no _id", **no_id),
        # a record without a date, from a listing without a date filter: the null partition
        lakes.issue(None, "visits.date_valid", "date", "2026-02-30", severity="record",
                    action="quarantined", reason="not a date", visit_id="v9"),
    ]  # fmt: skip
    return [first, second], [line], issues


def test_every_issue_of_the_lake_is_one_row_of_fct_data_issues_with_a_unique_key(layout):
    visits, lines, issues = _issues_of_two_days()
    lakes.publish(layout, visits, lines, issues=issues)

    warehouse.build(layout)

    rows = query_dicts(layout, "select * from marts.fct_data_issues")
    assert sorted(json.dumps({c: row[c] for c in COLUMNS}, default=str) for row in rows) == sorted(
        json.dumps(issue, default=str) for issue in issues
    )
    assert len({row["issue_id"] for row in rows}) == len(issues)
    assert query(layout, "select fct_data_issues_rows from marts.build_info") == [(len(issues),)]


def test_daily_issues_count_rows_and_distinct_records_per_day_table_field_check_and_action(layout):
    visits, lines, issues = _issues_of_two_days()
    lakes.publish(layout, visits, lines, issues=issues)
    wanted: dict[tuple, dict] = defaultdict(lambda: {"issues": 0, "records": set(), "anonymous": 0})
    for issue in issues:
        group = wanted[
            tuple(issue[c] for c in ("visit_date", "table_name", "field", "check_name", "severity", "action"))
        ]
        group["issues"] += 1
        if issue["visit_id"] is None:
            group["anonymous"] += 1
        else:
            group["records"].add((issue["visit_id"], issue["line_index"], issue["extra_index"]))

    warehouse.build(layout)

    rows = query(
        layout,
        "select visit_date, table_name, field, check_name, severity, action, issues, records "
        "from marts.kpi_data_issues_daily",
    )
    assert {row[:6]: row[6:] for row in rows} == {
        group: (counts["issues"], len(counts["records"]) + counts["anonymous"])
        for group, counts in wanted.items()
    }
    assert (None, "visits", "date", "visits.date_valid", "record", "quarantined") in {row[:6] for row in rows}


def test_a_lake_published_before_issues_were_kept_builds_with_empty_issue_marts(layout):
    lakes.publish(layout, [lakes.visit("v1", DAY1)])
    assert not tables.exists(layout, lakes.ISSUES_TABLE)

    result = warehouse.build(layout)

    assert result.row_counts["fct_data_issues"] == 0 and result.row_counts["kpi_data_issues_daily"] == 0
    assert query(layout, "select count(*) from marts.fct_visits") == [(1,)]
    columns = [row[0] for row in query(layout, "describe marts.fct_data_issues")]
    assert columns[0] == "issue_id" and columns[1:] == COLUMNS


def test_an_incremental_build_shows_the_issues_the_lake_now_has(layout):
    visits, lines, issues = _issues_of_two_days()
    lakes.publish(layout, visits, lines, issues=issues)
    warehouse.build(layout)
    # DAY1 is republished: v1's rating is fixed at the source, its other issues remain
    remaining = [
        issue for issue in issues if issue["visit_date"] == DAY1 and issue["field"] != "signeeRating"
    ]
    changed = lakes.publish(layout, [visits[0]], lines, issues=remaining, dates=[DAY1])

    result = warehouse.build(layout, changed_dates=changed)

    assert result.mode == "incremental"
    shown = query(
        layout, "select check_name, visit_id from marts.fct_data_issues where visit_date = ?", [DAY1]
    )
    assert sorted(shown) == sorted((issue["check_name"], issue["visit_id"]) for issue in remaining)
    assert query(layout, "select count(*) from marts.fct_data_issues") == [(len(issues) - 1,)]
