"""The dashboard served by `streamlit run` and rendered by a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb
import pytest
from letsjobit.dashboard import queries

from tests.dashboard import browser
from tests.dashboard.test_app import DEFAULT, expected_tiles

OUTPUT = Path(__file__).resolve().parents[1] / "output"
CHARTS = '[data-testid="stVegaLiteChart"] svg, [data-testid="stVegaLiteChart"] canvas'


def rendered(page: browser.Browser, *texts: str, charts: int = 0):
    """The page's text once every given text and at least ``charts`` drawn charts are on it."""

    def ready():
        text = page.text()
        return text if all(t in text for t in texts) and page.count(CHARTS) >= charts else None

    return browser.wait_until(ready, 60, f"{texts} and {charts} chart(s) on the page")


@pytest.mark.browser
@pytest.mark.timeout(900)  # the first run on a clean machine installs chromium
def test_dashboard_renders_the_marts_kpis_in_a_real_browser_and_picks_up_a_new_build(
    warehouse, marts, second_build
):
    tiles = expected_tiles(marts, DEFAULT)
    browser.chromium()  # install before the clock of the page waits starts
    started = time.monotonic()

    def lap(stage: str) -> None:  # shown when the test fails, or with -s
        print(f"{time.monotonic() - started:6.1f} s  {stage}")

    with (
        browser.dashboard_server(warehouse.root, OUTPUT / "dashboard-server.log") as url,
        browser.headless_chromium() as page,
    ):
        lap("server and browser up")
        page.open(url)
        text = rendered(page, "LetsJobIt KPIs", "Close rate", tiles["NPS"][0], charts=2)
        lap("overview rendered")

        page.screenshot(OUTPUT / "dashboard-overview.png")
        for label, (value, _) in tiles.items():
            assert f"{label}\n\n{value}" in text, f"tile {label} should show {value}"
        assert "Traceback" not in text and "Error" not in text

        # A new build replaces the file underneath the running dashboard (as warehouse.build publishes:
        # rename over it); the next load shows the new build, here through a link with filters in its URL.
        swap_in(second_build, warehouse.warehouse)
        marts.close()
        territory = queries.Filters(DEFAULT.start, DEFAULT.end, territories=("DD-Dundee",))
        with duckdb.connect(str(warehouse.warehouse), read_only=True) as new_marts:
            new_tiles = expected_tiles(new_marts, territory)
        assert new_tiles["Visits"] != tiles["Visits"]
        page.open(f"{url}/?territories=DD-Dundee")
        text = rendered(page, "LetsJobIt KPIs", f"Visits\n\n{new_tiles['Visits'][0]}", charts=2)
        assert f"NPS\n\n{new_tiles['NPS'][0]}" in text and "DD-Dundee" in text
        lap("new build rendered through a filtered link")

        page.open(f"{url}/drivers")
        rendered(page, "Driver leaderboard", "Not ranked: fewer than 5 ratings")
        # The tables draw on a canvas (no text in the DOM): wait for both grids, then look at the picture.
        browser.wait_until(
            lambda: page.count('[data-testid="stDataFrame"] canvas') >= 2, 30, "the two tables"
        )
        page.screenshot(OUTPUT / "dashboard-drivers.png")
        lap("drivers page rendered")


def swap_in(build: Path, target: Path) -> None:
    staged = target.with_name(f".{target.name}.incoming")
    shutil.copyfile(build, staged)
    os.replace(staged, target)
