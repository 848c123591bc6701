"""The soak's own checks can fail: its truth recomputation, warehouse comparison and readers, on
hand-built warehouses (no Airflow, no pipeline)."""

from __future__ import annotations

import json
import time
from datetime import date

import duckdb
import pytest

from bench import soak
from include.letsjobit.config import DataLayout

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


def test_expected_kpis_follow_the_contract_for_every_rating_and_flag_encoding():
    records = [
        record("a", rating="5"),
        record("b", rating=4),
        record("c", rating="3", closed="true"),
        record("d", rating=1, closed="1"),
        record("e", rating="0", closed=0, skipped=True),
        record("f", rating="", closed=False, skipped="1"),
        record("g", rating=None, closed="0", skipped=0),
        {"_id": "h", "date": DAY.isoformat()},  # rating and flags missing
        record("i", rating="9"),  # out of range: unrated
        record("j", rating="4.0"),
    ]

    kpis = soak.expected_kpis(records)[DAY]

    assert kpis["visits"] == 10
    assert kpis["closed_visits"] == 6  # a, b, c ("true"), d ("1"), i, j; not e, f, g, h
    assert kpis["skipped_visits"] == 2
    assert kpis["rated_visits"] == 5  # a, b, c, d, j
    assert (kpis["promoters"], kpis["passives"], kpis["detractors"]) == (1, 2, 2)
    assert kpis["nps"] == pytest.approx(100 * (1 - 2) / 5)
    assert kpis["avg_rating"] == pytest.approx((5 + 4 + 3 + 1 + 4) / 5)
    assert kpis["csat"] == pytest.approx(3 / 5)
    assert kpis["close_rate"] == pytest.approx(0.6)
    assert kpis["skip_rate"] == pytest.approx(0.2)


def build_warehouse(
    layout: DataLayout, rows: list[tuple], kpi_records: list[dict], partitions, run_id="run-2"
):
    """A warehouse with just what the soak reads: build_info, fct_visits and kpi_daily."""
    layout.lake.mkdir(parents=True, exist_ok=True)
    (layout.lake / "_last_publication.json").write_text(
        json.dumps({"run_id": run_id, "partitions": partitions})
    )
    with duckdb.connect(str(layout.warehouse)) as connection:
        connection.execute("create schema marts")
        connection.execute("create table marts.build_info as select ? as run_id", [run_id])
        connection.execute(
            "create table marts.fct_visits "
            "(visit_id varchar, visit_date date, closed boolean, skipped boolean, signee_rating tinyint)"
        )
        connection.executemany("insert into marts.fct_visits values (?, ?, ?, ?, ?)", rows)
        columns = ", ".join(f"{name} double" for name in soak.KPI_COLUMNS)
        connection.execute(f"create table marts.kpi_daily (visit_date date, {columns})")
        for day, kpis in soak.expected_kpis(kpi_records).items():
            connection.execute(
                f"insert into marts.kpi_daily values (?, {', '.join('?' for _ in soak.KPI_COLUMNS)})",
                [day, *(kpis[name] for name in soak.KPI_COLUMNS)],
            )


def row(visit: dict) -> tuple:
    day, closed, skipped, rating = soak.visit_view(visit)
    return (visit["_id"], day, closed, skipped, rating)


def truth(*visits: dict) -> dict[str, dict]:
    return {visit["_id"]: visit for visit in visits}


def test_a_warehouse_equal_to_the_truth_passes(tmp_path):
    layout = DataLayout(tmp_path)
    visits = [record("a"), record("b", rating=""), record("c", day=OTHER_DAY)]
    build_warehouse(layout, [row(v) for v in visits], visits, [DAY.isoformat()])

    check = soak.check_warehouse(layout, truth(*visits), truth(*visits))

    assert check.clean, check.samples
    assert (check.in_scope, check.kpi_dates) == (2, 1)  # OTHER_DAY is outside the run's window


def test_lost_duplicated_mismatched_ghost_visits_and_wrong_kpis_are_each_counted(tmp_path):
    layout = DataLayout(tmp_path)
    kept, lost, changed, deleted = record("kept"), record("lost"), record("changed"), record("deleted")
    in_warehouse = [row(kept), row(kept), row(changed), row(deleted)]
    build_warehouse(layout, in_warehouse, [kept, kept, changed, deleted], None)
    now = truth(kept, lost, {**changed, "signeeRating": "1"})

    check = soak.check_warehouse(layout, now, now)

    assert (check.lost, check.duplicated, check.mismatched, check.ghosts) == (1, 1, 1, 1)
    assert check.kpi_mismatches == 1 and not check.clean


def test_a_warehouse_built_by_another_run_than_the_lake_publication_fails(tmp_path):
    layout = DataLayout(tmp_path)
    build_warehouse(layout, [row(record("a"))], [record("a")], None)
    (layout.lake / "_last_publication.json").write_text(json.dumps({"run_id": "run-3", "partitions": None}))

    check = soak.check_warehouse(layout, truth(record("a")), truth(record("a")))

    assert not check.build_is_this_run and not check.clean


def test_visits_changed_while_the_run_paged_may_show_either_version_and_skip_their_kpi_date(tmp_path):
    layout = DataLayout(tmp_path)
    before, after = record("a", rating="2"), record("a", rating="5")
    build_warehouse(layout, [row(before)], [before], None)

    check = soak.check_warehouse(layout, truth(before), truth(after))

    assert check.clean and check.kpi_dates_skipped == 1


def test_a_visit_changed_twice_while_the_run_paged_may_show_the_middle_version_and_nothing_else(tmp_path):
    """Rescheduled and moved back during the run: start and end agree, the run read the middle."""
    layout = DataLayout(tmp_path)
    start, middle = record("a", day=DAY), record("a", day=OTHER_DAY)
    end = {**start, "modifieddAt": "later"}
    build_warehouse(layout, [row(middle)], [middle], None)
    changes = [{"_id": "a", "visit": middle}, {"_id": "a", "visit": end}]

    assert soak.check_warehouse(layout, truth(start), truth(end), changes).clean
    without_history = soak.check_warehouse(layout, truth(start), truth(end))
    assert (without_history.mismatched, without_history.ghosts) == (1, 1)


def test_a_visit_both_closed_and_skipped_is_expected_published_not_lost(tmp_path):
    layout = DataLayout(tmp_path)
    good, contradictory = record("a"), {**record("b"), "closed": True, "skipped": "1"}
    build_warehouse(layout, [row(good), row(contradictory)], [good, contradictory], None)

    check = soak.check_warehouse(layout, truth(good, contradictory), truth(good, contradictory))

    assert check.clean and check.closed_and_skipped == 1
    kept_out = DataLayout(tmp_path / "kept_out")
    build_warehouse(kept_out, [row(good)], [good], None)
    assert soak.check_warehouse(kept_out, truth(good, contradictory), truth(good, contradictory)).lost == 1


def test_readers_report_an_inconsistent_snapshot(tmp_path):
    layout = DataLayout(tmp_path)
    visits = [record("a"), record("b")]
    build_warehouse(layout, [row(visits[0])], visits, None)  # kpi_daily counts 2 visits, fct_visits 1
    with duckdb.connect(str(layout.warehouse)) as connection:
        connection.execute("create table marts.kpi_territory_daily as select visits from marts.kpi_daily")
        connection.execute("create table marts.kpi_driver_daily as select visits from marts.kpi_daily")
    readers = soak.Readers(layout.warehouse, tmp_path, count=1)
    readers.wait_until_ready()
    time.sleep(2)  # a few queries

    figures = readers.stop()

    assert figures["queries"] > 0 and figures["inconsistent"] == figures["queries"]
    assert figures["errors"] == 0
