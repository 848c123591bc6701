"""`make scale-out` in its short form: two "hosts" sharing only the object store and Redis.

The same code as the command (``devtools.scale_out.run``): PostgreSQL, Redis, moto's S3 server holding
the Delta lake, the scheduler, the dag-processor, the API server and two Celery workers with separate data
directories, a full refresh and then a window run through the REST API with the source changed between
them and a reader querying the warehouse. The run checks itself against the simulator's truth; this test
asserts that it did so and passed, and that its figures are the ones a pass implies.

The key's budget is scaled down (4 requests per 2 s instead of 100 per 10 s), so that a small simulator
still makes the two workers' extraction wait on one shared budget within a few minutes.
"""

from __future__ import annotations

import pytest
from letsjobit.devtools.scale_out import OTHER, OWNER, ScaleOutOptions, run

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]

VISITS = 3000
RATE_LIMIT, RATE_WINDOW = 4, 2
PROCESSES = {
    "postgres",
    "redis",
    "object-store",
    "simulator",
    "scheduler",
    "dag-processor",
    "api-server",
    OWNER,
    OTHER,
}


def test_two_hosts_share_the_lake_on_an_object_store_and_the_keys_budget_in_redis():
    report = run(
        ScaleOutOptions(visits=VISITS, rate_limit=RATE_LIMIT, rate_window=RATE_WINDOW, run_timeout=360)
    )
    figures = report.figures

    assert report.problems == []
    assert report.line().startswith("SCALE-OUT PASS ")
    # Both hosts extracted, on one budget the server saw kept, with enough requests for it to bind.
    per_worker = dict(pair.split(":") for pair in str(figures["extracts_per_worker"]).split(","))
    assert set(per_worker) == {OWNER, OTHER} and all(int(count) > 0 for count in per_worker.values())
    assert figures["requests"] > 4 * RATE_LIMIT
    assert 0 < figures["max_per_window"] <= RATE_LIMIT
    assert figures["rate_limited_429"] == 0
    # The lake and the warehouse hold the simulator's data after the source changed between the runs.
    assert figures["visits"] > 0 and figures["visit_lines"] > figures["visits"] / 2
    assert figures["kpi_mismatches"] == 0
    assert figures["reader_queries"] > 0 and figures["reader_errors"] == 0
    assert report.processes == sorted(PROCESSES)
    assert figures["processes_stopped"] == len(PROCESSES)
