"""The dashboard's query functions against the real marts, each checked with the test's own SQL."""

from __future__ import annotations

import shutil
from datetime import date, timedelta

import duckdb
import pytest
from letsjobit import config
from letsjobit.dashboard import formatting as fmt
from letsjobit.dashboard import queries
from letsjobit.warehouse import build as warehouse
from letsjobit.warehouse import kpis

from tests.dashboard import fixture_lake as fl

FULL = queries.Filters(fl.FIRST_DAY, fl.LAST_DAY)
OCTOBER = queries.Filters(date(2026, 10, 1), date(2026, 10, 31))


def _visit_filter(filters: queries.Filters) -> tuple[str, list]:
    where, params = ["visit_date between ? and ?"], [filters.start, filters.end]
    for column, values in (
        ("territory", filters.territories),
        ("driver_id", filters.driver_ids),
        ("site_id", filters.site_ids),
    ):
        if values:
            where.append(f"coalesce({column}, '{fl.UNKNOWN}') in ({', '.join('?' * len(values))})")
            params.extend(values)
    return " and ".join(where), params


def expected(con, filters: queries.Filters) -> dict:
    """KPIs of the filtered visits from fct_visits's raw columns, computed here, not by the dashboard."""
    where, params = _visit_filter(filters)
    (
        visits, closed, skipped, rated, promoters, passives, detractors, rating_sum,
        jobs, window_checked, within_window, hours_to_close,
    ) = con.execute(
        f"""
        select count(*), count(*) filter (where closed), count(*) filter (where skipped), count(signee_rating),
               count(*) filter (where signee_rating = 5), count(*) filter (where signee_rating = 4), count(*) filter (where signee_rating between 1 and 3),
               sum(signee_rating), sum(job_count),
               count(closed_within_time_window), count(*) filter (where closed_within_time_window),
               avg(hours_to_close) filter (where closed)
        from marts.fct_visits where {where}
        """,
        params,
    ).fetchone()  # fmt: skip
    equipment, repeats = con.execute(
        f"""
        select count(*), count(*) filter (where repeat)
        from (select visit_id, bool_or(is_repeat_visit) as repeat from marts.fct_equipment_visits group by all)
        where visit_id in (select visit_id from marts.fct_visits where {where})
        """,
        params,
    ).fetchone()
    return {
        "visits": visits,
        "closed_visits": closed,
        "skipped_visits": skipped,
        "rated_visits": rated,
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "nps": 100 * (promoters - detractors) / rated if rated else None,
        "close_rate": closed / visits if visits else None,
        "skip_rate": skipped / visits if visits else None,
        "avg_rating": rating_sum / rated if rated else None,
        "csat": (promoters + passives) / rated if rated else None,
        "jobs_per_visit": jobs / visits if visits else None,
        "closed_within_window_rate": within_window / window_checked if window_checked else None,
        "repeat_visit_rate": repeats / equipment if equipment else None,
        "avg_hours_to_close": hours_to_close,
    }


def assert_kpis_equal(actual: dict, wanted: dict) -> None:
    for key, value in wanted.items():
        if value is None:
            assert actual[key] is None or actual[key] != actual[key], key  # None or NaN
        else:
            assert actual[key] == pytest.approx(value, rel=1e-9), key


def test_the_marts_hold_the_lake_the_test_wrote(marts):
    visits, _ = fl.sample()
    ratings = [v["signee_rating"] for v in visits if v["signee_rating"]]  # 0 is unrated

    actual = queries.headline(marts, FULL)

    assert actual["visits"] == len(visits)
    assert actual["rated_visits"] == len(ratings)
    assert actual["promoters"] == ratings.count(5) and actual["passives"] == ratings.count(4)
    assert actual["avg_rating"] == pytest.approx(sum(ratings) / len(ratings))


@pytest.mark.parametrize(
    ("choice", "source"),
    [
        ({}, "kpi_daily"),
        ({"territories": ("AB-Aberdeen", fl.UNKNOWN)}, "kpi_territory_daily"),
        ({"driver_ids": ("d-liam",)}, "kpi_driver_daily"),
        ({"site_ids": ("30100001", fl.UNKNOWN)}, "fct_visit_measures"),
        (
            {"territories": ("EH-Edinburgh", fl.UNKNOWN), "driver_ids": ("d-ava", "d-noah")},
            "fct_visit_measures",
        ),
        (
            {"territories": ("AB-Aberdeen",), "driver_ids": ("d-ava",), "site_ids": ("30100002", "30100005")},
            "fct_visit_measures",
        ),
    ],
)
def test_headline_equals_the_marts_for_every_kind_of_filter(marts, choice, source):
    filters = queries.Filters(date(2026, 9, 10), date(2026, 10, 25), **choice)

    actual = queries.headline(marts, filters)

    assert queries.measure_source(filters, queries.kpi_definitions(marts))[2] == source
    assert actual["visits"] > 0
    assert_kpis_equal(actual, expected(marts, filters))


def test_nps_over_a_range_is_recomputed_from_the_sums_not_averaged_across_days(marts):
    daily_nps = [
        nps
        for (nps,) in marts.execute(
            "select nps from marts.kpi_daily where visit_date between ? and ? and nps is not null",
            [OCTOBER.start, OCTOBER.end],
        ).fetchall()
    ]
    promoters, detractors, rated = marts.execute(
        "select sum(promoters), sum(detractors), sum(rated_visits) from marts.kpi_daily "
        "where visit_date between ? and ?",
        [OCTOBER.start, OCTOBER.end],
    ).fetchone()

    actual = queries.headline(marts, OCTOBER)

    assert actual["nps"] == pytest.approx(100 * (promoters - detractors) / rated)
    assert actual["nps"] != pytest.approx(sum(daily_nps) / len(daily_nps))  # the fixture makes them differ


def test_a_period_without_ratings_shows_nps_as_not_available(marts):
    filters = queries.Filters(fl.FIRST_DAY, fl.UNRATED_UNTIL)

    actual = queries.headline(marts, filters)

    assert actual["visits"] > 0 and actual["rated_visits"] == 0
    assert actual["nps"] is None and actual["csat"] is None and actual["avg_rating"] is None
    assert fmt.nps(actual["nps"], actual["rated_visits"]) == "n/a"


def test_a_period_without_visits_has_zero_counts_and_no_ratios(marts):
    filters = queries.Filters(fl.GAP_DAY, fl.GAP_DAY)

    actual = queries.headline(marts, filters)

    assert actual["visits"] == 0
    assert actual["close_rate"] is None and actual["nps"] is None and actual["jobs_per_visit"] is None


def test_daily_series_keeps_a_day_without_visits_as_an_empty_day(marts):
    series = queries.kpi_series(marts, OCTOBER, "day")

    assert len(series) == OCTOBER.days
    gap = series[series["period"].dt.date == fl.GAP_DAY].iloc[0]
    assert gap["visits"] == 0
    assert gap[["nps", "close_rate", "skip_rate"]].isna().all()
    for _, day in series.sample(5, random_state=1).iterrows():
        one_day = queries.Filters(day["period"].date(), day["period"].date())
        assert_kpis_equal(day.to_dict(), expected(marts, one_day))


def test_weekly_series_covers_the_period_and_recomputes_each_week_from_its_days(marts):
    filters = queries.Filters(date(2026, 10, 1), date(2026, 10, 21), territories=("DD-Dundee",))

    weeks = queries.kpi_series(marts, filters, "week")

    mondays = [date(2026, 9, 28), date(2026, 10, 5), date(2026, 10, 12), date(2026, 10, 19)]
    assert [w.date() for w in weeks["period"]] == mondays
    assert weeks["visits"].sum() == queries.headline(marts, filters)["visits"]
    week_of_the_12th = queries.Filters(date(2026, 10, 12), date(2026, 10, 18), territories=("DD-Dundee",))
    assert_kpis_equal(weeks.iloc[2].to_dict(), expected(marts, week_of_the_12th))
    # The first week is clipped to the range (1 October is a Thursday).
    first_days = queries.Filters(date(2026, 10, 1), date(2026, 10, 4), territories=("DD-Dundee",))
    assert weeks.iloc[0]["visits"] == expected(marts, first_days)["visits"]


@pytest.mark.parametrize("by", ["territory", "driver"])
@pytest.mark.parametrize(
    "choice",
    [
        {},
        {"site_ids": ("30100004",)},
        {"territories": ("AB-Aberdeen", fl.UNKNOWN), "driver_ids": ("d-liam", "d-ava")},
    ],
)
def test_kpis_by_territory_and_by_driver_equal_the_marts(marts, by, choice):
    filters = queries.Filters(date(2026, 9, 5), date(2026, 10, 30), **choice)
    key, narrowing = ("territory", "territories") if by == "territory" else ("driver_id", "driver_ids")

    groups = queries.kpi_by(marts, filters, by)

    assert groups["visits"].sum() == expected(marts, filters)["visits"]
    assert set(groups[key]) <= set(choice.get(narrowing, groups[key]))
    for _, group in groups.iterrows():
        one_group = queries.Filters(filters.start, filters.end, **{**choice, narrowing: (group[key],)})
        assert_kpis_equal(group.to_dict(), expected(marts, one_group))
    if by == "driver":
        assert set(groups["driver_name"]) <= set(fl.DRIVERS.values())


def test_a_territory_without_ratings_has_no_nps(marts):
    groups = queries.kpi_by(marts, FULL, "territory").set_index("territory")

    assert groups.loc[fl.UNRATED_TERRITORY, "visits"] > 0
    assert groups.loc[fl.UNRATED_TERRITORY, "rated_visits"] == 0
    assert groups["nps"].isna()[fl.UNRATED_TERRITORY]
    assert fl.UNKNOWN in groups.index  # visits without a territory are still counted


def test_leaderboard_does_not_rank_a_driver_below_the_minimum_ratings(marts):
    board = queries.driver_leaderboard(marts, OCTOBER, min_ratings=3)

    solo = board.set_index("driver_id").loc[fl.SINGLE_RATING_DRIVER]
    assert solo["nps"] == 100 and solo["rated_visits"] == 1  # would top a board without the threshold
    assert not solo["ranked"] and solo.isna()["rank"]
    ranked = board[board["ranked"]]
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert list(ranked["nps"]) == sorted(ranked["nps"], reverse=True)
    assert (ranked["rated_visits"] >= 3).all()
    assert set(board["driver_id"]) == set(fl.DRIVERS)


def test_leaderboard_with_a_threshold_of_one_ranks_the_single_rating_driver_first(marts):
    board = queries.driver_leaderboard(marts, OCTOBER, min_ratings=1)

    assert board.iloc[0]["driver_id"] == fl.SINGLE_RATING_DRIVER and board.iloc[0]["rank"] == 1


def test_previous_period_has_equal_length_and_ends_the_day_before():
    filters = queries.Filters(date(2026, 10, 10), date(2026, 10, 16), territories=("DD-Dundee",))

    previous = filters.previous()

    assert (previous.start, previous.end) == (date(2026, 10, 3), date(2026, 10, 9))
    assert previous.days == filters.days and previous.territories == filters.territories


def test_headline_with_previous_compares_against_the_period_before(marts):
    filters = queries.Filters(date(2026, 10, 16), date(2026, 10, 31))

    current, previous = queries.headline_with_previous(marts, filters)

    assert_kpis_equal(previous, expected(marts, queries.Filters(date(2026, 9, 30), date(2026, 10, 15))))
    assert_kpis_equal(current, expected(marts, filters))


@pytest.mark.parametrize("choice", [{}, {"territories": ("AB-Aberdeen", fl.UNKNOWN)}])
def test_skip_reasons_jobs_per_visit_and_hours_to_close_equal_the_visits(marts, choice):
    filters = queries.Filters(fl.FIRST_DAY, fl.LAST_DAY, **choice)
    where, params = _visit_filter(filters)
    visits = marts.execute(f"select * from marts.fct_visits where {where}", params).df()
    skipped = visits[visits["skipped"]]

    reasons = queries.skip_reasons(marts, filters).set_index("skip_reason")["skipped_visits"].to_dict()
    jobs = queries.jobs_per_visit(marts, filters).set_index("jobs")["visits"].to_dict()
    headline = queries.headline(marts, filters)
    median = queries.median_hours_to_close(marts, filters)

    assert sum(reasons.values()) == len(skipped) > 0
    without_reason = skipped["skipped_reason_id"].isna() | (skipped["skipped_reason_id"] == fl.UNKNOWN)
    assert reasons[fl.UNKNOWN] == without_reason.sum() > 0
    assert jobs == visits["job_count"].value_counts().to_dict()
    closed_hours = visits.loc[visits["closed"], "hours_to_close"].dropna()
    assert headline["avg_hours_to_close"] == pytest.approx(closed_hours.mean())
    assert median == pytest.approx(closed_hours.median())


def test_filter_choices_and_default_period_come_from_the_marts(marts):
    assert queries.territories(marts) == sorted((*fl.TERRITORIES, fl.UNKNOWN))
    assert queries.drivers(marts) == dict(sorted(fl.DRIVERS.items(), key=lambda item: item[1]))
    assert set(queries.customers(marts)) == {*fl.CUSTOMERS, fl.UNKNOWN}
    bounds = queries.date_bounds(marts)
    assert bounds == (fl.FIRST_DAY, fl.LAST_DAY)
    assert queries.default_period(bounds, today=date(2027, 1, 1)) == (
        fl.LAST_DAY - timedelta(days=27),
        fl.LAST_DAY,
    )
    # Data reaching past today (scheduled visits): the period ends today.
    assert queries.default_period(bounds, today=date(2026, 10, 10)) == (date(2026, 9, 13), date(2026, 10, 10))


def test_connect_names_the_missing_warehouse(data_dir):
    with (
        pytest.raises(queries.WarehouseUnavailable, match="not been built yet"),
        queries.connect(data_dir.warehouse),
    ):
        pass


def test_connect_refuses_a_file_that_is_not_a_finished_build(data_dir):
    data_dir.root.mkdir(parents=True)
    duckdb.connect(str(data_dir.warehouse)).close()

    with (
        pytest.raises(queries.WarehouseUnavailable, match="not a finished build"),
        queries.connect(data_dir.warehouse),
    ):
        pass


def test_drivers_sharing_a_name_are_told_apart_by_their_id(data_dir):
    layout = data_dir
    visits, lines = fl.sample()
    for visit in visits:
        if visit["driver_id"] == "d-ava":
            visit["driver_name"] = "Liam"
    fl.publish(layout, visits, lines)
    warehouse.build(layout)

    with queries.connect(layout.warehouse) as con:
        names = queries.drivers(con)

    assert names["d-ava"] == "Liam (d-ava)" and names["d-liam"] == "Liam (d-liam)"
    assert names["d-noah"] == "Noah"


# What the pages show: every KPI the warehouse defines must reach them.
SHOWN_KPIS = set(kpis.KPIS)
KPI_TABLE_KEYS = {table: key[1:] for table, key in kpis.KPI_TABLES.items()}


def test_the_dashboard_takes_its_measures_and_kpi_macros_from_the_warehouse(marts):
    macros = dict(
        marts.execute(
            "select function_name, parameters from duckdb_functions() "
            "where schema_name = 'marts' and function_type = 'macro'"
        ).fetchall()
    )
    measure_columns = [row[0] for row in marts.execute("describe marts.fct_visit_measures").fetchall()]

    definitions = queries.kpi_definitions(marts)

    assert set(definitions.macros) == SHOWN_KPIS
    assert {name: list(params) for name, params in definitions.macros.items()} == {
        name: macros[name] for name in SHOWN_KPIS
    }
    assert list(definitions.measures) == [c for c in measure_columns if c not in queries.VISIT_KEYS]
    assert definitions.measures["visits"] and not definitions.measures["hours_to_close_sum"]


def test_the_kpis_the_pages_format_are_columns_of_the_kpi_tables():
    from letsjobit.dashboard import report
    from letsjobit.dashboard.views import tables

    formatted = {*report.KPI_COLUMNS, *tables.KPI_TABLE_COLUMNS, *tables.RATES}

    assert formatted <= set(kpis.KPI_COLUMNS)


@pytest.mark.parametrize("table", KPI_TABLE_KEYS)
def test_the_dashboards_kpis_of_one_day_equal_the_kpi_tables_rows(marts, table):
    (day,) = marts.execute("select visit_date from marts.kpi_daily where rated_visits > 2 limit 1").fetchone()
    keys = KPI_TABLE_KEYS[table]
    rows = marts.execute(f"select * from marts.{table} where visit_date = ?", [day]).df()
    one_day = queries.Filters(day, day)

    shown = (
        [queries.headline(marts, one_day)]
        if not keys
        else queries.kpi_by(marts, one_day, "territory" if keys == ("territory",) else "driver").to_dict(
            "records"
        )
    )

    assert len(shown) == len(rows) > 0
    by_key = {tuple(row[k] for k in keys): row for row in rows.to_dict("records")}
    for group in shown:
        mart = by_key[tuple(group[k] for k in keys)]
        for name in SHOWN_KPIS | {"visits", "rated_visits", "promoters", "hours_to_close_sum"}:
            if mart[name] is None or mart[name] != mart[name]:  # NULL or NaN
                assert group[name] is None or group[name] != group[name], name
            else:
                assert group[name] == pytest.approx(mart[name], rel=1e-12), name


def test_a_formula_changed_in_the_warehouse_changes_the_dashboard_with_it(data_dir, tmp_path):
    """The dashboard has no copy of a formula: redefine CSAT in the warehouse and it follows."""
    project_dir = tmp_path / "sql"
    shutil.copytree(config.SQL_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    macros = project_dir / "macros" / "kpis.sql"
    original = "(promoters + passives) / nullif(rated_visits, 0)"
    assert original in macros.read_text()
    macros.write_text(macros.read_text().replace(original, "promoters / nullif(rated_visits, 0)"))
    visits, lines = fl.sample()
    fl.publish(data_dir, visits, lines)
    warehouse.build(data_dir, project_dir=project_dir)

    with queries.connect(data_dir.warehouse) as con:
        shown = queries.headline(con, FULL)
        (in_marts,) = con.execute(
            "select marts.csat(sum(promoters), sum(passives), sum(rated_visits)) from marts.kpi_daily"
        ).fetchone()

    assert shown["csat"] == pytest.approx(shown["promoters"] / shown["rated_visits"])
    assert shown["csat"] == pytest.approx(in_marts)
    assert shown["passives"] > 0  # so the formula the warehouse had would give another number


@pytest.mark.parametrize("by", ["check_name", "action"])
def test_data_issues_over_time_equal_the_lakes_issues(marts, by):
    visits, _ = fl.sample()
    issues = fl.data_issues(visits)
    wanted = {}
    for issue in issues:
        if issue["visit_date"] is not None and OCTOBER.start <= issue["visit_date"] <= OCTOBER.end:
            key = (issue["visit_date"], issue[by])
            wanted[key] = wanted.get(key, 0) + 1

    shown = queries.data_issues_over_time(marts, OCTOBER, by)

    assert {(row["visit_date"].date(), row[by]): row["issues"] for row in shown.to_dict("records")} == wanted
    assert queries.undated_data_issues(marts) == fl.UNDATED_ISSUES


def test_data_issues_by_check_sum_the_periods_issues_and_records(marts):
    where = "visit_date between ? and ?"
    rows = marts.execute(
        f"select check_name, action, count(*), count(distinct visit_id) from marts.fct_data_issues "
        f"where {where} group by all",
        [OCTOBER.start, OCTOBER.end],
    ).fetchall()

    table = queries.data_issues_by_check(marts, OCTOBER)

    assert {
        (r["check_name"], r["action"]): (r["issues"], r["records"]) for r in table.to_dict("records")
    } == {(check, action): (issues, records) for check, action, issues, records in rows}
    assert list(table["issues"]) == sorted(table["issues"], reverse=True)
    assert {"nulled", "kept"} <= set(table["action"])
