"""The test oracle: what the pipeline must make of the simulator's data, from the ground truth alone.

Given the visits as served (``sim.store.snapshot()``, or ``data`` of ``GET /_sim/truth``) and the bad
records (``sim.store.bad_records``, or ``meta.bad_records`` of the same answer), ``expected_outcome`` says
which visits must reach the lake and ``marts.fct_visits``, how many rows each lake table must hold, the
exact issue rows and the expected ``extra_fields``. It restates the data-quality policy without the
pipeline's code on purpose (no flatten, coerce or validate): it is what that code is checked against.

``expected_kpis`` restates the KPI contract (the README's KPI definitions, docs/quality.md for the
contradictory visits) over the visits a run publishes, from the served records, so the marts' KPIs are
checked against a recomputation that shares nothing with the coercion layer or the SQL.

The rules it restates:
- A full run lists every visit. A window run (``dates=``) lists a visit only if its ``date`` is one of the
  window's days: the API's ``date=`` filter compares the stored text, so a visit whose date is missing or
  impossible is never listed by a window run (only a full refresh sees and quarantines it).
- A bad record whose kind drops the ``visit`` (no ``_id``, no real date) has no lake rows at all. Every
  other listed visit is published, with those of its lines that are objects (when ``lines`` is a list)
  and their extraData entries that are objects (when ``extraData`` is a list), keyed by their positions
  in the served arrays (a dropped element does not renumber the others).
- One issue row per bad record, none for anything else (unknown fields are no issue). ``raw_value`` as
  the issues table writes it (docs/quality.md): the bad value as sent, except where the validation gate
  judges it on its typed column and the lake reads it otherwise (the kind's ``read_as``: a latitude
  sent as ``"200"`` reads ``200.0``); a string as is, a missing value NULL, anything else compact JSON
  with sorted keys; contacts are not pseudonymised here (compare with ``LETSJOBIT_PSEUDONYMISE_KEY``
  unset). ``visit_date`` is the record's date when it is a real ``YYYY-MM-DD``, else NULL.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from . import data
from .bad_record_kinds import MISSING, BadRecordKind, bad_record_kind, locate

# The issue row's columns an expectation fixes (run_id, reason, page_offset and fetched_at depend on the run).
ISSUE_COLUMNS = (
    "table_name",
    "visit_id",
    "line_index",
    "extra_index",
    "field",
    "raw_value",
    "check_name",
    "severity",
    "action",
)
TABLES = ("visits", "visit_lines", "line_extra_data")
_YYYY_MM_DD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A record's raw value without these when the whole record is the raw value (no usable _id).
_NOT_IN_RECORD_RAW_VALUE = ("_id", "lines", "signature")


class StaleGroundTruth(ValueError):
    """The ground truth and the visits disagree: a bad record no longer carries its bad value, or a
    visit without ``_id`` is not listed as a bad record."""


@dataclass(frozen=True)
class ExpectedIssue:
    """One issue row the pipeline must write; ``kind`` and ``key`` say which bad record it comes from."""

    table_name: str
    visit_id: str | None
    line_index: int | None
    extra_index: int | None
    field: str
    raw_value: str | None
    check_name: str
    severity: str
    action: str
    visit_date: date | None
    kind: str
    key: str

    def row(self) -> tuple:
        """The values of ``ISSUE_COLUMNS``, in that order."""
        return tuple(getattr(self, name) for name in ISSUE_COLUMNS)


@dataclass(frozen=True)
class Expectation:
    """What the lake and the warehouse must hold after a run over the given visits."""

    listed: tuple[str, ...]  # ground-truth keys of the visits the run lists, in listing order
    published: frozenset[str]  # visit ids (``_id``) that must be in lake visits and marts.fct_visits
    quarantined: dict[str, str]  # key -> check name: visits quarantined whole (with lines and extraData)
    row_counts: dict[str, int]  # lake rows per table (visits, visit_lines, line_extra_data)
    issues: tuple[ExpectedIssue, ...]  # sorted by issue_sort_key
    # (table, visit_id, line_index, extra_index) -> the undocumented fields that row keeps in extra_fields
    extra_fields: dict[tuple[str, str, int | None, int | None], dict] = field(default_factory=dict)

    def issue_rows(self) -> list[tuple]:
        """The expected issue rows as ``ISSUE_COLUMNS`` tuples, sorted by ``issue_sort_key``."""
        return [issue.row() for issue in self.issues]


def issue_sort_key(row: tuple) -> tuple:
    """Sorts ``ISSUE_COLUMNS`` tuples with NULLs first, so actual rows can be sorted the same way."""
    return tuple((value is not None, value if value is not None else 0) for value in row)


def raw_text(value: object) -> str | None:
    """A raw value as the issues table writes it: strings as sent, MISSING as NULL, else sorted compact JSON."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def kind_of(entry: str | Mapping) -> BadRecordKind:
    """The kind of one ground-truth entry: a kind name (``bad_records``) or an outcome (``/_sim/bad_records``)."""
    return bad_record_kind(entry if isinstance(entry, str) else entry["kind"])


def expected_outcome(
    visits: Iterable[Mapping],
    bad_records: Mapping[str, str | Mapping],
    *,
    dates: Collection[str | date] | None = None,
) -> Expectation:
    """The expectation for a run over ``visits`` (as served) with ground truth ``bad_records``.

    ``dates``: the days a window run lists (None: a full run), real dates or ``YYYY-MM-DD``. Keys of ``bad_records`` that are not among
    the listed visits are ignored (deleted visits, other days). Raises StaleGroundTruth on disagreement.
    """
    window = None if dates is None else {_window_day(day) for day in dates}
    listed: list[str] = []
    published: set[str] = set()
    quarantined: dict[str, str] = {}
    counts = dict.fromkeys(TABLES, 0)
    issues: list[ExpectedIssue] = []
    extra_fields: dict[tuple[str, str, int | None, int | None], dict] = {}
    for visit in visits:
        if window is not None and ("date" not in visit or str(visit["date"]) not in window):
            continue  # the window's date= listings do not return it
        key = data.record_key(visit)
        listed.append(key)
        entry = bad_records.get(key)
        kind = None if entry is None else kind_of(entry)
        if kind is not None:
            issues.append(_issue(kind, key, visit))
        elif "_id" not in visit:
            raise StaleGroundTruth(f"visit {key} is served without _id but is not a bad record")
        if kind is not None and kind.drops == "visit":
            quarantined[key] = kind.check
            continue
        published.add(visit["_id"])
        _count_published(visit, counts, extra_fields)
    return Expectation(
        listed=tuple(listed),
        published=frozenset(published),
        quarantined=quarantined,
        row_counts=counts,
        issues=tuple(sorted(issues, key=lambda issue: issue_sort_key(issue.row()))),
        extra_fields=extra_fields,
    )


def _window_day(day: str | date) -> str:
    """A window's day as the API's date= filter takes it: a real YYYY-MM-DD (it answers 400 otherwise)."""
    real = day if isinstance(day, date) else _real_date(day)
    if real is None:
        raise ValueError(f"a window run lists real days only (the API refuses date={day!r}), got {day!r}")
    return real.isoformat()


def _issue(kind: BadRecordKind, key: str, visit: Mapping) -> ExpectedIssue:
    where = locate(kind, visit)
    if where is None:
        raise StaleGroundTruth(f"visit {key} no longer carries its bad value of kind {kind.name!r}")
    line_index, extra_index = where
    return ExpectedIssue(
        table_name=kind.table,
        visit_id=visit.get("_id"),
        line_index=line_index,
        extra_index=extra_index,
        field=kind.field,
        raw_value=_raw_value(kind, visit, line_index, extra_index),
        check_name=kind.check,
        severity=kind.severity,
        action=kind.action,
        visit_date=_real_date(visit.get("date")),
        kind=kind.name,
        key=key,
    )


def _raw_value(kind: BadRecordKind, visit: Mapping, line_index: int | None, extra_index: int | None):
    if kind.raw_value == "record":
        return raw_text(
            {name: value for name, value in visit.items() if name not in _NOT_IN_RECORD_RAW_VALUE}
        )
    if kind.raw_value == "fields":
        names = (kind.field, *(name for name, _ in kind.context))
        return raw_text({name: visit.get(name) for name in names})
    if kind.read_as is not None:
        return raw_text(kind.read_as)
    if kind.placement == "visit":
        return raw_text(visit.get(kind.field, MISSING))
    line = visit["lines"][line_index]
    if kind.placement == "line":
        return raw_text(line)
    if kind.placement == "line_field":
        return raw_text(line[kind.field])
    entry = line["extraData"][extra_index]
    return raw_text(entry if kind.placement == "extra" else entry[kind.field])


def _real_date(value: object) -> date | None:
    if not isinstance(value, str) or not _YYYY_MM_DD.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _unknown(record: Mapping, table: str) -> dict:
    names = _UNKNOWN_NAMES[table]
    return {name: value for name, value in record.items() if name in names}


_UNKNOWN_NAMES = {
    table: frozenset(name for name, _ in fields) for table, fields in data.UNKNOWN_FIELDS.items()
}


def _count_published(visit: Mapping, counts: dict[str, int], extra_fields: dict) -> None:
    visit_id = visit["_id"]
    counts["visits"] += 1
    if unknown := _unknown(visit, "visits"):
        extra_fields[("visits", visit_id, None, None)] = unknown
    lines = visit.get("lines")
    for line_index, line in enumerate(lines if isinstance(lines, list) else ()):
        if not isinstance(line, dict):
            continue
        counts["visit_lines"] += 1
        if unknown := _unknown(line, "visit_lines"):
            extra_fields[("visit_lines", visit_id, line_index, None)] = unknown
        entries = line.get("extraData")
        for extra_index, entry in enumerate(entries if isinstance(entries, list) else ()):
            if not isinstance(entry, dict):
                continue
            counts["line_extra_data"] += 1
            if unknown := _unknown(entry, "line_extra_data"):
                extra_fields[("line_extra_data", visit_id, line_index, extra_index)] = unknown


# --- the KPI contract, from the served records ------------------------------------------------------

# The KPI marts and the grouping of each (their key columns, visit_date first).
KPI_TABLES: dict[str, tuple[str, ...]] = {
    "kpi_daily": ("visit_date",),
    "kpi_driver_daily": ("visit_date", "driver_id"),
    "kpi_territory_daily": ("visit_date", "territory"),
}
# The additive measures of one visit, summed per group; the ratios below are computed from the sums.
KPI_MEASURES = (
    "visits",
    "closed_visits",
    "skipped_visits",
    "rated_visits",
    "promoters",
    "passives",
    "detractors",
    "rating_sum",
    "jobs",
    "window_checked_visits",
    "closed_within_window_visits",
    "timed_closed_visits",
    "hours_to_close_sum",
    "equipment_visits",
    "repeat_visits",
)
KPI_RATIOS = (
    "nps",
    "close_rate",
    "skip_rate",
    "avg_rating",
    "csat",
    "jobs_per_visit",
    "closed_within_window_rate",
    "avg_hours_to_close",
    "repeat_visit_rate",
)
KPI_COLUMNS = KPI_MEASURES + KPI_RATIOS
REPEAT_WINDOW_DAYS = 30  # a closed visit repeats one to the same site and serial number this many days before
UNKNOWN_MEMBER = "(unknown)"  # the group of a visit without a driver or territory
_TRUE_WORDS = frozenset({"1", "true", "yes"})


def flag(value: object) -> bool:
    """A flag as the KPIs count it: true, 1 and "1"/"true"/"yes" are set; anything else ("maybe") is not."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in _TRUE_WORDS


def rating(value: object) -> int | None:
    """A rating as the KPIs count it: an integer 1..5 (5, "5", 5.0); anything else (0, "", "9", 4.5) is unrated."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and 1 <= number <= 5 else None


def _text(value: object) -> str | None:
    """An identifier as text (the API sends ids as strings or numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _member(value: object) -> str:
    text = (_text(value) or "").strip()
    return text or UNKNOWN_MEMBER


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _object_lines(visit: Mapping) -> list[Mapping]:
    lines = visit.get("lines")
    return [line for line in lines if isinstance(line, dict)] if isinstance(lines, list) else []


def _closed_in_a_window(closed_at: datetime, windows: object) -> bool | None:
    """Whether the close time of day falls in one of the windows (a window may run past midnight);
    None when the visit has no window."""
    if isinstance(windows, dict):
        windows = [windows]
    if not isinstance(windows, list) or not windows:
        return None
    second = closed_at.hour * 3600 + closed_at.minute * 60 + closed_at.second
    for window in windows:
        earliest, latest = (window.get(name) for name in ("earliest", "latest"))
        if not isinstance(earliest, int) or not isinstance(latest, int):
            continue
        if earliest <= latest and earliest <= second <= latest:
            return True
        if earliest > latest and (second >= earliest or second <= latest):
            return True
    return False


def visit_measures(visit: Mapping) -> dict[str, Any]:
    """The additive measures of one published visit, but for the repeat measures (they need its history)."""
    closed, skipped = flag(visit.get("closed")), flag(visit.get("skipped"))
    score = rating(visit.get("signeeRating"))
    closed_at = _timestamp(visit.get("closeDate")) if closed else None
    created_at = _timestamp(visit.get("createdAt"))
    in_window = None if closed_at is None else _closed_in_a_window(closed_at, visit.get("time_windows"))
    hours = None
    if closed_at is not None and created_at is not None and closed_at >= created_at:
        hours = (closed_at - created_at).total_seconds() / 3600
    return {
        "visits": 1,
        "closed_visits": int(closed),  # a visit closed and skipped counts in both (values as sent)
        "skipped_visits": int(skipped),
        "rated_visits": int(score is not None),
        "promoters": int(score == 5),
        "passives": int(score == 4),
        "detractors": int(score is not None and score <= 3),
        "rating_sum": score or 0,
        "jobs": sum(flag(line.get("actionItem")) for line in _object_lines(visit)),
        "window_checked_visits": int(in_window is not None),  # closed without closeDate: not checked
        "closed_within_window_visits": int(bool(in_window)),
        "timed_closed_visits": int(hours is not None),
        "hours_to_close_sum": hours or 0.0,
        "equipment_visits": 0,
        "repeat_visits": 0,
    }


def _add_repeat_measures(published: list[Mapping], measures: dict[str, dict[str, Any]]) -> None:
    """A closed visit to a known site servicing a serial number is an equipment visit; it repeats when the
    same site and serial number had a closed visit in the 30 days before (ordered by date, creation, id)."""
    history: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for visit in published:
        site = _member(visit.get("siteId"))
        if not flag(visit.get("closed")) or site == UNKNOWN_MEMBER:
            continue
        serials = {(_text(line.get("serialNr")) or "").strip() for line in _object_lines(visit)} - {""}
        created_at = _timestamp(visit.get("createdAt"))
        order = (date.fromisoformat(visit["date"]), created_at is not None, created_at or datetime.min)
        for serial in serials:
            history[(site, serial)].append((*order, visit["_id"]))
    for visits in history.values():
        visits.sort()
        for position, (day, _, _, visit_id) in enumerate(visits):
            measures[visit_id]["equipment_visits"] = 1
            if position and (day - visits[position - 1][0]).days <= REPEAT_WINDOW_DAYS:
                measures[visit_id]["repeat_visits"] = 1


def _with_ratios(sums: Mapping[str, Any]) -> dict[str, Any]:
    """The measures and the KPI_RATIOS computed from them (None when the denominator is 0)."""

    def ratio(numerator: float, denominator: str) -> float | None:
        return numerator / sums[denominator] if sums[denominator] else None

    ratios = {
        "nps": ratio(100.0 * (sums["promoters"] - sums["detractors"]), "rated_visits"),
        "close_rate": ratio(sums["closed_visits"], "visits"),
        "skip_rate": ratio(sums["skipped_visits"], "visits"),
        "avg_rating": ratio(sums["rating_sum"], "rated_visits"),
        "csat": ratio(sums["promoters"] + sums["passives"], "rated_visits"),
        "jobs_per_visit": ratio(sums["jobs"], "visits"),
        "closed_within_window_rate": ratio(sums["closed_within_window_visits"], "window_checked_visits"),
        "avg_hours_to_close": ratio(sums["hours_to_close_sum"], "timed_closed_visits"),
        "repeat_visit_rate": ratio(sums["repeat_visits"], "equipment_visits"),
    }
    return {**sums, **{name: ratios[name] for name in KPI_RATIOS}}


def expected_kpis(
    visits: Iterable[Mapping], bad_records: Mapping[str, str | Mapping]
) -> dict[str, dict[tuple, dict[str, Any]]]:
    """What ``KPI_TABLES`` must hold after a full run over ``visits``: per mart, per group key (a tuple of
    its key columns' values), every column of ``KPI_COLUMNS``.

    Only the visits a run publishes count (``expected_outcome``); a window run's dates hold the same
    numbers when the warehouse holds the same visits."""
    visits = list(visits)
    published_ids = expected_outcome(visits, bad_records).published
    published = [visit for visit in visits if visit.get("_id") in published_ids]
    measures = {visit["_id"]: visit_measures(visit) for visit in published}
    _add_repeat_measures(published, measures)
    kpis: dict[str, dict[tuple, dict[str, Any]]] = {}
    for table, key_columns in KPI_TABLES.items():
        sums: dict[tuple, dict[str, Any]] = {}
        for visit in published:
            group = {
                "visit_date": date.fromisoformat(visit["date"]),
                "driver_id": _member(visit.get("driverId")),
                "territory": _member(visit.get("territory")),
            }
            key = tuple(group[column] for column in key_columns)
            total = sums.setdefault(key, dict.fromkeys(KPI_MEASURES, 0))
            for name, value in measures[visit["_id"]].items():
                total[name] += value
        kpis[table] = {key: _with_ratios(total) for key, total in sums.items()}
    return kpis
