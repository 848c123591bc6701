"""The lake on object storage: the same publication, partition replace, kill, snapshot (with its local cache)
and readers as on a local disk, against a real S3 server on loopback (moto), configured as a deployment
configures it (LETSJOBIT_LAKE_URL=s3://bucket/lake and the AWS variables)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import date

import boto3
import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from letsjobit import config
from letsjobit.devtools import summary
from letsjobit.lake import changes, publish, schema, snapshot, tables

from tests.lake.conftest import ROOT, reference_visit, stage_and_audit, visits_over_days
from tests.lake.test_publish import kill_publication, lake_rows, new_generation

DAY_1, DAY_2, DAY_3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def bucket_keys(layout: config.DataLayout) -> list[str]:
    bucket, _, prefix = layout.lake_location.url.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=layout.lake_location.storage_options["AWS_ENDPOINT_URL"])
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


def test_the_layout_takes_the_lake_url_and_aws_variables_and_keeps_scratch_local(s3_layout, tmp_path):
    location = s3_layout.lake_location
    assert not location.is_local and location.url.startswith("s3://lake-")
    assert s3_layout.table_uri("visits") == f"{location.url}/visits"
    assert location.storage_options["AWS_ALLOW_HTTP"] == "true"
    assert s3_layout.staging == tmp_path / "data" / "lake" / "_staging"  # scratch: the worker's disk
    assert "moto-test-secret" not in repr(s3_layout) and "moto-test-secret" not in str(location)


def test_publish_replace_partitions_and_read_on_s3_as_on_a_local_disk(s3_layout, caplog):
    layout = s3_layout
    caplog.set_level(logging.INFO)
    stage_and_audit(layout, "run-a", visits_over_days(6))
    first = publish.publish_run("run-a", layout, None)
    changed = [reference_visit(_id="v00001", date="2026-11-02", docNo="CHANGED")]
    stage_and_audit(layout, "run-b", changed)
    second = publish.publish_run("run-b", layout, [DAY_2, DAY_3])

    assert (second.replaced, second.removed) == (["2026-11-02"], ["2026-11-03"])
    assert second.versions == {table: first.versions[table] + 1 for table in schema.LAKE_TABLES}
    assert lake_rows(layout) == [
        (DAY_1, "v00000", "H-017623"), (DAY_1, "v00003", "H-017623"), (DAY_2, "v00001", "CHANGED"),
    ]  # fmt: skip
    keys = bucket_keys(layout)
    assert "lake/visits/_delta_log/00000000000000000001.json" in keys
    assert any(key.startswith("lake/visits/visit_date=2026-11-02/") for key in keys)
    assert not any(key.startswith("lake/_staging") or key.startswith("lake/raw") for key in keys)
    assert summary.lake_counts(layout) == {"visits": 3, "visit_lines": 3, "line_extra_data": 6}
    assert set(changes.snapshot(layout)) == {"v00000", "v00001", "v00003"}
    assert "moto-test-secret" not in caplog.text


def test_a_kill_between_table_commits_on_s3_leaves_the_previous_publication_and_the_retry_finishes(s3_layout):
    layout = s3_layout
    stage_and_audit(layout, "run-a", visits_over_days(6))
    published = publish.publish_run("run-a", layout, None)
    new_generation(layout, "run-b", "NEW")

    kill_publication(None, "between-commits", "run-b", [DAY_1, DAY_2, DAY_3])  # the child reads the env

    assert tables.open_table(layout, "visits").version() == published.versions["visits"] + 1
    assert tables.published_versions(layout) == published.versions
    assert {doc_no for (_, _, doc_no) in lake_rows(layout)} == {"H-017623"}
    publish.publish_run("run-b", layout, [DAY_1, DAY_2, DAY_3])
    assert {doc_no for (_, _, doc_no) in lake_rows(layout)} == {"NEW"}


def test_a_snapshot_of_an_s3_lake_downloads_only_new_files_and_prunes_its_cache(s3_layout, tmp_path):
    layout = s3_layout
    stage_and_audit(layout, "run-a", visits_over_days(6))
    publish.publish_run("run-a", layout, None)

    first = snapshot.take(layout, tmp_path / "build-1")

    assert first.versions == tables.published_versions(layout)
    assert all(path.is_relative_to(tmp_path / "build-1") for paths in first.files.values() for path in paths)
    cached = {
        path.relative_to(layout.lake_cache): path.stat().st_ino
        for path in layout.lake_cache.rglob("*.parquet")
    }
    assert len(cached) == sum(len(paths) for paths in first.files.values()) > 0
    query = (
        "select visit_date, count(*) from read_parquet(?, hive_partitioning = true) group by all order by all"
    )
    visits = [str(path) for path in first.files["visits"]]
    assert duckdb.execute(query, [visits]).fetchall() == [(DAY_1, 2), (DAY_2, 2), (DAY_3, 2)]
    assert {day for (table, day) in first.fingerprints if table == "visits"} == {DAY_1, DAY_2, DAY_3}

    stage_and_audit(layout, "run-b", [reference_visit(_id="v00001", date="2026-11-02", docNo="CHANGED")])
    publish.publish_run("run-b", layout, [DAY_2])
    second = snapshot.take(layout, tmp_path / "build-2")

    now = {
        path.relative_to(layout.lake_cache): path.stat().st_ino
        for path in layout.lake_cache.rglob("*.parquet")
    }
    kept = now.keys() & cached.keys()
    assert kept and all(now[path] == cached[path] for path in kept)  # not downloaded again
    assert {path.parent.name for path in now.keys() - cached.keys()} == {"visit_date=2026-11-02"}
    assert {path.parent.name for path in cached.keys() - now.keys()} == {"visit_date=2026-11-02"}  # pruned
    changed = {key for key in second.fingerprints if second.fingerprints[key] != first.fingerprints.get(key)}
    assert changed == {(table, DAY_2) for table in schema.TABLES}
    # The first build's links outlive the pruning: it reads its version to the end.
    assert duckdb.execute(query, [visits]).fetchall() == [(DAY_1, 2), (DAY_2, 2), (DAY_3, 2)]


# Appends ``count`` one-row commits to the table at argv[1] as fast as it can (S3 settings from the env).
APPENDER = """
import sys
import pyarrow as pa
from deltalake import write_deltalake
from letsjobit import config
from letsjobit.lake import tables

options = tables.storage_options(config.lake_location())
for number in range(int(sys.argv[3])):
    write_deltalake(sys.argv[1], pa.table({"writer": [sys.argv[2]], "n": [number]}), mode="append",
                    storage_options=options)
"""


def test_commits_on_s3_are_conditional_puts_so_racing_writers_lose_no_commit(s3_layout):
    """delta-rs puts a commit with If-None-Match: *, so of two writers that take the same version one is
    refused (moto answers 412) and retries at the next: every commit lands, with no lock (a plain put
    would let the second replace the first's commit). Writers race until a refused put happened."""
    uri = f"{s3_layout.lake_location.url}/race"
    options = tables.storage_options(s3_layout.lake_location)
    write_deltalake(uri, pa.table({"writer": ["setup"], "n": [0]}), storage_options=options)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    commits, retries = 1, 0
    for _ in range(5):
        writers = [
            subprocess.Popen([sys.executable, "-c", APPENDER, uri, f"w{number}", "15"], env=env)
            for number in range(3)
        ]
        assert [writer.wait(timeout=300) for writer in writers] == [0, 0, 0]
        commits += 45
        history = DeltaTable(uri, storage_options=options).history()
        retries = sum(commit.get("operationMetrics", {}).get("num_retries", 0) for commit in history)
        if retries:
            break

    latest = DeltaTable(uri, storage_options=options)
    assert retries > 0, "no two commits raced for one version in 5 rounds"
    assert latest.version() == commits - 1 and latest.to_pyarrow_table().num_rows == commits
    bucket = s3_layout.lake_location.url.removeprefix("s3://").split("/")[0]
    s3 = boto3.client("s3", endpoint_url=options["AWS_ENDPOINT_URL"])
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(
            Bucket=bucket, Key="lake/race/_delta_log/00000000000000000001.json", Body=b"{}", IfNoneMatch="*"
        )


def test_vacuum_on_s3_deletes_replaced_files_past_the_retention(s3_layout):
    from datetime import timedelta

    layout = s3_layout
    stage_and_audit(layout, "run-a", visits_over_days(6))
    publish.publish_run("run-a", layout, None)
    new_generation(layout, "run-b", "NEW")
    publish.publish_run("run-b", layout, [DAY_1])
    before = [key for key in bucket_keys(layout) if key.startswith("lake/visits/visit_date=2026-11-01/")]

    assert publish.vacuum(layout)["visits"] == 0
    assert publish.vacuum(layout, retention=timedelta(0))["visits"] == 1

    after = [key for key in bucket_keys(layout) if key.startswith("lake/visits/visit_date=2026-11-01/")]
    assert len(before) == 2 and len(after) == 1
    assert {doc for (day, _, doc) in lake_rows(layout) if day == DAY_1} == {"NEW"}
