"""Readers in other processes never block a build and never see half of one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from datetime import date, timedelta

import duckdb
import pytest
from letsjobit.lake import snapshot, tables
from letsjobit.warehouse import build as warehouse

from tests.warehouse import lakes
from tests.warehouse.conftest import query, query_dicts

# A BI reader: opens the warehouse read-only again and again until told to stop, and checks that
# everything it sees in one connection belongs to one build.
READER = r"""
import json, pathlib, sys, time
import duckdb

path, stop = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
reads, errors, inconsistent, builds = 0, [], [], set()
while not stop.exists():
    try:
        connection = duckdb.connect(str(path), read_only=True)
        try:
            run_id, recorded, visits, kpi_visits, line_visits = connection.execute(
                "select run_id, fct_visits_rows, (select count(*) from marts.fct_visits),"
                " (select sum(visits) from marts.kpi_daily),"
                " (select count(distinct visit_id) from marts.fct_visit_lines) from marts.build_info"
            ).fetchone()
        finally:
            connection.close()
        reads += 1
        builds.add(run_id)
        expected = int(run_id.split("-")[1])  # run ids are "visits-<count>-<n>"
        if not (recorded == visits == kpi_visits == line_visits == expected):
            inconsistent.append([run_id, recorded, visits, kpi_visits, line_visits])
    except Exception as error:
        errors.append(repr(error))
    time.sleep(0.005)  # hammer, but leave the build some of the machine's two cores
print(json.dumps({"reads": reads, "errors": errors[:5], "error_count": len(errors),
                  "inconsistent": inconsistent[:5], "builds": sorted(builds)}))
"""


def _publish_visits(layout, count):
    """Replace the whole lake with ``count`` visits, each with one line, over three days, rated 1..5
    or unrated (None: the lake stores no score as NULL)."""
    days = [date(2026, 11, 1) + timedelta(days=offset) for offset in range(3)]
    visits = [
        lakes.visit(f"v{number}", days[number % 3], signee_rating=number % 6 or None)
        for number in range(count)
    ]
    lines = [lakes.line(row, 0) for row in visits]
    return lakes.publish(layout, visits, lines, dates=days)


def test_readers_in_other_processes_see_one_complete_build_or_the_next(layout, tmp_path):
    _publish_visits(layout, 30)
    warehouse.build(layout, run_id="visits-30-0")
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(layout.warehouse), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        time.sleep(1.0)  # let every reader get going
        for number, count in enumerate([120, 45, 200, 60], start=1):
            changed = _publish_visits(layout, count)
            # alternate incremental and full builds; both must publish the same way
            result = warehouse.build(
                layout, changed_dates=changed if number % 2 else None, run_id=f"visits-{count}-{number}"
            )
            assert result.row_counts["fct_visits"] == count
    finally:
        stop.touch()
        outputs = [reader.communicate(timeout=60) for reader in readers]

    reports = [json.loads(stdout) for stdout, _ in outputs]
    assert all(reader.returncode == 0 for reader in readers), [stderr for _, stderr in outputs]
    for report in reports:
        assert report["error_count"] == 0, report["errors"]
        assert report["inconsistent"] == [], report["inconsistent"]
        assert report["reads"] > 20
    seen = set().union(*(report["builds"] for report in reports))
    assert len(seen) >= 3, f"readers saw too few builds to prove anything: {seen}"


def test_a_reader_holding_the_file_open_keeps_its_build_and_does_not_block_the_next(layout):
    _publish_visits(layout, 10)
    warehouse.build(layout, run_id="first")
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(layout.warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline().strip() == "first"  # connected and holding the file

    _publish_visits(layout, 20)
    warehouse.build(layout, run_id="second")

    still_reading, _ = reader.communicate("again\n", timeout=60)
    assert still_reading.strip() == "first"
    assert query(layout, "select run_id, fct_visits_rows from marts.build_info") == [("second", 20)]


def test_an_incremental_build_takes_over_the_standby_instead_of_copying_the_warehouse(layout):
    """Publishing keeps the replaced build as the standby (same file, a second name); the next
    incremental build catches it up and is published: no file is ever copied whole."""
    days = _publish_visits(layout, 10)
    warehouse.build(layout, run_id="first")
    first = layout.warehouse.stat().st_ino
    warehouse.build(layout, changed_dates=days, run_id="second")
    second = layout.warehouse.stat().st_ino
    standby = layout.warehouse.parent / warehouse.STANDBY_DIR / layout.warehouse.name
    assert standby.stat().st_ino == first != second

    changed = _publish_visits(layout, 20)  # the standby is two publications behind now
    result = warehouse.build(layout, changed_dates=changed, run_id="third")

    assert result.mode == "incremental" and "from the standby" in result.reason
    assert layout.warehouse.stat().st_ino == first  # the standby became the published file
    assert standby.stat().st_ino == second
    assert query(layout, "select run_id, fct_visits_rows from marts.build_info") == [("third", 20)]


def test_a_reader_holding_the_standby_makes_the_build_copy_and_keeps_its_build(layout):
    days = _publish_visits(layout, 10)
    warehouse.build(layout, run_id="first")
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(layout.warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline().strip() == "first"
    warehouse.build(layout, changed_dates=days, run_id="second")  # "first" is the standby now

    changed = _publish_visits(layout, 20)
    result = warehouse.build(layout, changed_dates=changed, run_id="third")

    still_reading, _ = reader.communicate("again\n", timeout=60)
    assert still_reading.strip() == "first"
    assert "a copy of the published warehouse" in result.reason
    assert query(layout, "select run_id, fct_visits_rows from marts.build_info") == [("third", 20)]


# Opens the warehouse, prints the build it sees, waits for a line on stdin, then reads again.
HOLDER = r"""
import sys
import duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
print(connection.execute("select run_id from marts.build_info").fetchone()[0], flush=True)
sys.stdin.readline()
print(connection.execute("select run_id from marts.build_info").fetchone()[0], flush=True)
"""


def test_a_failed_build_leaves_the_published_warehouse_and_no_debris(layout, tmp_path):
    _publish_visits(layout, 10)
    warehouse.build(layout, run_id="good")
    before = layout.warehouse.read_bytes()
    project_dir = tmp_path / "sql"
    shutil.copytree(warehouse.config.SQL_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    broken = project_dir / "models" / "marts" / "kpi_daily.sql"
    broken.write_text(broken.read_text().replace("from measures", "from no_such_relation"))

    with pytest.raises(warehouse.WarehouseError, match="(?s)model kpi_daily error: .*no_such_relation"):
        warehouse.build(layout, run_id="bad", project_dir=project_dir)

    assert layout.warehouse.read_bytes() == before
    assert not (layout.warehouse.parent / warehouse.BUILD_DIR).exists()
    assert not list(layout.warehouse.parent.glob("*.wal"))


def test_the_published_file_reads_nothing_from_the_lake(layout):
    _publish_visits(layout, 10)
    warehouse.build(layout)
    connection = duckdb.connect(str(layout.warehouse), read_only=True)
    try:
        views = connection.execute("select view_name, sql from duckdb_views() where not internal").fetchall()
        schemas = {
            row[0] for row in connection.execute("select schema_name from duckdb_schemas()").fetchall()
        }
        tables = connection.execute(
            "select count(*) from duckdb_tables() where schema_name = 'marts'"
        ).fetchall()
    finally:
        connection.close()

    assert tables[0][0] > 10
    assert not {"lake", "staging"} & schemas, "the views over the lake are build-time only"
    assert [name for name, sql in views if "read_parquet" in sql.lower() or "staging." in sql.lower()] == []


def test_build_info_records_the_run_the_validation_verdict_and_the_counts(layout):
    assert warehouse.built_run_id(layout) is None
    _publish_visits(layout, 12)
    validation = {
        "verdict": "passed",
        "report_html": "/reports/run-7/index.html",
        "counts": {"quarantined": 0},
    }

    result = warehouse.build(layout, run_id="run-7", validation=validation)

    (info,) = query_dicts(layout, "select * from marts.build_info")
    assert (info["run_id"], info["validation_verdict"], info["validation_report"]) == (
        "run-7",
        "passed",
        "/reports/run-7/index.html",
    )
    assert (info["build_mode"], info["fct_visits_rows"], info["latest_visit_date"]) == (
        "full",
        12,
        date(2026, 11, 3),
    )
    assert result.row_counts["fct_visits"] == 12 and result.as_dict()["changed_partitions"][0] == "2026-11-01"
    assert warehouse.built_run_id(layout) == "run-7"
    assert _lake_state(info) == ("test-lake", {"visits": 0, "visit_lines": 0})
    assert info["lake_location"] == str(layout.lake_location.local_root)

    # The next publication's versions reach the next (incremental) build's row.
    days = lakes.publish(layout, [lakes.visit("v-late", date(2026, 11, 3))], dates=[date(2026, 11, 3)])
    warehouse.build(layout, changed_dates=days, run_id="run-8")
    (info,) = query_dicts(layout, "select * from marts.build_info")
    published = {
        table: version for table, version in tables.published_versions(layout).items() if version is not None
    }
    assert (info["build_mode"], *_lake_state(info)) == ("incremental", "test-lake", published)
    assert info["lake_visits_version"] == 1


def _lake_state(info: dict) -> tuple[str, dict[str, int]]:
    """build_info's lake run and the Delta version of each lake table it names (published ones only)."""
    versions = {
        column.removeprefix("lake_").removesuffix("_version"): value
        for column, value in info.items()
        if column.endswith("_version") and value is not None
    }
    return info["lake_run_id"], versions


def _one_publication(layout, generation: int, days: list[date]) -> int:
    """Every date holds visits of one generation only (ids "g<generation>-..."), each with two lines."""
    visits, lines = [], []
    for day in days:
        for number in range(generation + 2):
            row = lakes.visit(f"g{generation}-{day:%d}-{number}", day, line_count=2)
            visits.append(row)
            lines += [lakes.line(row, 0), lakes.line(row, 1)]
    lakes.publish(layout, visits, lines, dates=days)
    return len(visits)


def test_a_build_reads_one_publication_whole_while_the_next_lands(layout, monkeypatch):
    """The build reads the lake's published versions: a publication half committed when it starts is not
    seen at all, and one that lands after the snapshot neither mixes into the build nor pulls files
    from under it."""
    from letsjobit.lake import publish

    days = [date(2026, 10, 1) + timedelta(days=n) for n in range(5)]
    first = _one_publication(layout, 1, days)
    committed, release = threading.Event(), threading.Event()
    commit_table = publish._commit_table

    def pauses_after_the_first_commit(*args, **kwargs):
        version = commit_table(*args, **kwargs)
        if not committed.is_set():
            committed.set()  # visits holds generation 2 now, visit_lines still generation 1
            assert release.wait(300)
        return version

    monkeypatch.setattr(publish, "_commit_table", pauses_after_the_first_commit)
    publication = threading.Thread(target=_one_publication, args=(layout, 2, days))
    publication.start()
    assert committed.wait(300)
    warehouse.build(layout, run_id="during")
    release.set()
    publication.join(timeout=300)
    built = query(
        layout, "select count(*), count(distinct split_part(visit_id, '-', 1)) from marts.fct_visits"
    )
    assert built == [(first, 1)], "the build read a publication that was still being committed"

    second = (2 + 2) * len(days)  # what _one_publication(layout, 2, days) published
    lake = snapshot.take(layout, layout.root / "snapshot")
    third = _one_publication(layout, 3, days)  # replaces every file of the snapshot's version
    publish.vacuum(layout)  # within the retention: a build reading an older version keeps its files
    rows = duckdb.sql(
        f"select count(*) from read_parquet({[str(path) for path in lake.files['visits']]})"
    ).fetchall()[0][0]
    assert rows == second != third


# Calls the KPI macros of the file it opens read-only and prints what it got.
MACRO_READER = r"""
import json, sys
import duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
macros = connection.execute(
    "select function_name, parameters from duckdb_functions() where schema_name = 'marts' and function_type = 'macro'"
).fetchall()
differing = connection.execute(
    "select count(*) from marts.kpi_daily where nps is distinct from marts.nps(promoters, detractors, rated_visits)"
    " or close_rate is distinct from marts.close_rate(closed_visits, visits)"
).fetchone()[0]
(nps,) = connection.execute(
    "select marts.nps(sum(promoters), sum(detractors), sum(rated_visits)) from marts.fct_visit_measures"
).fetchone()
print(json.dumps({"macros": dict(macros), "differing": differing, "nps": nps}))
"""


def test_a_reader_in_another_process_calls_the_kpi_macros_after_full_and_incremental_builds(layout):
    for count, incremental in ((30, False), (40, True)):
        changed = _publish_visits(layout, count)
        result = warehouse.build(layout, changed_dates=changed if incremental else None)
        reader = subprocess.run(
            [sys.executable, "-c", MACRO_READER, str(layout.warehouse)],
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert reader.returncode == 0, reader.stderr
        seen = json.loads(reader.stdout)
        assert result.mode == ("incremental" if incremental else "full")
        assert seen["macros"]["nps"] == ["promoters", "detractors", "rated_visits"]
        assert seen["differing"] == 0
        ratings = [number % 6 for number in range(count) if number % 6]  # 0: unrated
        promoters, detractors = ratings.count(5), sum(1 for rating in ratings if rating <= 3)
        assert seen["nps"] == pytest.approx(100 * (promoters - detractors) / len(ratings))
