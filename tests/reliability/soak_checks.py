"""The soak's checks: the warehouse after one completed run against the simulator's ground truth.

The truth comes from the simulator's admin API (``GET /_sim/truth``, ``/_sim/changes``,
``/_sim/bad_records``) and is read through the test oracle (include/letsjobit/simulator/expectations.py,
which shares no code with the pipeline). Nothing here starts a process: tests call ``check_warehouse``
on hand-built warehouses.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
from letsjobit import config
from letsjobit.simulator import expectations
from letsjobit.simulator.expectations import Expectation, expected_outcome, flag, rating
from letsjobit.warehouse import kpis

# Every KPI but the repeat-visit ones: a covered date's repeat measure depends on the 30 days before it,
# which a window run does not re-read (the e2e tests check those after full refreshes).
REPEAT_KPIS = ("equipment_visits", "repeat_visits", "repeat_visit_rate")
KPI_COLUMNS = tuple(c for c in kpis.KPI_COLUMNS if c not in REPEAT_KPIS)
# The issue row's columns compared with the oracle's: its ISSUE_COLUMNS and the partition it lands in.
ISSUE_COLUMNS = (*expectations.ISSUE_COLUMNS, "visit_date")


def real_date(value: Any) -> date | None:
    """A record's date when it is a real YYYY-MM-DD (a visit without one cannot be placed), else None."""
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


def visit_view(record: dict) -> tuple:
    """What the soak compares of a visit, by the KPI contract: (visit_date, closed, skipped, rating)."""
    return (
        real_date(record.get("date")),
        flag(record.get("closed")),
        flag(record.get("skipped")),
        rating(record.get("signeeRating")),
    )


def closed_and_skipped(record: dict) -> bool:
    """Both closed and skipped (a bad record of that kind): published as sent, and recorded."""
    return flag(record.get("closed")) and flag(record.get("skipped"))


def expected_kpis(records: Iterable[dict], bad_records: dict) -> dict[date, dict[str, Any]]:
    """kpi_daily by the KPI contract, from the served records (the test oracle's recomputation)."""
    daily = expectations.expected_kpis(records, bad_records)["kpi_daily"]
    return {day: row for (day,), row in daily.items()}


def issue_key(row: tuple) -> str | None:
    """The ground-truth key of an issue row: its visit_id, else the ERP id in the record it carries."""
    visit_id, raw_value = row[1], row[5]
    if visit_id is not None:
        return visit_id
    with contextlib.suppress(ValueError, TypeError):
        record = json.loads(raw_value)
        if isinstance(record, dict) and "id" in record:
            return str(record["id"])
    return None


def issue_mismatches(
    actual: Iterable[tuple], expected: Expectation, keys: set[str]
) -> tuple[int, list[tuple], list[tuple]]:
    """For the issue rows of a run's covered dates (``actual``, as ISSUE_COLUMNS tuples) and the visits
    that held still during the run (``keys``): how many rows the oracle expects of them, and the rows
    only the warehouse has and only the oracle has."""
    wanted = Counter((*issue.row(), issue.visit_date) for issue in expected.issues if issue.key in keys)
    got = Counter(row for row in actual if issue_key(row) in keys)
    return (
        sum(wanted.values()),
        sorted((got - wanted).elements(), key=expectations.issue_sort_key),
        sorted((wanted - got).elements(), key=expectations.issue_sort_key),
    )


def same_number(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is None and right is None
    return abs(float(left) - float(right)) <= 1e-9 * max(1.0, abs(float(right)))


@dataclass
class RunCheck:
    """The warehouse after one completed run, against the truth."""

    run_id: str
    covered_dates: int | None  # None: every date (full refresh)
    in_scope: int = 0  # visits unchanged for the whole run on a covered date
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    ghosts: int = 0  # rows on a covered date of a visit that is not (or no longer) there on that date
    kpi_dates: int = 0
    kpi_dates_skipped: int = 0  # covered dates where a visit changed while the run was paging
    kpi_mismatches: int = 0
    issues_checked: int = 0  # issue rows the oracle expects of visits unchanged for the whole run
    issues_mismatched: int = 0  # issue rows in the warehouse or the oracle only
    quarantined: int = 0  # visits unchanged for the whole run that cannot be placed: absent, as they must be
    absent_elsewhere: int = 0  # not in the warehouse, date outside the window (moved out of an older one)
    closed_and_skipped: int = 0  # closed and skipped at the end of the run: published, recorded as an issue
    build_is_this_run: bool = False
    samples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.samples) < 10:
            self.samples.append(text)

    @property
    def clean(self) -> bool:
        return self.build_is_this_run and not (
            self.lost
            or self.duplicated
            or self.mismatched
            or self.ghosts
            or self.kpi_mismatches
            or self.issues_mismatched
        )


def check_warehouse(
    layout: config.DataLayout,
    truth_start: dict[str, dict],
    truth_end: dict[str, dict],
    changes: Iterable[dict] = (),
    bad_records: dict | None = None,
) -> RunCheck:
    """The warehouse against the source's truth at the run's start and end.

    Truths are keyed by ``record_key`` (a visit served without ``_id`` by its ERP id). ``changes`` (the
    simulator's ``/_sim/changes`` over the run: ``{"_id", "visit"}``, ``visit`` None for a deletion)
    adds the versions a visit took in between: a run reads each visit once, at some moment, so a visit
    changed twice during it may rightly show the middle version. ``bad_records``: the simulator's
    ground truth at the end (``GET /_sim/bad_records``), for the oracle.
    """
    bad_records = bad_records or {}
    # A visit both closed and skipped (a bad record of that kind) is a field issue
    # (visits.not_closed_and_skipped, kept): published with its values as sent, so it is checked like any.
    contradictory = sum(closed_and_skipped(record) for record in truth_end.values())
    meanwhile: dict[str, list[dict]] = defaultdict(list)
    touched = set()
    for change in changes:
        touched.add(change["_id"])
        if change.get("visit") is not None:
            meanwhile[change["_id"]].append(change["visit"])
    publication = json.loads(layout.last_publication.read_text())
    partitions = publication["partitions"]
    covered = None if partitions is None else {date.fromisoformat(day) for day in partitions}
    check = RunCheck(run_id=publication["run_id"], covered_dates=None if covered is None else len(covered))
    check.closed_and_skipped = contradictory

    def is_covered(day: date) -> bool:
        return covered is None or day in covered

    with duckdb.connect(str(layout.warehouse), read_only=True) as connection:
        built = connection.execute("select run_id from marts.build_info").fetchone()[0]
        rows = connection.execute(
            "select visit_id, visit_date, closed, skipped, signee_rating from marts.fct_visits"
        ).fetchall()
        kpi_rows = connection.execute(
            f"select visit_date, {', '.join(KPI_COLUMNS)} from marts.kpi_daily"
        ).fetchall()
        issue_rows = connection.execute(
            f"select {', '.join(ISSUE_COLUMNS)} from marts.fct_data_issues"
        ).fetchall()
    check.build_is_this_run = built == check.run_id
    if not check.build_is_this_run:
        check.note(f"warehouse built by run {built!r}, lake published by {check.run_id!r}")

    warehouse: dict[str, list[tuple]] = defaultdict(list)
    for visit_id, visit_date, closed, skipped, signee_rating in rows:
        warehouse[visit_id].append((visit_date, bool(closed), bool(skipped), signee_rating))
    check.duplicated = len(rows) - len(warehouse)
    for visit_id, copies in warehouse.items():
        if len(copies) > 1:
            check.note(f"visit {visit_id} appears {len(copies)} times: {copies}")

    stable = {
        key
        for key in truth_start.keys() & truth_end.keys()
        if truth_start[key] == truth_end[key] and key not in touched
    }
    changed_during_run = (truth_start.keys() | truth_end.keys() | touched) - stable
    # What a full listing of the end truth owes: which visits are published, which cannot be placed.
    owed = expected_outcome(truth_end.values(), bad_records)

    def versions_of(visit_id: str) -> set[tuple]:
        records = [truth[visit_id] for truth in (truth_start, truth_end) if visit_id in truth]
        return {visit_view(record) for record in records + meanwhile.get(visit_id, [])}

    unplaceable = {truth_end[key].get("_id") for key in stable & owed.quarantined.keys()} - {None}
    check.quarantined = len(stable & owed.quarantined.keys())
    for key in stable & owed.quarantined.keys():
        if truth_end[key].get("_id") in warehouse:
            check.ghosts += 1
            check.note(
                f"published: visit {key} cannot be placed ({owed.quarantined[key]}) but is in the warehouse"
            )
    for visit_id in stable - owed.quarantined.keys():
        expected = visit_view(truth_end[visit_id])
        if not is_covered(expected[0]):
            if visit_id not in warehouse:
                check.absent_elsewhere += 1
            continue
        check.in_scope += 1
        copies = warehouse.get(visit_id)
        if not copies:
            check.lost += 1
            check.note(f"lost: visit {visit_id} {expected}")
        elif copies[0] != expected:
            check.mismatched += 1
            check.note(f"mismatch: visit {visit_id} warehouse {copies[0]} truth {expected}")
    for visit_id in changed_during_run:
        versions = versions_of(visit_id)
        copies = warehouse.get(visit_id)
        if copies and copies[0] not in versions and any(v[0] and is_covered(v[0]) for v in versions):
            check.mismatched += 1
            check.note(f"mismatch: visit {visit_id} (changed during the run) {copies[0]} not in {versions}")
        if not copies and len(versions) == 1 and visit_id in truth_start and visit_id in owed.published:
            if all(v[0] is not None and is_covered(v[0]) for v in versions):
                check.lost += 1
                check.note(f"lost: visit {visit_id} (changed during the run) {versions}")

    allowed = {
        (visit_id, visit_view(record)[0])
        for truth in (truth_start, truth_end, meanwhile)
        for visit_id, records in truth.items()
        for record in (records if isinstance(records, list) else [records])
    }
    for visit_id, copies in warehouse.items():
        for copy in copies:
            if visit_id in unplaceable:
                continue  # counted above
            if is_covered(copy[0]) and (visit_id, copy[0]) not in allowed:
                check.ghosts += 1
                check.note(f"ghost: visit {visit_id} on {copy[0]} is not in the source on that date")

    covered_issues = [row for row in issue_rows if covered is None or row[-1] in covered]
    listed = owed if covered is None else expected_outcome(truth_end.values(), bad_records, dates=covered)
    check.issues_checked, extra, missing = issue_mismatches(covered_issues, listed, stable)
    check.issues_mismatched = len(extra) + len(missing)
    for side, rows in (("the warehouse", extra), ("the oracle", missing)):
        for row in rows[:3]:
            check.note(f"issue row in {side} only: {row}")

    unsettled = {version[0] for visit_id in changed_during_run for version in versions_of(visit_id)}
    expected = expected_kpis(truth_end.values(), bad_records)
    actual = {row[0]: dict(zip(KPI_COLUMNS, row[1:], strict=True)) for row in kpi_rows}
    for day in sorted(d for d in expected.keys() | actual.keys() if is_covered(d)):
        if day in unsettled:
            check.kpi_dates_skipped += 1
            continue
        check.kpi_dates += 1
        want, got = expected.get(day), actual.get(day)
        if want is None or got is None or not all(same_number(got[c], want[c]) for c in KPI_COLUMNS):
            check.kpi_mismatches += 1
            check.note(f"kpi_daily {day}: warehouse {got} expected {want}")
    return check
