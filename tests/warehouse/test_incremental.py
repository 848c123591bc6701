"""Latest-version dedupe across partitions and runs, and incremental builds that equal full ones."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from letsjobit import config
from letsjobit.warehouse import build as warehouse

from tests.warehouse import lakes
from tests.warehouse.conftest import query, query_dicts

DAY1, DAY2, DAY3, DAY4 = (date(2026, 11, 1) + timedelta(days=offset) for offset in range(4))
LATER = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _version(visit_id, day, *, run, modified, fetched=lakes.FETCHED_AT, rating=None, serials=()):
    row = lakes.visit(
        visit_id, day, run_id=run, modified_at=modified, fetched_at=fetched, signee_rating=rating, closed=True
    )
    lines = [lakes.line(row, index, serial_nr=serial) for index, serial in enumerate(serials)]
    return row, lines


def test_a_visit_seen_in_two_partitions_shows_once_in_its_latest_version_with_its_lines(layout):
    old, old_lines = _version(
        "v1", DAY1, run="run-1", modified=datetime(2026, 11, 1, 9), rating=2, serials=("A", "B")
    )
    new, new_lines = _version(
        "v1", DAY2, run="run-2", modified=datetime(2026, 11, 1, 12), rating=5, serials=("C",)
    )
    lakes.publish(layout, [old], old_lines)
    lakes.publish(layout, [new], new_lines)  # the visit moved to DAY2; DAY1 was not refreshed

    warehouse.build(layout)

    visits = query_dicts(
        layout, "select visit_id, visit_date, signee_rating, version_count from marts.fct_visits"
    )
    assert visits == [{"visit_id": "v1", "visit_date": DAY2, "signee_rating": 5, "version_count": 2}]
    assert query(layout, "select serial_nr from marts.fct_visit_lines") == [("C",)]
    assert query(layout, "select visits, promoters from marts.kpi_daily") == [(1, 1)]


def test_equal_modified_at_is_settled_by_the_later_fetch_and_unknown_modified_at_loses(layout):
    same_time = datetime(2026, 11, 1, 9)
    first, _ = _version("v1", DAY1, run="run-1", modified=same_time, rating=1)
    refetched, _ = _version("v1", DAY2, run="run-2", modified=same_time, fetched=LATER, rating=4)
    known, _ = _version("v2", DAY1, run="run-1", modified=same_time, rating=3)
    unknown, _ = _version("v2", DAY2, run="run-2", modified=None, fetched=LATER, rating=5)
    lakes.publish(layout, [first, known])
    lakes.publish(layout, [refetched, unknown])

    warehouse.build(layout)

    assert query(layout, "select visit_id, signee_rating from marts.fct_visits order by 1") == [
        ("v1", 4),
        ("v2", 3),
    ]


def _marts(layout: config.DataLayout) -> dict[str, list[tuple]]:
    """Every mart's rows (build_info aside), sorted, floats rounded: what a full and an incremental build must agree on."""
    connection = duckdb.connect(str(layout.warehouse), read_only=True)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'marts' and table_name <> 'build_info'"
            ).fetchall()
        ]
        return {
            table: sorted(
                (
                    tuple(round(v, 9) if isinstance(v, float) else v for v in row)
                    for row in connection.execute(f"select * from marts.{table}").fetchall()
                ),
                key=repr,
            )
            for table in tables
        }
    finally:
        connection.close()


def test_incremental_builds_equal_full_builds_through_moves_deletes_and_new_partitions(tmp_path):
    incremental = config.DataLayout(tmp_path / "incremental")
    full = config.DataLayout(tmp_path / "full")
    full.root.mkdir(parents=True)
    (full.root / "lake").symlink_to(incremental.lake, target_is_directory=True)
    incremental.lake.mkdir(parents=True)

    def visits_of(day, ids, run, hour=9, **columns):
        """The visits with one line each, and a data issue on every visit (its priority nulled)."""
        rows, lines, issues = [], [], []
        for visit_id in ids:
            row, row_lines = _version(
                visit_id, day, run=run, modified=datetime(2026, 11, 1, hour), serials=("S",)
            )
            row.update(columns)
            rows.append(row)
            lines += row_lines
            issues.append(lakes.issue(row, "visits.priority_parses", "priority", f"urgent-{run}"))
        return {"visits": rows, "lines": lines, "issues": issues}

    steps = [
        # (what changes in the lake, the partitions the caller names)
        lambda: lakes.publish(
            incremental,
            **_concat(
                visits_of(DAY1, ["a", "b", "m"], "r1"),
                visits_of(DAY2, ["c"], "r1"),
                visits_of(DAY3, ["d", "g"], "r1"),
                {
                    "issues": [
                        lakes.issue(
                            None, "visits.date_valid", "date", "", severity="record", action="quarantined"
                        )
                    ]
                },
            ),
        ),
        # a rating changes on DAY1
        lambda: lakes.publish(
            incremental, **visits_of(DAY1, ["a", "b", "m"], "r2", hour=10, signee_rating=5)
        ),
        # "m" moves to DAY2; DAY1 is not refreshed, so it sits in both partitions
        lambda: lakes.publish(
            incremental, **_concat(visits_of(DAY2, ["c"], "r3"), visits_of(DAY2, ["m"], "r3", hour=11))
        ),
        # "d" is deleted at the source; "g" moves to DAY4, a new partition
        lambda: lakes.publish(
            incremental,
            **_concat(visits_of(DAY3, [], "r4"), visits_of(DAY4, ["g"], "r4", hour=12)),
            dates=[DAY3, DAY4],
        ),
        # "m" disappears from DAY2: its older DAY1 version is the latest the lake still has
        lambda: lakes.publish(incremental, **visits_of(DAY2, ["c"], "r5"), dates=[DAY2]),
        # DAY4 is emptied, and a full refresh's undated issue is gone
        lambda: lakes.publish(incremental, [], [], dates=[DAY4, None]),
    ]
    for number, step in enumerate(steps):
        changed = step()
        incremental_result = warehouse.build(incremental, changed_dates=changed, run_id=f"step-{number}")
        warehouse.build(full, run_id=f"step-{number}")

        assert incremental_result.mode == ("full" if number == 0 else "incremental")
        assert _marts(incremental) == _marts(full), f"step {number}"
    assert query(incremental, "select visit_id, visit_date from marts.fct_visits order by 1") == [
        ("a", DAY1),
        ("b", DAY1),
        ("c", DAY2),
        ("m", DAY1),
    ]
    # the issues of the lake as it is now: DAY1's from r2, DAY2's from r5, none undated
    assert query(
        incremental, "select raw_value, count(*) from marts.fct_data_issues group by 1 order by 1"
    ) == [
        ("urgent-r2", 3),
        ("urgent-r5", 1),
    ]


def _concat(*parts):
    merged = {"visits": [], "lines": [], "issues": []}
    for part in parts:
        for table, rows in part.items():
            merged[table] += rows
    return merged


def test_partitions_changed_without_being_named_are_reloaded(layout):
    lakes.publish(layout, [lakes.visit("a", DAY1, signee_rating=1)])
    warehouse.build(layout)
    lakes.publish(layout, [lakes.visit("a", DAY1, signee_rating=5)])  # e.g. a run whose build failed

    result = warehouse.build(layout, changed_dates=[])

    assert result.mode == "incremental" and result.changed_partitions == (DAY1,)
    assert query(layout, "select signee_rating from marts.fct_visits") == [(5,)]


def test_changed_sql_forces_a_full_build(layout, tmp_path):
    lakes.publish(layout, [lakes.visit("a", DAY1)])
    warehouse.build(layout)
    project_dir = tmp_path / "sql"
    shutil.copytree(config.SQL_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    kpi = project_dir / "models" / "marts" / "kpi_daily.sql"
    kpi.write_text(kpi.read_text() + "\n")

    result = warehouse.build(layout, changed_dates=[DAY1], project_dir=project_dir)

    assert result.mode == "full" and "SQL models changed" in result.reason


def _stored_and_live(layout: config.DataLayout, table: str) -> tuple[int, int]:
    ((stored,),) = query(
        layout,
        "select estimated_size from duckdb_tables() where schema_name || '.' || table_name = ?",
        [table],
    )
    ((live,),) = query(layout, f"select count(*) from {table}")
    return stored, live


def test_a_table_storing_mostly_deleted_rows_is_compacted_by_the_next_build(layout):
    lakes.publish(layout, [lakes.visit("a", DAY1, signee_rating=1), lakes.visit("b", DAY2, signee_rating=3)])
    warehouse.build(layout)
    # dbt's checkpoints do not vacuum (for speed), so the rows incremental models delete stay stored; a
    # small test lake's tables recycle them, so leave more than a row group of them in the file the next
    # build starts from, as months of window runs would in a fact table.
    connection = duckdb.connect(str(layout.warehouse), config={"max_vacuum_tasks": 0})
    try:
        connection.execute("create table marts.replaced_rows as select range as n from range(300000)")
        connection.execute("checkpoint")
        connection.execute("delete from marts.replaced_rows where n % 10 <> 0")
        connection.execute("checkpoint")
    finally:
        connection.close()
    assert _stored_and_live(layout, "marts.replaced_rows") == (300000, 30000)
    lakes.publish(layout, [lakes.visit("a", DAY1, signee_rating=5)], dates=[DAY1])

    result = warehouse.build(layout, changed_dates=[DAY1])

    assert result.mode == "incremental", result.reason
    assert _stored_and_live(layout, "marts.replaced_rows") == (30000, 30000)
    assert query(layout, "select sum(n) from marts.replaced_rows") == [(sum(range(0, 300000, 10)),)]
    assert query(layout, "select visit_id, signee_rating from marts.fct_visits order by 1") == [
        ("a", 5),
        ("b", 3),
    ]


def test_a_duplicate_key_fails_the_build_and_names_the_visit(layout):
    lakes.publish(layout, [lakes.visit("dup", DAY1), lakes.visit("dup", DAY1)])

    with pytest.raises(warehouse.WarehouseError, match="dup"):
        warehouse.build(layout)
    assert not layout.warehouse.exists()


def test_incremental_builds_equal_full_builds_through_random_republications(tmp_path):
    """A seeded random walk: each step republishes a few days with visits that move between days,
    change driver (and its name), site, territory, serial numbers, outcome and rating, or vanish. After
    each step an incremental build (naming the days) must equal a full build of the same lake: every
    derived table (measures, equipment histories, KPIs, dimensions) recomputed only where it changed."""
    rng = random.Random(20261202)
    incremental = config.DataLayout(tmp_path / "incremental")
    full = config.DataLayout(tmp_path / "full")
    incremental.lake.mkdir(parents=True)
    full.root.mkdir(parents=True)
    (full.root / "lake").symlink_to(incremental.lake, target_is_directory=True)
    days = [DAY1 + timedelta(days=offset) for offset in (0, 1, 2, 12, 25, 40)]
    visit_ids = [f"v{number}" for number in range(14)]

    def partition(day, step):
        rows, lines = [], []
        for visit_id in rng.sample(visit_ids, rng.randint(0, 6)):
            closed = rng.random() < 0.7
            row = lakes.visit(
                visit_id,
                day,
                run_id=f"r{step}",
                modified_at=datetime(2026, 11, 1, 8) + timedelta(hours=step, minutes=rng.randint(0, 59)),
                driver_id=rng.choice(["d1", "d2", "d3", None]),
                driver_name=rng.choice(["Liam", "Ines", "Noor"]),
                site_id=rng.choice(["s1", "s2", "s3", None]),
                territory=rng.choice(["T1", "T2", None]),
                closed=closed,
                skipped=not closed and rng.random() < 0.5,
                skipped_reason_id=rng.choice(["1", "2", None]),
                signee_rating=rng.choice([None, 1, 3, 4, 5]) if closed else None,
            )
            rows.append(row)
            serials = rng.sample(["A", "B"], rng.randint(0, 2))
            lines += [lakes.line(row, index, serial_nr=serial) for index, serial in enumerate(serials)]
        return rows, lines

    for step in range(6):
        chosen = days if step == 0 else rng.sample(days, rng.randint(1, 3))
        visits, lines = [], []
        for day in chosen:
            day_visits, day_lines = partition(day, step)
            visits += day_visits
            lines += day_lines
        changed = lakes.publish(incremental, visits, lines, dates=chosen)

        result = warehouse.build(incremental, changed_dates=changed, run_id=f"step-{step}")
        warehouse.build(full, run_id=f"step-{step}")

        assert result.mode == ("full" if step == 0 else "incremental")
        assert _marts(incremental) == _marts(full), f"step {step}"


def test_an_incremental_build_tests_the_rows_it_changed_and_fails_on_a_duplicate(layout):
    """Tests read only the rows an incremental build could change (meta.incremental_test_scope); a
    duplicate key among them still fails the build and names the visit."""
    lakes.publish(layout, [lakes.visit("a", DAY1), lakes.visit("b", DAY2)])
    warehouse.build(layout)
    changed = lakes.publish(layout, [lakes.visit("dup", DAY2), lakes.visit("dup", DAY2, run_id="run-1")])

    with pytest.raises(warehouse.WarehouseError, match="(?s)unique_key_int_visit_versions.*'dup'"):
        warehouse.build(layout, changed_dates=changed)
    assert query(layout, "select visit_id from marts.fct_visits order by 1") == [("a",), ("b",)]


def test_a_visit_leaving_an_equipment_history_recomputes_the_next_visits_repeat_measures(tmp_path):
    """Visit "b" repeats "a"'s visit to the same boiler within the repeat window; when "a" is reopened (no
    longer closed), "b" — in a day the build did not read — stops being a repeat visit, and its
    measures and its day's KPIs must follow, as a full build of the same lake has them."""
    incremental = config.DataLayout(tmp_path / "incremental")
    full = config.DataLayout(tmp_path / "full")
    incremental.lake.mkdir(parents=True)
    full.root.mkdir(parents=True)
    (full.root / "lake").symlink_to(incremental.lake, target_is_directory=True)
    later = DAY1 + timedelta(days=10)

    def visit_with_boiler(visit_id, day, run, closed):
        row = lakes.visit(visit_id, day, run_id=run, site_id="s1", closed=closed, skipped=False)
        return row, [lakes.line(row, 0, serial_nr="SN-1")]

    a, a_lines = visit_with_boiler("a", DAY1, "r1", closed=True)
    b, b_lines = visit_with_boiler("b", later, "r1", closed=True)
    lakes.publish(incremental, [a, b], a_lines + b_lines)
    warehouse.build(incremental, run_id="first")
    assert query(incremental, "select visit_id, repeat_visits from marts.fct_visit_measures order by 1") == [
        ("a", 0),
        ("b", 1),
    ]

    a, a_lines = visit_with_boiler("a", DAY1, "r2", closed=False)
    changed = lakes.publish(incremental, [a], a_lines, dates=[DAY1])
    result = warehouse.build(incremental, changed_dates=changed, run_id="second")
    warehouse.build(full, run_id="second")

    assert result.mode == "incremental" and result.changed_partitions == (DAY1,)
    assert query(incremental, "select visit_id, repeat_visits from marts.fct_visit_measures order by 1") == [
        ("a", 0),
        ("b", 0),
    ]
    assert _marts(incremental) == _marts(full)
