"""Alert mails through Airflow's SMTP notifier: one per failed DAG run, one per run published with data issues.

With LETSJOBIT_ALERT_EMAILS unset nothing is sent and nothing fails. The mail server is Airflow's standard
SMTP connection (`smtp_default`, or the one `[email] email_conn_id` names), e.g. AIRFLOW_CONN_SMTP_DEFAULT;
the sender is `[email] from_email` when set, else the connection's `from_email` extra.

One failed run, one mail: the DAGs' run-level ``on_failure_callback`` sends it. Each failed task's own
failure callback only writes a note, ``reports/<run>/failures/<task>.json`` (the error's first lines and
where the task's log is), which the run's mail quotes. A run that publishes with quarantined rows or
checks above their warning level gets one quality mail from the run-level ``on_success_callback``.

No secret in any mail: a note's error text passes Airflow's secrets masker (which knows the API key from
the hook) before it is written, and a mail holds only names, counts, paths and those redacted lines.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from letsjobit import config, files
from letsjobit.airflow.tasks import safe_run_id

log = logging.getLogger(__name__)

ERROR_LINES = 12  # of a failed task's error, quoted in the mail
ERROR_LINE_CHARS = 400
SUBJECT_PREFIX = "[LetsJobIt]"


# --- the gate's summary, read in one place -------------------------------------------------------------


@dataclass(frozen=True)
class QualityIssues:
    """What a run's validation summary says a data team should hear about."""

    verdict: str | None
    quarantined_records: int  # issue rows of record checks: records or structures kept out
    field_issues: int  # issue rows of field checks: values NULLed or kept as sent
    by_check: dict[str, int] = field(default_factory=dict)  # check -> issue rows (> 0 only)
    warnings: list[str] = field(default_factory=list)  # checks above their warning share

    @property
    def worth_mail(self) -> bool:
        return self.quarantined_records > 0 or bool(self.warnings)


def quality_issues(summary: Mapping[str, Any]) -> QualityIssues:
    """The counts of a gate's ``summary.json`` (``audit.AuditResult``'s issues, warnings and totals)."""
    by_check = {
        name: int(entry["count"])
        for name, entry in (summary.get("issues") or {}).items()
        if entry.get("count")
    }
    return QualityIssues(
        verdict=summary.get("verdict"),
        quarantined_records=int(summary.get("quarantined_records") or 0),
        field_issues=int(summary.get("field_issues") or 0),
        by_check=dict(sorted(by_check.items(), key=lambda item: (-item[1], item[0]))),
        warnings=[entry["check"] for entry in summary.get("warnings") or []],
    )


def summary_path(layout: config.DataLayout, run_id: str) -> Path:
    return layout.report_dir(safe_run_id(run_id)) / "summary.json"


def read_quality(layout: config.DataLayout, run_id: str) -> QualityIssues | None:
    path = summary_path(layout, run_id)
    if not path.exists():
        return None
    return quality_issues(json.loads(path.read_text()))


# --- notes of failed tasks -----------------------------------------------------------------------------


def failures_dir(layout: config.DataLayout, run_id: str) -> Path:
    return layout.report_dir(safe_run_id(run_id)) / "failures"


def record_task_failure(context: Mapping[str, Any]) -> Path | None:
    """Task-level failure callback: note the error's first lines and where the log is, for the run's mail."""
    ti = context.get("task_instance") or context.get("ti")
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    if ti is None or not run_id:
        return None
    map_index = getattr(ti, "map_index", -1)
    note = {
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "map_index": map_index,
        "try_number": getattr(ti, "try_number", None),
        "failed_at": datetime.now(UTC).isoformat(),
        "error": _error_lines(context.get("exception")),
        "log_url": getattr(ti, "log_url", None),
        "log_path": _log_path(ti),
    }
    name = ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}.{map_index}"
    path = failures_dir(config.layout(), run_id) / f"{name}.json"
    files.write_json(path, note)
    return path


def _error_lines(error: BaseException | None) -> list[str]:
    import traceback

    from airflow.sdk.log import redact

    if error is None:
        return []
    text = "".join(traceback.format_exception_only(type(error), error))
    lines = [line[:ERROR_LINE_CHARS] for line in text.splitlines() if line.strip()][:ERROR_LINES]
    return [str(redact(line)) for line in lines]


def _log_path(ti: Any) -> str | None:
    """Where the worker writes this try's log when it logs to files (Airflow's own file-name template)."""
    import jinja2
    from airflow.providers.common.compat.sdk import conf

    folder = conf.get("logging", "base_log_folder", fallback=None)
    template = conf.get("logging", "log_filename_template", fallback=None)
    if not folder or not template:
        return None
    try:
        relative = jinja2.Template(template).render(ti=ti, try_number=getattr(ti, "try_number", None))
    except jinja2.TemplateError:
        return None
    return str(Path(folder) / relative)


def read_failure_notes(layout: config.DataLayout, run_id: str) -> list[dict[str, Any]]:
    folder = failures_dir(layout, run_id)
    notes = (
        [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    )
    return sorted(notes, key=lambda note: note.get("failed_at") or "")


# --- the run-level callbacks ---------------------------------------------------------------------------


def on_run_failure(context: Mapping[str, Any]) -> None:
    """DAG-level failure callback: one mail for the failed run."""
    recipients = config.alert_emails()
    if not recipients:
        return
    layout = config.layout()
    dag_id = _dag_id(context)
    run_id = str(context.get("run_id"))
    ti = context.get("ti") or context.get("task_instance")
    failed = _task_label(ti) if ti is not None else "unknown"
    notes = read_failure_notes(layout, run_id)
    quality = _quality_or_none(layout, run_id)
    subject = f"{SUBJECT_PREFIX} {dag_id} failed at {failed} (run {run_id})"
    body = [
        f"<h2>{_e(dag_id)}: run failed</h2>",
        _table(
            [
                ("DAG", dag_id),
                ("Run id", run_id),
                ("Failed task", failed),
                ("Reason", context.get("reason") or "task_failure"),
                ("Log", getattr(ti, "log_url", None) or "see the task's log in the Airflow UI"),
            ]
        ),
    ]
    for note in notes:
        body.append(f"<h3>{_e(_task_label(note))}, try {_e(note.get('try_number'))}</h3>")
        body.append(f"<pre>{_e(chr(10).join(note.get('error') or ['(no error text recorded)']))}</pre>")
        body.append(_table([("Log", note.get("log_url")), ("Log file on the worker", note.get("log_path"))]))
    if not notes:
        body.append("<p>No failed task left an error note (killed, or timed out?): read its log.</p>")
    body.append(_report_section(layout, run_id, quality))
    send(recipients, subject, "\n".join(body), context)


def on_run_success(context: Mapping[str, Any]) -> None:
    """DAG-level success callback: a quality mail when the run published quarantined rows or warnings."""
    recipients = config.alert_emails()
    if not recipients:
        return
    layout = config.layout()
    run_id = str(context.get("run_id"))
    quality = _quality_or_none(layout, run_id)
    if quality is None or not quality.worth_mail:
        return
    dag_id = _dag_id(context)
    above = f", {len(quality.warnings)} check(s) above their warning level" if quality.warnings else ""
    subject = (
        f"{SUBJECT_PREFIX} {dag_id} published with data issues: "
        f"{quality.quarantined_records} quarantined records, {quality.field_issues} field issues{above} (run {run_id})"
    )
    body = [
        f"<h2>{_e(dag_id)}: published with data issues</h2>",
        _table([("DAG", dag_id), ("Run id", run_id)]),
        _report_section(layout, run_id, quality),
    ]
    send(recipients, subject, "\n".join(body), context)


def send(recipients: list[str], subject: str, html_content: str, context: Mapping[str, Any]) -> bool:
    """Send one mail with the SMTP provider's notifier; a failure to send is logged, never raised (the
    run's state is already decided)."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    notifier = SmtpNotifier(to=recipients, subject=subject, html_content=html_content)
    try:
        # Resolved here rather than left to the notifier: it would render the connection's value with the
        # DAG's template environment, which a run-level callback's DAG may not have.
        notifier.from_email = _sender(notifier.smtp_conn_id)
        # notify(), not the notifier's __call__: that would render the error text as a Jinja template.
        notifier.notify(context)
    except Exception:
        log.exception(
            "Alert mail not sent to %s through connection %s (subject: %s)",
            ", ".join(recipients),
            notifier.smtp_conn_id,
            subject,
        )
        return False
    log.info("Alert mail sent to %s: %s", ", ".join(recipients), subject)
    return True


def _sender(conn_id: str) -> str:
    """Airflow's `[email] from_email`, else the SMTP connection's `from_email` extra."""
    from airflow.providers.common.compat.sdk import BaseHook, conf

    sender = conf.get("email", "from_email", fallback=None) or BaseHook.get_connection(
        conn_id
    ).extra_dejson.get("from_email")
    if not sender:
        raise ValueError(
            f"no sender address: set `from_email` in the extra of connection {conn_id} "
            "or AIRFLOW__EMAIL__FROM_EMAIL"
        )
    return sender


def _quality_or_none(layout: config.DataLayout, run_id: str) -> QualityIssues | None:
    try:
        return read_quality(layout, run_id)
    except (OSError, ValueError) as error:
        log.warning("Could not read the validation summary of run %s: %s", run_id, error)
        return None


def _report_section(layout: config.DataLayout, run_id: str, quality: QualityIssues | None) -> str:
    summary = summary_path(layout, run_id)
    if quality is None:
        return "<p>Validation report: none for this run (the gate did not run).</p>"
    rows = [
        ("Verdict", quality.verdict),
        ("Quarantined records", quality.quarantined_records),
        ("Field issues", quality.field_issues),
        ("Checks above their warning level", ", ".join(quality.warnings) or "none"),
        ("Validation report", summary.with_name("index.html")),
        ("Summary", summary),
    ]
    counts = _table(list(quality.by_check.items()), header=("check", "rows")) if quality.by_check else ""
    return (
        "<h3>Validation</h3>\n"
        + _table(rows)
        + ("\n<h4>Rows with an issue, by check</h4>\n" + counts if counts else "")
    )


def _dag_id(context: Mapping[str, Any]) -> str:
    dag = context.get("dag")
    return getattr(dag, "dag_id", None) or str(getattr(context.get("ti"), "dag_id", "unknown"))


def _task_label(ti: Any) -> str:
    task_id = ti.get("task_id") if isinstance(ti, Mapping) else getattr(ti, "task_id", "?")
    map_index = ti.get("map_index") if isinstance(ti, Mapping) else getattr(ti, "map_index", -1)
    return task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(rows: list[tuple[Any, Any]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{_e(header[0])}</th><th>{_e(header[1])}</th></tr>" if header else ""
    cells = "".join(
        f"<tr><th align='left'>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows if v is not None
    )
    return f"<table>{head}{cells}</table>"
