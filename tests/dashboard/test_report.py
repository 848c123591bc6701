"""The static HTML KPI report: the dashboard's numbers in one self-contained file."""

from __future__ import annotations

import re
from datetime import date

import pytest
from letsjobit.dashboard import queries, report

from tests.dashboard.test_app import DEFAULT, expected_tiles


def test_the_report_shows_the_tiles_of_the_default_period_with_inline_charts(warehouse, marts):
    path = report.write(warehouse, today=date(2027, 1, 1))

    page = path.read_text()
    assert path == warehouse.root / report.REPORT_NAME
    tiles = dict(re.findall(r'<div class="tile"><div>([^<]+)</div><div class="v">([^<]+)</div>', page))
    assert tiles == {label: value for label, (value, _) in expected_tiles(marts, DEFAULT).items()}
    assert (
        page.count("<svg") == 2
        and "<script" not in page
        and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "IV-Inverness" in page and "Mia" in page
    assert not list(warehouse.root.glob(f".{report.REPORT_NAME}.*")), "no temporary file left behind"


def test_a_line_chart_breaks_at_a_period_without_a_value():
    svg = report.line_chart(
        [date(2026, 10, d) for d in (5, 12, 19, 26)], [10.0, None, 30.0, 40.0], -100, 100, "NPS"
    )

    assert svg.count("<polyline") == 2 and svg.count("<circle") == 3


def test_without_a_warehouse_the_report_says_so(data_dir):
    with pytest.raises(queries.WarehouseUnavailable, match="not been built yet"):
        report.write(data_dir)
