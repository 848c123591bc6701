"""extract_to_raw: the raw part and its manifest, written atomically, replaced exactly on a re-run."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pytest
from letsjobit.api.errors import LetsJobItAuthError
from letsjobit.config import DataLayout
from letsjobit.lake import extract
from letsjobit.simulator import FaultConfig

from tests.conftest import truth_ids


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    return DataLayout(tmp_path / "data")


def test_raw_part_holds_every_page_as_answered_and_the_manifest_reports_it(simulator, client_factory, layout):
    simulator.configure(page_size=40)
    client = client_factory(simulator)

    result = extract.extract_to_raw(client, "manual__2026-11-24", "full", {}, layout)

    part = layout.raw / "run_id=manual__2026-11-24" / "part-full.jsonl.gz"
    assert result.part_path == str(part)
    lines = list(extract.read_raw_pages(part))
    assert [line["offset"] for line in sorted(lines, key=lambda x: x["offset"])] == [
        0,
        39,
        78,
        117,
        156,
        195,
        234,
    ]
    for line in lines:
        assert set(line) == {"offset", "filters", "fetched_at", "body"}
        assert set(line["body"]) == {"meta", "data"}
        assert datetime.fromisoformat(line["fetched_at"]).utcoffset().total_seconds() == 0
    ids = {visit["_id"] for line in lines for visit in line["body"]["data"]}
    assert ids == set(truth_ids(simulator))
    manifest = json.loads((part.parent / "manifest-full.json").read_text())
    assert manifest["distinct_visits"] == result.distinct_visits == 250
    assert manifest["total_records_reported"] == 250
    assert manifest["pages"] == manifest["requests"] == 7
    assert manifest["rate_limited_429"] == 0 and manifest["retries"] == 0 and manifest["drift_events"] == 0
    assert manifest["wall_seconds"] > 0
    assert manifest["visit_dates"] == sorted({v["date"] for v in simulator.store.snapshot()})
    assert result.as_dict()["visit_dates"] == manifest["visit_dates"]
    assert list(part.parent.glob(".*")) == []  # no temporary files left


def test_filters_are_recorded_on_every_line_and_in_the_manifest(simulator, client_factory, layout):
    day = simulator.store.snapshot()[0]["date"]
    client = client_factory(simulator)

    result = extract.extract_to_raw(client, "r1", day, {"visit_date": day, "closed": True}, layout)

    lines = list(extract.read_raw_pages(result.part_path))
    assert all(line["filters"] == {"date": day, "closed": "1"} for line in lines)
    assert json.loads(open(result.manifest_path).read())["filters"] == {"date": day, "closed": "1"}
    assert result.visit_dates == (day,)


def test_a_rerun_replaces_the_part_exactly(simulator, client_factory, layout):
    client = client_factory(simulator)
    first = extract.extract_to_raw(client, "r2", 0, {}, layout)
    simulator.store.delete(truth_ids(simulator)[0])

    second = extract.extract_to_raw(client, "r2", 0, {}, layout)

    assert second.part_path == first.part_path
    assert second.distinct_visits == 249
    ids = {v["_id"] for line in extract.read_raw_pages(second.part_path) for v in line["body"]["data"]}
    assert len(ids) == 249
    assert len(list((layout.raw / "run_id=r2").iterdir())) == 2


def test_a_failed_extraction_leaves_no_part_behind(simulator, client_factory, layout):
    simulator.configure(page_size=20)
    # An explicit placement: in auto a 401 would be retried with the key in the query string.
    client = client_factory(simulator, key_placement="header")
    simulator.fail_next("ok", "ok", "ok", "401")

    with pytest.raises(LetsJobItAuthError):
        extract.extract_to_raw(client, "r3", "full", {}, layout)

    run_dir = layout.raw / "run_id=r3"
    assert list(run_dir.iterdir()) == []


def test_a_failed_rerun_keeps_the_previous_good_part(simulator, client_factory, layout):
    client = client_factory(simulator)
    good = extract.extract_to_raw(client, "r4", "full", {}, layout)
    before = open(good.part_path, "rb").read()
    simulator.set_faults(FaultConfig(force_status=401))

    with pytest.raises(LetsJobItAuthError):
        extract.extract_to_raw(client, "r4", "full", {}, layout)

    assert open(good.part_path, "rb").read() == before
    assert gzip.decompress(before)


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden"])
def test_unsafe_run_ids_and_chunks_are_refused(simulator, client_factory, layout, bad):
    client = client_factory(simulator)
    with pytest.raises(ValueError, match="cannot be used in a file name"):
        extract.extract_to_raw(client, bad, "full", {}, layout)
    with pytest.raises(ValueError, match="cannot be used in a file name"):
        extract.extract_to_raw(client, "ok", bad, {}, layout)


def test_airflow_run_ids_are_accepted(layout):
    path = layout.raw_part("scheduled__2026-11-24T00:00:00+00:00", "2026-11-23")
    assert path.name == "part-2026-11-23.jsonl.gz"
    assert path.parent.name == "run_id=scheduled__2026-11-24T00:00:00+00:00"
