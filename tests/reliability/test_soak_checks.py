"""The soak's own checks can fail: its truth recomputation, warehouse comparison and readers, on
hand-built warehouses (no Airflow, no pipeline)."""

from __future__ import annotations

import json
import time
from datetime import date

import duckdb
from letsjobit.config import DataLayout
from letsjobit.simulator import data

from tests.reliability import soak_checks, soak_readers

DAY = date(2026, 11, 2)
OTHER_DAY = date(2026, 11, 20)


def record(visit_id: str, day: date = DAY, closed=1, skipped=0, rating: object = "5") -> dict:
    return {
        "_id": visit_id,
        "date": day.isoformat(),
        "closed": closed,
        "skipped": skipped,
        "signeeRating": rating,
    }


def build_warehouse(
    layout: DataLayout,
    rows: list[tuple],
    kpi_records: list[dict],
    partitions,
    run_id="run-2",
    issues: list[tuple] = (),
    bad_records: dict | None = None,
):
    """A warehouse with just what the soak reads: build_info, fct_visits, kpi_daily and fct_data_issues."""
    layout.lake.mkdir(parents=True, exist_ok=True)
    layout.last_publication.write_text(json.dumps({"run_id": run_id, "partitions": partitions}))
    with duckdb.connect(str(layout.warehouse)) as connection:
        connection.execute("create schema marts")
        connection.execute("create table marts.build_info as select ? as run_id", [run_id])
        connection.execute(
            "create table marts.fct_visits "
            "(visit_id varchar, visit_date date, closed boolean, skipped boolean, signee_rating tinyint)"
        )
        connection.executemany("insert into marts.fct_visits values (?, ?, ?, ?, ?)", rows)
        connection.execute(
            "create table marts.fct_data_issues (table_name varchar, visit_id varchar, line_index int, "
            "extra_index int, field varchar, raw_value varchar, check_name varchar, severity varchar, "
            "action varchar, visit_date date)"
        )
        for issue in issues:
            connection.execute(
                f"insert into marts.fct_data_issues ({', '.join(soak_checks.ISSUE_COLUMNS)}) values "
                f"({', '.join('?' for _ in soak_checks.ISSUE_COLUMNS)})",
                issue,
            )
        columns = ", ".join(f"{name} double" for name in soak_checks.KPI_COLUMNS)
        connection.execute(f"create table marts.kpi_daily (visit_date date, {columns})")
        for day, kpis in soak_checks.expected_kpis(kpi_records, bad_records or {}).items():
            connection.execute(
                f"insert into marts.kpi_daily values (?, {', '.join('?' for _ in soak_checks.KPI_COLUMNS)})",
                [day, *(kpis[name] for name in soak_checks.KPI_COLUMNS)],
            )


def row(visit: dict) -> tuple:
    day, closed, skipped, rating = soak_checks.visit_view(visit)
    return (visit["_id"], day, closed, skipped, rating)


def truth(*visits: dict) -> dict[str, dict]:
    return {data.record_key(visit): visit for visit in visits}


def test_a_warehouse_equal_to_the_truth_passes(tmp_path):
    layout = DataLayout(tmp_path)
    visits = [record("a"), record("b", rating=""), record("c", day=OTHER_DAY)]
    build_warehouse(layout, [row(v) for v in visits], visits, [DAY.isoformat()])

    check = soak_checks.check_warehouse(layout, truth(*visits), truth(*visits))

    assert check.clean, check.samples
    assert (check.in_scope, check.kpi_dates) == (2, 1)  # OTHER_DAY is outside the run's window


def test_lost_duplicated_mismatched_ghost_visits_and_wrong_kpis_are_each_counted(tmp_path):
    layout = DataLayout(tmp_path)
    kept, lost, changed, deleted = record("kept"), record("lost"), record("changed"), record("deleted")
    in_warehouse = [row(kept), row(kept), row(changed), row(deleted)]
    build_warehouse(layout, in_warehouse, [kept, kept, changed, deleted], None)
    now = truth(kept, lost, {**changed, "signeeRating": "1"})

    check = soak_checks.check_warehouse(layout, now, now)

    assert (check.lost, check.duplicated, check.mismatched, check.ghosts) == (1, 1, 1, 1)
    assert check.kpi_mismatches == 1 and not check.clean


def test_a_warehouse_built_by_another_run_than_the_lake_publication_fails(tmp_path):
    layout = DataLayout(tmp_path)
    build_warehouse(layout, [row(record("a"))], [record("a")], None)
    layout.last_publication.write_text(json.dumps({"run_id": "run-3", "partitions": None}))

    check = soak_checks.check_warehouse(layout, truth(record("a")), truth(record("a")))

    assert not check.build_is_this_run and not check.clean


def test_visits_changed_while_the_run_paged_may_show_either_version_and_skip_their_kpi_date(tmp_path):
    layout = DataLayout(tmp_path)
    before, after = record("a", rating="2"), record("a", rating="5")
    build_warehouse(layout, [row(before)], [before], None)

    check = soak_checks.check_warehouse(layout, truth(before), truth(after))

    assert check.clean and check.kpi_dates_skipped == 1


def test_a_visit_changed_twice_while_the_run_paged_may_show_the_middle_version_and_nothing_else(tmp_path):
    """Rescheduled and moved back during the run: start and end agree, the run read the middle."""
    layout = DataLayout(tmp_path)
    start, middle = record("a", day=DAY), record("a", day=OTHER_DAY)
    end = {**start, "modifieddAt": "later"}
    build_warehouse(layout, [row(middle)], [middle], None)
    changes = [{"_id": "a", "visit": middle}, {"_id": "a", "visit": end}]

    assert soak_checks.check_warehouse(layout, truth(start), truth(end), changes).clean
    without_history = soak_checks.check_warehouse(layout, truth(start), truth(end))
    assert (without_history.mismatched, without_history.ghosts) == (1, 1)


def test_a_visit_both_closed_and_skipped_is_expected_published_not_lost(tmp_path):
    layout = DataLayout(tmp_path)
    good, contradictory = record("a"), {**record("b"), "closed": True, "skipped": "1"}
    build_warehouse(layout, [row(good), row(contradictory)], [good, contradictory], None)

    check = soak_checks.check_warehouse(layout, truth(good, contradictory), truth(good, contradictory))

    assert check.clean and check.closed_and_skipped == 1
    kept_out = DataLayout(tmp_path / "kept_out")
    build_warehouse(kept_out, [row(good)], [good], None)
    assert (
        soak_checks.check_warehouse(kept_out, truth(good, contradictory), truth(good, contradictory)).lost
        == 1
    )


def issue_row(visit_id, field, raw_value, check, severity, action, day=DAY, line=None) -> tuple:
    table = check.partition(".")[0]
    return (table, visit_id, line, None, field, raw_value, check, severity, action, day)


def test_bad_records_are_expected_as_their_oracle_issue_rows_and_unplaceable_visits_absent(tmp_path):
    rated_nine = record("a", rating="9")  # published unrated, one issue row
    no_date = {**record("b"), "date": "2026-02-30"}  # cannot be placed: absent, one issue row
    no_id = {k: v for k, v in record("c").items() if k != "_id"} | {"id": 7}  # never lands
    bad = {"a": "rating_out_of_range_text", "b": "impossible_date", "7": "missing_id"}
    rows = [
        issue_row("a", "signeeRating", "9", "visits.signee_rating_in_range", "field", "nulled"),
        issue_row("b", "date", "2026-02-30", "visits.date_valid", "record", "quarantined", day=None),
        issue_row(
            None, "_id", json.dumps({k: no_id[k] for k in sorted(no_id)}, separators=(",", ":")),
            "visits.id_present", "record", "quarantined",
        ),
    ]  # fmt: skip
    now = truth(rated_nine, no_date, no_id)
    layout = DataLayout(tmp_path / "right")
    build_warehouse(layout, [row(rated_nine)], [rated_nine], None, issues=rows)

    check = soak_checks.check_warehouse(layout, now, now, bad_records=bad)

    assert check.clean, check.samples
    assert (check.issues_checked, check.quarantined, check.in_scope) == (3, 2, 1)
    wrong = DataLayout(tmp_path / "wrong")  # the rating's issue lost, the undated visit published
    build_warehouse(wrong, [row(rated_nine), ("b", DAY, True, False, 5)], [rated_nine], None, issues=rows[1:])
    wrong_check = soak_checks.check_warehouse(wrong, now, now, bad_records=bad)
    assert (wrong_check.issues_mismatched, wrong_check.ghosts) == (1, 1) and not wrong_check.clean


def test_an_issue_row_the_ground_truth_does_not_owe_is_a_mismatch(tmp_path):
    layout = DataLayout(tmp_path)
    visit = record("a")
    stray = issue_row("a", "lat", "200.0", "visits.lat_in_range", "field", "nulled")
    build_warehouse(layout, [row(visit)], [visit], None, issues=[stray])

    check = soak_checks.check_warehouse(layout, truth(visit), truth(visit), bad_records={})

    assert (check.issues_checked, check.issues_mismatched) == (0, 1) and not check.clean


def test_readers_report_an_inconsistent_snapshot(tmp_path):
    layout = DataLayout(tmp_path)
    visits = [record("a"), record("b")]
    build_warehouse(layout, [row(visits[0])], visits, None)  # kpi_daily counts 2 visits, fct_visits 1
    with duckdb.connect(str(layout.warehouse)) as connection:
        connection.execute("create table marts.kpi_territory_daily as select visits from marts.kpi_daily")
        connection.execute("create table marts.kpi_driver_daily as select visits from marts.kpi_daily")
    readers = soak_readers.Readers(layout.warehouse, tmp_path, count=1)
    readers.wait_until_ready()
    time.sleep(2)  # a few queries

    figures = readers.stop()

    assert figures["queries"] > 0 and figures["inconsistent"] == figures["queries"]
    assert figures["errors"] == 0
