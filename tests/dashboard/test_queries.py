"""The dashboard's query functions against the marts, each checked with the test's own SQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from dashboard import formatting as fmt
from dashboard import queries
from tests.dashboard import fixture_warehouse as fw

FULL = queries.Filters(fw.FIRST_DAY, fw.LAST_DAY)
OCTOBER = queries.Filters(date(2026, 10, 1), date(2026, 10, 31))


def expected(con, filters: queries.Filters) -> dict:
    """KPIs of the filtered visits straight from fct_visits, computed here and not by the dashboard."""
    where, params = ["visit_date between ? and ?"], [filters.start, filters.end]
    for column, values in (
        ("territory", filters.territories),
        ("driver_id", filters.driver_ids),
        ("site_id", filters.site_ids),
    ):
        if values:
            where.append(f"{column} in ({', '.join('?' * len(values))})")
            params.extend(values)
    visits, closed, skipped, rated, promoters, passives, detractors, rating_sum = con.execute(
        f"""
        select count(*), count_if(is_closed), count_if(is_skipped), count_if(is_rated),
               count_if(is_promoter), count_if(is_passive), count_if(is_detractor),
               sum(rating) filter (where is_rated)
        from marts.fct_visits where {" and ".join(where)}
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
    }


def assert_kpis_equal(actual: dict, wanted: dict) -> None:
    for key, value in wanted.items():
        if value is None:
            assert actual[key] is None or actual[key] != actual[key], key  # None or NaN
        else:
            assert actual[key] == pytest.approx(value, rel=1e-9), key


@pytest.mark.parametrize(
    ("choice", "source"),
    [
        ({}, "kpi_daily"),
        ({"territories": ("AB-Aberdeen", "DD-Dundee")}, "kpi_territory_daily"),
        ({"driver_ids": ("d-liam",)}, "kpi_driver_daily"),
        ({"site_ids": ("30100001", "30100003")}, "fct_visits"),
        ({"territories": ("EH-Edinburgh",), "driver_ids": ("d-ava", "d-noah")}, "fct_visits"),
        (
            {"territories": ("AB-Aberdeen",), "driver_ids": ("d-ava",), "site_ids": ("30100002",)},
            "fct_visits",
        ),
    ],
)
def test_headline_equals_the_marts_for_every_kind_of_filter(marts, choice, source):
    filters = queries.Filters(date(2026, 9, 10), date(2026, 10, 25), **choice)

    actual = queries.headline(marts, filters)

    assert queries.count_source(filters)[2] == source
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
    filters = queries.Filters(fw.FIRST_DAY, fw.UNRATED_UNTIL)

    actual = queries.headline(marts, filters)

    assert actual["visits"] > 0 and actual["rated_visits"] == 0
    assert actual["nps"] is None and actual["csat"] is None and actual["avg_rating"] is None
    assert fmt.nps(actual["nps"], actual["rated_visits"]) == "n/a"


def test_a_period_without_visits_has_zero_counts_and_no_ratios(marts):
    filters = queries.Filters(fw.GAP_DAY, fw.GAP_DAY)

    actual = queries.headline(marts, filters)

    assert actual["visits"] == 0
    assert actual["close_rate"] is None and actual["nps"] is None


def test_daily_series_keeps_a_day_without_visits_as_an_empty_day(marts):
    series = queries.kpi_series(marts, OCTOBER, "day")

    assert len(series) == OCTOBER.days
    gap = series[series["period"].dt.date == fw.GAP_DAY].iloc[0]
    assert gap["visits"] == 0
    assert gap[["nps", "close_rate", "skip_rate"]].isna().all()
    for _, day in series.sample(5, random_state=1).iterrows():
        assert_kpis_equal(
            day.to_dict(), expected(marts, queries.Filters(day["period"].date(), day["period"].date()))
        )


def test_weekly_series_covers_the_period_and_recomputes_each_week_from_its_days(marts):
    filters = queries.Filters(date(2026, 10, 1), date(2026, 10, 21), territories=("DD-Dundee",))

    weeks = queries.kpi_series(marts, filters, "week")

    assert [w.date() for w in weeks["period"]] == [
        date(2026, 9, 28),
        date(2026, 10, 5),
        date(2026, 10, 12),
        date(2026, 10, 19),
    ]
    assert weeks["visits"].sum() == queries.headline(marts, filters)["visits"]
    # The week of 12 October, inside the range: its own recomputed KPIs.
    week = weeks.iloc[2].to_dict()
    assert_kpis_equal(
        week,
        expected(marts, queries.Filters(date(2026, 10, 12), date(2026, 10, 18), territories=("DD-Dundee",))),
    )
    # The first week is clipped to the range (1 October is a Thursday).
    first_days = queries.Filters(date(2026, 10, 1), date(2026, 10, 4), territories=("DD-Dundee",))
    assert weeks.iloc[0]["visits"] == expected(marts, first_days)["visits"]


@pytest.mark.parametrize("by", ["territory", "driver"])
@pytest.mark.parametrize(
    "choice",
    [{}, {"site_ids": ("30100004",)}, {"territories": ("AB-Aberdeen",), "driver_ids": ("d-liam", "d-ava")}],
)
def test_kpis_by_territory_and_by_driver_equal_the_marts(marts, by, choice):
    filters = queries.Filters(date(2026, 9, 5), date(2026, 10, 30), **choice)

    groups = queries.kpi_by(marts, filters, by)

    key = "territory" if by == "territory" else "driver_id"
    assert groups["visits"].sum() == expected(marts, filters)["visits"]
    for _, group in groups.iterrows():
        narrowed = {**choice, ("territories" if by == "territory" else "driver_ids"): (group[key],)}
        if by == "territory" and choice.get("territories") and group[key] not in choice["territories"]:
            pytest.fail(f"territory {group[key]} is outside the filter")
        assert_kpis_equal(
            group.to_dict(), expected(marts, queries.Filters(filters.start, filters.end, **narrowed))
        )


def test_a_territory_without_ratings_has_no_nps(marts):
    groups = queries.kpi_by(marts, FULL, "territory").set_index("territory")

    assert groups.loc[fw.UNRATED_TERRITORY, "visits"] > 0
    assert groups.loc[fw.UNRATED_TERRITORY, "rated_visits"] == 0
    assert groups["nps"].isna()[fw.UNRATED_TERRITORY]


def test_leaderboard_does_not_rank_a_driver_below_the_minimum_ratings(marts):
    board = queries.driver_leaderboard(marts, OCTOBER, min_ratings=3)

    solo = board.set_index("driver_id").loc[fw.SINGLE_RATING_DRIVER]
    assert solo["nps"] == 100 and solo["rated_visits"] == 1  # would top a board without the threshold
    assert not solo["ranked"] and solo.isna()["rank"]
    ranked = board[board["ranked"]]
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert list(ranked["nps"]) == sorted(ranked["nps"], reverse=True)
    assert (ranked["rated_visits"] >= 3).all()
    assert set(board["driver_id"]) == set(fw.DRIVERS)


def test_leaderboard_with_a_threshold_of_one_ranks_the_single_rating_driver_first(marts):
    board = queries.driver_leaderboard(marts, OCTOBER, min_ratings=1)

    assert board.iloc[0]["driver_id"] == fw.SINGLE_RATING_DRIVER and board.iloc[0]["rank"] == 1


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


def test_skip_reasons_jobs_per_visit_and_window_rate_equal_the_visits(marts):
    filters = queries.Filters(
        date(2026, 9, 1), date(2026, 10, 31), territories=("AB-Aberdeen", "EH-Edinburgh")
    )
    visits = marts.execute(
        "select * from marts.fct_visits where visit_date between ? and ? and territory in ('AB-Aberdeen', 'EH-Edinburgh')",
        [filters.start, filters.end],
    ).df()
    skipped = visits[visits["is_skipped"]]
    closed_judged = visits[visits["is_closed"] & visits["closed_within_window"].notna()]

    reasons = queries.skip_reasons(marts, filters).set_index("skip_reason")["skipped_visits"].to_dict()
    jobs = queries.jobs_per_visit(marts, filters).set_index("jobs")["visits"].to_dict()
    summary = queries.operations_summary(marts, filters)

    assert sum(reasons.values()) == len(skipped)
    assert reasons["(none given)"] == skipped["skipped_reason_id"].isna().sum()
    assert jobs == visits["jobs"].value_counts().to_dict()
    assert summary["avg_jobs_per_visit"] == pytest.approx(visits["jobs"].mean())
    assert summary["closed_within_window_rate"] == pytest.approx(
        closed_judged["closed_within_window"].astype(bool).mean()
    )
    assert summary["median_hours_to_close"] == pytest.approx(
        visits.loc[visits["is_closed"], "hours_to_close"].median()
    )


def test_filter_choices_and_default_period_come_from_the_marts(marts):
    assert queries.territories(marts) == sorted(fw.TERRITORIES)
    assert queries.drivers(marts) == dict(sorted(fw.DRIVERS.items(), key=lambda item: item[1]))
    assert set(queries.customers(marts)) == set(fw.CUSTOMERS)
    bounds = queries.date_bounds(marts)
    assert bounds == (fw.FIRST_DAY, fw.LAST_DAY)
    assert queries.default_period(bounds, today=date(2027, 1, 1)) == (
        fw.LAST_DAY - timedelta(days=27),
        fw.LAST_DAY,
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
    import duckdb

    data_dir.root.mkdir(parents=True)
    duckdb.connect(str(data_dir.warehouse)).close()

    with (
        pytest.raises(queries.WarehouseUnavailable, match="not a finished build"),
        queries.connect(data_dir.warehouse),
    ):
        pass
