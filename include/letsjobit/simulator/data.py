"""Deterministic, realistic LetsJobIt visits for the simulator, the tests and the benchmarks.

A visit depends only on (seed, its index, anchor_date, days, days_ahead): visits are generated in blocks of
``BLOCK`` from one ``random.Random`` per block, so ``generate_visits(n)`` is a prefix of
``generate_visits(m)`` for n < m, and any slice can be generated on its own (``start=``) for chunked
benchmarks. Pools (drivers, customers, items, extraData definitions) depend on the seed only.

The records carry the messy encodings the API reference itself shows: flags as true/1/"1", priority as "3"
or 3, signeeRating as "5"/5/"0"/0/""/missing, siteId as string or int, subContractorIds as a list, a
comma-separated string or null, visits without ``lines``, ``extraData`` null, unicode and CRLF in ``obs``,
a base64 ``signature`` and the misspelt ``modifieddAt``. Relationships hold (bad records aside) so that
KPIs mean something: a visit is never both closed and skipped, closed visits have ``closeDate >=
createdAt``, future visits are open, ``totalJobs`` counts the action lines.

``bad_rate`` makes a share of visits carry one deliberately bad value of a ``BAD_RECORD_KINDS`` entry
(rating "9", latitude 200, an impossible date, no ``_id``, a line that is not an object, a new extraData
type...), each with the outcome the pipeline owes it (check, severity, action): the ground truth of the
data-quality tests (``expectations.py``). ``unknown_field_rate`` gives a share of visits, lines and
extraData entries a field the reference does not list. Both are 0 by default and draw from streams of
their own, so the other visits and fields do not change with them (at 0 the output is what it always was).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import gc
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

BLOCK = 1000
DEFAULT_DAYS = 60  # days of history before the anchor date
DEFAULT_DAYS_AHEAD = 14  # days of schedule after the anchor date
FIRST_ERP_ID = 10_000_000

_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"  # Meteor's id alphabet

# (territory, city, postcode area, latitude, longitude)
TERRITORIES = (
    ("AB-Aberdeen", "ABERDEEN", "AB", 57.15, -2.11),
    ("AB-Inverurie", "INVERURIE", "AB51", 57.28, -2.38),
    ("DD-Dundee", "DUNDEE", "DD", 56.46, -2.97),
    ("EH-Edinburgh", "EDINBURGH", "EH", 55.95, -3.19),
    ("G-Glasgow", "GLASGOW", "G", 55.86, -4.25),
    ("IV-Inverness", "INVERNESS", "IV", 57.48, -4.22),
    ("PH-Perth", "PERTH", "PH", 56.40, -3.44),
    ("KY-Kirkcaldy", "KIRKCALDY", "KY", 56.11, -3.16),
    ("FK-Stirling", "STIRLING", "FK", 56.12, -3.94),
    ("DG-Dumfries", "DUMFRIES", "DG", 55.07, -3.61),
    ("NE-Newcastle", "NEWCASTLE UPON TYNE", "NE", 54.98, -1.62),
    ("LS-Leeds", "LEEDS", "LS", 53.80, -1.55),
    ("M-Manchester", "MANCHESTER", "M", 53.48, -2.24),
    ("B-Birmingham", "BIRMINGHAM", "B", 52.49, -1.89),
    ("BS-Bristol", "BRISTOL", "BS", 51.45, -2.59),
    ("BT-Belfast", "BELFAST", "BT", 54.60, -5.93),
)
DRIVERS_PER_TERRITORY = 3
CUSTOMER_COUNT = 1200

_FIRST_NAMES = (
    "Liam",
    "Olivia",
    "Noah",
    "Amelia",
    "Jack",
    "Isla",
    "Harris",
    "Freya",
    "Callum",
    "Eilidh",
    "Ruaridh",
    "Zoë",
    "Seán",
    "Łukasz",
    "José",
    "Aoife",
    "Mårten",
    "Siobhán",
    "Kenji",
    "Priya",
    "Dariusz",
    "Chloé",
    "Mohammed",
    "Ewan",
    "Niamh",
    "Björn",
    "Fiona",
    "Hamish",
)
_CUSTOMER_FIRST = (
    "The Green",
    "Highland",
    "Royal",
    "Old",
    "Golden",
    "Silver",
    "Red",
    "North",
    "Café",
    "Granite",
    "Thistle",
    "Harbour",
    "Kirk",
    "Bonnie",
    "Crown",
    "Ocean",
)
_CUSTOMER_SECOND = (
    "Sleeve",
    "Bakery",
    "Arms",
    "Hotel",
    "Bar",
    "Kitchen",
    "Inn",
    "Tavern",
    "Deli",
    "Grill",
    "Brasserie",
    "Lounge",
    "Crêperie",
    "Bistro",
    "Social Club",
    "Fish & Chips",
)
_CUSTOMER_SUFFIX = ("", "", "", " Ltd", " & Co", " (Unit 2)", " – Town Centre")
_STREETS = (
    "High Street",
    "West High Street",
    "King Street",
    "Union Street",
    "Market Place",
    "Station Road",
    "Church Lane",
    "Mill Brae",
    "Queen's Road",
    "Harbour Walk",
    "Sauchiehall Street",
    "Rue Saint-Lô",
)
_LOCATIONS = (
    "Side of the shop",
    "bar 2nd floor",
    "kitchen",
    "cellar",
    "front counter",
    "back yard",
    "plant room",
    "store room",
    "terrace",
    "",
)
_OBS_NOTES = (
    "Access 9am - 5.30pm",
    "No parking onsite",
    "Ring the bell twice",
    "Keys at reception",
    "Dog on premises – beware",
    "Ask for the manager",
    "Use rear entrance (Café side)",
    "Déjà vu: same fault as last month",
    "Ladder required ⚠",
    "Customer prefers mornings 🙂",
    "Pay & display nearby",
    "Gate code 1234#",
)
_SUBCONTRACTORS = (
    "My Subcontractor",
    "Aberdeen Gas Ltd",
    "Tayside Fridge Co",
    "Norðurljós Services",
    "Clyde Plumbing",
    "Fife Electrics",
    "Kelvin Cooling",
    "Forth Installers",
)
_SKILLS = (
    "Plumber",
    "Hot water technician",
    "Installer",
    "Electrician",
    "Gas Safe",
    "Refrigeration",
    "Beer line cleaner",
    "Forklift",
)
_VEHICLES = ("VAN-01", "VAN-02", "VAN-03", "TRUCK-7", "CAR-12", "EV-3")
_DOC_TYPES = (
    ("CALL OUT", "H"),
    ("SERVICE", "S"),
    ("DELIVERY", "D"),
    ("INSTALLATION", "I"),
    ("MAINTENANCE", "M"),
)
_APP_VERSIONS = ("1.7.163", "1.7.170", "1.8.2", "1.8.11", "2.0.0-beta.3")
_JOB_TYPES = ("delivery", "installation", "repair", "maintenance", "inspection", "collection")
_BRANDS = (
    ("AQUARIUS", ("TONE7/3", "TONE9", "FLOW 2001")),
    ("Lowenbrau", ("Tap X1", "Tap X2")),
    ("Carlsberg", ("Font C", "Python 4")),
    ("Baxi", ("Duo-tec 28", "Platinum 24")),
    ("Worcester", ("Greenstar 30i", "Greenstar 8000")),
    ("Foster", ("EP700", "FSL400")),
    ("Hoshizaki", ("IM-45", "KM-80")),
    ("Électrolux", ("XP6", "Fridge 300")),
)
_SKIP_REASONS = 6
_EXTRA_VARIANTS = 12
_EXTRA_TYPES = ("text", "date", "number", "email", "color", "range", "select")

# Visit-level flags and the values the reference shows for them.
_FLAG_FIELDS = (
    "emailMandatory",
    "showItemsOnOrderSection",
    "hideEquipmentDetails",
    "hideDeliveryItemsSection",
    "useStartPauseStopStyleButtonsInJobs",
    "inMobileApp",
    "NPSMandatory",
    "precedencePriorityVisit",
    "closeVisitOnLastJobClose",
)
_TRUE = (True, 1, "1")
_FALSE = (False, 0, "0")


def meteor_id(rng: random.Random, length: int = 17) -> str:
    """A Meteor-style random id such as ``yKQhJZ9B7PTT85kWc``."""
    r = rng.random
    triples = _triples()
    n3 = len(triples)
    head = "".join(triples[int(r() * n3)] for _ in range(length // 3))
    return head + "".join(_ID_ALPHABET[int(r() * len(_ID_ALPHABET))] for _ in range(length % 3))


_TRIPLES: list[str] = []


def _triples() -> list[str]:
    """All three-character strings over the id alphabet: five lookups make most of an id."""
    if not _TRIPLES:
        _TRIPLES.extend(a + b + c for a in _ID_ALPHABET for b in _ID_ALPHABET for c in _ID_ALPHABET)
    return _TRIPLES


@dataclass(frozen=True)
class _Pools:
    company_id: str
    drivers_by_territory: tuple[tuple[tuple[str, str], ...], ...]
    customers: tuple[dict, ...]
    items: tuple[dict, ...]
    extra_entries: tuple[tuple[dict, ...], ...]  # per definition: ready entries, one per value variant
    signatures: tuple[str, ...]
    users: tuple[str, ...]


_POOL_CACHE: dict[int, _Pools] = {}


def _pools(seed: int) -> _Pools:
    cached = _POOL_CACHE.get(seed)
    if cached is not None:
        return cached
    rng = random.Random(f"letsjobit-pools-{seed}")
    company_id = meteor_id(rng)
    drivers = tuple(
        tuple((meteor_id(rng), rng.choice(_FIRST_NAMES)) for _ in range(DRIVERS_PER_TERRITORY))
        for _ in TERRITORIES
    )
    customers = []
    for _ in range(CUSTOMER_COUNT):
        t = rng.randrange(len(TERRITORIES))
        territory, city, area, lat, lng = TERRITORIES[t]
        name = f"{rng.choice(_CUSTOMER_FIRST)} {rng.choice(_CUSTOMER_SECOND)}{rng.choice(_CUSTOMER_SUFFIX)}"
        contact = rng.choice(_FIRST_NAMES)
        phone = f"01{rng.randrange(100000000, 999999999)}"
        windows = [
            {
                "earliest": 8 * 3600 + 1800 * rng.randrange(0, 4),
                "latest": 17 * 3600 + 1800 * rng.randrange(0, 4),
            }
        ]
        if rng.random() < 0.25:  # split day: morning and afternoon
            windows = [
                {"earliest": 8 * 3600, "latest": 13 * 3600},
                {"earliest": 15 * 3600, "latest": 17 * 3600},
            ]
        elif rng.random() < 0.1:
            windows = []
        customers.append(
            {
                "territory_index": t,
                "customer": name,
                "site": name if rng.random() < 0.7 else f"{name} – {rng.choice(_LOCATIONS) or 'main site'}",
                "siteId": str(rng.randrange(10_000_000, 99_999_999)),
                "lat": round(lat + rng.uniform(-0.12, 0.12), 6),
                "lng": round(lng + rng.uniform(-0.18, 0.18), 6),
                "address": f"{rng.randrange(1, 999)} {rng.choice(_STREETS)}",
                "postCode": f"{area}{rng.randrange(1, 60)} {rng.randrange(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
                "city": city,
                "contactPerson": contact,
                "contactPhone": phone,
                "email": f"{contact.lower().replace('ë', 'e').replace('á', 'a').replace('é', 'e').replace('ł', 'l').replace('å', 'a').replace('ö', 'o')}@{name.split()[-1].lower().strip('()&–')}.example.com",
                "time_windows": windows,
                "country": "IE" if rng.random() < 0.03 else "GB",
            }
        )
    items = []
    for item_index in range(60):
        brand_index = rng.randrange(len(_BRANDS))
        brand, models = _BRANDS[brand_index]
        model_index = rng.randrange(len(models))
        job_type = rng.choice(_JOB_TYPES)
        items.append(
            {
                "itemId": 5000 + item_index,
                "description": f"{job_type.title()} - {brand} {models[model_index]}",
                "brand": brand,
                "brandId": 100 + brand_index,
                "model": models[model_index],
                "modelId": 1000 + brand_index * 10 + model_index,
                "jobType": job_type,
                "actionItem": job_type != "delivery",
            }
        )
    extra_defs = []
    for k in range(30):
        kind = _EXTRA_TYPES[k % len(_EXTRA_TYPES)]
        definition: dict = {"type": kind, "caption": f"{kind.title()} check {k}", "name": f"field_{kind}_{k}"}
        if k % 3 == 0:
            definition["description"] = "Fill in after the job — mandatory on site"
        if kind in ("number", "range"):
            definition.update(
                {"min": 0, "max": 100 if kind == "range" else 5000, "step": 0.5 if k % 2 else 1}
            )
            if k % 4 == 0:
                definition["pattern"] = "[0-9]+([\\.,][0-9]+)?"
        if kind == "select":
            definition["options_values"] = "ok | needs repair | replaced"
            definition["options_default"] = "ok"
        if k % 5 == 0:
            definition["required"] = "required"
        if k % 7 == 0:
            definition["readonly"] = "readonly"
        extra_defs.append(definition)
    jpeg_header = (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x00\x00\x00\x00"  # "/9j/4AAQSkZJRgABAQEAAAAA"
    )
    signatures = tuple(
        base64.b64encode(jpeg_header + rng.randbytes(rng.randrange(90, 360))).decode("ascii")
        for _ in range(24)
    )
    users = tuple(meteor_id(rng) for _ in range(12))
    # Each definition with a dozen values drawn once: entries are copied per line, not rebuilt.
    extra_entries = tuple(
        tuple(
            definition if value is None else {**definition, "value": value}
            for value in (_extra_value(definition, rng) for _ in range(_EXTRA_VARIANTS))
        )
        for definition in extra_defs
    )
    pools = _Pools(company_id, drivers, tuple(customers), tuple(items), extra_entries, signatures, users)
    _POOL_CACHE[seed] = pools
    return pools


def _stamp(day: date, seconds: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` for a second offset (may be negative or past midnight) from a day."""
    days, second = divmod(seconds, 86400)
    if days:
        day = day + timedelta(days=days)
    hours, rest = divmod(second, 3600)
    return f"{day.isoformat()} {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _extra_value(definition: dict, rng: random.Random):
    kind = definition["type"]
    r = rng.random()
    if r < 0.15:
        return None  # the key is left out
    if kind in ("number", "range"):
        number = round(rng.uniform(0, 100), 1 if r < 0.5 else 0)
        if r < 0.45:
            return str(number)  # numbers that arrive as strings
        if r < 0.5:
            return str(number).replace(".", ",")  # continental decimal comma
        return int(number) if r > 0.8 else number
    if kind == "date":
        return f"2026-{int(r * 12) + 1:02d}-{int(r * 28) + 1:02d}"
    if kind == "email":
        return "engineer@example.com"
    if kind == "color":
        return f"#{int(r * 0xFFFFFF):06x}"
    if kind == "select":
        return "ok" if r < 0.7 else "needs repair"
    if r < 0.3:
        return str(int(r * 1000))  # free text that happens to parse as a number
    return "Checked – all good" if r < 0.7 else "Reading: 12.5 bar\r\nseal replaced"


def _make_lines(rng: random.Random, pools: _Pools, erp_id: int, visit_date: date) -> list[dict]:
    r = rng.random
    count = (0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5)[int(r() * 11)]
    lines = []
    items = pools.items
    extra_entries = pools.extra_entries
    variants = _EXTRA_VARIANTS
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
            "location": _LOCATIONS[int(r() * len(_LOCATIONS))],
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
    return _TRUE[style] if value else _FALSE[style]


def make_visit(
    index: int, rng: random.Random, pools: _Pools, anchor: date, days: int, days_ahead: int
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
    doc_type, prefix = _DOC_TYPES[int(r() * len(_DOC_TYPES))]
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
    action_lines = sum(1 for line in lines if line["actionItem"] in _TRUE)
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
            f"{_OBS_NOTES[int(r() * len(_OBS_NOTES))]}\r\n{_OBS_NOTES[int(r() * len(_OBS_NOTES))]}"
            if r() < 0.85
            else ""
        ),
        "contactPerson": customer["contactPerson"],
        "contactPhone": customer["contactPhone"],
    }
    true, false = _TRUE[style], _FALSE[style]
    flags = {name: true if r() < 0.5 else false for name in _FLAG_FIELDS}
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
            _SUBCONTRACTORS[int(r() * len(_SUBCONTRACTORS))] for _ in range(1 + int(r() * 2))
        ]
    elif sc < 0.95:
        names = [_SUBCONTRACTORS[int(r() * len(_SUBCONTRACTORS))] for _ in range(2)]
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
    visit["required_skills"] = [_SKILLS[int(r() * len(_SKILLS))] for _ in range(int(r() * 4))]
    visit["allowed_vehicles"] = [] if r() < 0.7 else [_VEHICLES[int(r() * len(_VEHICLES))]]
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
    visit["appClientVersion"] = _APP_VERSIONS[int(r() * len(_APP_VERSIONS))]
    if closed:
        visit["closeDate"] = _stamp(visit_date, close_second)[:16]
    if skipped:
        reason = 1 + int(r() * _SKIP_REASONS)
        visit["skippedReasonId"] = str(reason) if r() < 0.5 else reason
    elif r() < 0.8:
        visit["skippedReasonId"] = ""
    if not lines_missing:
        visit["lines"] = lines
    return visit


# --- deliberately bad records: the messy cases the pipeline's data-quality policy must handle ------------


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


def record_key(visit: Mapping) -> str:
    """The ground-truth key of a record: its ``_id``, or for a record served without one its ERP id as text."""
    return visit.get("_id") or str(visit.get("id"))


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


def _plain_line(visit: dict, rng: random.Random, pools: _Pools) -> dict:
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


def _spoil(visit: dict, rng: random.Random, kinds: tuple[BadRecordKind, ...], pools: _Pools) -> str:
    """Give ``visit`` one bad value of a kind drawn from ``kinds``; returns the kind's name."""
    kind = kinds[int(rng.random() * len(kinds))]
    if kind.placement == "visit":
        for name, value in ((kind.field, kind.value), *kind.context):
            _set(visit, name, value)
        if kind.name == "closed_and_skipped":  # closeDate present: only the one contradiction
            visit.setdefault("closeDate", f"{visit['date']} 17:00")
        elif kind.name == "closed_without_close_date" and visit.get("skipped") in _TRUE:
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
    pools = _pools(seed)
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
            kind = _spoil(visit, bad_rng, kinds, pools) if bad_rng.random() < bad_rate else None
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
    return make_visit(index, rng, _pools(seed), anchor_date, days, days_ahead)
