"""The dashboard keeps answering, with whole builds only, while the warehouse is rebuilt underneath it."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb

from tests.dashboard import fixture_warehouse as fw
from tests.dashboard.conftest import APP
from tests.dashboard.rebuild_loop import DATA_SETS
from tests.dashboard.test_app import DEFAULT, assert_ran_cleanly, expected_tiles, open_app, tiles

PAGE_LOADS = 12


def test_every_page_load_during_rebuilds_shows_one_whole_build(data_dir, tmp_path):
    # The tiles each build must show, computed from each build on its own before the race starts.
    expected_by_run = {}
    for run_id, settings in DATA_SETS.items():
        path = tmp_path / f"{run_id}.duckdb"
        fw.build(path, fw.sample_visits(**settings), run_id=run_id)
        with duckdb.connect(str(path), read_only=True) as con:
            expected_by_run[run_id] = expected_tiles(con, DEFAULT)
    assert expected_by_run["build-a"] != expected_by_run["build-b"]
    fw.build(data_dir.warehouse, fw.sample_visits(**DATA_SETS["build-a"]), run_id="build-a")

    stop = tmp_path / "stop"
    builder = subprocess.Popen(
        [sys.executable, "-m", "tests.dashboard.rebuild_loop", str(data_dir.warehouse), str(stop)],
        cwd=APP.parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        builder.stdout.readline()  # the first build of the loop is done: the race is on
        app = open_app()
        for _ in range(PAGE_LOADS):
            app.run()
            assert_ran_cleanly(app)
            shown = tiles(app)
            matches = [run_id for run_id, tiles_of_run in expected_by_run.items() if shown == tiles_of_run]
            assert matches, f"the tiles {shown} belong to no single build"
            seen.append(matches[0])
            time.sleep(0.05)
    finally:
        stop.touch()
        output, _ = builder.communicate(timeout=60)
    assert builder.returncode == 0, "the builder failed while the dashboard was reading"
    builds = 1 + output.count("built ")
    assert builds >= 3, f"only {builds} builds ran during {PAGE_LOADS} page loads"
    assert set(seen) == set(DATA_SETS), f"page loads saw only {set(seen)}"
