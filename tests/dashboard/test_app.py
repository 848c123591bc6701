"""Every dashboard page through Streamlit's AppTest: widgets, filters, and the numbers on screen."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from letsjobit.dashboard import formatting as fmt
from letsjobit.dashboard import queries
from streamlit.testing.v1 import AppTest

from tests.dashboard import fixture_lake as fl
from tests.dashboard.conftest import APP
from tests.dashboard.test_queries import expected

PAGES = [
    "views/overview.py",
    "views/territories.py",
    "views/drivers.py",
    "views/operations.py",
    "views/data_quality.py",
]
# Today is after the fixture's data, so the default period is its last 28 days.
DEFAULT = queries.Filters(fl.LAST_DAY - timedelta(days=27), fl.LAST_DAY)


def open_app(page: str | None = None) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    if page:
        app.switch_page(page).run()
    return app


def assert_ran_cleanly(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def tiles(app: AppTest) -> dict[str, tuple[str, str | None]]:
    return {metric.label: (metric.value, metric.delta or None) for metric in app.metric}


def chart_frames(app: AppTest) -> list[pd.DataFrame]:
    """The data each Vega-Lite chart on the page was sent, decoded from its Arrow payload."""
    frames = []
    for chart in app.get("vega_lite_chart"):
        (dataset,) = chart.proto.datasets
        frames.append(pa.ipc.open_stream(dataset.data.data).read_all().to_pandas())
    return frames


def expected_tiles(marts, filters: queries.Filters) -> dict[str, tuple[str, str | None]]:
    now, before = expected(marts, filters), expected(marts, filters.previous())
    return {
        "Visits": (fmt.count(now["visits"]), fmt.count_delta(now["visits"], before["visits"])),
        "Close rate": (
            fmt.percent(now["close_rate"]),
            fmt.rate_delta(now["close_rate"], before["close_rate"]),
        ),
        "Skip rate": (fmt.percent(now["skip_rate"]), fmt.rate_delta(now["skip_rate"], before["skip_rate"])),
        "NPS": (fmt.nps(now["nps"], now["rated_visits"]), fmt.nps_delta(now["nps"], before["nps"])),
        "CSAT": (fmt.percent(now["csat"]), fmt.rate_delta(now["csat"], before["csat"])),
        "Average rating": (
            fmt.rating(now["avg_rating"]),
            fmt.rating_delta(now["avg_rating"], before["avg_rating"]),
        ),
    }


def test_overview_shows_the_marts_kpis_of_the_default_period_against_the_previous_one(marts):
    app = open_app()

    assert_ran_cleanly(app)
    assert app.sidebar.date_input(key="period").value == (DEFAULT.start, DEFAULT.end)
    assert tiles(app) == expected_tiles(marts, DEFAULT)
    ratings = expected(marts, DEFAULT)["rated_visits"]
    assert f"from {ratings} ratings" in [caption.value for caption in app.caption]
    nps_chart, close_chart = chart_frames(app)
    assert len(nps_chart) == DEFAULT.days
    day = nps_chart.set_index(nps_chart["period"].dt.date).loc[date(2026, 10, 20)]
    one_day = expected(marts, queries.Filters(date(2026, 10, 20), date(2026, 10, 20)))
    assert day["nps"] == pytest.approx(one_day["nps"]) and day["visits"] == one_day["visits"]


def test_overview_follows_every_filter(marts):
    app = open_app()
    filters = queries.Filters(
        date(2026, 9, 14),
        date(2026, 10, 12),
        ("AB-Aberdeen", "EH-Edinburgh"),
        ("d-liam", "d-ava"),
        ("30100001", "30100002", "30100005"),
    )

    app.sidebar.date_input(key="period").set_value((filters.start, filters.end))
    app.sidebar.multiselect(key="territories").set_value(list(filters.territories))
    app.sidebar.multiselect(key="drivers").set_value(list(filters.driver_ids))
    app.sidebar.multiselect(key="customers").set_value(list(filters.site_ids))
    app.run()

    assert_ran_cleanly(app)
    assert tiles(app) == expected_tiles(marts, filters)
    assert tiles(app)["Visits"][0] != tiles(open_app())["Visits"][0]


def test_overview_weekly_charts_recompute_each_week(marts):
    app = open_app()
    app.sidebar.date_input(key="period").set_value((date(2026, 10, 5), date(2026, 10, 25)))

    app.segmented_control(key="grain").set_value("week").run()

    assert_ran_cleanly(app)
    nps_chart, close_chart = chart_frames(app)
    assert [d.date() for d in close_chart["period"]] == [
        date(2026, 10, 5),
        date(2026, 10, 12),
        date(2026, 10, 19),
    ]
    week = expected(marts, queries.Filters(date(2026, 10, 12), date(2026, 10, 18)))
    assert close_chart.iloc[1]["close_rate"] == pytest.approx(week["close_rate"])
    assert nps_chart.iloc[1]["nps"] == pytest.approx(week["nps"])


def test_overview_without_ratings_shows_nps_not_available_with_zero_ratings(warehouse):
    app = open_app()

    app.sidebar.date_input(key="period").set_value((fl.FIRST_DAY, fl.UNRATED_UNTIL)).run()

    assert_ran_cleanly(app)
    assert tiles(app)["NPS"] == ("n/a", None)
    assert tiles(app)["CSAT"][0] == "n/a" and tiles(app)["Average rating"][0] == "n/a"
    assert "from 0 ratings" in [caption.value for caption in app.caption]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_handles_a_day_without_visits(warehouse, page):
    app = open_app(page)

    app.sidebar.date_input(key="period").set_value((fl.GAP_DAY, fl.GAP_DAY)).run()

    assert_ran_cleanly(app)
    if page != "views/data_quality.py":
        assert any("No visits" in info.value for info in app.info)
    if page == "views/overview.py":
        assert tiles(app)["Visits"][0] == "0" and tiles(app)["Close rate"][0] == "n/a"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_explains_a_warehouse_not_built_yet(data_dir, page):
    app = open_app(page)

    assert_ran_cleanly(app)
    (message,) = app.info
    assert "not been built yet" in message.value and "make run" in message.value


def test_territories_page_equals_the_marts(marts):
    app = open_app("views/territories.py")
    app.sidebar.multiselect(key="drivers").set_value(["d-noah"]).run()

    assert_ran_cleanly(app)
    table = app.dataframe[0].value.set_index("territory")
    assert set(fl.TERRITORIES) <= set(table.index) <= {*fl.TERRITORIES, fl.UNKNOWN}
    for territory, row in table.iterrows():
        want = expected(marts, queries.Filters(DEFAULT.start, DEFAULT.end, (territory,), ("d-noah",)))
        assert row["visits"] == want["visits"]
        assert row["close_rate"] == pytest.approx(100 * want["close_rate"])  # shown in percent
        assert row["nps"] == fmt.nps(want["nps"], want["rated_visits"])
    assert table.loc[fl.UNRATED_TERRITORY, "nps"] == "n/a"
    close_chart, nps_chart = chart_frames(app)
    assert fl.UNRATED_TERRITORY not in set(nps_chart["territory"])  # no bar for a territory without ratings
    assert any(fl.UNRATED_TERRITORY in caption.value for caption in app.caption)


def test_drivers_page_ranks_only_drivers_with_enough_ratings(marts):
    app = open_app("views/drivers.py")
    app.sidebar.date_input(key="period").set_value((date(2026, 10, 1), date(2026, 10, 31))).run()

    assert_ran_cleanly(app)
    board, unranked = (table.value for table in app.dataframe)
    assert "rank" in board and "rank" not in unranked
    assert fl.DRIVERS[fl.SINGLE_RATING_DRIVER] in set(unranked["driver_name"])
    assert list(board["rank"]) == list(range(1, len(board) + 1))
    top = board.iloc[0]
    top_id = {name: driver for driver, name in fl.DRIVERS.items()}[top["driver_name"]]
    want = expected(marts, queries.Filters(date(2026, 10, 1), date(2026, 10, 31), driver_ids=(top_id,)))
    assert (
        top["nps"] == fmt.nps(want["nps"], want["rated_visits"])
        and top["rated_visits"] == want["rated_visits"]
    )

    app.number_input(key="min_ratings").set_value(1).run()

    assert app.dataframe[0].value.iloc[0]["driver_name"] == fl.DRIVERS[fl.SINGLE_RATING_DRIVER]


def test_operations_page_equals_the_visits(marts):
    # The customer with the most skipped visits in the period, so that every chart has something to show.
    (site_id,) = marts.execute(
        "select site_id from marts.fct_visits where visit_date between ? and ? and site_id != ? "
        "group by site_id order by count(*) filter (where skipped) desc, site_id limit 1",
        [DEFAULT.start, DEFAULT.end, fl.UNKNOWN],
    ).fetchone()
    app = open_app("views/operations.py")
    app.sidebar.multiselect(key="customers").set_value([site_id]).run()

    assert_ran_cleanly(app)
    filters = queries.Filters(DEFAULT.start, DEFAULT.end, site_ids=(site_id,))
    want, before = expected(marts, filters), expected(marts, filters.previous())
    visits = marts.execute(
        "select * from marts.fct_visits where visit_date between ? and ? and site_id = ?",
        [DEFAULT.start, DEFAULT.end, site_id],
    ).df()
    assert visits["skipped"].any()
    shown = tiles(app)
    assert shown["Jobs per visit"] == (
        fmt.rating(want["jobs_per_visit"]),
        fmt.rating_delta(want["jobs_per_visit"], before["jobs_per_visit"]),
    )
    assert shown["Closed within customer window"][0] == fmt.percent(want["closed_within_window_rate"])
    assert shown["Repeat-visit rate"][0] == fmt.percent(want["repeat_visit_rate"])
    assert shown["Hours to close"][0] == fmt.hours(visits.loc[visits["closed"], "hours_to_close"].mean())
    reasons, jobs, weekly = chart_frames(app)
    assert reasons["skipped_visits"].sum() == visits["skipped"].sum()
    assert jobs["visits"].sum() == len(visits)
    assert weekly["visits"].sum() == len(visits)


def write_validation_summary(layout, run_id: str, verdict: str, failed_checks=()) -> Path:
    """latest.json and the HTML report, shaped as audit.audit_run writes them."""
    report = layout.report_dir(run_id) / "index.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(f"<html><body><h1>Validation report {run_id}</h1></body></html>")
    summary = {
        "run_id": run_id,
        "verdict": verdict,
        "failed_checks": list(failed_checks),
        "tables": {"visits": {"staged": 10, "quarantined": 1}},
        "checks": [
            {
                "name": "visit_id_unique",
                "table": "visits",
                "status": "passed",
                "unexpected_count": 0,
                "detail": "",
            }
        ],
        "paths": {"summary": str(report.with_name("summary.json")), "report": str(report), "data_docs": None},
    }
    (layout.reports / "latest.json").write_text(json.dumps(summary))
    return report


def test_data_quality_page_shows_the_build_and_the_last_validation_with_its_report(warehouse):
    report = write_validation_summary(warehouse, "build-a", "pass")

    app = open_app("views/data_quality.py")

    assert_ran_cleanly(app)
    assert [s.value for s in app.success] == ["Verdict: pass (run build-a)"]
    assert "Last validation: **pass** (run build-a)" in [c.value for c in app.sidebar.caption]
    assert str(report) in [caption.value for caption in app.caption]
    assert app.get("iframe"), "the report is embedded"
    (checks,) = (frame.value for frame in app.dataframe if "unexpected_count" in frame.value)
    assert list(checks["name"]) == ["visit_id_unique"]
    build = app.table[0].value["value"]
    assert build["run_id"] == "build-a" and build["fct_visits_rows"] == str(len(fl.sample()[0]))


def test_a_failed_validation_says_the_warehouse_is_from_an_earlier_run(warehouse):
    write_validation_summary(warehouse, "run-2", "fail", failed_checks=["visit_id_unique"])

    app = open_app("views/data_quality.py")

    assert not app.exception
    (error,) = app.error
    assert "Verdict: fail (run run-2)" in error.value and "Nothing of that run was published" in error.value
    assert "Last validation: **fail** (run run-2; the warehouse is from run build-a)" in [
        c.value for c in app.sidebar.caption
    ]


def test_filters_come_from_the_url_so_a_filtered_view_can_be_shared(marts):
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.query_params["period"] = ["2026-10-01", "2026-10-14"]
    app.query_params["territories"] = ["DD-Dundee", fl.UNKNOWN]
    app.query_params["drivers"] = ["Liam"]  # the URL holds what the widget shows

    app.run()

    assert_ran_cleanly(app)
    filters = queries.Filters(date(2026, 10, 1), date(2026, 10, 14), ("DD-Dundee", fl.UNKNOWN), ("d-liam",))
    assert tiles(app) == expected_tiles(marts, filters)


@pytest.mark.parametrize("by", ["check_name", "action"])
def test_data_quality_page_charts_the_periods_data_issues_per_day_by_check_or_action(marts, by):
    app = open_app("views/data_quality.py")

    if by != "check_name":
        app.segmented_control(key="issues_by").set_value(by).run()

    assert_ran_cleanly(app)
    (chart,) = chart_frames(app)
    wanted = marts.execute(
        f"select visit_date, {by}, count(*) from marts.fct_data_issues "
        "where visit_date between ? and ? group by all",
        [DEFAULT.start, DEFAULT.end],
    ).fetchall()
    assert {(row["visit_date"].date(), row[by]): row["issues"] for row in chart.to_dict("records")} == {
        (day, value): issues for day, value, issues in wanted
    }
    (table,) = (frame.value for frame in app.dataframe if "check_name" in frame.value)
    assert table["issues"].sum() == sum(issues for *_, issues in wanted)
    assert f"{fl.UNDATED_ISSUES:,} more issues" in " ".join(caption.value for caption in app.caption)


def test_data_quality_page_of_a_warehouse_without_the_issue_marts_still_shows_the_build(warehouse):
    with duckdb.connect(str(warehouse.warehouse)) as con:
        con.execute("drop table marts.kpi_data_issues_daily")

    app = open_app("views/data_quality.py")

    assert_ran_cleanly(app)
    assert any("no data issues mart" in info.value for info in app.info)
    assert app.table[0].value["value"]["run_id"] == "build-a"
