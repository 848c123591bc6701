"""The dashboard keeps answering, with whole builds only, while the real build replaces the warehouse
underneath it again and again."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import duckdb
from letsjobit import config
from letsjobit.dashboard import queries
from letsjobit.warehouse.build import build

from tests.dashboard import fixture_lake as fl
from tests.dashboard.test_app import DEFAULT, assert_ran_cleanly, expected_tiles, open_app, tiles

MIN_BUILDS_DURING_READS = 2
TIME_LIMIT_SECONDS = 120


def test_every_page_load_during_rebuilds_shows_one_whole_build(
    data_dir, tmp_path, built_warehouse, second_build
):
    # The tiles each build must show, computed from each build on its own before the race starts.
    expected_by_run = {}
    for run_id, path in (("build-a", built_warehouse), ("build-b", second_build)):
        with duckdb.connect(str(path), read_only=True) as con:
            expected_by_run[run_id] = expected_tiles(con, DEFAULT)
    assert expected_by_run["build-a"] != expected_by_run["build-b"]
    data_dir.root.mkdir(parents=True)
    shutil.copyfile(built_warehouse, data_dir.warehouse)

    stop = tmp_path / "stop"
    builder = subprocess.Popen(
        [sys.executable, "-m", "tests.dashboard.rebuild_loop", str(data_dir.root), str(stop)],
        cwd=config.PROJECT_ROOT,
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
        while len(builds) < MIN_BUILDS_DURING_READS or set(seen) != set(fl.DATA_SETS):
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


def test_a_rebuild_keeps_the_filters_that_still_apply_and_drops_those_that_do_not(warehouse):
    app = open_app()
    app.sidebar.multiselect(key="territories").set_value([fl.UNRATED_TERRITORY, "DD-Dundee"])
    app.sidebar.multiselect(key="drivers").set_value(["d-noah"]).run()
    assert_ran_cleanly(app)
    visits, lines = fl.sample()
    kept = [v for v in visits if v["territory"] != fl.UNRATED_TERRITORY]
    kept_ids = {v["visit_id"] for v in kept}
    fl.publish(warehouse, kept, [line for line in lines if line["visit_id"] in kept_ids])
    build(warehouse, run_id="without-inverness")

    app.run()

    assert_ran_cleanly(app)
    assert app.sidebar.multiselect(key="territories").value == ["DD-Dundee"]
    assert app.sidebar.multiselect(key="drivers").value == ["d-noah"]
    with duckdb.connect(str(warehouse.warehouse), read_only=True) as con:
        assert tiles(app) == expected_tiles(
            con, queries.Filters(DEFAULT.start, DEFAULT.end, ("DD-Dundee",), ("d-noah",))
        )
