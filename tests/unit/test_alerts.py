"""The alert mails' inputs: recipients, the gate summary's counts by check, which errors skip retries."""

from __future__ import annotations

import pytest

from include.letsjobit import alerts, config, pipeline
from include.letsjobit.client import (
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


def test_quality_counts_come_from_todays_summary_shape():
    summary = {
        "verdict": "quarantined",
        "quarantined_rows": 7,
        "counts": {"visits": {"staged": 100, "quarantined": 3}},
        "checks": [
            {
                "name": "visits.signee_rating_in_range",
                "status": "quarantined",
                "unexpected_count": 3,
                "share": 0.03,
            },
            {"name": "visits.lat_in_range", "status": "passed", "unexpected_count": 0, "share": 0.0},
            {"name": "schema.visits", "status": "passed", "unexpected_count": None},
            {"name": "line_extra_data.type_documented", "status": "quarantined", "unexpected_count": 4},
        ],
    }

    issues = alerts.quality_issues(summary)

    assert issues.verdict == "quarantined" and issues.quarantined_rows == 7
    assert issues.by_check == {"line_extra_data.type_documented": 4, "visits.signee_rating_in_range": 3}
    assert issues.warnings == [] and issues.worth_mail


def test_quality_counts_read_per_check_issue_counts_and_warnings_of_the_extended_shape():
    summary = {
        "verdict": "pass",
        "quarantined_rows": 0,
        "checks": [
            {
                "name": "visits.signee_rating_in_range",
                "status": "passed",
                "issues": 12,
                "unexpected_count": 0,
            },
            {"name": "visits.lat_in_range", "status": "passed", "issue_count": 2},
        ],
        "warnings": ["visits.signee_rating_in_range", {"check": "visits.priority_in_range", "issues": 5}],
    }

    issues = alerts.quality_issues(summary)

    assert issues.warnings == ["visits.signee_rating_in_range", "visits.priority_in_range"]
    assert issues.by_check == {
        "visits.signee_rating_in_range": 12,
        "visits.priority_in_range": 5,
        "visits.lat_in_range": 2,
    }
    assert issues.worth_mail


def test_a_clean_run_is_not_worth_a_quality_mail_and_odd_entries_are_ignored():
    summary = {
        "verdict": "pass",
        "quarantined_rows": 0,
        "checks": [None, "x", {"status": "passed"}],
        "warnings": [{}],
    }
    issues = alerts.quality_issues(summary)
    assert issues.by_check == {} and issues.warnings == [] and not issues.worth_mail


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

    with pytest.raises(AirflowFailException, match="not retried") as raised, pipeline.fail_fast():
        raise error
    assert raised.value.__cause__ is error and str(error) in str(raised.value)


def test_a_failed_gate_fails_without_retries():
    from include.letsjobit.validate import ValidationFailed

    assert pipeline.cannot_heal(ValidationFailed("validation failed for run r: visits.rows_match_api"))


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
    with pytest.raises(type(error)), pipeline.fail_fast():
        raise error
