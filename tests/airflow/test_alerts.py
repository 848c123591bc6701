"""The alert mails' inputs: recipients, the gate summary's counts by check, which errors skip retries."""

from __future__ import annotations

import pytest
from letsjobit import config
from letsjobit.airflow import alerts, tasks
from letsjobit.api.errors import (
    LetsJobItAuthError,
    LetsJobItBadRequest,
    LetsJobItConfigError,
    LetsJobItDriftError,
    LetsJobItNotFound,
    LetsJobItRateLimited,
    LetsJobItRetryBudgetExhausted,
    LetsJobItTransientError,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, []),
        ("", []),
        (" , ", []),
        ("data@example.test", ["data@example.test"]),
        (
            "a@example.test, b@example.test;c@example.test,",
            ["a@example.test", "b@example.test", "c@example.test"],
        ),
    ],
)
def test_alert_recipients_are_the_comma_separated_addresses_and_none_when_unset(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("LETSJOBIT_ALERT_EMAILS", raising=False)
    else:
        monkeypatch.setenv("LETSJOBIT_ALERT_EMAILS", raw)
    assert config.alert_emails() == expected


def test_quality_counts_come_from_the_gates_issue_totals_and_warnings():
    summary = {  # the shape audit.audit_run writes
        "verdict": "quarantined",
        "quarantined_records": 2,
        "field_issues": 7,
        "issues": {
            "visits.date_valid": {"severity": "record", "action": "quarantined", "count": 2},
            "visits.signee_rating_in_range": {"severity": "field", "action": "nulled", "count": 3},
            "line_extra_data.type_documented": {"severity": "field", "action": "kept", "count": 4},
            "visits.lat_in_range": {"severity": "field", "action": "nulled", "count": 0},
        },
        "warnings": [{"check": "line_extra_data.type_documented", "count": 4, "share": 0.02}],
    }

    issues = alerts.quality_issues(summary)

    assert issues.verdict == "quarantined"
    assert (issues.quarantined_records, issues.field_issues) == (2, 7)
    assert issues.by_check == {
        "line_extra_data.type_documented": 4,
        "visits.signee_rating_in_range": 3,
        "visits.date_valid": 2,
    }
    assert issues.warnings == ["line_extra_data.type_documented"] and issues.worth_mail


def test_field_issues_below_the_warning_share_are_not_worth_a_quality_mail():
    summary = {
        "verdict": "pass",
        "quarantined_records": 0,
        "field_issues": 1,
        "issues": {"visits.lat_in_range": {"severity": "field", "action": "nulled", "count": 1}},
        "warnings": [],
    }
    issues = alerts.quality_issues(summary)
    assert issues.by_check == {"visits.lat_in_range": 1} and not issues.worth_mail


@pytest.mark.parametrize(
    "error",
    [
        LetsJobItAuthError("GET visits: HTTP 401", status=401),
        LetsJobItAuthError("GET visits: HTTP 403", status=403),
        LetsJobItBadRequest("GET visits: HTTP 400", status=400),
        LetsJobItNotFound("GET visits/x: HTTP 404", status=404),
        LetsJobItConfigError("no API key"),
    ],
    ids=type,
)
def test_errors_waiting_cannot_heal_fail_the_task_without_retries(error):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="not retried") as raised, tasks.fail_fast():
        raise error
    assert raised.value.__cause__ is error and str(error) in str(raised.value)


def test_a_failed_gate_fails_without_retries():
    from letsjobit.quality.audit import ValidationFailed

    assert tasks.cannot_heal(ValidationFailed("validation failed for run r: visits.rows_match_api"))


@pytest.mark.parametrize(
    "error",
    [
        LetsJobItTransientError("HTTP 503"),
        LetsJobItRateLimited("429", wait_seconds=1, from_headers=True),
        LetsJobItRetryBudgetExhausted("kept failing"),
        LetsJobItDriftError("the listing changes too fast"),
        OSError("disk full"),
    ],
    ids=type,
)
def test_errors_that_may_heal_keep_airflows_retries(error):
    with pytest.raises(type(error)), tasks.fail_fast():
        raise error
