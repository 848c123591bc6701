"""Helpers of the end-to-end tests: one `airflow dags test` with its own log (the checks against the
simulator's truth are ``letsjobit.devtools.truth``'s)."""

from __future__ import annotations

from letsjobit.devtools.airflow_runner import AirflowHome

from tests.conftest import TEST_API_KEY


def dags_test(airflow: AirflowHome, **kwargs) -> tuple[int, str]:
    """One `airflow dags test`: its exit code and the log it wrote (which must not hold the API key)."""
    offset = airflow.log_file.stat().st_size if airflow.log_file.exists() else 0
    code = airflow.dags_test(**kwargs)
    with airflow.log_file.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    assert TEST_API_KEY not in text, "the API key leaked into the Airflow log"
    return code, text
