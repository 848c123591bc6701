"""Raw pages across hosts: a part extracted on one host's disk reaches another host through the lake's
store (moto's S3 on loopback), is staged there as if extracted locally, and is pruned with its run."""

from __future__ import annotations

import os

from letsjobit import config, files
from letsjobit.lake import raw_store, stage

from tests.lake.conftest import raw_page, visits_over_days, write_raw_part


def write_chunk(layout: config.DataLayout, run_id: str, chunk: str, visits: list[dict]) -> None:
    """A part and its manifest as extract_to_raw leaves them."""
    part = write_raw_part(layout, run_id, chunk, [raw_page(visits)])
    files.write_json(layout.raw_manifest(run_id, chunk), {"chunk": chunk, "part_bytes": part.stat().st_size})


def other_host(layout: config.DataLayout, tmp_path) -> config.DataLayout:
    """The same lake seen from a worker with its own data directory."""
    return config.DataLayout(tmp_path / "other-host", layout.lake_location)


def test_a_part_extracted_on_one_host_is_fetched_and_staged_on_another(s3_layout, tmp_path):
    first, second = s3_layout, other_host(s3_layout, tmp_path)
    write_chunk(first, "run-a", "a", visits_over_days(4, prefix="a"))
    write_chunk(second, "run-a", "b", visits_over_days(3, prefix="b"))
    raw_store.push(first, "run-a", "a")
    raw_store.push(second, "run-a", "b")

    assert raw_store.fetch(second, "run-a") == 1  # only the part it lacks
    assert raw_store.fetch(second, "run-a") == 0
    assert second.raw_part("run-a", "a").read_bytes() == first.raw_part("run-a", "a").read_bytes()
    assert stage.stage_run("run-a", second, workers=1).rows["visits"] == 7


def test_a_re_extracted_chunk_replaces_the_older_copy_on_the_staging_host(s3_layout, tmp_path):
    first, second = s3_layout, other_host(s3_layout, tmp_path)
    write_chunk(first, "run-a", "a", visits_over_days(4))
    raw_store.push(first, "run-a", "a")
    raw_store.fetch(second, "run-a")
    write_chunk(first, "run-a", "a", visits_over_days(6))  # a retry of the extract task
    raw_store.push(first, "run-a", "a")

    assert raw_store.fetch(second, "run-a") == 1
    assert stage.stage_run("run-a", second, workers=1).rows["visits"] == 6


def test_prune_keeps_the_newest_and_pending_raw_runs_in_the_store(s3_layout):
    for number in range(4):
        write_chunk(s3_layout, f"run-{number}", "a", visits_over_days(2))
        raw_store.push(s3_layout, f"run-{number}", "a")

    removed = raw_store.prune(s3_layout, keep=1, pending={"run-0"})

    assert sorted(removed) == ["run_id=run-1", "run_id=run-2"]
    fresh = config.DataLayout(s3_layout.root / "elsewhere", s3_layout.lake_location)
    assert raw_store.fetch(fresh, "run-3") == 1 and raw_store.fetch(fresh, "run-1") == 0


def test_a_host_that_only_extracts_keeps_its_newest_raw_runs(s3_layout):
    for number in range(3):
        write_chunk(s3_layout, f"run-{number}", "a", visits_over_days(2))
        raw_store.push(s3_layout, f"run-{number}", "a")
        stamp = 1_000_000 + number
        os.utime(s3_layout.raw_run(f"run-{number}"), (stamp, stamp))

    removed = raw_store.prune_local(s3_layout, keep=1)

    assert [path.name for path in removed] == ["run_id=run-1", "run_id=run-0"]
    assert sorted(os.listdir(s3_layout.raw)) == ["run_id=run-2"]
    fresh = config.DataLayout(s3_layout.root / "elsewhere", s3_layout.lake_location)
    assert raw_store.fetch(fresh, "run-0") == 1  # still in the store


def test_a_local_lake_shares_nothing_and_copies_nothing(layout):
    write_chunk(layout, "run-a", "a", visits_over_days(2))
    raw_store.push(layout, "run-a", "a")

    assert raw_store.fetch(layout, "run-a") == 0 and raw_store.prune(layout, keep=0) == []
    assert raw_store.prune_local(layout, keep=0) == []  # a local lake's raw folder is publish's to prune
    assert sorted(os.listdir(layout.lake)) == ["raw"]
