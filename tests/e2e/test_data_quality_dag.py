"""A bad value never costs its visit, end to end: real `airflow dags test` runs over a simulator serving the
reference's messy encodings (the default generator), every kind of bad record and fields the reference
does not list at every level, checked against the simulator's test oracle
(`include/letsjobit/simulator/expectations.py`), which shares no code with the pipeline.

A full refresh, then a scheduled-style window run on the same data (one bad record repaired and one
clean visit spoiled in the window first), then a full refresh against an API whose ratings switched
scale on a systemic share of visits, which must fail and publish nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from datetime import date, timedelta

import duckdb
import pytest
from letsjobit import config
from letsjobit.devtools.airflow_runner import AirflowHome
from letsjobit.devtools.truth import kpi_mismatches
from letsjobit.lake import tables
from letsjobit.simulator import SimulatorConfig, SimulatorServer, data
from letsjobit.simulator.bad_record_kinds import BAD_RECORD_KIND_NAMES, bad_record_kind
from letsjobit.simulator.expectations import (
    ISSUE_COLUMNS,
    Expectation,
    expected_outcome,
    issue_sort_key,
)

from tests.conftest import TEST_ANCHOR_DATE, TEST_API_KEY
from tests.e2e.helpers import dags_test

pytestmark = pytest.mark.airflow

SIMULATOR = {
    "visits": 1600,
    "seed": 13,
    "anchor_date": TEST_ANCHOR_DATE,
    "days": 20,
    "days_ahead": 5,
    "api_keys": (TEST_API_KEY,),
    # Every kind several times, each check well within its 5% threshold (the largest, ratings, ~2.6%).
    "bad_record_rate": 0.15,
    "unknown_field_rate": 0.05,
}
# A scheduled-style run at the day after the anchor: its data interval (the day before the anchor)
# widened by the look-back and look-ahead days re-reads anchor-4 .. anchor (checked after the run).
WINDOW_RUN_DATE = (TEST_ANCHOR_DATE + timedelta(days=1)).isoformat()
WINDOW_CONF = {"full_refresh": False, "lookback_days": 3, "lookahead_days": 1}
WINDOW = {TEST_ANCHOR_DATE + timedelta(days=offset) for offset in range(-4, 1)}
# The issue row's columns the oracle fixes, and the partition the row lands in.
ISSUE_QUERY_COLUMNS = (*ISSUE_COLUMNS, "visit_date")
PUBLISHED_LAKE = (
    "visits",
    "visit_lines",
    "line_extra_data",
    "data_issues",
    "_publication",
    "_last_publication.json",
)


@dataclasses.dataclass(frozen=True)
class Published:
    """What a run left: the ground truth it ran over and where its output is."""

    truth: list[dict]
    bad_records: dict[str, str]
    layout: config.DataLayout

    def expected(self, dates=None) -> Expectation:
        return expected_outcome(self.truth, self.bad_records, dates=dates)


@pytest.fixture(scope="module")
def sim():
    server = SimulatorServer(SimulatorConfig(**SIMULATOR)).start()
    assert set(server.store.bad_records.values()) == set(BAD_RECORD_KIND_NAMES), "a kind is missing"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def airflow(sim, tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    home = AirflowHome(
        path=root / "airflow",
        api_url=sim.base_url,
        api_key=TEST_API_KEY,
        data_dir=root / "data",
        log_file=root / "airflow.log",
        retry_delay_seconds=1,
        conn_extra={"fault_budget_seconds": 3},
        extra_env={"LETSJOBIT_PSEUDONYMISE_KEY": ""},  # the oracle's raw values are not pseudonymised
    )
    home.init()
    return home


@pytest.fixture(scope="module")
def full_refresh(sim, airflow) -> Published:
    code, _ = dags_test(airflow, conf={"full_refresh": True})
    assert code == 0, f"DAG run failed; see {airflow.log_file}"
    return Published(sim.store.snapshot(), dict(sim.store.bad_records), config.DataLayout(airflow.data_dir))


@pytest.fixture(scope="module")
def window_run(sim, airflow, full_refresh) -> Published:
    """The window run, after repairing one bad record of the window and spoiling one clean visit in it."""
    in_window = [v for v in full_refresh.truth if data_date(v) in WINDOW]
    repaired = next(
        v
        for v in in_window
        if data.record_key(v) in full_refresh.bad_records
        and bad_record_kind(full_refresh.bad_records[data.record_key(v)]).field == "signeeRating"
    )
    sim.store.update(repaired["_id"], {"signeeRating": "4"})
    assert repaired["_id"] not in sim.store.bad_records  # the simulator's ground truth follows the repair
    spoiled = next(v for v in in_window if data.record_key(v) not in full_refresh.bad_records)
    sim.store.update(spoiled["_id"], {"lat": "200"})
    sim.store.bad_records[spoiled["_id"]] = "latitude_out_of_range_text"

    code, _ = dags_test(airflow, logical_date=WINDOW_RUN_DATE, conf=WINDOW_CONF)
    assert code == 0, f"window run failed; see {airflow.log_file}"
    layout = config.DataLayout(airflow.data_dir)
    publication = json.loads(layout.last_publication.read_text())
    assert {date.fromisoformat(day) for day in publication["partitions"]} == WINDOW
    return Published(sim.store.snapshot(), dict(sim.store.bad_records), layout)


def data_date(visit: dict) -> date | None:
    try:
        return date.fromisoformat(visit["date"])
    except (KeyError, TypeError, ValueError):
        return None


def query(layout: config.DataLayout, sql: str, parameters=()) -> list[tuple]:
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        return con.execute(sql, list(parameters)).fetchall()


def lake_rows(layout: config.DataLayout, table: str, columns: str, dates=None) -> list[tuple]:
    """Rows of a published lake table (those of ``dates`` only, when given)."""
    where = "true" if dates is None else "visit_date in (select unnest(?))"
    with duckdb.connect() as con:
        con.register("lake_table", tables.dataset(layout, table))
        return con.execute(
            f"select {columns} from lake_table where {where}", [] if dates is None else [sorted(dates)]
        ).fetchall()


def warehouse_issues(layout: config.DataLayout, dates=None) -> list[tuple]:
    where = "true" if dates is None else "visit_date in (select unnest(?))"
    rows = query(
        layout,
        f"select {', '.join(ISSUE_QUERY_COLUMNS)} from marts.fct_data_issues where {where}",
        [] if dates is None else [sorted(dates)],
    )
    return sorted(rows, key=issue_sort_key)


def oracle_issues(expected: Expectation) -> list[tuple]:
    return sorted(((*issue.row(), issue.visit_date) for issue in expected.issues), key=issue_sort_key)


def published_digest(layout: config.DataLayout) -> dict[str, str]:
    """The published lake's files and the warehouse file, each with a hash of its bytes."""
    paths = [layout.warehouse]
    for name in PUBLISHED_LAKE:
        root = layout.lake / name
        paths += sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_a_full_refresh_publishes_every_listed_visit_but_those_that_cannot_be_placed(full_refresh):
    expected = full_refresh.expected()
    layout = full_refresh.layout

    warehouse_ids = [row[0] for row in query(layout, "select visit_id from marts.fct_visits")]
    assert sorted(warehouse_ids) == sorted(expected.published)
    kinds = {bad_record_kind(full_refresh.bad_records[key]) for key in expected.quarantined}
    assert {kind.name for kind in kinds} == {"missing_id", "missing_date", "impossible_date"}
    assert set(expected.listed) == {data.record_key(v) for v in full_refresh.truth}
    assert len(expected.published) + len(expected.quarantined) == len(expected.listed)
    counts = {table: lake_rows(layout, table, "count(*)")[0][0] for table in expected.row_counts}
    assert counts == expected.row_counts
    extra_fields = {
        (table, *row[:-1]): json.loads(row[-1])
        for table, keys in (
            ("visits", "visit_id, null, null"),
            ("visit_lines", "visit_id, line_index, null"),
            ("line_extra_data", "visit_id, line_index, extra_index"),
        )
        for row in lake_rows(layout, table, f"{keys}, extra_fields")
        if row[-1] is not None
    }
    assert extra_fields == expected.extra_fields  # fields the reference does not list, at every level
    assert {table for table, *_ in extra_fields} == {"visits", "visit_lines", "line_extra_data"}


def test_a_full_refresh_records_exactly_the_oracles_issue_rows(full_refresh):
    expected = full_refresh.expected()

    assert warehouse_issues(full_refresh.layout) == oracle_issues(expected)
    by_check = query(
        full_refresh.layout,
        "select check_name, sum(issues)::int from marts.kpi_data_issues_daily group by check_name",
    )
    assert dict(by_check) == Counter(issue.check_name for issue in expected.issues)


def test_every_kpi_of_a_full_refresh_equals_the_recomputation_from_the_served_records(full_refresh):
    assert kpi_mismatches(full_refresh.layout.warehouse, full_refresh.truth, full_refresh.bad_records) == []


def test_a_window_run_replaces_its_dates_visits_issues_and_kpis(window_run):
    expected = window_run.expected(dates=WINDOW)
    layout = window_run.layout

    window_ids = query(
        layout,
        "select visit_id from marts.fct_visits where visit_date in (select unnest(?))",
        [sorted(WINDOW)],
    )
    assert sorted(row[0] for row in window_ids) == sorted(expected.published)
    counts = {table: lake_rows(layout, table, "count(*)", WINDOW)[0][0] for table in expected.row_counts}
    assert counts == expected.row_counts
    assert warehouse_issues(layout, WINDOW) == oracle_issues(expected)
    # Outside the window nothing changed at the source: the whole table is the full refresh's oracle.
    assert warehouse_issues(layout) == oracle_issues(window_run.expected())
    assert kpi_mismatches(window_run.layout.warehouse, window_run.truth, window_run.bad_records) == []


def test_a_systemic_share_of_bad_ratings_fails_the_run_and_publishes_nothing(airflow, window_run):
    before = published_digest(window_run.layout)
    rescaled = SimulatorServer(
        SimulatorConfig(
            **{**SIMULATOR, "bad_record_rate": 0.12, "bad_record_kinds": ("rating_out_of_range",)}
        )
    ).start()
    try:
        code, log = dags_test(
            dataclasses.replace(airflow, api_url=rescaled.base_url), conf={"full_refresh": True}
        )
    finally:
        rescaled.stop()

    assert code != 0
    assert "validation failed for run" in log
    failure = next(line for line in log.splitlines() if "validation failed for run" in line)
    assert "visits.signee_rating_in_range" in failure and "above the threshold of 5.00%" in failure
    assert "e.g. ['9']" in failure
    assert "new_state=up_for_retry" not in log, "a validation failure was retried"
    assert published_digest(window_run.layout) == before, "a failed gate changed the lake or the warehouse"
