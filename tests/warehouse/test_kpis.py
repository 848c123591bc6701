"""KPI values on a hand-built set of visits, covering every rating and flag encoding the contract names."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.letsjobit import config, schema, warehouse
from tests.warehouse import lakes
from tests.warehouse.conftest import query, query_dicts

DAY = date(2026, 11, 2)
QUIET_DAY = date(2026, 11, 3)
TEXT_DAY = date(2026, 11, 4)
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
            signee_rating=0,
            time_windows=WINDOW_9_TO_18,
        ),
        lakes.visit("v07", DAY, driver_id="d2", territory="T2", signee_rating=7),
        lakes.visit("v08", DAY, driver_id=None, territory=None, closed=True, signee_rating=-1),
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


def _publish_text_encoded_partition(layout):
    """A partition whose flags and rating arrived as text (an older file, a hand-made extract)."""
    text_columns = {"closed", "skipped", "signee_rating"}
    text_schema = pa.schema(
        [pa.field(f.name, pa.string()) if f.name in text_columns else f for f in schema.VISITS]
    )
    encodings = [("1", "5"), ("true", ""), ("0", "0"), ("false", "4.0"), ("TRUE", "abc"), (None, "3")]
    rows = []
    for number, (closed, rating) in enumerate(encodings):
        row = lakes.visit(f"t{number}", TEXT_DAY, closed=closed, skipped="0", signee_rating=rating)
        rows.append(row)
    folder = layout.table("visits") / f"visit_date={TEXT_DAY.isoformat()}"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=text_schema), folder / "part-text.parquet")


@pytest.fixture(scope="module")
def kpi_layout(tmp_path_factory) -> config.DataLayout:
    layout = config.DataLayout(tmp_path_factory.mktemp("kpi") / "data")
    lakes.publish(layout, *_hand_built_visits())
    _publish_text_encoded_partition(layout)
    warehouse.build(layout, run_id="kpi")
    return layout


def _kpi(layout, table, **key):
    where = " and ".join(f"{column} = ?" for column in key)
    rows = query_dicts(layout, f"select * from marts.{table} where {where}", list(key.values()))
    assert len(rows) == 1, rows
    return rows[0]


def test_daily_kpis_follow_the_contract_for_every_rating_encoding(kpi_layout):
    day = _kpi(kpi_layout, "kpi_daily", visit_date=DAY)

    assert (day["visits"], day["closed_visits"], day["skipped_visits"]) == (10, 7, 2)
    # rated: 5, 4, 3, 1, 2 and the skipped visit's 5; unrated: null, 0, 7, -1
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


def test_flags_and_ratings_arriving_as_text_mean_the_same(kpi_layout):
    day = _kpi(kpi_layout, "kpi_daily", visit_date=TEXT_DAY)

    assert day["closed_visits"] == 3  # "1", "true", "TRUE"
    assert (day["rated_visits"], day["promoters"], day["passives"], day["detractors"]) == (3, 1, 1, 1)
    assert day["nps"] == 0.0
    assert day["avg_rating"] == pytest.approx(4.0)


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

    assert drivers == [("(unknown)", 1), ("d1", 12), ("d2", 4), ("d3", 2)]
    assert dict(sites)["S2"] == 3
    assert query(kpi_layout, "select sum(visits) from marts.dim_territories") == query(
        kpi_layout, "select count(*) from marts.fct_visits"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("false", False),
        ("0", False),
        ("", None),
        ("maybe", None),
        (None, None),
    ],
)
def test_parse_flag(value, expected):
    connection = duckdb.connect()
    connection.execute((config.SQL_DIR / "macros" / "parsing.sql").read_text())

    assert connection.execute("select parse_flag(?::varchar)", [value]).fetchone()[0] is expected
