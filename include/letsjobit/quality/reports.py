"""The validation gate's reports of a run, written by every audit, passed or failed.

Under ``layout.reports / run_id``: ``summary.json`` (machine-readable: verdict, issue counts by check,
warnings, unknown values, every check's result), ``index.html`` (a self-contained page) and GX Data Docs
(``data_docs/index.html``); ``layout.reports / latest.json`` is replaced by the newest summary. The alerts,
the dashboard and ``make run``'s summary read them.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from letsjobit import files

if TYPE_CHECKING:
    from letsjobit.quality.audit import AuditResult, Thresholds


def write_reports(
    result: AuditResult,
    expected_visits: int | None,
    rows_flattened: Mapping[str, int] | None,
    thresholds: Thresholds,
    run_dir: Path,
) -> None:
    """The run's summary.json and index.html, and latest.json (each replaced in one step)."""
    summary = {
        "run_id": result.run_id,
        "verdict": result.verdict.value,
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
        "seconds": round(result.seconds, 3),
        "failed_checks": result.failed_checks,
        "field_issues": result.field_issues,
        "quarantined_records": result.quarantined_records,
        "quarantined_rows": result.quarantined_rows,
        "warnings": result.warnings,
        "unknown_values": result.unknown_values,
        "issues": result.issues,
        "counts": result.counts,
        "expected_visits": expected_visits,
        "rows_flattened": dict(rows_flattened) if rows_flattened else None,
        "thresholds": {
            "per_check": dict(thresholds.per_check),
            "quarantine_share": thresholds.quarantine_share,
            "min_rows": thresholds.min_rows,
            "warn_share": thresholds.warn_share,
        },
        "report_html": str(result.report_html),
        "report_json": str(result.report_json),
        "data_docs_html": str(result.data_docs_html) if result.data_docs_html else None,
        "quarantine_paths": {t: str(p) for t, p in result.quarantine_paths.items()},
        "audited": str(result.audited_path) if result.audited_path else None,
        "staging": str(run_dir),
        "checks": [c.as_dict() for c in result.checks],
    }
    text = json.dumps(jsonable(summary), indent=2, sort_keys=False).encode()
    files.write_bytes(result.report_json, text)
    files.write_bytes(result.report_html, _render_html(summary).encode())
    files.write_bytes(result.latest_json, text)


def build_data_docs(context, folder: Path) -> Path:
    """Render the run's Data Docs into a fresh folder, then swap it in (the old one stays until then)."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / "data_docs"
    building = folder / f".data_docs-{uuid.uuid4().hex}"
    context.add_data_docs_site(
        site_name="run",
        site_config={
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(building)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    context.build_data_docs(site_names=["run"])
    # GX copies its tutorial animations (3 MB) into every site; the pages we build never show them.
    for gif in (building / "static" / "images").glob("*.gif"):
        gif.unlink()
    files.replace_dir(building, final)
    return final / "index.html"


def _render_html(summary: Mapping[str, Any]) -> str:
    """A self-contained page (no CDN: GX's own Data Docs need one for their styles)."""
    from letsjobit.quality.audit import ERROR, FAILED, PASSED, SKIPPED, Verdict  # audit imports this module

    e = html.escape
    colours = {PASSED: "#1a7f37", FAILED: "#cf222e", ERROR: "#cf222e", SKIPPED: "#6e7781"}
    verdict_colour = {Verdict.PASS: "#1a7f37", Verdict.QUARANTINED: "#9a6700", Verdict.FAIL: "#cf222e"}
    check_rows = "".join(
        f"<tr><td><code>{e(c['name'])}</code><br><small>{e(c['description'])}</small></td>"
        f"<td>{e(c['severity'])}</td><td>{e(c['action'] or '')}</td>"
        f"<td style='color:{colours.get(c['status'], '#9a6700')};font-weight:bold'>{e(c['status'])}</td>"
        f"<td>{'' if c['unexpected_count'] is None else c['unexpected_count']}</td>"
        f"<td>{_percent(c['share'])}</td><td>{_percent(c['threshold'])}</td>"
        f"<td>{e(c['detail'])}</td></tr>"
        for c in summary["checks"]
    )
    table_rows = "".join(
        f"<tr><td>{e(name)}</td><td>{n['staged']}</td><td>{n['quarantined']}</td><td>{n['clean']}</td>"
        f"<td>{n['values_nulled']}</td></tr>"
        for name, n in summary["counts"].items()
    )
    warning_items = "".join(
        f"<li><code>{e(w['check'])}</code>: {w['count']} ({_percent(w['share'])}, above {_percent(w['warn_share'])}"
        f"; threshold {_percent(w['threshold']) or 'none'})</li>"
        for w in summary["warnings"]
    )
    unknown_items = "".join(
        f"<li><code>{e(check)}</code>: "
        + ", ".join(f"{e(str(value))} ({count})" for value, count in values.items())
        + "</li>"
        for check, values in summary["unknown_values"].items()
        if values
    )
    links = ""
    if summary["data_docs_html"]:
        links += "<li><a href='data_docs/index.html'>Great Expectations Data Docs</a></li>"
    links += "<li><a href='summary.json'>summary.json</a></li>"
    links += "".join(
        f"<li>quarantine {e(t)}: <code>{e(p)}</code></li>" for t, p in summary["quarantine_paths"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Validation {e(summary["run_id"])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f6f8fa}}.verdict{{font-size:1.6em;font-weight:bold;color:{verdict_colour[summary["verdict"]]}}}
</style></head><body>
<h1>Validation of run <code>{e(summary["run_id"])}</code></h1>
<p class="verdict">{e(summary["verdict"].upper())}</p>
<p>Validated at {e(summary["validated_at"])} in {summary["seconds"]} s.
Expected visits (API): {e(str(summary["expected_visits"]))}.
Field issues (values NULLed or kept, records published): {summary["field_issues"]}.
Records quarantined: {summary["quarantined_records"]} ({summary["quarantined_rows"]} rows with their children).
Failed checks: {e(", ".join(summary["failed_checks"]) or "none")}.</p>
<h2>Warnings</h2><ul>{warning_items or "<li>none</li>"}</ul>
<h2>Unknown values (kept as sent)</h2><ul>{unknown_items or "<li>none</li>"}</ul>
<h2>Rows</h2>
<table><tr><th>table</th><th>staged</th><th>quarantined</th><th>published</th><th>values NULLed</th></tr>{table_rows}</table>
<h2>Checks</h2>
<p><small>The flattener's checks (<code>&lt;table&gt;.&lt;column&gt;_parses</code> and the structural ones) are
listed only when they found something.</small></p>
<table><tr><th>check</th><th>severity</th><th>action</th><th>status</th><th>count</th><th>share</th><th>threshold</th>
<th>detail</th></tr>{check_rows}</table>
<h2>Files</h2><ul>{links}</ul>
</body></html>
"""


def _percent(share: float | None) -> str:
    return "" if share is None else f"{share:.2%}"


def jsonable(value: Any) -> Any:
    """A JSON-safe form of a value from pandas or GX (NaN and NaT become null, dates ISO text)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "isoformat"):  # numpy scalars
        return jsonable(value.item())
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
