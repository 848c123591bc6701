"""The soak (tests/reliability/soak.py): DAG runs through faults, drift, SIGKILLs and concurrent readers, checked
against the simulator's ground truth. The short form runs in `make test`; the long one is `make soak`."""

from __future__ import annotations

import pytest

from tests.reliability import soak

pytestmark = pytest.mark.airflow


def assert_soak_held(report: soak.SoakReport) -> None:
    print(report.table())  # shown with -s, and on failure
    assert report.failures() == [], f"kept in {report.workdir}"
    assert report.readers["queries"] > 0 and report.readers["builds_seen"] >= 2
    assert sum(report.counters["faults"].values()) > 0
    assert report.total("issues_checked") > 0 and sum(report.bad_records.values()) > 0
    assert all(run.check is not None for run in report.runs)


# Generous: the short form takes about 3 minutes on 2 idle cores, several times that under load.
@pytest.mark.timeout(1800)
def test_short_soak_loses_nothing_through_faults_a_kill_drift_and_readers(tmp_path):
    report = soak.run_soak(soak.short_settings(workdir=tmp_path / "soak"))

    assert_soak_held(report)
    assert report.kills == 1
    assert report.total("in_scope") >= 1500


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_long_soak_loses_nothing_through_faults_kills_in_every_phase_drift_and_readers(tmp_path):
    settings = soak.SoakSettings(runs=soak.long_plan(), visits=5000, workdir=tmp_path / "soak")

    report = soak.run_soak(settings)

    assert_soak_held(report)
    assert report.kills >= 3
