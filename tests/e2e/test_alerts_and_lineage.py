"""Alerts and lineage from real `airflow dags test` runs against the simulator over loopback.

A real SMTP server (aiosmtpd) on loopback receives what Airflow's SMTP notifier sends through the
standard `smtp_default` connection; OpenLineage writes its events with the file transport. A run with a
refused key fails at once and sends one mail; a run that publishes with a quarantined visit sends one
quality mail and lineage events naming every task's datasets.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
from letsjobit import config
from letsjobit.devtools.airflow_runner import AirflowHome
from letsjobit.lake import schema
from letsjobit.simulator import SimulatorConfig, SimulatorServer

from tests.conftest import TEST_ANCHOR_DATE, TEST_API_KEY

pytestmark = pytest.mark.airflow

WRONG_KEY = "wrong-key-5d4c3b2a1f0e"
RECIPIENTS = ["data-team@example.test", "on-call@example.test"]


@dataclass
class Mailbox:
    """What a loopback SMTP server received: one parsed message per DATA."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    envelopes: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler hook
        with self.lock:
            self.raw.append(envelope.content)
            self.envelopes.append(list(envelope.rcpt_tos))
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"

    def since(self, count: int) -> list[email.message.EmailMessage]:
        with self.lock:
            return self.messages[count:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def body(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("html", "plain")).get_content()


@pytest.fixture(scope="module")
def mailbox():
    from aiosmtpd.controller import Controller

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def sim():
    server = SimulatorServer(
        SimulatorConfig(
            visits=300, seed=5, anchor_date=TEST_ANCHOR_DATE, days=10, days_ahead=3, api_keys=(TEST_API_KEY,)
        )
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def airflow(sim, mailbox, tmp_path_factory):
    _, smtp_port = mailbox
    root = tmp_path_factory.mktemp("ops")
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": smtp_port,
        # A plain loopback server: no SSL, no STARTTLS.
        "extra": {
            "disable_ssl": True,
            "disable_tls": True,
            "from_email": "airflow@example.test",
            "timeout": 10,
        },
    }
    home = AirflowHome(
        path=root / "airflow",
        api_url=sim.base_url,
        api_key=TEST_API_KEY,
        data_dir=root / "data",
        log_file=root / "airflow.log",
        retry_delay_seconds=1,
        conn_extra={"fault_budget_seconds": 3},
        extra_env={
            "LETSJOBIT_ALERT_EMAILS": ", ".join(RECIPIENTS),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(root / "openlineage.jsonl"), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "letsjobit-tests",
        },
    )
    home.init()
    return home


def run_section(airflow: AirflowHome, **kwargs) -> tuple[int, str, float]:
    offset = airflow.log_file.stat().st_size if airflow.log_file.exists() else 0
    started = time.monotonic()
    code = airflow.dags_test(**kwargs)
    seconds = time.monotonic() - started
    with airflow.log_file.open("rb") as log:
        log.seek(offset)
        return code, log.read().decode(errors="replace"), seconds


def test_a_refused_key_fails_the_run_at_once_and_sends_one_mail_naming_dag_and_task(airflow, mailbox):
    box, _ = mailbox
    before = len(box.messages)
    airflow.api_key = WRONG_KEY
    try:
        code, log, seconds = run_section(airflow, conf={"full_refresh": True})
    finally:
        airflow.api_key = TEST_API_KEY

    assert code != 0
    # One try, no retry ladder (extract has retries=3 with a 1 s, doubling delay here).
    assert "new_state=up_for_retry" not in log and "not retried" in log, log[-3000:]
    mails = box.since(before)
    assert len(mails) == 1, [m["Subject"] for m in mails]
    mail = mails[0]
    text = body(mail)
    assert "letsjobit_visits" in mail["Subject"] and "extract" in mail["Subject"]
    assert "letsjobit_visits" in text and "extract" in text and "401" in text
    assert "manual__" in text  # the run id
    assert "LetsJobItAuthError" in text and "try 1" in text
    assert sorted(box.envelopes[-1]) == sorted(RECIPIENTS)
    raw = box.raw[-1].decode(errors="replace")
    assert WRONG_KEY not in raw and TEST_API_KEY not in raw
    print(f"\nrefused-key run failed after {seconds:.1f} s (including Airflow's start-up)")


@pytest.fixture(scope="module")
def published_with_a_quarantined_visit(sim, airflow, mailbox):
    """A full refresh in which one visit has an impossible date: quarantined, the rest published."""
    box, _ = mailbox
    before = len(box.messages)
    victim = sim.store.snapshot()[3]
    sim.store.update(victim["_id"], {"date": "2026-02-30"}, stamp=False)
    try:
        code, log, _ = run_section(airflow, conf={"full_refresh": True})
    finally:
        sim.store.update(victim["_id"], {"date": victim["date"]}, stamp=False)
    assert code == 0, log[-3000:]
    return box.since(before), log


def test_a_run_published_with_quarantined_records_sends_one_quality_mail_with_counts_by_check(
    published_with_a_quarantined_visit, airflow
):
    mails, _ = published_with_a_quarantined_visit
    assert len(mails) == 1, [m["Subject"] for m in mails]
    text = body(mails[0])
    summary = json.loads(next((airflow.data_dir / "reports").glob("manual__*/summary.json")).read_text())
    assert summary["quarantined_records"] >= 1
    assert f"{summary['quarantined_records']} quarantined records" in mails[0]["Subject"]
    flagged = {name: entry["count"] for name, entry in summary["issues"].items() if entry["count"]}
    assert "visits.date_valid" in flagged, summary["issues"]
    for name, count in flagged.items():
        assert f"<th align='left'>{name}</th><td>{count}</td>" in text
    assert "summary.json" in text and TEST_API_KEY not in text


def read_events(airflow: AirflowHome) -> list[dict]:
    path = airflow.path.parent / "openlineage.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_lineage_events_name_every_tasks_inputs_and_outputs(published_with_a_quarantined_visit, airflow, sim):
    # The refused-key run completed no task past `plan`, so the COMPLETE events below are this run's.
    complete = {}
    for event in read_events(airflow):
        job = event["job"]["name"]
        if event["eventType"] == "COMPLETE" and job.startswith("letsjobit_visits."):
            complete[job.removeprefix("letsjobit_visits.")] = (
                {(d["namespace"], d["name"]) for d in event["inputs"]},
                {(d["namespace"], d["name"]) for d in event["outputs"]},
            )
    layout = config.DataLayout(airflow.data_dir.resolve())
    api = (f"letsjobit://{sim.base_url.split('://')[1].split('/')[0]}", "/api/v2/visits")
    raw, staging = ("file", str(layout.raw)), ("file", str(layout.staging))
    lake = {("file", layout.table_uri(name)) for name in schema.LAKE_TABLES}

    assert complete["extract"] == ({api}, {raw})
    assert complete["stage"] == ({raw}, {staging})
    assert complete["audit"] == ({staging}, set())
    assert complete["publish"] == ({staging}, lake)
    inputs, outputs = complete["build_warehouse"]
    assert inputs == lake
    assert {namespace for namespace, _ in outputs} == {f"duckdb://{layout.warehouse}"}
    assert {"marts.fct_visits", "marts.kpi_daily", "marts.build_info"} <= {name for _, name in outputs}
    text = (airflow.path.parent / "openlineage.jsonl").read_text()
    assert TEST_API_KEY not in text and WRONG_KEY not in text
