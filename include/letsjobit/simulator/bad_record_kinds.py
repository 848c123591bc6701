"""Deliberately bad records: the messy cases the pipeline's data-quality policy must handle.

``BAD_RECORD_KINDS`` lists them (rating "9", latitude 200, an impossible date, no ``_id``, a line that is
not an object, a new extraData type...), each with the outcome the pipeline owes it (check, severity,
action, what the lake drops): the ground truth of the data-quality tests (``expectations.py``).
``spoil`` gives a generated visit one bad value of a kind; ``locate`` finds where a visit carries it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .pools import TRUE_FLAGS, Pools


class _Missing:
    """The "value" of a field that is left out of the record."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

PLACEMENTS = ("visit", "line", "line_field", "extra", "extra_field")
SEVERITIES = ("record", "field")
ACTIONS = ("nulled", "kept", "quarantined")
DROPS = ("visit", "structure", "nothing")
RAW_VALUE_RULES = ("value", "fields", "record")


@dataclass(frozen=True)
class BadRecordKind:
    """One deliberately bad value, where it goes, and what the pipeline must make of it.

    ``placement``: ``visit`` (a visit field is set, or left out when ``value`` is MISSING), ``line`` (the
    value is inserted into ``lines`` as one more element), ``line_field`` (a field of one of the visit's
    lines), ``extra`` (the value is inserted into a line's ``extraData`` as one more element),
    ``extra_field`` (a new extraData entry is appended to a line, carrying the value in ``field``).
    ``context``: other visit fields set with it, for a contradiction between fields.

    The expected outcome: ``check`` (a check name of the pipeline; its table is the name's prefix),
    ``severity``, ``action``, what the lake ``drops`` (``visit``: the visit with its lines and extraData;
    ``structure``: the bad element or structure alone; ``nothing``), and how the issue row's raw value is
    made (``raw_value``: ``value``, the bad value; ``fields``, a JSON object of ``field`` and the
    context fields as sent; ``record``, the record's other fields as JSON without ``lines`` and
    ``signature``). ``read_as``: for a value the validation gate judges on its typed column, the value as
    the lake reads it when that differs from the value as sent (``"200"`` for a latitude reads as
    ``200.0``): the gate's issue rows show the value it compared. None: the value as sent.
    ``expectations.expected_outcome`` turns these into the exact rows.
    """

    name: str
    placement: str
    field: str  # as the API names it: the issue row's field
    value: object
    check: str
    severity: str
    action: str
    drops: str = "nothing"
    context: tuple[tuple[str, object], ...] = ()
    raw_value: str = "value"
    read_as: object = None

    @property
    def table(self) -> str:
        """The lake table the issue row names: visits, visit_lines or line_extra_data."""
        return self.check.partition(".")[0]

    def outcome(self) -> dict[str, str]:
        """The expected outcome as plain JSON (what ``GET /_sim/bad_records`` serves)."""
        return {
            "kind": self.name,
            "table": self.table,
            "field": self.field,
            "check": self.check,
            "severity": self.severity,
            "action": self.action,
            "drops": self.drops,
        }


def _nulled(name: str, placement: str, field: str, value: object, check: str) -> BadRecordKind:
    return BadRecordKind(name, placement, field, value, check, "field", "nulled")


def _quarantined(name: str, placement: str, field: str, value: object, check: str, drops: str, **more):
    return BadRecordKind(name, placement, field, value, check, "record", "quarantined", drops, **more)


# One entry per messy case; a bad visit carries exactly one. Names are stable (tests, the soak, docs).
BAD_RECORD_KINDS: tuple[BadRecordKind, ...] = (
    # field / nulled: out of contract, or not readable as the column's type
    _nulled("rating_out_of_range", "visit", "signeeRating", 9, "visits.signee_rating_in_range"),
    _nulled("rating_out_of_range_text", "visit", "signeeRating", "9", "visits.signee_rating_in_range"),
    _nulled("rating_negative", "visit", "signeeRating", -1, "visits.signee_rating_in_range"),
    _nulled("rating_negative_text", "visit", "signeeRating", "-1", "visits.signee_rating_in_range"),
    _nulled("rating_six", "visit", "signeeRating", 6, "visits.signee_rating_in_range"),
    _nulled("rating_not_an_integer", "visit", "signeeRating", 4.5, "visits.signee_rating_parses"),
    _nulled("latitude_out_of_range", "visit", "lat", 200.0, "visits.lat_in_range"),
    BadRecordKind(
        "latitude_out_of_range_text",
        "visit",
        "lat",
        "200",
        "visits.lat_in_range",
        "field",
        "nulled",
        read_as=200.0,
    ),
    _nulled("longitude_out_of_range", "visit", "lng", -300.0, "visits.lng_in_range"),
    _nulled("priority_zero", "visit", "priority", 0, "visits.priority_in_range"),
    _nulled("priority_out_of_range", "visit", "priority", 42, "visits.priority_in_range"),
    _nulled("priority_out_of_range_text", "visit", "priority", "11", "visits.priority_in_range"),
    _nulled("priority_not_a_number", "visit", "priority", "urgent", "visits.priority_parses"),
    _nulled("negative_duration", "visit", "duration", -5, "visits.duration_in_range"),
    _nulled("negative_total_jobs", "visit", "totalJobs", -1, "visits.total_jobs_in_range"),
    _nulled("flag_not_a_flag", "visit", "closed", "maybe", "visits.closed_parses"),
    _nulled("line_qty_not_a_number", "line_field", "qty", "two", "visit_lines.qty_parses"),
    _nulled("extra_max_not_a_number", "extra_field", "max", "lots", "line_extra_data.max_parses"),
    # field / kept: well-formed but unknown, or contradicting another field
    BadRecordKind(
        "new_extra_data_type",
        "extra_field",
        "type",
        "signature-pad",
        "line_extra_data.type_documented",
        "field",
        "kept",
    ),
    BadRecordKind(
        "new_doc_type", "visit", "docType", "SITE SURVEY", "visits.doc_type_known", "field", "kept"
    ),
    BadRecordKind(
        "closed_and_skipped",
        "visit",
        "skipped",
        True,
        "visits.not_closed_and_skipped",
        "field",
        "kept",
        context=(("closed", True),),
        raw_value="fields",
    ),
    BadRecordKind(
        "closed_without_close_date",
        "visit",
        "closeDate",
        MISSING,
        "visits.close_date_when_closed",
        "field",
        "kept",
        context=(("closed", True),),
        raw_value="fields",
    ),
    # record / quarantined: the record cannot be identified or placed, or a child structure is unusable
    _quarantined("impossible_date", "visit", "date", "2026-02-30", "visits.date_valid", "visit"),
    _quarantined("missing_date", "visit", "date", MISSING, "visits.date_valid", "visit"),
    _quarantined("missing_id", "visit", "_id", MISSING, "visits.id_present", "visit", raw_value="record"),
    _quarantined("lines_not_a_list", "visit", "lines", "no lines", "visits.lines_is_list", "structure"),
    _quarantined(
        "line_not_an_object",
        "line",
        "lines",
        "Service boiler - see notes",
        "visit_lines.is_object",
        "structure",
    ),
    _quarantined(
        "extra_data_not_a_list",
        "line_field",
        "extraData",
        {"type": "text", "caption": "Notes", "name": "notes", "value": "see job sheet"},
        "visit_lines.extra_data_is_list",
        "structure",
    ),
    _quarantined(
        "extra_entry_not_an_object",
        "extra",
        "extraData",
        "Pressure: 2.1 bar",
        "line_extra_data.is_object",
        "structure",
    ),
)
BAD_RECORD_KIND_NAMES = tuple(kind.name for kind in BAD_RECORD_KINDS)
_KINDS_BY_NAME = {kind.name: kind for kind in BAD_RECORD_KINDS}

# The extraData entry an ``extra_field`` kind appends (documented fields only), before its bad field.
_NEW_EXTRA_ENTRY = {"type": "text", "caption": "Engineer note", "name": "engineer_note"}


def bad_record_kind(name: str) -> BadRecordKind:
    """The kind called ``name``; ValueError naming the known kinds otherwise."""
    try:
        return _KINDS_BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown bad record kind {name!r}; known: {', '.join(BAD_RECORD_KIND_NAMES)}"
        ) from None


def select_kinds(names: Iterable[str] | None = None) -> tuple[BadRecordKind, ...]:
    """The kinds called ``names`` (None: all of them), in catalogue order."""
    if names is None:
        return BAD_RECORD_KINDS
    if isinstance(names, str):
        names = (names,)
    wanted = {bad_record_kind(name).name for name in names}
    if not wanted:
        raise ValueError("bad record kinds must name at least one kind (or be None for all)")
    return tuple(kind for kind in BAD_RECORD_KINDS if kind.name in wanted)


def _same(value: object, expected: object) -> bool:
    """Equal and of the same JSON type: 9 is not "9", 1 is not True."""
    return type(value) is type(expected) and value == expected


def locate(kind: BadRecordKind, visit: Mapping) -> tuple[int | None, int | None] | None:
    """Where ``visit`` carries ``kind``'s bad value, as (line_index, extra_index); None if it does not (any more)."""
    if kind.placement == "visit":
        pairs = ((kind.field, kind.value), *kind.context)
        return (None, None) if all(_same(visit.get(name, MISSING), value) for name, value in pairs) else None
    lines = visit.get("lines")
    for line_index, line in enumerate(lines if isinstance(lines, list) else ()):
        if kind.placement == "line":
            if _same(line, kind.value):
                return line_index, None
            continue
        if not isinstance(line, dict):
            continue
        if kind.placement == "line_field":
            if _same(line.get(kind.field, MISSING), kind.value):
                return line_index, None
            continue
        entries = line.get("extraData")
        for extra_index, entry in enumerate(entries if isinstance(entries, list) else ()):
            if kind.placement == "extra":
                found = _same(entry, kind.value)
            else:
                found = isinstance(entry, dict) and _same(entry.get(kind.field, MISSING), kind.value)
            if found:
                return line_index, extra_index
    return None


def _set(record: dict, name: str, value: object) -> None:
    if value is MISSING:
        record.pop(name, None)
    else:
        record[name] = copy.deepcopy(value)


def _plain_line(visit: dict, rng: random.Random, pools: Pools) -> dict:
    """A line that is no action item (so ``totalJobs`` still holds), for a visit that had none."""
    item = pools.items[int(rng.random() * len(pools.items))]
    return {
        "actionItem": False,
        "allowRebrand": False,
        "brand": item["brand"],
        "brandId": item["brandId"],
        "description": item["description"],
        "hasBatch": False,
        "hasReturn": False,
        "id": int(visit["id"]) * 10,
        "itemId": item["itemId"],
        "jobType": item["jobType"],
        "location": "",
        "model": item["model"],
        "modelId": item["modelId"],
        "qty": 1,
        "serialNr": "",
        "serialNrId": None,
        "extraData": [],
    }


def spoil(visit: dict, rng: random.Random, kinds: tuple[BadRecordKind, ...], pools: Pools) -> str:
    """Give ``visit`` one bad value of a kind drawn from ``kinds``; returns the kind's name."""
    kind = kinds[int(rng.random() * len(kinds))]
    if kind.placement == "visit":
        for name, value in ((kind.field, kind.value), *kind.context):
            _set(visit, name, value)
        if kind.name == "closed_and_skipped":  # closeDate present: only the one contradiction
            visit.setdefault("closeDate", f"{visit['date']} 17:00")
        elif kind.name == "closed_without_close_date" and visit.get("skipped") in TRUE_FLAGS:
            visit["skipped"] = False  # not skipped as well: only the one contradiction
        return kind.name
    lines = visit.get("lines")
    if not isinstance(lines, list):
        lines = visit["lines"] = []
    if kind.placement == "line":
        lines.insert(int(rng.random() * (len(lines) + 1)), copy.deepcopy(kind.value))
        return kind.name
    if not lines:
        lines.append(_plain_line(visit, rng, pools))
    line = lines[int(rng.random() * len(lines))]
    if kind.placement == "line_field":
        _set(line, kind.field, kind.value)
        return kind.name
    entries = line.get("extraData")
    if not isinstance(entries, list):
        entries = line["extraData"] = []
    if kind.placement == "extra":
        entries.insert(int(rng.random() * (len(entries) + 1)), copy.deepcopy(kind.value))
    else:
        entries.append({**_NEW_EXTRA_ENTRY, kind.field: copy.deepcopy(kind.value)})
    return kind.name
