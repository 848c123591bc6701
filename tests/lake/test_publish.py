"""Publishing audited runs into the lake's Delta tables: full refreshes, partition replaces, re-runs, kills
at every point of a publication, readers meanwhile, and retention (raw pages and Delta vacuum)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from letsjobit.config import DataLayout
from letsjobit.lake import publish, schema, snapshot, stage, tables

from tests.lake.conftest import (
    ROOT,
    die_in_child,
    reference_visit,
    run_audit,
    stage_and_audit,
    stage_pages,
    visits_over_days,
)

DAY_1, DAY_2, DAY_3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def published_issues(layout: DataLayout) -> list[tuple]:
    rows = tables.read_table(layout, "data_issues").to_pylist()
    return sorted((r["visit_date"], r["visit_id"], r["check_name"], r["raw_value"]) for r in rows)


def lake_rows(layout: DataLayout, table: str = "visits") -> list[tuple]:
    """(visit_date, visit_id, doc_no) of the published table, sorted (doc_no tells versions apart)."""
    rows = tables.read_table(layout, table)
    if table != "visits":
        return sorted(
            zip(rows.column("visit_date").to_pylist(), rows.column("visit_id").to_pylist(), strict=True)
        )
    columns = [rows.column(name).to_pylist() for name in ("visit_date", "visit_id", "doc_no")]
    return sorted(zip(*columns, strict=True), key=repr)


def published_partitions(layout: DataLayout, table: str = "visits") -> list[str]:
    """The visit_date partitions of the table's published version."""
    lake = snapshot.take(layout, layout.root / "unused")
    return sorted({path.parent.name for path in lake.files[table]})


def version_files(layout: DataLayout, table: str, version: int) -> set[str]:
    """The data files (paths in the table) of a table version."""
    return set(
        tables.open_table(layout, table, version).get_add_actions(flatten=True).column("path").to_pylist()
    )


def lake_files(layout: DataLayout) -> set[Path]:
    """Every parquet file in the lake tables' folders, in a version or not."""
    return {path for table in schema.LAKE_TABLES for path in Path(layout.table_uri(table)).rglob("*.parquet")}


def latest_rows(layout: DataLayout, table: str = "visits") -> list[tuple]:
    """(visit_date, doc_no) of the table's latest commit, published or not."""
    rows = tables.open_table(layout, table).to_pyarrow_table(columns=["visit_date", "doc_no"])
    return sorted(zip(*(column.to_pylist() for column in rows.columns), strict=True), key=repr)


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
    assert published_partitions(layout) == ["visit_date=2026-11-05"]
    assert [row[1] for row in lake_rows(layout)] == ["w00000", "w00001"]
    assert lake_rows(layout, "visit_lines") == [(date(2026, 11, 5), "w00000"), (date(2026, 11, 5), "w00001")]
    # The issues describe the published data: the earlier run's are gone with it; the gate's are there.
    assert published_issues(layout) == [(date(2026, 11, 5), "w00001", "visits.signee_rating_in_range", "9")]
    assert result.rows["data_issues"] == 1
    assert tables.read_table(layout, "visits").column("signee_rating").to_pylist() == [5, None]
    assert tables.read_table(layout, "visits").schema == schema.VISITS


def test_publishing_dates_replaces_exactly_those_partitions_in_one_commit_per_table(layout):
    visits = visits_over_days(6)  # two visits on each of days 1..3, one of each day with an issue
    for visit in visits[:3]:
        visit["lat"] = "north"
    stage_and_audit(layout, "run-a", visits)
    first = publish.publish_run("run-a", layout, None)
    # run-b re-extracted days 2 and 3: day 2 changed, day 3 now has no visits at all
    changed = [reference_visit(_id="v00001", date="2026-11-02", docNo="CHANGED", lng="west")]
    stage_and_audit(layout, "run-b", changed)
    result = publish.publish_run("run-b", layout, [DAY_2, DAY_3])

    assert (result.replaced, result.removed) == (["2026-11-02"], ["2026-11-03"])
    assert result.versions == {table: first.versions[table] + 1 for table in schema.LAKE_TABLES}
    commit = tables.open_table(layout, "visits").history(1)[0]
    assert commit[publish.RUN_ID_KEY] == "run-b"
    before, after = (
        version_files(layout, "visits", v) for v in (first.versions["visits"], result.versions["visits"])
    )
    untouched = {path for path in before if path.startswith("visit_date=2026-11-01/")}
    assert {path for path in after if path.startswith("visit_date=2026-11-01/")} == untouched
    assert {path.split("/")[0] for path in after - before} == {"visit_date=2026-11-02"}  # and day 3 is gone
    assert published_partitions(layout) == ["visit_date=2026-11-01", "visit_date=2026-11-02"]
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

    stage.stage_run("run-a", layout, workers=1)
    run_audit(layout, "run-a")
    publish.publish_run("run-a", layout, [DAY_1, DAY_2])
    again = publish.publish_run("run-a", layout, [DAY_1, DAY_2])

    assert {table: lake_rows(layout, table) for table in schema.TABLES} == before
    assert published_issues(layout) == issues_before != []
    assert again.rows == {"visits": 6, "visit_lines": 6, "line_extra_data": 12, "data_issues": 1}


def test_publishing_an_unstaged_run_is_an_error(layout):
    with pytest.raises(publish.PublishError, match="stage_run"):
        publish.publish_run("never-staged", layout, None)


def test_a_run_the_gate_has_not_passed_cannot_be_published(layout):
    stage_pages(layout, "run-a", visits_over_days(3))
    with pytest.raises(publish.PublishError, match="audit_run"):
        publish.publish_run("run-a", layout, None)
    assert not tables.exists(layout, "visits")

    run_audit(layout, "run-a")
    stage.stage_run("run-a", layout, workers=1)  # a re-stage replaces what the gate passed
    with pytest.raises(publish.PublishError, match="validation gate"):
        publish.publish_run("run-a", layout, None)


# --- kills: a real process dies half-way (os._exit: no finally, no cleanup) -------------------------

# argv: data dir ("from-env": config.layout(), e.g. an object-store lake), where to die
# ("between-commits": after the first table's commit; "mid-commit": once one table's new files are
# written, before any commit), then the run id and its dates.
PUBLISH_CRASH_SCRIPT = """
import os, sys
from datetime import date
from pathlib import Path
from letsjobit import config
from letsjobit.lake import publish

where, run_id = sys.argv[2], sys.argv[3]
layout = config.layout() if sys.argv[1] == "from-env" else config.DataLayout(Path(sys.argv[1]))
dates = [date.fromisoformat(day) for day in sys.argv[4:]] or None

if where == "between-commits":
    commit, commits = publish._commit_table, []
    def dies_before_the_second_commit(*args, **kwargs):
        if commits:
            os._exit(137)
        commits.append(commit(*args, **kwargs))
        return commits[-1]
    publish._commit_table = dies_before_the_second_commit
else:
    write_files = publish._write_files
    def dies_once_the_files_are_written(*args, **kwargs):
        write_files(*args, **kwargs)
        os._exit(137)
    publish._write_files = dies_once_the_files_are_written
publish.publish_run(run_id, layout, dates)
print("finished")
"""


def kill_publication(layout: DataLayout | None, where: str, run_id: str, dates: list[date] | None) -> None:
    """Die in a child process publishing ``run_id`` (``layout`` None: the child's config.layout())."""
    root = "from-env" if layout is None else layout.root
    die_in_child(PUBLISH_CRASH_SCRIPT, root, where, run_id, *[day.isoformat() for day in dates or ()])


def new_generation(layout: DataLayout, run_id: str, doc_no: str) -> None:
    """Stage and audit six visits of days 1..3 (ids of run-a's), all with ``doc_no``, one with an issue."""
    visits = [reference_visit(_id=f"v{n:05d}", date=f"2026-11-0{n % 3 + 1}", docNo=doc_no) for n in range(6)]
    visits[0]["priority"] = "soon"
    stage_and_audit(layout, run_id, visits)


def test_a_kill_between_two_table_commits_leaves_the_previous_publication_whole_and_the_retry_finishes_it(
    layout,
):
    stage_and_audit(layout, "run-a", visits_over_days(6))
    published = publish.publish_run("run-a", layout, None)
    old = {table: lake_rows(layout, table) for table in schema.LAKE_TABLES if table != "data_issues"}
    new_generation(layout, "run-b", "NEW")

    kill_publication(layout, "between-commits", "run-b", [DAY_1, DAY_2, DAY_3])

    # visits has run-b's commit, the other tables do not: readers still read run-a's publication whole.
    assert {doc_no for _, doc_no in latest_rows(layout)} == {"NEW"}
    assert tables.open_table(layout, "visit_lines").version() == published.versions["visit_lines"]
    assert tables.published_versions(layout) == published.versions
    assert {table: lake_rows(layout, table) for table in old} == old
    assert tables.read_state(layout.lake_location).publishing.run_id == "run-b"

    retried = publish.publish_run("run-b", layout, [DAY_1, DAY_2, DAY_3])  # the task's retry

    assert retried.recovered == []
    assert {doc_no for (_, _, doc_no) in lake_rows(layout)} == {"NEW"} and len(lake_rows(layout)) == 6
    assert published_issues(layout) == [(DAY_1, "v00000", "visits.priority_parses", "soon")]
    assert tables.published_versions(layout) == retried.versions
    assert tables.read_state(layout.lake_location).publishing is None


def test_a_kill_inside_a_commit_leaves_no_new_version_and_vacuum_removes_its_files(layout):
    stage_and_audit(layout, "run-a", visits_over_days(6))
    published = publish.publish_run("run-a", layout, None)
    files_before = lake_files(layout)
    new_generation(layout, "run-b", "NEW")

    kill_publication(layout, "mid-commit", "run-b", [DAY_1, DAY_2, DAY_3])

    latest = {table: tables.open_table(layout, table).version() for table in schema.LAKE_TABLES}
    assert latest == published.versions  # no table has a commit of run-b
    written = lake_files(layout) - files_before
    assert written, "the kill came after new files were written (else this test proves nothing)"
    assert {doc_no for (_, _, doc_no) in lake_rows(layout)} == {"H-017623"}
    assert tables.read_state(layout.lake_location).publishing.run_id == "run-b"

    publish.publish_run("run-b", layout, [DAY_1, DAY_2, DAY_3])
    assert {doc_no for (_, _, doc_no) in lake_rows(layout)} == {"NEW"}
    assert tables.read_state(layout.lake_location).publishing is None
    publish.vacuum(layout, retention=timedelta(0))
    assert not any(path.exists() for path in written)  # the dead attempt's files, never in any version
    assert {doc_no for (_, _, doc_no) in lake_rows(layout)} == {"NEW"}


def test_an_interrupted_publication_is_finished_before_the_next_run_publishes(layout):
    stage_and_audit(layout, "run-a", visits_over_days(6))
    publish.publish_run("run-a", layout, None)
    stage_and_audit(
        layout, "run-b", [reference_visit(_id=f"v{n:05d}", date="2026-11-01", docNo="B") for n in range(3)]
    )
    kill_publication(layout, "between-commits", "run-b", [DAY_1])

    stage_and_audit(layout, "run-c", [reference_visit(_id="c", date="2026-11-03", docNo="C")])
    result = publish.publish_run("run-c", layout, [DAY_3])

    assert result.recovered == ["run-b"]
    assert {(d, doc) for (d, _, doc) in lake_rows(layout)} == {
        (DAY_1, "B"),
        (DAY_2, "H-017623"),
        (DAY_3, "C"),
    }
    assert sorted(lake_rows(layout, "visit_lines")) == sorted((d, v) for (d, v, _) in lake_rows(layout))


def test_an_interrupted_publication_whose_audited_output_is_gone_is_rolled_back(layout):
    stage_and_audit(layout, "run-a", visits_over_days(6))
    publish.publish_run("run-a", layout, None)
    stage_and_audit(
        layout, "run-b", [reference_visit(_id=f"v{n:05d}", date="2026-11-01", docNo="B") for n in range(3)]
    )
    kill_publication(layout, "between-commits", "run-b", [DAY_1])
    shutil.rmtree(layout.staging_run("run-b"))  # e.g. on another host's scratch
    assert {doc for _, doc in latest_rows(layout)} == {"B", "H-017623"}

    stage_and_audit(layout, "run-c", [reference_visit(_id="c", date="2026-11-03", docNo="C")])
    result = publish.publish_run("run-c", layout, [DAY_3])

    assert result.recovered == []
    assert {(d, doc) for (d, _, doc) in lake_rows(layout)} == {
        (DAY_1, "H-017623"), (DAY_2, "H-017623"), (DAY_3, "C"),
    }  # fmt: skip
    # rolled back for good: the latest commit of every table is the published state again
    assert {doc for _, doc in latest_rows(layout)} == {"H-017623", "C"}


# A reader in its own process: reads the three data tables at one published state, again and again,
# and prints how many states it read and how many of them mixed two generations (doc_no per table).
LAKE_READER = """
import json, sys, time
from pathlib import Path
from letsjobit.config import DataLayout
from letsjobit.lake import tables

layout, deadline = DataLayout(Path(sys.argv[1])), time.monotonic() + float(sys.argv[2])
reads = mixed = 0
while time.monotonic() < deadline:
    versions = tables.published_versions(layout)
    visits = tables.dataset(layout, "visits", versions).to_table(columns=["visit_id", "doc_no"])
    lines = tables.dataset(layout, "visit_lines", versions).to_table(columns=["visit_id", "description"])
    generations = set(visits.column("doc_no").to_pylist()) | set(lines.column("description").to_pylist())
    reads += 1
    if len(generations) != 1 or lines.num_rows != visits.num_rows:
        mixed += 1
print(json.dumps({"reads": reads, "mixed": mixed}))
"""


def test_a_reader_in_another_process_reads_one_publication_whole_while_publications_land(layout):
    def generation(number: int) -> list[dict]:
        visits = [
            reference_visit(_id=f"v{n:05d}", date=f"2026-11-0{n % 3 + 1}", docNo=f"G{number}")
            for n in range(9)
        ]
        for visit in visits:
            visit["lines"][0]["description"] = f"G{number}"
        return visits

    stage_and_audit(layout, "run-0", generation(0))
    publish.publish_run("run-0", layout, None)
    for number in (1, 2):
        stage_and_audit(layout, f"run-{number}", generation(number))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    reader = subprocess.Popen(
        [sys.executable, "-c", LAKE_READER, str(layout.root), "8"], stdout=subprocess.PIPE, text=True, env=env
    )
    published = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        number = published % 2 + 1
        publish.publish_run(f"run-{number}", layout, [DAY_1, DAY_2, DAY_3] if published % 3 else None)
        published += 1
    figures = json.loads(reader.communicate(timeout=60)[0])

    assert published >= 3 and figures["reads"] >= 3
    assert figures["mixed"] == 0


# --- retention: raw pages and staging areas, Delta vacuum -------------------------------------------


def test_prune_keeps_the_newest_runs_and_any_pending_publication(layout):
    for n in range(4):
        stage_pages(layout, f"run-{n}", visits_over_days(1))
        os.utime(layout.raw_run(f"run-{n}"), (1000 + n, 1000 + n))
        os.utime(layout.staging_run(f"run-{n}"), (1000 + n, 1000 + n))
    pending = tables.Publication("run-0", None, "2026-11-24T10:00:00+00:00")
    tables.write_state(layout.lake_location, tables.LakeState(publishing=pending))

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


def test_vacuum_keeps_the_replaced_files_for_the_retention_then_deletes_them(layout):
    stage_and_audit(layout, "run-a", visits_over_days(6))
    publish.publish_run("run-a", layout, None)
    held = snapshot.take(layout, layout.root / "build")  # a build reading run-a's version
    new_generation(layout, "run-b", "NEW")
    publish.publish_run("run-b", layout, [DAY_1, DAY_2])

    assert publish.vacuum(layout)["visits"] == 0  # within the retention: a build may still read them
    assert sum(pq.read_metadata(path).num_rows for path in held.files["visits"]) == 6
    deleted = publish.vacuum(layout, retention=timedelta(0))

    assert deleted["visits"] == 2  # days 1 and 2 of run-a; day 3 is still in the published version
    assert sum(path.exists() for path in held.files["visits"]) == 1
    assert sorted(lake_rows(layout))[0][2] == "NEW" and len(lake_rows(layout)) == 6


def test_vacuum_deletes_the_files_of_a_write_that_never_committed(layout):
    stage_and_audit(layout, "run-a", visits_over_days(6))
    publish.publish_run("run-a", layout, None)
    table = Path(layout.table_uri("visits"))
    published = snapshot.take(layout, layout.root / "unused").files["visits"]
    orphan = (
        table / "visit_date=2026-11-01" / "part-00000-dead0000-0000-0000-0000-000000000000-c000.zstd.parquet"
    )
    shutil.copy(published[0], orphan)  # what a writer killed after writing a file, before its commit, leaves

    assert publish.vacuum(layout)["visits"] == 0  # it might be a commit under way: kept for the retention
    publish.vacuum(layout, retention=timedelta(0))

    assert not orphan.exists() and all(path.exists() for path in published)
    assert len(lake_rows(layout)) == 6
