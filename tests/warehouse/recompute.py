"""The warehouse's rules in plain Python over a lake's rows (``lakes.sample()``'s shape), no SQL.

Tests compare the marts and the analyses with what these give. Each function follows the contract a
model's header states (fct_visits' measure definitions, fct_equipment_visits' repeat visit, the
dimensions' latest member), written again from the words, not from the SQL. The rows are those of one
run, so every visit has one version: the lake's rows are the warehouse's visits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

UNKNOWN = "(unknown)"  # the member a visit without a driver, territory or site counts under
REPEAT_WINDOW_DAYS = 30


def member(value: str | None) -> str:
    """A dimension key as the marts label it: empty or missing is '(unknown)'."""
    return value.strip() if value and value.strip() else UNKNOWN


def hours_to_close(visit: dict) -> float | None:
    """Hours from creation to close of a closed visit; None when a time is missing or the close is earlier."""
    if not visit["closed"] or not visit.get("close_date") or not visit.get("created_at"):
        return None
    if visit["close_date"] < visit["created_at"]:
        return None
    return (visit["close_date"] - visit["created_at"]).total_seconds() / 3600


def closed_within_window(visit: dict) -> bool | None:
    """Whether a closed visit's close time of day falls in one of its windows (bounds included; a window
    whose latest is before its earliest runs past midnight); None without a close time or a window."""
    if not visit["closed"] or not visit.get("close_date") or not visit.get("time_windows"):
        return None
    closed_at: datetime = visit["close_date"]
    second = closed_at.hour * 3600 + closed_at.minute * 60 + closed_at.second
    return any(
        window["earliest"] <= second <= window["latest"]
        if window["earliest"] <= window["latest"]
        else second >= window["earliest"] or second <= window["latest"]
        for window in visit["time_windows"]
    )


def job_counts(lines: Iterable[dict]) -> dict[str, int]:
    """visit_id -> its job (action-item) lines."""
    jobs: dict[str, int] = {}
    for line in lines:
        jobs[line["visit_id"]] = jobs.get(line["visit_id"], 0) + bool(line["action_item"])
    return jobs


def equipment_histories(rows: dict) -> dict[tuple[str, str], list[dict]]:
    """(site_id, trimmed serial number) -> the closed visits to it with a site, oldest first (by date,
    then creation, then visit id)."""
    serials: dict[str, set[str]] = {}
    for line in rows["lines"]:
        serial = (line.get("serial_nr") or "").strip()
        if serial:
            serials.setdefault(line["visit_id"], set()).add(serial)
    histories: dict[tuple[str, str], list[dict]] = {}
    for visit in rows["visits"]:
        if visit["closed"] and member(visit.get("site_id")) != UNKNOWN:
            for serial in serials.get(visit["visit_id"], ()):
                histories.setdefault((member(visit["site_id"]), serial), []).append(visit)
    for visits in histories.values():
        visits.sort(key=lambda v: (v["visit_date"], v["created_at"] or datetime.min, v["visit_id"]))
    return histories


def returns(rows: dict) -> list[tuple[dict, dict, str]]:
    """(earlier visit, repeat visit, serial) for every repeat: a closed visit to a site and serial number
    within REPEAT_WINDOW_DAYS of the closed visit before it there."""
    found = []
    for (_, serial), visits in equipment_histories(rows).items():
        for before, after in zip(visits, visits[1:], strict=False):
            if (after["visit_date"] - before["visit_date"]).days <= REPEAT_WINDOW_DAYS:
                found.append((before, after, serial))
    return found


def repeat_visits(rows: dict) -> dict[str, bool]:
    """visit_id -> whether it repeats a visit, for every equipment visit (closed, with a site and a serial)."""
    repeats = {visit["visit_id"]: False for visits in equipment_histories(rows).values() for visit in visits}
    for _, after, _ in returns(rows):
        repeats[after["visit_id"]] = True
    return repeats


def latest(visits: Iterable[dict]) -> dict:
    """The latest of ``visits`` (by date, then modification, then id): whose attributes a dimension shows."""
    return max(visits, key=lambda v: (v["visit_date"], v["modified_at"], v["visit_id"]))


def week_of(day: date) -> datetime:
    """The Monday starting the ISO week of ``day``, as DuckDB's date_trunc('week', ...) returns it."""
    return datetime.combine(day - timedelta(days=day.weekday()), datetime.min.time())
