"""Staging a run from its raw pages and publishing it: partitions, dedupe, issues, idempotence, crash safety."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from letsjobit.config import DataLayout
from letsjobit.lake import flatten, parquet, publish, schema, stage
from letsjobit.quality import audit

from tests.lake.conftest import FETCHED_AT, raw_page, reference_visit, visits_over_days, write_raw_part

ROOT = Path(__file__).resolve().parents[2]
DAY_1, DAY_2, DAY_3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def stage_pages(layout: DataLayout, run_id: str, visits: list[dict], per_page: int = 4, **options):
    pages = [raw_page(visits[n : n + per_page], offset=n) for n in range(0, len(visits), per_page)]
    write_raw_part(layout, run_id, "full", pages)
    return stage.stage_run(run_id, layout, workers=options.pop("workers", 1), **options)


def run_audit(layout: DataLayout, run_id: str) -> audit.AuditResult:
    """The validation gate, as the DAG runs it between stage and publish (not reconciled here)."""
    return audit.audit_run(run_id, layout, expected_visits=None)


def stage_and_audit(layout: DataLayout, run_id: str, visits: list[dict], **options):
    staged = stage_pages(layout, run_id, visits, **options)
    run_audit(layout, run_id)
    return staged


def published_issues(layout: DataLayout) -> list[tuple]:
    rows = parquet.read_table(layout.table("data_issues")).to_pylist()
    return sorted((r["visit_date"], r["visit_id"], r["check_name"], r["raw_value"]) for r in rows)


def lake_rows(layout: DataLayout, table: str = "visits") -> list[tuple]:
    """(visit_date, visit_id, doc_no) of the published table, sorted (doc_no tells versions apart)."""
    rows = parquet.read_table(layout.table(table))
    if table != "visits":
        return sorted(
            zip(rows.column("visit_date").to_pylist(), rows.column("visit_id").to_pylist(), strict=True)
        )
    columns = [rows.column(name).to_pylist() for name in ("visit_date", "visit_id", "doc_no")]
    return sorted(zip(*columns, strict=True), key=repr)


def partition_dirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_stage_run_writes_typed_partitions_and_counts_across_the_three_tables(layout):
    visits = visits_over_days(9) + [reference_visit(_id="undated", date=None)]
    result = stage_pages(layout, "run-a", visits)

    staged = Path(result.path)
    assert result.rows == {"visits": 10, "visit_lines": 10, "line_extra_data": 20}
    assert (result.pages, result.parts, result.visits_read, result.duplicates_dropped) == (3, 1, 10, 0)
    assert result.partitions == ["2026-11-01", "2026-11-02", "2026-11-03", parquet.NULL_PARTITION]
    assert result.visits_without_date == 1
    for table, table_schema in schema.TABLES.items():
        assert partition_dirs(staged / table) == [parquet.partition_name(p) for p in result.partitions]
        for file in (staged / table).rglob("*.parquet"):
            assert pq.read_schema(file).remove_metadata() == table_schema
        assert parquet.read_table(staged / table).num_rows == result.rows[table]
    issues = parquet.read_table(staged / "data_issues")
    assert [(i["visit_id"], i["check_name"], i["visit_date"]) for i in issues.to_pylist()] == [
        ("undated", "visits.date_valid", None)
    ]
    assert result.issues == 1
    assert partition_dirs(staged / "data_issues") == [parquet.partition_name(None)]
    for file in (staged / "data_issues").rglob("*.parquet"):
        assert pq.read_schema(file).remove_metadata() == schema.DATA_ISSUES
    json.dumps(result.as_dict())  # fit for XCom


def test_duckdb_reads_the_partitions_with_their_dates_and_the_null_partition(layout):
    result = stage_pages(layout, "run-a", visits_over_days(6) + [reference_visit(_id="undated", date=None)])
    for hive in ("true", "false"):
        rows = duckdb.sql(
            f"select visit_date, count(*) from read_parquet('{result.path}/visits/*/*.parquet', "
            f"hive_partitioning = {hive}) group by all order by all"
        ).fetchall()
        assert rows == [(DAY_1, 2), (DAY_2, 2), (DAY_3, 2), (None, 1)]


def test_a_visit_fetched_twice_keeps_the_latest_fetched_copy_and_its_lines_only(layout):
    first = reference_visit(_id="dup", docNo="OLD", date="2026-11-01")
    second = reference_visit(_id="dup", docNo="NEW", date="2026-11-02", lines=[])
    write_raw_part(layout, "run-a", "b", [raw_page([first], fetched_at=FETCHED_AT)])
    write_raw_part(layout, "run-a", "a", [raw_page([second], fetched_at=FETCHED_AT + timedelta(seconds=5))])
    result = stage.stage_run("run-a", layout, workers=1)

    assert (result.visits_read, result.duplicates_dropped) == (2, 1)
    assert result.rows == {"visits": 1, "visit_lines": 0, "line_extra_data": 0}
    staged = parquet.read_table(Path(result.path) / "visits")
    assert staged.column("doc_no").to_pylist() == ["NEW"]
    assert result.partitions == ["2026-11-02"]  # the older copy's date is gone with it


def test_a_tie_on_fetch_time_keeps_the_copy_read_last(layout):
    visits = [reference_visit(_id="dup", docNo="FIRST"), reference_visit(_id="dup", docNo="SECOND")]
    result = stage_pages(layout, "run-a", visits)
    assert parquet.read_table(Path(result.path) / "visits").column("doc_no").to_pylist() == ["SECOND"]


def test_issues_of_dropped_copies_are_dropped_with_them(layout):
    visits = [reference_visit(_id="dup", priority="urgent"), reference_visit(_id="dup", priority="2")]
    result = stage_pages(layout, "run-a", visits + [reference_visit(_id="x", lat="north"), "not a visit"])
    issues = parquet.read_table(Path(result.path) / "data_issues").to_pylist()
    assert sorted((i["visit_id"] or "", i["check_name"]) for i in issues) == [
        ("", "visits.is_object"),  # about no visit at all: never an older copy
        ("x", "visits.lat_parses"),
    ]
    assert result.issues == 2


def test_a_visit_without_id_listed_twice_is_one_issue_and_two_different_ones_are_two(layout):
    """Paging under drift can list a record twice; without an _id it is known by its ERP id."""
    no_id = {k: v for k, v in reference_visit(id=30101308, docNo="A").items() if k != "_id"}
    other = {k: v for k, v in reference_visit(id=30101309, docNo="B").items() if k != "_id"}
    later = {**no_id, "signeeRating": "4"}  # read again after a change: the latest copy is its issue
    write_raw_part(layout, "run-a", "a", [raw_page([no_id, other], fetched_at=FETCHED_AT)])
    write_raw_part(
        layout,
        "run-a",
        "b",
        [raw_page([later, reference_visit(_id="v1")], fetched_at=FETCHED_AT + timedelta(seconds=5))],
    )

    result = stage.stage_run("run-a", layout, workers=1)

    issues = parquet.read_table(Path(result.path) / "data_issues").to_pylist()
    assert sorted(
        json.loads(i["raw_value"])["docNo"] for i in issues if i["check_name"] == "visits.id_present"
    ) == ["A", "B"]
    assert [
        json.loads(i["raw_value"]).get("signeeRating") for i in issues if '"docNo":"A"' in i["raw_value"]
    ] == ["4"]
    assert result.issues == 2 and result.rows["visits"] == 1


def test_the_worker_pool_stages_exactly_what_one_process_stages(layout, tmp_path):
    visits = visits_over_days(60) + [reference_visit(_id="v00003", docNo="LATER")]
    one = stage_pages(layout, "run-a", visits, per_page=5, pages_per_batch=2)
    other = DataLayout(tmp_path / "other")
    two = stage_pages(other, "run-a", visits, per_page=5, pages_per_batch=2, workers=2)

    assert two.workers == 2 and (two.rows, two.duplicates_dropped) == (one.rows, one.duplicates_dropped)
    for table in schema.TABLES:
        assert parquet.read_table(Path(two.path) / table).equals(parquet.read_table(Path(one.path) / table))


def _stage_in_daemon(root: str, queue) -> None:
    result = stage.stage_run("run-a", DataLayout(Path(root)))
    queue.put((result.workers, result.rows["visits"]))


def test_staging_inside_a_daemonic_process_runs_in_process(layout):
    # A Celery prefork worker runs tasks in daemonic processes, which may not start a pool of their own.
    import multiprocessing

    write_raw_part(layout, "run-a", "full", [raw_page(visits_over_days(6))])
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_stage_in_daemon, args=(str(layout.root), queue), daemon=True)
    child.start()
    child.join(120)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == (1, 6)


def test_an_empty_run_stages_empty_tables(layout):
    write_raw_part(layout, "run-a", "full", [raw_page([])])
    result = stage.stage_run("run-a", layout, workers=1)
    assert result.rows == {"visits": 0, "visit_lines": 0, "line_extra_data": 0} and result.partitions == []
    assert parquet.read_table(Path(result.path) / "visits").schema == schema.VISITS


def test_a_run_without_raw_pages_is_an_error_naming_the_folder(layout):
    with pytest.raises(FileNotFoundError, match="run_id=missing"):
        stage.stage_run("missing", layout, workers=1)


def test_a_corrupt_raw_line_fails_the_stage_naming_the_part_and_line(layout):
    path = write_raw_part(layout, "run-a", "full", [raw_page(visits_over_days(2))])
    with gzip.open(path, "ab") as out:
        out.write(b'{"offset": 2, "truncated\n')
    with pytest.raises(flatten.RawPageError, match=r"part-full\.jsonl\.gz:2"):
        stage.stage_run("run-a", layout, workers=1)
    assert not layout.staging_run("run-a").exists()


def test_replaying_a_run_from_its_raw_pages_gives_the_same_tables(layout):
    first = stage_pages(layout, "run-a", visits_over_days(12))
    tables = {table: parquet.read_table(Path(first.path) / table) for table in schema.TABLES}
    again = stage.stage_run("run-a", layout, workers=1)
    assert again.rows == first.rows
    for table in schema.TABLES:
        assert parquet.read_table(Path(again.path) / table).equals(tables[table])


def test_full_refresh_replaces_each_whole_table(layout):
    first = visits_over_days(6)
    first[0]["priority"] = "urgent"
    stage_and_audit(layout, "run-a", first)
    publish.publish_run("run-a", layout, None)
    assert published_issues(layout) == [(DAY_1, "v00000", "visits.priority_parses", "urgent")]
    second = visits_over_days(2, first_day="2026-11-05", days=1, prefix="w")
    second[1]["signeeRating"] = 9
    stage_and_audit(layout, "run-b", second)
    result = publish.publish_run("run-b", layout, None)

    assert result.mode == "full" and result.replaced == ["2026-11-05"]
    assert partition_dirs(layout.table("visits")) == ["visit_date=2026-11-05"]
    assert [row[1] for row in lake_rows(layout)] == ["w00000", "w00001"]
    assert lake_rows(layout, "visit_lines") == [(date(2026, 11, 5), "w00000"), (date(2026, 11, 5), "w00001")]
    # The issues describe the published data: the earlier run's are gone with it; the gate's are there.
    assert published_issues(layout) == [(date(2026, 11, 5), "w00001", "visits.signee_rating_in_range", "9")]
    assert result.rows["data_issues"] == 1
    assert parquet.read_table(layout.table("visits")).column("signee_rating").to_pylist() == [5, None]


def test_publishing_dates_replaces_exactly_those_partitions_and_removes_emptied_ones(layout):
    visits = visits_over_days(6)  # two visits on each of days 1..3, one of each day with an issue
    for visit in visits[:3]:
        visit["lat"] = "north"
    stage_and_audit(layout, "run-a", visits)
    publish.publish_run("run-a", layout, None)
    # run-b re-extracted days 2 and 3: day 2 changed, day 3 now has no visits at all
    changed = [reference_visit(_id="v00001", date="2026-11-02", docNo="CHANGED", lng="west")]
    stage_and_audit(layout, "run-b", changed)
    result = publish.publish_run("run-b", layout, [DAY_2, DAY_3])

    assert (result.replaced, result.removed) == (["2026-11-02"], ["2026-11-03"])
    assert partition_dirs(layout.table("visits")) == ["visit_date=2026-11-01", "visit_date=2026-11-02"]
    assert lake_rows(layout) == [
        (DAY_1, "v00000", "H-017623"), (DAY_1, "v00003", "H-017623"), (DAY_2, "v00001", "CHANGED"),
    ]  # fmt: skip
    extra_rows = [visit_id for (_, visit_id) in lake_rows(layout, "line_extra_data")]
    assert extra_rows == ["v00000", "v00000", "v00003", "v00003", "v00001", "v00001"]
    assert [(day, visit_id, check) for day, visit_id, check, _ in published_issues(layout)] == [
        (DAY_1, "v00000", "visits.lat_parses"), (DAY_2, "v00001", "visits.lng_parses"),
    ]  # fmt: skip


def test_re_running_stage_audit_and_publish_gives_the_same_lake(layout):
    visits = visits_over_days(9)
    visits[0]["signeeRating"] = -1
    stage_and_audit(layout, "run-a", visits)
    publish.publish_run("run-a", layout, [DAY_1, DAY_2])
    before = {table: lake_rows(layout, table) for table in schema.TABLES}
    issues_before = published_issues(layout)
    files_before = sorted(p.relative_to(layout.lake) for p in layout.lake.rglob("*.parquet"))

    stage.stage_run("run-a", layout, workers=1)
    run_audit(layout, "run-a")
    publish.publish_run("run-a", layout, [DAY_1, DAY_2])
    publish.publish_run("run-a", layout, [DAY_1, DAY_2])

    assert {table: lake_rows(layout, table) for table in schema.TABLES} == before
    assert published_issues(layout) == issues_before != []
    assert sorted(p.relative_to(layout.lake) for p in layout.lake.rglob("*.parquet")) == files_before


def test_publishing_an_unstaged_run_is_an_error(layout):
    with pytest.raises(publish.PublishError, match="stage_run"):
        publish.publish_run("never-staged", layout, None)


def test_a_run_the_gate_has_not_passed_cannot_be_published(layout):
    stage_pages(layout, "run-a", visits_over_days(3))
    with pytest.raises(publish.PublishError, match="audit_run"):
        publish.publish_run("run-a", layout, None)
    assert not layout.table("visits").exists()

    run_audit(layout, "run-a")
    stage.stage_run("run-a", layout, workers=1)  # a re-stage replaces what the gate passed
    with pytest.raises(publish.PublishError, match="validation gate"):
        publish.publish_run("run-a", layout, None)


# --- crash safety: a real process dies half-way (os._exit: no finally, no cleanup) ------------------

CRASH_SCRIPT = """
import os, sys
from datetime import date
from pathlib import Path
from letsjobit import files
from letsjobit.lake import publish, stage
from letsjobit.config import DataLayout

layout = DataLayout(Path(sys.argv[1]))
mode = sys.argv[2]
calls = {"n": 0}

def dies_on_second_call(original):
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os._exit(137)
        return original(*args, **kwargs)
    return wrapper

if mode == "publish":
    files.replace_dir = dies_on_second_call(files.replace_dir)
    publish.publish_run("run-b", layout, [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)])
else:
    stage._write_partition_of = dies_on_second_call(stage._write_partition_of)
    stage.stage_run("run-a", layout, workers=1)
print("finished")
"""


def crash(layout: DataLayout, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH_SCRIPT), str(layout.root), mode],
        capture_output=True, text=True, env=env, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 137, done.stderr
    assert "finished" not in done.stdout


def test_a_crash_mid_publish_leaves_whole_partitions_and_the_next_publish_finishes_it(layout):
    stage_and_audit(layout, "run-a", visits_over_days(6))
    publish.publish_run("run-a", layout, None)
    old = lake_rows(layout)
    new_visits = [
        reference_visit(_id=f"v{n:05d}", date=f"2026-11-0{n % 3 + 1}", docNo="NEW") for n in range(6)
    ]
    new_visits[0]["priority"] = "soon"
    stage_and_audit(layout, "run-b", new_visits)

    crash(layout, "publish")  # dies while swapping the second partition in

    after_crash = lake_rows(layout)
    assert len(after_crash) == len(old)  # every partition is there, whole
    for day in (DAY_1, DAY_2, DAY_3):  # each partition is entirely old or entirely new
        assert len({doc_no for (d, _, doc_no) in after_crash if d == day}) == 1
    assert after_crash != old
    journal = json.loads(layout.journal("run-b").read_text())
    assert journal["state"] == "publishing"

    assert publish.recover(layout) == ["run-b"]
    assert {doc_no for (_, _, doc_no) in lake_rows(layout)} == {"NEW"}
    assert published_issues(layout) == [(DAY_1, "v00000", "visits.priority_parses", "soon")]
    assert len(lake_rows(layout)) == 6
    assert not layout.publish_scratch("run-b").exists()
    assert json.loads(layout.journal("run-b").read_text())["state"] == "published"


def test_an_interrupted_publish_is_finished_before_the_next_run_publishes(layout):
    stage_and_audit(layout, "run-a", visits_over_days(6))
    publish.publish_run("run-a", layout, None)
    stage_and_audit(
        layout, "run-b", [reference_visit(_id=f"v{n:05d}", date="2026-11-01", docNo="B") for n in range(3)]
    )
    crash(layout, "publish")

    stage_and_audit(layout, "run-c", [reference_visit(_id="c", date="2026-11-03", docNo="C")])
    result = publish.publish_run("run-c", layout, [DAY_3])

    assert result.recovered == ["run-b"]
    assert {(d, doc) for (d, _, doc) in lake_rows(layout)} == {(DAY_1, "B"), (DAY_3, "C")}


def test_a_crash_mid_staging_leaves_the_previous_staging_intact(layout):
    first = stage_pages(layout, "run-a", visits_over_days(6))
    before = {table: parquet.read_table(Path(first.path) / table) for table in schema.TABLES}
    write_raw_part(layout, "run-a", "full", [raw_page(visits_over_days(9, prefix="x"))])

    crash(layout, "stage")

    for table in schema.TABLES:
        assert parquet.read_table(Path(first.path) / table).equals(before[table])
    again = stage.stage_run("run-a", layout, workers=1)
    assert again.rows["visits"] == 9
    assert [p.name for p in layout.staging.iterdir()] == ["run-a"]  # the dead attempt's scratch is gone


def test_prune_keeps_the_newest_runs_and_any_pending_publication(layout):
    for n in range(4):
        stage_pages(layout, f"run-{n}", visits_over_days(1))
        os.utime(layout.raw_run(f"run-{n}"), (1000 + n, 1000 + n))
        os.utime(layout.staging_run(f"run-{n}"), (1000 + n, 1000 + n))
    layout.journals.mkdir(parents=True)
    layout.journal("run-0").write_text(json.dumps({"run_id": "run-0", "state": "publishing"}))

    publish.prune_runs(layout, keep=2)

    assert sorted(p.name for p in layout.raw.iterdir()) == ["run_id=run-0", "run_id=run-2", "run_id=run-3"]
    assert sorted(p.name for p in layout.staging.iterdir()) == ["run-0", "run-2", "run-3"]


def test_prune_removes_the_scratch_of_dead_attempts_once_stale(layout):
    stage_pages(layout, "run-a", visits_over_days(1))
    dead_part = layout.raw_run("run-a") / ".part-all.jsonl.gz.4242.tmp"
    dead_stage = layout.staging / ".run-b.tmp-0badc0de"
    live_stage = layout.staging / ".run-c.tmp-00c0ffee"
    dead_audit = layout.staging / "run-a" / ".audited-0badc0de"
    dead_part.write_bytes(b"half a page")
    (dead_stage / "spill").mkdir(parents=True)
    (dead_audit / "visits").mkdir(parents=True)
    live_stage.mkdir()
    for path in (dead_part, dead_stage, dead_audit):
        os.utime(path, (time.time() - 7 * 3600,) * 2)

    removed = publish.prune_runs(layout, keep=5)

    assert set(removed) == {dead_part, dead_stage, dead_audit}
    assert live_stage.is_dir() and (layout.staging / "run-a").is_dir()


def test_raw_parts_may_hold_several_gzip_members_and_a_truncated_one_is_an_error(layout):
    path = write_raw_part(layout, "run-a", "full", [raw_page(visits_over_days(3))])
    with gzip.open(path, "ab") as out:  # a second gzip member, as appending writers leave
        out.write(orjson.dumps(raw_page(visits_over_days(2, prefix="w"), offset=3)) + b"\n")
    assert stage.stage_run("run-a", layout, workers=1).rows["visits"] == 5

    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(flatten.RawPageError, match="truncated"):
        stage.stage_run("run-a", layout, workers=1)
