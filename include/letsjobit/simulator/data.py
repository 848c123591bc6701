"""Deterministic, realistic LetsJobIt visits for the simulator, the tests and the benchmarks.

A visit depends only on (seed, its index, anchor_date, days, days_ahead): visits are generated in blocks of
``BLOCK`` from one ``random.Random`` per block, so ``generate_visits(n)`` is a prefix of
``generate_visits(m)`` for n < m, and any slice can be generated on its own (``start=``) for chunked
benchmarks. The pools visits draw from (``pools.py``: drivers, customers, items, extraData definitions)
depend on the seed only.

The records carry the messy encodings the API reference itself shows: flags as true/1/"1", priority as "3"
or 3, signeeRating as "5"/5/"0"/0/""/missing, siteId as string or int, subContractorIds as a list, a
comma-separated string or null, visits without ``lines``, ``extraData`` null, unicode and CRLF in ``obs``,
a base64 ``signature`` and the misspelt ``modifieddAt``. Relationships hold (bad records aside) so that
KPIs mean something: a visit is never both closed and skipped, closed visits have ``closeDate >=
createdAt``, future visits are open, ``totalJobs`` counts the action lines.

``bad_rate`` makes a share of visits carry one deliberately bad value of a kind of
``bad_record_kinds.BAD_RECORD_KINDS``, each with the outcome the pipeline owes it: the ground truth of the
data-quality tests (``expectations.py``). ``unknown_field_rate`` gives a share of visits, lines and
extraData entries a field the reference does not list (``UNKNOWN_FIELDS``). Both are 0 by default and draw
from streams of their own, so the other visits and fields do not change with them (at 0 the output is
what it always was).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from .bad_record_kinds import BAD_RECORD_KINDS, BadRecordKind, select_kinds, spoil
from .pools import (
    APP_VERSIONS,
    DOC_TYPES,
    DRIVERS_PER_TERRITORY,
    EXTRA_VARIANTS,
    FALSE_FLAGS,
    FLAG_FIELDS,
    LOCATIONS,
    OBS_NOTES,
    SKILLS,
    SKIP_REASONS,
    SUBCONTRACTORS,
    TERRITORIES,
    TRUE_FLAGS,
    VEHICLES,
    Pools,
    meteor_id,
    seed_pools,
)

BLOCK = 1000
DEFAULT_DAYS = 60  # days of history before the anchor date
DEFAULT_DAYS_AHEAD = 14  # days of schedule after the anchor date
FIRST_ERP_ID = 10_000_000


def _stamp(day: date, seconds: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` for a second offset (may be negative or past midnight) from a day."""
    days, second = divmod(seconds, 86400)
    if days:
        day = day + timedelta(days=days)
    hours, rest = divmod(second, 3600)
    return f"{day.isoformat()} {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _make_lines(rng: random.Random, pools: Pools, erp_id: int, visit_date: date) -> list[dict]:
    r = rng.random
    count = (0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5)[int(r() * 11)]
    lines = []
    items = pools.items
    extra_entries = pools.extra_entries
    variants = EXTRA_VARIANTS
    for line_index in range(count):
        item = items[int(r() * len(items))]
        action = item["actionItem"]
        line = {
            "actionItem": action if r() < 0.7 else (1 if action else 0),
            "allowRebrand": r() < 0.2,
            "brand": item["brand"],
            "brandId": item["brandId"],
            "description": item["description"],
            "hasBatch": r() < 0.1,
            "hasReturn": r() < 0.15,
            "id": erp_id * 10 + line_index,
            "itemId": item["itemId"] if r() < 0.8 else str(item["itemId"]),
            "jobType": item["jobType"],
            "location": LOCATIONS[int(r() * len(LOCATIONS))],
            "model": item["model"],
            "modelId": item["modelId"],
            "qty": 1 if action else (int(r() * 12) + 1 if r() < 0.8 else round(r() * 10 + 0.5, 2)),
            "serialNr": f"SN{int(r() * 90_000_000) + 10_000_000}" if action else "",
            "serialNrId": int(r() * 900_000) + 100_000 if action else None,
        }
        x = r()
        if x < 0.1:
            line["extraData"] = None
        else:
            line["extraData"] = [
                extra_entries[int(r() * len(extra_entries))][int(r() * variants)].copy()
                for _ in range(int(r() * 5))
            ]
        lines.append(line)
    return lines


def _flag(style: int, value: bool):
    return TRUE_FLAGS[style] if value else FALSE_FLAGS[style]


def make_visit(
    index: int, rng: random.Random, pools: Pools, anchor: date, days: int, days_ahead: int
) -> dict:
    """One visit; ``rng`` is the block's stream, positioned at this visit."""
    r = rng.random
    span = days + days_ahead + 1
    offset = int(r() * span) - days
    visit_date = anchor + timedelta(days=offset)
    if visit_date.weekday() >= 5 and r() < 0.6:  # fewer visits at weekends
        offset = int(r() * span) - days
        visit_date = anchor + timedelta(days=offset)
    customer = pools.customers[int(r() * len(pools.customers))]
    territory = TERRITORIES[customer["territory_index"]][0]
    driver_id, driver_name = pools.drivers_by_territory[customer["territory_index"]][
        int(r() * DRIVERS_PER_TERRITORY)
    ]
    doc_type, prefix = DOC_TYPES[int(r() * len(DOC_TYPES))]
    erp_id = FIRST_ERP_ID + index
    style = (0, 0, 0, 1, 2)[int(r() * 5)]  # how this visit's source system encodes flags

    # Status follows the calendar: the past is mostly done, the future is open.
    s = r()
    closed = skipped = in_progress = False
    if offset < 0:
        closed, skipped = s < 0.82, 0.82 <= s < 0.89
        in_progress = 0.89 <= s < 0.92
    elif offset == 0:
        closed, skipped = s < 0.4, 0.4 <= s < 0.45
        in_progress = 0.45 <= s < 0.75
    created_second = -int(r() * 21 * 86400) - 3600
    close_second = 8 * 3600 + int(r() * 10 * 3600)
    if closed or skipped:
        modified_second = close_second + int(r() * 7200)
    else:
        modified_second = created_second + int(r() * 3 * 86400)

    p = r()
    priority = 1 if p < 0.15 else 2 if p < 0.65 else 3 if p < 0.95 else 4 + int(r() * 7)
    lines_missing = r() < 0.08
    lines = [] if lines_missing else _make_lines(rng, pools, erp_id, visit_date)
    action_lines = sum(1 for line in lines if line["actionItem"] in TRUE_FLAGS)
    duration = sum(900 + 300 * int(r() * 10) for _ in range(action_lines))

    visit: dict = {
        "_id": meteor_id(rng),
        "driverId": driver_id,
        "name": driver_name,
        "date": visit_date.isoformat(),
        "totalJobs": action_lines,
        "id": erp_id if r() < 0.95 else str(erp_id),
        "docType": doc_type,
        "docNo": f"{prefix}-{index + 1:06d}",
        "serviceOrder": int(r() * 12) + 1,
        "customer": customer["customer"],
        "siteId": customer["siteId"] if r() < 0.85 else int(customer["siteId"]),
        "lat": customer["lat"],
        "lng": customer["lng"],
        "site": customer["site"],
        "address": customer["address"],
        "postCode": customer["postCode"],
        "city": customer["city"],
        "obs": (
            f"Contact Info: {customer['customer']}, {customer['contactPerson']}: {customer['contactPhone']} \r\n "
            f"{OBS_NOTES[int(r() * len(OBS_NOTES))]}\r\n{OBS_NOTES[int(r() * len(OBS_NOTES))]}"
            if r() < 0.85
            else ""
        ),
        "contactPerson": customer["contactPerson"],
        "contactPhone": customer["contactPhone"],
    }
    true, false = TRUE_FLAGS[style], FALSE_FLAGS[style]
    flags = {name: true if r() < 0.5 else false for name in FLAG_FIELDS}
    visit["emailMandatory"] = flags["emailMandatory"]
    visit["priority"] = str(priority) if r() < 0.6 else priority
    visit["showItemsOnOrderSection"] = flags["showItemsOnOrderSection"]
    visit["hideEquipmentDetails"] = flags["hideEquipmentDetails"]
    visit["hideDeliveryItemsSection"] = flags["hideDeliveryItemsSection"]

    rated = closed and r() < 0.82
    visit["signeeName"] = customer["contactPerson"] if closed else ""
    visit["signeeEmail"] = customer["email"] if closed and r() < 0.8 else ""
    sc = r()
    if sc < 0.55:
        visit["subContractorIds"] = None
    elif sc < 0.85:
        visit["subContractorIds"] = [
            SUBCONTRACTORS[int(r() * len(SUBCONTRACTORS))] for _ in range(1 + int(r() * 2))
        ]
    elif sc < 0.95:
        names = [SUBCONTRACTORS[int(r() * len(SUBCONTRACTORS))] for _ in range(2)]
        visit["subContractorIds"] = (", " if r() < 0.5 else ",").join(names)
    else:
        visit["subContractorIds"] = []
    visit["territory"] = territory
    visit["useStartPauseStopStyleButtonsInJobs"] = flags["useStartPauseStopStyleButtonsInJobs"]
    visit["inMobileApp"] = flags["inMobileApp"]
    visit["NPSMandatory"] = flags["NPSMandatory"]
    visit["precedencePriorityVisit"] = flags["precedencePriorityVisit"]
    visit["closeVisitOnLastJobClose"] = flags["closeVisitOnLastJobClose"]
    visit["country"] = customer["country"]
    visit["companyId"] = pools.company_id
    visit["time_windows"] = [dict(window) for window in customer["time_windows"]]
    visit["required_skills"] = [SKILLS[int(r() * len(SKILLS))] for _ in range(int(r() * 4))]
    visit["allowed_vehicles"] = [] if r() < 0.7 else [VEHICLES[int(r() * len(VEHICLES))]]
    visit["confirmClose"] = _flag(style, closed and r() < 0.85)
    visit["inProgress"] = _flag(style, in_progress)
    visit["closed"] = _flag(style, closed)
    visit["skipped"] = _flag(style, skipped)
    visit["geocoding"] = (
        None if r() < 0.9 else {"lat": customer["lat"], "lng": customer["lng"], "source": "google"}
    )
    visit["showDiscountAndBonusOnItemsOnOrder"] = _flag(style, r() < 0.1)
    visit["duration"] = duration
    visit["createdAt"] = _stamp(visit_date, created_second)
    visit["createdUser"] = "API" if r() < 0.7 else pools.users[int(r() * len(pools.users))]
    visit["hasChangesToSync"] = _flag(style, r() < 0.05)
    visit["modifieddAt"] = _stamp(visit_date, modified_second)
    visit["modifyUser"] = pools.users[int(r() * len(pools.users))]
    visit["servicing"] = _flag(style, in_progress)
    if rated:
        g = r()
        rating = 1 if g < 0.04 else 2 if g < 0.10 else 3 if g < 0.22 else 4 if g < 0.50 else 5
        visit["signeeRating"] = str(rating) if r() < 0.6 else rating
    else:
        unrated = (0, "0", "", None)[int(r() * 4)]
        if unrated is not None:  # None: the field is left out
            visit["signeeRating"] = unrated
    if closed:
        visit["signature"] = pools.signatures[int(r() * len(pools.signatures))]
    elif r() < 0.5:
        visit["signature"] = ""
    visit["appClientVersion"] = APP_VERSIONS[int(r() * len(APP_VERSIONS))]
    if closed:
        visit["closeDate"] = _stamp(visit_date, close_second)[:16]
    if skipped:
        reason = 1 + int(r() * SKIP_REASONS)
        visit["skippedReasonId"] = str(reason) if r() < 0.5 else reason
    elif r() < 0.8:
        visit["skippedReasonId"] = ""
    if not lines_missing:
        visit["lines"] = lines
    return visit


# Fields the reference does not list, as a newer API may add them at every level; the pipeline keeps them
# in ``extra_fields``. Not a bad record kind: they are no issue, and they come on top of any bad value.
UNKNOWN_FIELDS: dict[str, tuple[tuple[str, object], ...]] = {
    "visits": (
        ("travelTime", 1260),
        ("customerReference", "PO-20931"),
        ("geofence", {"radius": 150, "unit": "m"}),
    ),
    "visit_lines": (("warrantyUntil", "2027-05-31"), ("photoIds", ["ph-0193", "ph-0194"])),
    "line_extra_data": (("unit", "bar"), ("placeholder", "e.g. 2.5")),
}


def record_key(visit: Mapping) -> str:
    """The ground-truth key of a record: its ``_id``, or for a record served without one its ERP id as text."""
    return visit.get("_id") or str(visit.get("id"))


def _add_unknown_field(record: dict, choices: tuple[tuple[str, object], ...], r) -> None:
    name, value = choices[int(r() * len(choices))]
    record[name] = copy.deepcopy(value)


def _add_unknown_fields(visit: dict, rng: random.Random, rate: float) -> None:
    """Each of the visit, its lines and their extraData entries gets an unknown field with probability ``rate``."""
    r = rng.random
    if r() < rate:
        _add_unknown_field(visit, UNKNOWN_FIELDS["visits"], r)
    for line in visit.get("lines") or ():
        if r() < rate:
            _add_unknown_field(line, UNKNOWN_FIELDS["visit_lines"], r)
        for entry in line.get("extraData") or ():
            if r() < rate:
                _add_unknown_field(entry, UNKNOWN_FIELDS["line_extra_data"], r)


@dataclass(frozen=True)
class _Spoiling:
    """How much of the generated data is bad: the share of bad visits, their kinds, unknown fields."""

    bad_rate: float = 0.0
    kinds: tuple[BadRecordKind, ...] = BAD_RECORD_KINDS
    unknown_field_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("bad_rate", "unknown_field_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")


def generate_visits(
    n: int,
    seed: int,
    anchor_date: date,
    days: int = DEFAULT_DAYS,
    days_ahead: int = DEFAULT_DAYS_AHEAD,
    *,
    start: int = 0,
    bad_rate: float = 0.0,
    bad_kinds: Iterable[str] | None = None,
    unknown_field_rate: float = 0.0,
    bad_log: dict[str, str] | None = None,
) -> list[dict]:
    """Visits ``start .. start+n-1`` of the (seed, anchor_date, days, days_ahead) sequence.

    Dates fall in ``anchor_date - days .. anchor_date + days_ahead``. With ``bad_rate`` > 0 that share of
    visits gets one bad value of a kind drawn from ``bad_kinds`` (names of ``BAD_RECORD_KINDS``; None: all);
    ``bad_log`` (if given) receives ``{record_key: kind}`` for each of them. ``unknown_field_rate``: the
    share of visits, lines and extraData entries that carry one field the reference does not list.
    Both draw from streams of their own: the other fields and visits do not change with them.
    """
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n} start={start}")
    spoiling = _Spoiling(bad_rate, select_kinds(bad_kinds), unknown_field_rate)
    pools = seed_pools(seed)
    visits: list[dict] = []
    end = start + n
    block = start // BLOCK
    with _gc_paused():
        _generate_blocks(
            visits, block, start, end, seed, pools, anchor_date, days, days_ahead, spoiling, bad_log
        )
    return visits


def iter_visit_chunks(
    n: int,
    seed: int,
    anchor_date: date,
    days: int = DEFAULT_DAYS,
    days_ahead: int = DEFAULT_DAYS_AHEAD,
    *,
    chunk: int = 100_000,
    **spoiling,
) -> Iterator[list[dict]]:
    """``generate_visits(n, ...)`` in lists of ``chunk``: a visit takes ~5.5 kB as dicts, 1M take ~5.5 GB.

    ``spoiling``: ``bad_rate``, ``bad_kinds``, ``unknown_field_rate``, ``bad_log`` as for generate_visits."""
    for start in range(0, n, chunk):
        yield generate_visits(
            min(chunk, n - start), seed, anchor_date, days, days_ahead, start=start, **spoiling
        )


@contextlib.contextmanager
def _gc_paused():
    """Millions of fresh acyclic dicts make the cyclic GC rescan them over and over: a third of the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _generate_blocks(
    visits, block, start, end, seed, pools, anchor_date, days, days_ahead, spoiling, bad_log
):
    bad_rate, kinds, unknown_rate = spoiling.bad_rate, spoiling.kinds, spoiling.unknown_field_rate
    while block * BLOCK < end:
        block_seed = (seed << 24) ^ (block * 2_654_435_761)
        rng = random.Random(block_seed)
        bad_rng = random.Random(block_seed ^ 0x5BAD)
        unknown_rng = random.Random(block_seed ^ 0xF1E1D) if unknown_rate else None
        first = block * BLOCK
        for index in range(first, min(first + BLOCK, end)):
            visit = make_visit(index, rng, pools, anchor_date, days, days_ahead)
            if unknown_rng is not None:  # first: unknown fields do not depend on the bad values
                _add_unknown_fields(visit, unknown_rng, unknown_rate)
            kind = spoil(visit, bad_rng, kinds, pools) if bad_rng.random() < bad_rate else None
            if index < start:
                continue
            if kind is not None and bad_log is not None:
                bad_log[record_key(visit)] = kind
            visits.append(visit)
        block += 1


def new_visit(
    index: int, seed: int, anchor_date: date, days: int = DEFAULT_DAYS, days_ahead: int = DEFAULT_DAYS_AHEAD
) -> dict:
    """A fresh visit for inserts (drift, tests): index beyond the generated ones gives a new ERP id."""
    rng = random.Random(f"letsjobit-new-{seed}-{index}")
    return make_visit(index, rng, seed_pools(seed), anchor_date, days, days_ahead)
