"""KPI values on hand-built visits and on a seeded sample recomputed here in Python, and the KPI macros.

The lake rows hold what the lake stores: the coercion layer is the only parser, so an unrated visit
(0, "", missing, or a rating out of range, which the lake records as a data issue) arrives as NULL.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from letsjobit import config
from letsjobit.simulator import expectations
from letsjobit.warehouse import build as warehouse
from letsjobit.warehouse import kpis

from tests.warehouse import lakes, recompute
from tests.warehouse.conftest import query, query_dicts

DAY = date(2026, 11, 2)
QUIET_DAY = date(2026, 11, 3)
CONTRADICTIONS_DAY = date(2026, 11, 4)
EARLIER = datetime(2026, 11, 1, 10, 0)
WINDOW_9_TO_18 = [{"earliest": 30600, "latest": 64800}]
WINDOW_OVERNIGHT = [{"earliest": 79200, "latest": 21600}]  # 22:00 to 06:00


def _hand_built_visits():
    def at(hour, minute=0):
        return datetime(2026, 11, 2, hour, minute)

    visits = [
        lakes.visit(
            "v01",
            DAY,
            driver_id="d1",
            territory="T1",
            closed=True,
            signee_rating=5,
            site_id="S1",
            created_at=EARLIER,
            close_date=at(10),
            time_windows=WINDOW_9_TO_18,
        ),
        lakes.visit(
            "v02",
            DAY,
            driver_id="d1",
            territory="T1",
            closed=True,
            signee_rating=4,
            site_id="S2",
            created_at=at(8),
            close_date=at(20),
            time_windows=WINDOW_9_TO_18,
        ),
        lakes.visit("v03", DAY, driver_id="d1", territory="T1", closed=True, signee_rating=3),
        lakes.visit(
            "v04",
            DAY,
            driver_id="d1",
            territory="T2",
            closed=True,
            signee_rating=1,
            created_at=at(23, 45),
            close_date=at(23, 30),
            time_windows=WINDOW_OVERNIGHT,
        ),
        lakes.visit(
            "v05",
            DAY,
            driver_id="d2",
            territory="T2",
            skipped=True,
            signee_rating=None,
            skipped_reason_id="R1",
        ),
        lakes.visit(
            "v06",
            DAY,
            driver_id="d2",
            territory="T2",
            closed=True,
            signee_rating=None,  # sent 0: no score
            time_windows=WINDOW_9_TO_18,
        ),
        lakes.visit("v07", DAY, driver_id="d2", territory="T2", signee_rating=None),  # sent 7
        lakes.visit("v08", DAY, driver_id=None, territory=None, closed=True, signee_rating=None),  # sent -1
        lakes.visit("v09", DAY, driver_id="d1", territory="T1", closed=True, signee_rating=2, site_id="S2"),
        lakes.visit("v10", DAY, driver_id="d2", territory="T1", skipped=True, signee_rating=5),
        lakes.visit("v11", QUIET_DAY, driver_id="d1", territory="T1"),
        # earlier closed visits to the same equipment: 62 days before v01 (no repeat), 13 before v02 (repeat)
        lakes.visit("v20", date(2026, 9, 1), closed=True, site_id="S1", driver_id="d3"),
        lakes.visit("v21", date(2026, 10, 20), closed=True, site_id="S2", driver_id="d3"),
    ]
    by_id = {row["visit_id"]: row for row in visits}
    lines = [
        lakes.line(by_id["v01"], 0, serial_nr="SN-1"),
        lakes.line(by_id["v01"], 1),
        lakes.line(by_id["v01"], 2, action_item=False),
        lakes.line(by_id["v02"], 0, serial_nr="SN-2"),
        lakes.line(by_id["v09"], 0, action_item=False, serial_nr="SN-9"),
        lakes.line(by_id["v20"], 0, serial_nr="SN-1"),
        lakes.line(by_id["v21"], 0, serial_nr=" SN-2 "),
    ]
    extra_data = [
        lakes.extra_field(lines[0], 0),
        lakes.extra_field(lines[0], 1, name="colour", value="red", value_number=None),
    ]
    return visits, lines, extra_data


def _contradictory_visits():
    """Visits the lake keeps as sent, each with its data issue: closed and skipped, closed without a
    close date, and a rating out of range (nulled)."""
    opened = datetime(2026, 11, 4, 8)
    visits = [
        lakes.visit(
            "c1",
            CONTRADICTIONS_DAY,
            closed=True,
            skipped=True,
            signee_rating=5,
            created_at=opened,
            close_date=datetime(2026, 11, 4, 10),
            time_windows=WINDOW_9_TO_18,
        ),
        lakes.visit(
            "c2",
            CONTRADICTIONS_DAY,
            closed=True,
            signee_rating=4,
            created_at=opened,
            close_date=None,
            time_windows=WINDOW_9_TO_18,
        ),
        lakes.visit("c3", CONTRADICTIONS_DAY, closed=True, signee_rating=None),  # sent 9
    ]
    issues = [
        lakes.issue(visits[0], "visits.not_closed_and_skipped", "skipped", '{"closed": true, "skipped": true}',
                    action="kept", reason="closed and skipped"),
        lakes.issue(visits[1], "visits.close_date_when_closed", "closeDate", '{"closed": true, "closeDate": null}',
                    action="kept", reason="closed without close date"),
        lakes.issue(visits[2], "visits.signee_rating_in_range", "signeeRating", "9"),
    ]  # fmt: skip
    return visits, issues


@pytest.fixture(scope="module")
def kpi_layout(tmp_path_factory) -> config.DataLayout:
    layout = config.DataLayout(tmp_path_factory.mktemp("kpi") / "data")
    lakes.publish(layout, *_hand_built_visits())
    contradictory, issues = _contradictory_visits()
    lakes.publish(layout, contradictory, issues=issues)
    warehouse.build(layout, run_id="kpi")
    return layout


def _kpi(layout, table, **key):
    where = " and ".join(f"{column} = ?" for column in key)
    rows = query_dicts(layout, f"select * from marts.{table} where {where}", list(key.values()))
    assert len(rows) == 1, rows
    return rows[0]


def test_daily_kpis_follow_the_contract(kpi_layout):
    day = _kpi(kpi_layout, "kpi_daily", visit_date=DAY)

    assert (day["visits"], day["closed_visits"], day["skipped_visits"]) == (10, 7, 2)
    # rated: 5, 4, 3, 1, 2 and the skipped visit's 5; unrated: null (sent as null, 0, 7, -1)
    assert (day["rated_visits"], day["promoters"], day["passives"], day["detractors"]) == (6, 2, 1, 3)
    assert day["nps"] == pytest.approx(100 * (2 - 3) / 6)
    assert day["close_rate"] == pytest.approx(0.7)
    assert day["skip_rate"] == pytest.approx(0.2)
    assert day["avg_rating"] == pytest.approx(20 / 6)
    assert day["rating_sum"] == 20
    assert day["csat"] == pytest.approx(3 / 6)


def test_a_day_without_rated_visits_has_null_nps_csat_and_rating(kpi_layout):
    day = _kpi(kpi_layout, "kpi_daily", visit_date=QUIET_DAY)

    assert (day["visits"], day["rated_visits"], day["close_rate"]) == (1, 0, 0.0)
    assert day["nps"] is None and day["csat"] is None and day["avg_rating"] is None


def test_contradictory_visits_count_as_sent_and_an_out_of_range_rating_as_unrated(kpi_layout):
    day = _kpi(kpi_layout, "kpi_daily", visit_date=CONTRADICTIONS_DAY)

    # c1 closed and skipped counts in both; c2 closed without close date counts as closed
    assert (day["visits"], day["closed_visits"], day["skipped_visits"]) == (3, 3, 1)
    # ...but only c1 has a close time: hours to close and the time window know c1 alone
    assert (day["timed_closed_visits"], day["window_checked_visits"]) == (1, 1)
    assert day["avg_hours_to_close"] == pytest.approx(2.0)
    # c3's rating of 9 arrived NULL: unrated
    assert (day["rated_visits"], day["promoters"], day["passives"]) == (2, 1, 1)
    issues = query(
        kpi_layout,
        "select check_name, action, issues, records from marts.kpi_data_issues_daily "
        "where visit_date = ? order by 1",
        [CONTRADICTIONS_DAY],
    )
    assert issues == [
        ("visits.close_date_when_closed", "kept", 1, 1),
        ("visits.not_closed_and_skipped", "kept", 1, 1),
        ("visits.signee_rating_in_range", "nulled", 1, 1),
    ]


def test_driver_kpis_add_up_to_the_day_with_unassigned_visits_under_unknown(kpi_layout):
    d1 = _kpi(kpi_layout, "kpi_driver_daily", visit_date=DAY, driver_id="d1")
    d2 = _kpi(kpi_layout, "kpi_driver_daily", visit_date=DAY, driver_id="d2")
    unknown = _kpi(kpi_layout, "kpi_driver_daily", visit_date=DAY, driver_id="(unknown)")

    assert (d1["visits"], d1["rated_visits"], d1["nps"], d1["avg_rating"], d1["csat"]) == (
        5,
        5,
        -40.0,
        3.0,
        0.4,
    )
    assert (d2["visits"], d2["skipped_visits"], d2["rated_visits"], d2["nps"]) == (4, 2, 1, 100.0)
    assert (unknown["visits"], unknown["rated_visits"], unknown["nps"]) == (1, 0, None)
    assert d1["driver_name"] == "Liam"
    assert query(
        kpi_layout, "select sum(visits) from marts.kpi_driver_daily where visit_date = ?", [DAY]
    ) == [(10,)]


def test_territory_kpis(kpi_layout):
    t1 = _kpi(kpi_layout, "kpi_territory_daily", visit_date=DAY, territory="T1")
    t2 = _kpi(kpi_layout, "kpi_territory_daily", visit_date=DAY, territory="T2")

    assert (t1["visits"], t1["closed_visits"], t1["rated_visits"], t1["nps"], t1["csat"]) == (
        5,
        4,
        5,
        0.0,
        0.6,
    )
    assert t1["avg_rating"] == pytest.approx(3.8)
    assert (t2["visits"], t2["rated_visits"], t2["nps"], t2["csat"]) == (4, 1, -100.0, 0.0)
    assert query(
        kpi_layout, "select sum(visits) from marts.kpi_territory_daily where visit_date = ?", [DAY]
    ) == [(10,)]


def test_field_service_measures(kpi_layout):
    day = _kpi(kpi_layout, "kpi_daily", visit_date=DAY)

    assert (day["jobs"], day["jobs_per_visit"]) == (3, 0.3)  # v01 two job lines, v02 one
    # v01 closed 10:00 in 09:00-18:00, v04 23:30 in 22:00-06:00, v02 20:00 outside; v06 has no close time
    assert (day["window_checked_visits"], day["closed_within_window_visits"]) == (3, 2)
    # v01 24 h, v02 12 h; v04 closed before it was created: unknown
    assert day["avg_hours_to_close"] == pytest.approx(18.0)
    assert (day["timed_closed_visits"], day["hours_to_close_sum"]) == (2, pytest.approx(36.0))
    # v02 repeats v21 (13 days, same site and serial once trimmed); v01 is 62 days after v20
    assert (day["equipment_visits"], day["repeat_visits"]) == (3, 1)
    repeat = query_dicts(kpi_layout, "select * from marts.fct_equipment_visits where visit_id = 'v02'")[0]
    assert (
        repeat["previous_visit_id"],
        repeat["days_since_previous_visit"],
        repeat["previous_driver_id"],
    ) == (
        "v21",
        13,
        "d3",
    )


def test_skip_reasons_breakdown(kpi_layout):
    rows = query(
        kpi_layout,
        "select skipped_reason_id, skipped_visits, share_of_skipped from marts.kpi_skip_reasons_daily "
        "where visit_date = ? order by 1",
        [DAY],
    )

    assert rows == [("(unknown)", 1, 0.5), ("R1", 1, 0.5)]


def test_dimensions_hold_every_member_once(kpi_layout):
    drivers = query(kpi_layout, "select driver_id, visits from marts.dim_drivers order by 1")
    sites = query(kpi_layout, "select site_id, visits from marts.dim_customers order by 1")

    assert drivers == [
        ("(unknown)", 1),
        ("d1", 9),
        ("d2", 4),
        ("d3", 2),
    ]  # d1: 6 hand-built visits and the 3 contradictory ones
    assert dict(sites)["S2"] == 3
    assert query(kpi_layout, "select sum(visits) from marts.dim_territories") == query(
        kpi_layout, "select count(*) from marts.fct_visits"
    )


# The KPI macros (macro -> the measures it is a ratio of) and each KPI table's group beside the day.
KPI_MACROS = kpis.KPIS
KPI_TABLES = {table: key[1:] for table, key in kpis.KPI_TABLES.items()}


def test_the_kpi_names_are_read_from_the_sql_and_agree_with_the_test_oracle():
    assert KPI_MACROS["nps"] == ("promoters", "detractors", "rated_visits")
    assert KPI_MACROS["csat"] == ("promoters", "passives", "rated_visits")
    assert kpis.MEASURES[:3] == ("visits", "closed_visits", "skipped_visits")
    assert set(kpis.KPI_COLUMNS) == set(kpis.MEASURES) | set(KPI_MACROS)
    # the oracle names them on its own (it shares no code with the pipeline): the same names
    assert set(expectations.KPI_RATIOS) == set(KPI_MACROS)
    assert expectations.KPI_MEASURES == kpis.MEASURES
    assert expectations.KPI_TABLES == kpis.KPI_TABLES


def test_a_macro_file_without_kpis_is_refused(tmp_path):
    empty = tmp_path / "kpis.sql"
    empty.write_text("-- nothing here\n")

    with pytest.raises(ValueError, match="no `create or replace macro"):
        kpis.read_kpis(empty)


def test_the_published_file_holds_the_kpi_macros_with_parameters_named_after_the_measures(kpi_layout):
    macros = dict(
        query(
            kpi_layout,
            "select function_name, parameters from duckdb_functions() "
            "where schema_name = 'marts' and function_type = 'macro'",
        )
    )
    measures = {row[0] for row in query(kpi_layout, "describe marts.fct_visit_measures")}

    assert {name: tuple(macros.get(name) or ()) for name in KPI_MACROS} == KPI_MACROS
    assert set().union(*KPI_MACROS.values()) <= measures
    for table in KPI_TABLES:
        assert set().union(*KPI_MACROS.values()) | set(KPI_MACROS) <= {
            row[0] for row in query(kpi_layout, f"describe marts.{table}")
        }


def test_a_read_only_reader_sums_the_measures_and_gets_the_kpi_tables_numbers_from_the_macros(kpi_layout):
    """A reader's own grouping (here: all days, and each day from visit grain) through the macros."""
    calls = ", ".join(
        f"marts.{name}({', '.join(f'sum({p})' for p in params)})" for name, params in KPI_MACROS.items()
    )

    from_visits = query(
        kpi_layout, f"select visit_date, {calls} from marts.fct_visit_measures group by 1 order by 1"
    )
    from_days = query(
        kpi_layout, f"select visit_date, {', '.join(KPI_MACROS)} from marts.kpi_daily order by 1"
    )
    overall = query(kpi_layout, f"select {calls} from marts.kpi_daily")[0]

    assert [_rounded(row) for row in from_visits] == [_rounded(row) for row in from_days]
    assert _rounded(overall) == _rounded(
        query(kpi_layout, f"select {calls} from marts.fct_visit_measures")[0]
    )
    assert query(kpi_layout, "select marts.nps(3, 1, 4), marts.close_rate(1, 0)") == [(50.0, None)]


def _rounded(row):
    return tuple(round(value, 9) if isinstance(value, float) else value for value in row)


@pytest.fixture(scope="module")
def sample_lake(tmp_path_factory):
    layout = config.DataLayout(tmp_path_factory.mktemp("sample") / "data")
    rows = lakes.sample(visits=400, days=30, seed=11)
    lakes.publish(layout, **rows)
    warehouse.build(layout, run_id="sample")
    return layout, rows


def _recomputed_kpis(rows: dict, key) -> dict[tuple, dict]:
    """The KPI contract in plain Python over the lake's rows, grouped by ``key(visit)``."""
    jobs = recompute.job_counts(rows["lines"])
    repeats = recompute.repeat_visits(rows)
    groups: dict[tuple, list[dict]] = {}
    for visit_row in rows["visits"]:
        groups.setdefault(key(visit_row), []).append(visit_row)
    recomputed = {}
    for group, members in groups.items():
        ratings = [v["signee_rating"] for v in members if v["signee_rating"] is not None]
        closed = [v for v in members if v["closed"]]
        timed = [hours for hours in map(recompute.hours_to_close, members) if hours is not None]
        windows = [window for window in map(recompute.closed_within_window, members) if window is not None]
        equipment = [v for v in members if v["visit_id"] in repeats]
        promoters, passives = ratings.count(5), ratings.count(4)
        detractors = len(ratings) - promoters - passives
        recomputed[group] = {
            "visits": len(members),
            "closed_visits": len(closed),
            "skipped_visits": sum(bool(v["skipped"]) for v in members),
            "rated_visits": len(ratings),
            "nps": 100 * (promoters - detractors) / len(ratings) if ratings else None,
            "close_rate": len(closed) / len(members),
            "skip_rate": sum(bool(v["skipped"]) for v in members) / len(members),
            "avg_rating": sum(ratings) / len(ratings) if ratings else None,
            "csat": (promoters + passives) / len(ratings) if ratings else None,
            "jobs_per_visit": sum(jobs.get(v["visit_id"], 0) for v in members) / len(members),
            "closed_within_window_rate": sum(windows) / len(windows) if windows else None,
            "avg_hours_to_close": sum(timed) / len(timed) if timed else None,
            "repeat_visit_rate": (
                sum(repeats[v["visit_id"]] for v in equipment) / len(equipment) if equipment else None
            ),
        }
    return recomputed


@pytest.mark.parametrize("table", KPI_TABLES)
def test_every_kpi_equals_an_independent_recomputation_from_the_lake_rows(sample_lake, table):
    layout, rows = sample_lake
    keys = KPI_TABLES[table]
    wanted = _recomputed_kpis(
        rows, lambda v: (v["visit_date"], *(recompute.member(v[column]) for column in keys))
    )
    assert any(v["closed"] and v["skipped"] for v in rows["visits"]), "the sample has contradictions"

    actual = {
        (row["visit_date"], *(row[column] for column in keys)): row
        for row in query_dicts(layout, f"select * from marts.{table}")
    }

    assert actual.keys() == wanted.keys()
    for group, values in wanted.items():
        for name, value in values.items():
            assert actual[group][name] == (None if value is None else pytest.approx(value)), (group, name)
