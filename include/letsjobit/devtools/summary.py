"""A short human summary of what the last run left in the lake and the warehouse."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb

from letsjobit import config
from letsjobit.lake import schema, tables
from letsjobit.lake.changes import LakeChanges
from letsjobit.quality import suites
from letsjobit.warehouse import kpis

# The recent days' headline KPIs (letsjobit.warehouse.kpis names them).
KPI_COLUMNS = ("visit_date", *kpis.HEADLINE)


def lake_counts(layout: config.DataLayout) -> dict[str, int]:
    """Rows of each data table in the published lake (one publication of all three)."""
    versions = tables.published_versions(layout)
    return {table: tables.dataset(layout, table, versions).count_rows() for table in schema.TABLES}


def validation_summary(layout: config.DataLayout) -> dict:
    latest = layout.reports / "latest.json"
    return json.loads(latest.read_text()) if latest.exists() else {}


def last_publication(layout: config.DataLayout) -> dict:
    """The lake's latest publication record (run id, the partitions it replaced), or {}."""
    path = layout.last_publication
    return json.loads(path.read_text()) if path.exists() else {}


def recent_kpis(warehouse: Path, limit: int = 5) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            f"select {', '.join(KPI_COLUMNS)} from marts.kpi_daily "
            "where visit_date <= current_date order by visit_date desc limit ?",
            [limit],
        ).fetchall()


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def validation_lines(validation: dict) -> list[str]:
    """The gate's verdict, what the run's bad values and records cost, and the unknown values it met."""
    field_issues = validation.get("field_issues") or 0
    records = validation.get("quarantined_records") or 0
    rows = validation.get("quarantined_rows") or 0
    lines = [
        f"  validation: {validation.get('verdict', '?')}, {field_issues:,} field issue(s) (value NULLed or kept, "
        f"record published), {records:,} record(s) quarantined"
        + (f" ({rows:,} row(s) with their lines and extraData)" if rows else "")
        + f" (report: {validation.get('report_html', '?')})"
    ]
    unknown = []
    for name, values in (validation.get("unknown_values") or {}).items():
        if values and name in suites.ALL_CHECKS:
            check = suites.ALL_CHECKS[name]
            label = f"{'extraData ' if check.table == 'line_extra_data' else ''}{check.api_field}"
            unknown.append(f"{label} " + ", ".join(f"{value!r} x{count}" for value, count in values.items()))
    if unknown:
        lines.append(f"  unknown values, kept as sent: {'; '.join(unknown)}")
    warnings = validation.get("warnings") or []
    if warnings:
        lines.append(
            "  warnings (above the warning share, within the threshold): "
            + ", ".join(f"{w['check']} {w['share']:.1%}" for w in warnings)
        )
    return lines


def render(layout: config.DataLayout, elapsed_seconds: float | None = None) -> str:
    counts = lake_counts(layout)
    validation = validation_summary(layout)
    lines = [
        "",
        "LetsJobIt pipeline: run succeeded" + (f" in {elapsed_seconds:.0f} s" if elapsed_seconds else ""),
    ]
    lines.append(
        f"  loaded: {counts['visits']:,} visits, {counts['visit_lines']:,} lines, "
        f"{counts['line_extra_data']:,} extraData rows (lake: {layout.lake_location.redacted})"
    )
    if validation:
        lines.extend(validation_lines(validation))
    lines.append(f"  warehouse: {layout.warehouse}")
    if layout.warehouse.exists():
        rows = recent_kpis(layout.warehouse)
        widths = [max(len(c), 10) for c in KPI_COLUMNS]
        lines.append("  recent daily KPIs (marts.kpi_daily):")
        lines.append("    " + "  ".join(c.rjust(w) for c, w in zip(KPI_COLUMNS, widths, strict=True)))
        for row in rows:
            lines.append("    " + "  ".join(_fmt(v).rjust(w) for v, w in zip(row, widths, strict=True)))
    lines.append(
        f"  query it: .venv/bin/python -c \"import duckdb; print(duckdb.connect('{layout.warehouse}', read_only=True).sql('from marts.kpi_daily limit 5'))\""
    )
    lines.append("  dashboard: make dashboard  (then open http://127.0.0.1:8501)")
    return "\n".join(lines)


def render_window(partitions: list[str], changes: LakeChanges, planned: list[date]) -> list[str]:
    """What a window run re-read and what it changed in the lake, by visit date."""
    dates = sorted(partitions)
    lines = [
        f"  window: re-read {len(dates)} visit dates, {dates[0]} .. {dates[-1]}; the lake's other dates "
        "were left as they were"
        if dates
        else "  window: re-read no visit dates"
    ]
    if dates != [day.isoformat() for day in planned]:
        lines.append(f"  NOTE: the DAG's window for this logical date was {planned[0]} .. {planned[-1]}")
    lines.append(
        f"  lake changes: {len(changes.added):,} visits added, {len(changes.updated):,} updated "
        f"({len(changes.moved):,} moved to another date), {len(changes.removed):,} removed; "
        f"{changes.unchanged:,} unchanged"
    )
    if changes.total:
        lines.append(f"    {'visit_date':>10}  {'added':>7}  {'updated':>7}  {'removed':>7}")
        for day in changes.dates():
            counts = [changes.by_date[day, kind] for kind in ("added", "updated", "removed")]
            lines.append(f"    {day.isoformat():>10}  " + "  ".join(f"{n:>7}" for n in counts))
    outside = sorted({day.isoformat() for day in changes.dates()} - set(dates))
    if outside:
        lines.append(f"  NOTE: visits changed on dates the window did not re-read: {', '.join(outside)}")
    lines.append(
        "  (removed: deleted at the source, or rescheduled to a date outside the window; compared by "
        "visit_id and a fingerprint of each visit's rows)"
    )
    return lines
