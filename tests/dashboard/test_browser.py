"""The dashboard served by `streamlit run` and rendered by a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboard import browser
from tests.dashboard import fixture_lake as fl
from tests.dashboard.test_app import DEFAULT, expected_tiles

OUTPUT = Path(__file__).resolve().parents[1] / "output"
CHARTS = '[data-testid="stVegaLiteChart"] svg, [data-testid="stVegaLiteChart"] canvas'


def rendered(page: browser.Browser, *texts: str, charts: int = 0):
    """The page's text once every given text and at least ``charts`` drawn charts are on it."""

    def ready():
        text = page.text()
        return text if all(t in text for t in texts) and page.count(CHARTS) >= charts else None

    return browser.wait_until(ready, 45, f"{texts} and {charts} chart(s) on the page")


@pytest.mark.browser
@pytest.mark.timeout(900)  # the first run on a clean machine installs chromium
def test_dashboard_renders_the_marts_kpis_in_a_real_browser_and_picks_up_a_new_build(warehouse, marts):
    tiles = expected_tiles(marts, DEFAULT)
    browser.chromium()  # install before the clock of the page waits starts
    with (
        browser.dashboard_server(warehouse.root, OUTPUT / "dashboard-server.log") as url,
        browser.headless_chromium() as page,
    ):
        page.open(url)
        text = rendered(page, "LetsJobIt KPIs", "Close rate", tiles["NPS"][0], charts=2)

        page.screenshot(OUTPUT / "dashboard-overview.png")
        for label, (value, _) in tiles.items():
            assert f"{label}\n\n{value}" in text, f"tile {label} should show {value}"
        assert "Traceback" not in text and "Error" not in text

        # A rebuild swaps the file underneath the running dashboard: the next load shows the new build.
        fl.build(warehouse, seed=8, scale=3, run_id="second-build")
        marts.close()
        new_tiles = expected_tiles(browser_marts(warehouse.warehouse), DEFAULT)
        assert new_tiles["Visits"] != tiles["Visits"]
        page.open(url)
        text = rendered(page, "LetsJobIt KPIs", f"Visits\n\n{new_tiles['Visits'][0]}", charts=2)

        page.open(f"{url}/drivers")
        rendered(page, "Driver leaderboard", "Not ranked: fewer than 5 ratings")
        # The tables draw on a canvas (no text in the DOM): wait for both grids, then look at the picture.
        browser.wait_until(
            lambda: page.count('[data-testid="stDataFrame"] canvas') >= 2, 30, "the two tables"
        )
        page.screenshot(OUTPUT / "dashboard-drivers.png")


def browser_marts(path: Path):
    import duckdb

    return duckdb.connect(str(path), read_only=True)
