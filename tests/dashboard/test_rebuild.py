"""The dashboard keeps answering, with whole builds only, while the real build replaces the warehouse
underneath it again and again."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import duckdb

from include.letsjobit import config
from tests.dashboard import fixture_lake
from tests.dashboard.conftest import APP
from tests.dashboard.rebuild_loop import DATA_SETS
from tests.dashboard.test_app import DEFAULT, assert_ran_cleanly, expected_tiles, open_app, tiles

MIN_BUILDS_DURING_READS = 3
TIME_LIMIT_SECONDS = 120


def test_every_page_load_during_rebuilds_shows_one_whole_build(data_dir, tmp_path):
    # The tiles each build must show, computed from each build on its own before the race starts.
    expected_by_run = {}
    for run_id, settings in DATA_SETS.items():
        layout = config.DataLayout(tmp_path / run_id)
        fixture_lake.build(layout, run_id=run_id, **settings)
        with duckdb.connect(str(layout.warehouse), read_only=True) as con:
            expected_by_run[run_id] = expected_tiles(con, DEFAULT)
    assert expected_by_run["build-a"] != expected_by_run["build-b"]
    data_dir.root.mkdir(parents=True)
    shutil.copyfile(tmp_path / "build-a" / "warehouse.duckdb", data_dir.warehouse)

    stop = tmp_path / "stop"
    builder = subprocess.Popen(
        [sys.executable, "-m", "tests.dashboard.rebuild_loop", str(data_dir.root), str(stop)],
        cwd=APP.parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    builds: list[str] = []
    reader = threading.Thread(
        target=lambda: builds.extend(line.split()[-1] for line in builder.stdout), daemon=True
    )
    reader.start()
    seen: list[str] = []
    started = time.monotonic()
    try:
        app = open_app()
        while len(builds) < MIN_BUILDS_DURING_READS or set(seen) != set(DATA_SETS):
            assert time.monotonic() - started < TIME_LIMIT_SECONDS, f"builds {builds}, page loads saw {seen}"
            assert builder.poll() is None, "the builder stopped while the dashboard was reading"
            app.run()
            assert_ran_cleanly(app)
            shown = tiles(app)
            matches = [run_id for run_id, tiles_of_run in expected_by_run.items() if shown == tiles_of_run]
            assert matches, f"the tiles {shown} belong to no single build"
            seen.append(matches[0])
            time.sleep(0.3)  # a reader, not a CPU hog: the builds share two cores with it
    finally:
        stop.touch()
        builder.wait(timeout=120)
        reader.join(timeout=10)
    assert builder.returncode == 0, "a build failed while the dashboard was reading"
    print(f"{len(seen)} page loads during {len(builds)} builds: {seen}")
