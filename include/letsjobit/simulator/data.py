"""Deterministic, realistic LetsJobIt visits for the simulator, the tests and the benchmarks.

A visit depends only on (seed, its index, anchor_date, days, days_ahead): visits are generated in blocks of
``BLOCK`` from one ``random.Random`` per block, so ``generate_visits(n)`` is a prefix of
``generate_visits(m)`` for n < m, and any slice can be generated on its own (``start=``) for chunked
benchmarks. Pools (drivers, customers, items, extraData definitions) depend on the seed only.

The records carry the messy encodings the API reference itself shows: flags as true/1/"1", priority as "3"
or 3, signeeRating as "5"/5/"0"/0/""/missing, siteId as string or int, subContractorIds as a list, a
comma-separated string or null, visits without ``lines``, ``extraData`` null, unicode and CRLF in ``obs``,
a base64 ``signature`` and the misspelt ``modifieddAt``. Relationships hold so that KPIs mean something:
a visit is never both closed and skipped, closed visits have ``closeDate >= createdAt``, future visits are
open, ``totalJobs`` counts the action lines.

``bad_rate`` adds a share of deliberately invalid records (rating 9, latitude 200, ...) for validation
tests; it is 0 by default and draws from its own stream, so the good fields do not change with it.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import random
from collections.abc import Iterator
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


# Deliberately invalid values for validation tests: (kind, field, value).
BAD_RECORD_KINDS: tuple[tuple[str, str, object], ...] = (
    ("rating_out_of_range", "signeeRating", 9),
    ("latitude_out_of_range", "lat", 200.0),
    ("longitude_out_of_range", "lng", -300.0),
    ("impossible_date", "date", "2026-02-30"),
    ("priority_not_a_number", "priority", "urgent"),
    ("flag_not_a_flag", "closed", "maybe"),
    ("negative_duration", "duration", -5),
    ("lines_not_a_list", "lines", "no lines"),
)


def _corrupt(visit: dict, rng: random.Random) -> str:
    kind, field, value = BAD_RECORD_KINDS[int(rng.random() * len(BAD_RECORD_KINDS))]
    visit[field] = value
    return kind


def generate_visits(
    n: int,
    seed: int,
    anchor_date: date,
    days: int = DEFAULT_DAYS,
    days_ahead: int = DEFAULT_DAYS_AHEAD,
    *,
    start: int = 0,
    bad_rate: float = 0.0,
    bad_log: dict[str, str] | None = None,
) -> list[dict]:
    """Visits ``start .. start+n-1`` of the (seed, anchor_date, days, days_ahead) sequence.

    Dates fall in ``anchor_date - days .. anchor_date + days_ahead``. With ``bad_rate`` > 0 that share of
    visits gets one invalid value; ``bad_log`` (if given) receives ``{_id: kind}`` for each of them.
    """
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n} start={start}")
    pools = _pools(seed)
    visits: list[dict] = []
    end = start + n
    block = start // BLOCK
    with _gc_paused():
        _generate_blocks(
            visits, block, start, end, seed, pools, anchor_date, days, days_ahead, bad_rate, bad_log
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
) -> Iterator[list[dict]]:
    """``generate_visits(n, ...)`` in lists of ``chunk``: a visit takes ~5.5 kB as dicts, 1M take ~5.5 GB."""
    for start in range(0, n, chunk):
        yield generate_visits(min(chunk, n - start), seed, anchor_date, days, days_ahead, start=start)


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
    visits, block, start, end, seed, pools, anchor_date, days, days_ahead, bad_rate, bad_log
):
    while block * BLOCK < end:
        rng = random.Random((seed << 24) ^ (block * 2_654_435_761))
        bad_rng = random.Random((seed << 24) ^ (block * 2_654_435_761) ^ 0x5BAD)
        first = block * BLOCK
        for index in range(first, min(first + BLOCK, end)):
            visit = make_visit(index, rng, pools, anchor_date, days, days_ahead)
            kind = _corrupt(visit, bad_rng) if bad_rng.random() < bad_rate else None
            if index < start:
                continue
            if kind is not None and bad_log is not None:
                bad_log[visit["_id"]] = kind
            visits.append(visit)
        block += 1


def new_visit(
    index: int, seed: int, anchor_date: date, days: int = DEFAULT_DAYS, days_ahead: int = DEFAULT_DAYS_AHEAD
) -> dict:
    """A fresh visit for inserts (drift, tests): index beyond the generated ones gives a new ERP id."""
    rng = random.Random(f"letsjobit-new-{seed}-{index}")
    return make_visit(index, rng, _pools(seed), anchor_date, days, days_ahead)
