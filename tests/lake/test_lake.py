"""Staging a run from its raw pages: partitions, dedupe, issues, idempotence, crash safety (publishing: test_publish.py)."""

from __future__ import annotations

import gzip
import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from letsjobit.config import DataLayout
from letsjobit.lake import flatten, parquet, schema, stage

from tests.lake.conftest import (
    FETCHED_AT,
    die_in_child,
    raw_page,
    reference_visit,
    stage_pages,
    visits_over_days,
    write_raw_part,
)

DAY_1, DAY_2, DAY_3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


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


# --- crash safety: a real process dies half-way (os._exit: no finally, no cleanup) ------------------

# Dies (os._exit: no finally, no cleanup) while staging writes its second partition.
STAGE_CRASH_SCRIPT = """
import os, sys
from pathlib import Path
from letsjobit.lake import stage
from letsjobit.config import DataLayout

original, calls = stage._write_partition_of, []
def dies_on_second_call(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os._exit(137)
    return original(*args, **kwargs)
stage._write_partition_of = dies_on_second_call
stage.stage_run("run-a", DataLayout(Path(sys.argv[1])), workers=1)
print("finished")
"""


def test_a_crash_mid_staging_leaves_the_previous_staging_intact(layout):
    first = stage_pages(layout, "run-a", visits_over_days(6))
    before = {table: parquet.read_table(Path(first.path) / table) for table in schema.TABLES}
    write_raw_part(layout, "run-a", "full", [raw_page(visits_over_days(9, prefix="x"))])

    die_in_child(STAGE_CRASH_SCRIPT, layout.root)

    for table in schema.TABLES:
        assert parquet.read_table(Path(first.path) / table).equals(before[table])
    again = stage.stage_run("run-a", layout, workers=1)
    assert again.rows["visits"] == 9
    assert [p.name for p in layout.staging.iterdir()] == ["run-a"]  # the dead attempt's scratch is gone


def test_raw_parts_may_hold_several_gzip_members_and_a_truncated_one_is_an_error(layout):
    path = write_raw_part(layout, "run-a", "full", [raw_page(visits_over_days(3))])
    with gzip.open(path, "ab") as out:  # a second gzip member, as appending writers leave
        out.write(orjson.dumps(raw_page(visits_over_days(2, prefix="w"), offset=3)) + b"\n")
    assert stage.stage_run("run-a", layout, workers=1).rows["visits"] == 5

    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(flatten.RawPageError, match="truncated"):
        stage.stage_run("run-a", layout, workers=1)
