"""A static HTML KPI report next to the warehouse, for people without the dashboard.

    python -m letsjobit.dashboard.report [--days 28]     # writes <data dir>/kpi_report.html and prints its path

One self-contained file (inline SVG charts, no scripts, no network): the headline tiles of the last
period against the one before, NPS and close rate per week, territories, the driver leaderboard and
skip reasons. It uses the dashboard's query functions, so it shows the dashboard's numbers.
"""

from __future__ import annotations

import argparse
import html
import logging
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from letsjobit import config, files
from letsjobit.dashboard import formatting as fmt
from letsjobit.dashboard import queries

log = logging.getLogger(__name__)

REPORT_NAME = "kpi_report.html"
DEFAULT_DAYS = 28
WEEKS_SHOWN = 12
MIN_RATINGS = 5
CHART_WIDTH, CHART_HEIGHT, MARGIN = 520, 180, 36

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:0}.muted{color:#666}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border-bottom:1px solid #e5e5e5;padding:.3em .8em;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}.tiles{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}
.tile{border:1px solid #ddd;border-radius:8px;padding:.6em 1em;min-width:130px}
.tile .v{font-size:1.8em}.tile .d{color:#555;font-size:.9em}.charts{display:flex;gap:2em;flex-wrap:wrap}figure{margin:0}
svg text{font-size:10px;fill:#555}
"""


def _e(value) -> str:
    return html.escape(str(value))


def _tiles(current: dict, previous: dict) -> str:
    tiles = [
        ("Visits", fmt.count(current["visits"]), fmt.count_delta(current["visits"], previous["visits"])),
        ("Close rate", fmt.percent(current["close_rate"]), fmt.rate_delta(current["close_rate"], previous["close_rate"])),
        ("Skip rate", fmt.percent(current["skip_rate"]), fmt.rate_delta(current["skip_rate"], previous["skip_rate"])),
        ("NPS", fmt.nps(current["nps"], current["rated_visits"]), fmt.nps_delta(current["nps"], previous["nps"])),
        ("CSAT", fmt.percent(current["csat"]), fmt.rate_delta(current["csat"], previous["csat"])),
        ("Average rating", fmt.rating(current["avg_rating"]), fmt.rating_delta(current["avg_rating"], previous["avg_rating"])),
    ]  # fmt: skip
    cells = "".join(
        f'<div class="tile"><div>{_e(label)}</div><div class="v">{_e(value)}</div>'
        f'<div class="d">{_e(delta or "")}</div></div>'
        for label, value, delta in tiles
    )
    return (
        f'<div class="tiles">{cells}</div><p class="muted">NPS from {current["rated_visits"]:,} ratings.</p>'
    )


def line_chart(periods: list[date], values: list[float | None], low: float, high: float, label: str) -> str:
    """An inline SVG line; a period without a value breaks the line instead of bridging it."""
    plot_width, plot_height = CHART_WIDTH - 2 * MARGIN, CHART_HEIGHT - 2 * MARGIN
    step = plot_width / max(len(periods) - 1, 1)

    def y(value: float) -> float:
        return MARGIN + plot_height * (1 - (value - low) / (high - low))

    segments, current = [], []
    for index, value in enumerate(values):
        if value is None or pd.isna(value):
            if current:
                segments.append(current)
            current = []
        else:
            current.append(f"{MARGIN + index * step:.1f},{y(value):.1f}")
    if current:
        segments.append(current)
    lines = "".join(
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{" ".join(points)}"/>'
        + "".join(
            f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="#1f77b4"/>' for p in points
        )
        for points in segments
    )
    axis = "".join(
        f'<line x1="{MARGIN}" x2="{CHART_WIDTH - MARGIN}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eee"/>'
        f'<text x="{MARGIN - 4}" y="{y(tick) + 3:.1f}" text-anchor="end">{_e(_tick_label(tick, high))}</text>'
        for tick in (low, (low + high) / 2, high)
    )
    dates = "".join(
        f'<text x="{MARGIN + index * step:.1f}" y="{CHART_HEIGHT - MARGIN + 14}" text-anchor="middle">'
        f"{period:%d %b}</text>"
        for index, period in enumerate(periods)
        if index % max(len(periods) // 6, 1) == 0
    )
    return (
        f'<figure><figcaption>{_e(label)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" role="img" aria-label="{_e(label)}">'
        f"{axis}{dates}{lines}</svg></figure>"
    )


def _tick_label(tick: float, high: float) -> str:
    return f"{tick:.0%}" if high <= 1 else f"{tick:.0f}"


def _table(frame: pd.DataFrame, columns: dict[str, tuple[str, callable]]) -> str:
    if frame.empty:
        return '<p class="muted">Nothing in this period.</p>'
    head = "".join(f"<th>{_e(title)}</th>" for title, _ in columns.values())
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(render(row))}</td>" for _, render in columns.values()) + "</tr>"
        for _, row in frame.iterrows()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


KPI_COLUMNS = {
    "visits": ("Visits", lambda r: fmt.count(r["visits"])),
    "close_rate": ("Close rate", lambda r: fmt.percent(r["close_rate"])),
    "rated_visits": ("Ratings", lambda r: fmt.count(r["rated_visits"])),
    "nps": ("NPS", lambda r: fmt.nps(r["nps"], r["rated_visits"])),
    "csat": ("CSAT", lambda r: fmt.percent(r["csat"])),
}

TERRITORY_COLUMNS = {"territory": ("Territory", lambda r: r["territory"]), **KPI_COLUMNS}
DRIVER_COLUMNS = {
    "rank": ("#", lambda r: "" if pd.isna(r["rank"]) else int(r["rank"])),
    "driver_name": ("Driver", lambda r: r["driver_name"]),
    **KPI_COLUMNS,
}
SKIP_COLUMNS = {
    "skip_reason": ("Reason id", lambda r: r["skip_reason"]),
    "skipped_visits": ("Skipped visits", lambda r: fmt.count(r["skipped_visits"])),
    "share": ("Share", lambda r: fmt.percent(r["share"])),
}


def render(con, filters: queries.Filters, build: dict, validation: dict) -> str:
    current, previous = queries.headline_with_previous(con, filters)
    first_day = queries.date_bounds(con)[0]
    weeks_start = max(first_day, min(filters.start, filters.end - timedelta(weeks=WEEKS_SHOWN)))
    weeks = queries.kpi_series(con, queries.Filters(weeks_start, filters.end), "week")
    periods = [p.date() for p in weeks["period"]]
    territories = queries.kpi_by(con, filters, "territory")
    board = queries.driver_leaderboard(con, filters, MIN_RATINGS)
    reasons = queries.skip_reasons(con, filters)
    built_at = build.get("built_at")
    built_at = f"{built_at:%Y-%m-%d %H:%M %Z}".strip() if isinstance(built_at, datetime) else built_at
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>LetsJobIt KPIs {filters.start} to {filters.end}</title><style>{STYLE}</style></head><body>
<h1>LetsJobIt KPIs</h1>
<p class="muted">{filters.start:%d %b %Y} to {filters.end:%d %b %Y} ({filters.days} days), changes against the
{filters.days} days before. Warehouse built {_e(built_at)} by run {_e(build.get("run_id"))}; last validation:
{_e(queries.validation_verdict(validation) if validation else "none")}.</p>
{_tiles(current, previous)}
<h2>Per week</h2><div class="charts">
{line_chart(periods, list(weeks["nps"]), -100, 100, "NPS")}
{line_chart(periods, list(weeks["close_rate"]), 0, 1, "Close rate")}
</div>
<h2>Territories</h2>{_table(territories, TERRITORY_COLUMNS)}
<h2>Driver leaderboard</h2>
<p class="muted">Ranked by NPS; a driver needs {MIN_RATINGS} ratings in the period to be ranked.</p>
{_table(board, DRIVER_COLUMNS)}
<h2>Skip reasons</h2>{_table(reasons, SKIP_COLUMNS)}
</body></html>
"""


def write(
    layout: config.DataLayout | None = None, days: int = DEFAULT_DAYS, today: date | None = None
) -> Path:
    """Write the report for the default period (the dashboard's) next to the warehouse; returns its path."""
    layout = layout or config.layout()
    with queries.connect(layout.warehouse) as con:
        bounds = queries.date_bounds(con)
        if bounds is None:
            raise queries.WarehouseUnavailable(f"the warehouse {layout.warehouse} has no visits yet")
        filters = queries.Filters(*queries.default_period(bounds, today or date.today(), days))
        page = render(con, filters, queries.build_info(con), queries.latest_validation(layout))
    target = layout.root / REPORT_NAME
    files.write_text(target, page)
    log.info("KPI report for %s to %s written to %s", filters.start, filters.end, target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m letsjobit.dashboard.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help="length of the period, ending at the latest data"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(write(days=args.days))  # the path, for scripts


if __name__ == "__main__":
    main()
