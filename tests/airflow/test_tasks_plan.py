"""How a run decides what to extract and which lake partitions it replaces."""

from datetime import UTC, date, datetime

import pytest
from letsjobit.airflow import tasks


def test_daily_window_spans_interval_plus_lookback_and_lookahead():
    start, end = datetime(2026, 11, 20, 4, tzinfo=UTC), datetime(2026, 11, 21, 4, tzinfo=UTC)
    dates = tasks.window_dates(start, end, lookback_days=2, lookahead_days=1)
    assert dates == [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21)]


def test_zero_width_interval_still_covers_its_day():
    moment = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert tasks.window_dates(moment, moment, 0, 0) == [date(2026, 11, 20)]


def test_negative_lookback_is_refused_with_the_value():
    moment = datetime(2026, 11, 20, tzinfo=UTC)
    with pytest.raises(ValueError, match="-1"):
        tasks.window_dates(moment, moment, -1, 0)


def test_full_refresh_is_one_chunk_over_everything():
    moment = datetime(2026, 11, 20, tzinfo=UTC)
    chunks = tasks.plan_chunks(True, moment, moment, 14, 7)
    assert chunks == [{"chunk": "all", "dates": None}]
    assert tasks.partitions_of([{**chunks[0], "expected_visits": 5, "parts": []}]) is None


def test_window_chunks_cover_every_date_once():
    start, end = datetime(2026, 11, 20, 4, tzinfo=UTC), datetime(2026, 11, 21, 4, tzinfo=UTC)
    chunks = tasks.plan_chunks(False, start, end, 3, 3, dates_per_chunk=3)
    covered = [day for chunk in chunks for day in chunk["dates"]]
    assert covered == sorted(set(covered))
    assert covered[0] == "2026-11-17" and covered[-1] == "2026-11-23"
    assert [c["chunk"] for c in chunks] == ["20261117-20261119", "20261120-20261122", "20261123-20261123"]
    extracted = [{**c, "expected_visits": 2, "parts": []} for c in chunks]
    assert tasks.partitions_of(extracted) == covered
    assert tasks.expected_visits(extracted) == 6


def test_run_ids_become_safe_folder_names():
    assert tasks.safe_run_id("scheduled__2026-11-20T04:00:00+00:00") == "scheduled__2026-11-20T04_00_00_00_00"


def test_a_run_triggered_without_logical_date_windows_around_run_after():
    moment = datetime(2026, 11, 20, 9, tzinfo=UTC)
    chunks = tasks.plan_chunks(False, None, None, 1, 1, run_after=moment)
    assert [day for chunk in chunks for day in chunk["dates"]] == ["2026-11-19", "2026-11-20", "2026-11-21"]
    with pytest.raises(ValueError, match="run_after"):
        tasks.window_dates(None, None, 1, 1)
