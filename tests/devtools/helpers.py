"""Helpers of the distributed-run tests: reading task instance timings."""

from __future__ import annotations


class ChecksPassed(Exception):
    """Raised by a test's checks after they pass, to send the run down its failure path."""


def most_at_once(task_instances: list[dict]) -> int:
    """The largest number of these task instances running at the same moment."""
    events = []
    for ti in task_instances:
        events += [(ti["start_date"], 1), (ti["end_date"], -1)]
    running = peak = 0
    for _, change in sorted(events, key=lambda event: (event[0], event[1])):
        running += change
        peak = max(peak, running)
    return peak


def ran_at_the_same_time_on_two_workers(task_instances: list[dict]) -> bool:
    return any(
        a["hostname"] != b["hostname"] and a["start_date"] < b["end_date"] and b["start_date"] < a["end_date"]
        for a in task_instances
        for b in task_instances
    )
