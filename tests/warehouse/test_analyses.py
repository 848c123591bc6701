"""The analyst's side: each example analysis gives the right answer, the CLI opens the file, Python reads it.

Every analysis in sql/analyses/ runs on a warehouse built from a seeded sample lake, and its answer is
compared with the same question answered here in plain Python over the sample's rows
(tests/warehouse/recompute.py holds the warehouse's rules written from the models' contracts), never
by running SQL again. A few visits are added to the sample so that each filter and join decides
something: a skipped visit on each side of the 30-day boundary, a driver whose ratings are all older
than that, a driver with one rating too few for the leaderboard, a visit of two serial numbers of
which one needed a return.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from letsjobit import config
from letsjobit.warehouse import build as warehouse
from letsjobit.warehouse import documentation, kpis, project

from tests.warehouse import lakes
from tests.warehouse.recompute import (
    closed_within_window,
    equipment_histories,
    hours_to_close,
    latest,
    member,
    returns,
    week_of,
)

ANALYSES = project.analyses()
LAST_30_DAYS = timedelta(days=30)  # "the last 30 days of data": after the latest date less 30 days
MIN_RATED = 5  # the NPS leaderboard ranks drivers with at least this many rated visits
TOP_SITES, TOP_DRIVERS = 20, 10


def _deciding_visits(rows: dict) -> tuple[list[dict], list[dict]]:
    """Visits (and their lines) that only a right date filter, threshold or join leaves out of an answer."""
    last = max(visit["visit_date"] for visit in rows["visits"])
    boundary = last - LAST_30_DAYS

    def skip(visit_id, day, reason):
        return lakes.visit(visit_id, day, driver_id="d0", skipped=True, skipped_reason_id=reason)

    def rated(visit_id, day, driver_id, rating=5):
        return lakes.visit(
            visit_id, day, driver_id=driver_id, driver_name="Ines", closed=True, signee_rating=rating
        )

    # One visit services two serial numbers at a site; the return visit comes back for one of them only.
    fix = lakes.visit("x-fix", boundary, driver_id="d-fix", site_id="site-x", closed=True)
    back = lakes.visit(
        "x-fix-back", boundary + timedelta(days=5), driver_id="d0", site_id="site-x", closed=True
    )
    lines = [
        lakes.line(fix, 0, serial_nr="SN-x-1"),
        lakes.line(fix, 1, serial_nr="SN-x-2"),
        lakes.line(back, 0, serial_nr="SN-x-1"),
    ]
    visits = [
        fix,
        back,
        skip("x-skip-out", boundary, "reason-outside"),  # exactly 30 days before the latest: out
        skip("x-skip-in", boundary + timedelta(days=1), "reason-inside"),
        # d-old: rated often, but 30 days or more before the latest date; once since, unrated
        *(rated(f"x-old-{n}", boundary - timedelta(days=n), "d-old") for n in range(6)),
        rated("x-old-recent", last, "d-old", rating=None),
        *(rated(f"x-few-{n}", last - timedelta(days=n), "d-few", rating=1) for n in range(MIN_RATED - 1)),
    ]
    return visits, lines


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    """The warehouse built from the sample lake (and the deciding visits), and the rows it was built from."""
    layout = config.DataLayout(tmp_path_factory.mktemp("analyses") / "data")
    rows = lakes.sample()
    visits, lines = _deciding_visits(rows)
    rows["visits"] += visits
    rows["lines"] += lines
    lakes.publish(layout, **rows)
    warehouse.build(layout, run_id="sample")
    documentation.compile_analyses(layout)
    return layout.warehouse, rows


def answer(warehouse_path: Path, analysis: str) -> list[tuple]:
    """The rows ``sql/analyses/<analysis>.sql``, compiled by dbt, answers on the warehouse, in its order."""
    compiled = warehouse_path.parent / "analyses" / f"{analysis}.sql"
    connection = warehouse.connect_read_only(warehouse_path)
    try:
        return connection.execute(compiled.read_text()).fetchall()
    finally:
        connection.close()


def rounded(exact: float | None, digits: int):
    """What the analysis shows for ``exact`` rounded to ``digits`` (either way at a half)."""
    return None if exact is None else pytest.approx(exact, abs=0.5 * 10**-digits + 1e-9)


def ordered(keys: list[tuple]) -> bool:
    return keys == sorted(keys)


CHECKED = (
    "close_rate_by_territory_by_week",
    "first_time_fix_by_driver",
    "sites_closed_outside_time_window",
    "skip_reasons_last_30_days",
    "top_drivers_by_nps_last_30_days",
)


def test_every_example_analysis_has_its_answer_checked_here():
    assert sorted(path.stem for path in ANALYSES) == sorted(CHECKED)


def test_close_rate_by_territory_by_week_counts_each_territorys_visits_of_each_week(sample):
    warehouse_path, rows = sample
    weeks: dict[tuple, list[dict]] = defaultdict(list)
    for visit in rows["visits"]:
        weeks[(week_of(visit["visit_date"]), member(visit["territory"]))].append(visit)
    wanted = [
        (
            week,
            territory,
            len(visits),
            sum(visit["closed"] for visit in visits),
            rounded(sum(visit["closed"] for visit in visits) / len(visits), 3),
            rounded(sum(visit["skipped"] for visit in visits) / len(visits), 3),
        )
        for (week, territory), visits in sorted(weeks.items())
    ]

    assert answer(warehouse_path, "close_rate_by_territory_by_week") == wanted
    assert len({week for week, _ in weeks}) >= 6 and ("(unknown)" in {t for _, t in weeks})


def test_first_time_fix_counts_a_return_against_the_driver_of_the_earlier_visit(sample):
    warehouse_path, rows = sample
    fixes: Counter[str] = Counter()
    for visits in equipment_histories(rows).values():
        fixes.update(member(visit["driver_id"]) for visit in visits)
    needed = Counter(member(before["driver_id"]) for before, _, _ in returns(rows))
    wanted = {
        driver: (fixes[driver], needed[driver], rounded(1 - needed[driver] / fixes[driver], 3))
        for driver in fixes
    }

    actual = answer(warehouse_path, "first_time_fix_by_driver")

    assert {row[0]: row[1:] for row in actual} == wanted and len(actual) == len(wanted)
    assert ordered([(row[3], -row[1]) for row in actual])
    # the returns fall on other drivers than the fixes they undo, so the side of the join matters; and
    # d-fix's visit of two serial numbers needed a return for one of them only
    assert any(member(b["driver_id"]) != member(a["driver_id"]) for b, a, _ in returns(rows))
    assert wanted["d-fix"][:2] == (2, 1)


def test_sites_closed_outside_their_window_are_the_top_sites_with_their_latest_customer(sample):
    warehouse_path, rows = sample
    sites: dict[str, list[dict]] = defaultdict(list)
    for visit in rows["visits"]:
        sites[member(visit["site_id"])].append(visit)
    wanted = {}
    for site, visits in sites.items():
        windows = [closed_within_window(visit) for visit in visits]
        hours = [h for h in map(hours_to_close, visits) if h is not None]
        newest = latest(visits)
        if windows.count(False):
            wanted[site] = (
                site,
                newest.get("customer"),
                newest.get("city"),
                sum(window is not None for window in windows),
                windows.count(False),
                rounded(sum(hours) / len(hours) if hours else None, 1),
            )

    actual = answer(warehouse_path, "sites_closed_outside_time_window")

    assert len(wanted) > TOP_SITES and len(actual) == TOP_SITES
    assert actual == [wanted[row[0]] for row in actual]
    ranks = [(-row[4], -row[3]) for row in actual]
    assert ordered(ranks)
    shown = {row[0] for row in actual}
    assert all((-row[4], -row[3]) >= ranks[-1] for site, row in wanted.items() if site not in shown)


def test_skip_reasons_of_the_last_30_days_end_at_the_latest_skip_and_exclude_the_day_30_days_before(sample):
    warehouse_path, rows = sample
    skipped = [visit for visit in rows["visits"] if visit["skipped"]]
    last = max(visit["visit_date"] for visit in skipped)
    recent = [visit for visit in skipped if visit["visit_date"] > last - LAST_30_DAYS]
    reasons = Counter(member(visit["skipped_reason_id"]) for visit in recent)
    wanted = {reason: (count, rounded(count / len(recent), 3)) for reason, count in reasons.items()}

    actual = answer(warehouse_path, "skip_reasons_last_30_days")

    assert {row[0]: row[1:] for row in actual} == wanted and len(actual) == len(wanted)
    assert ordered([-row[1] for row in actual])
    assert "reason-inside" in wanted and "reason-outside" not in wanted
    assert len(recent) < len(skipped) - 1  # the sample's older skips are left out too


def test_top_drivers_by_nps_rank_the_last_30_days_ratings_of_drivers_rated_often_enough(sample):
    warehouse_path, rows = sample
    last = max(visit["visit_date"] for visit in rows["visits"])
    recent: dict[str, list[dict]] = defaultdict(list)
    named: dict[str, list[dict]] = defaultdict(list)
    for visit in rows["visits"]:
        if visit["visit_date"] > last - LAST_30_DAYS:
            recent[member(visit["driver_id"])].append(visit)
        if visit["driver_name"] is not None:
            named[member(visit["driver_id"])].append(visit)
    scores = {}
    for driver, visits in recent.items():
        ratings = [visit["signee_rating"] for visit in visits if visit.get("signee_rating") is not None]
        if len(ratings) >= MIN_RATED:
            nps = 100 * (ratings.count(5) - sum(rating <= 3 for rating in ratings)) / len(ratings)
            closed = sum(visit["closed"] for visit in visits) / len(visits)
            scores[driver] = (nps, len(ratings), len(visits), closed)
    top = sorted(scores, key=lambda driver: (-scores[driver][0], -scores[driver][1]))[:TOP_DRIVERS]
    wanted = {
        driver: (
            latest(named[driver])["driver_name"],
            scores[driver][2],
            scores[driver][1],
            rounded(scores[driver][0], 1),
            rounded(scores[driver][3], 3),
        )
        for driver in top
    }

    actual = answer(warehouse_path, "top_drivers_by_nps_last_30_days")

    assert {row[0]: row[1:] for row in actual} == wanted and len(actual) == len(wanted)
    assert ordered([(-row[4], -row[3]) for row in actual])
    assert "d-old" not in wanted and "d-few" not in wanted and len(wanted) >= 5


def _duckdb_cli() -> str | None:
    local = Path(sys.executable).parent / "duckdb"
    return str(local) if local.exists() else shutil.which("duckdb")


@pytest.mark.skipif(_duckdb_cli() is None, reason="the duckdb CLI (requirements-dev) is not installed")
def test_the_pinned_duckdb_cli_opens_the_warehouse(sample):
    warehouse_path, rows = sample
    result = subprocess.run(
        [
            _duckdb_cli(),
            "-readonly",
            "-csv",
            str(warehouse_path),
            "select fct_visits_rows, marts.close_rate(sum(closed_visits), sum(visits)) as close_rate "
            "from marts.build_info, marts.kpi_daily group by all",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    close_rate = sum(visit["closed"] for visit in rows["visits"]) / len(rows["visits"])
    header, values = result.stdout.split()
    assert header == "fct_visits_rows,close_rate"
    assert values.split(",")[0] == str(len(rows["visits"]))
    assert float(values.split(",")[1]) == pytest.approx(close_rate)


def test_python_reads_the_warehouse_the_way_the_readme_says(sample):
    warehouse_path, _ = sample
    connection = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        frame = connection.sql("select * from marts.kpi_daily order by visit_date").df()
    finally:
        connection.close()

    assert set(kpis.HEADLINE) <= set(frame.columns)
