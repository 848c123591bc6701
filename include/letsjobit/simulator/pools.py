"""The value pools a generated visit draws from: places, names, notes, items, extraData definitions.

The constant pools (territories, names, streets, document types, app versions, ...) are fixed; the pools
of one seed (``seed_pools``: the company, drivers, customers, items, extraData entries, signatures and
users) are drawn once from a stream of their own and cached, so they depend on the seed only.
``meteor_id`` makes the API's Meteor-style ids.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass

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
LOCATIONS = (
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
OBS_NOTES = (
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
SUBCONTRACTORS = (
    "My Subcontractor",
    "Aberdeen Gas Ltd",
    "Tayside Fridge Co",
    "Norðurljós Services",
    "Clyde Plumbing",
    "Fife Electrics",
    "Kelvin Cooling",
    "Forth Installers",
)
SKILLS = (
    "Plumber",
    "Hot water technician",
    "Installer",
    "Electrician",
    "Gas Safe",
    "Refrigeration",
    "Beer line cleaner",
    "Forklift",
)
VEHICLES = ("VAN-01", "VAN-02", "VAN-03", "TRUCK-7", "CAR-12", "EV-3")
DOC_TYPES = (
    ("CALL OUT", "H"),
    ("SERVICE", "S"),
    ("DELIVERY", "D"),
    ("INSTALLATION", "I"),
    ("MAINTENANCE", "M"),
)
APP_VERSIONS = ("1.7.163", "1.7.170", "1.8.2", "1.8.11", "2.0.0-beta.3")
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
SKIP_REASONS = 6
EXTRA_VARIANTS = 12
EXTRA_TYPES = ("text", "date", "number", "email", "color", "range", "select")

# Visit-level flags and the values the reference shows for them.
FLAG_FIELDS = (
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
TRUE_FLAGS = (True, 1, "1")
FALSE_FLAGS = (False, 0, "0")


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
class Pools:
    company_id: str
    drivers_by_territory: tuple[tuple[tuple[str, str], ...], ...]
    customers: tuple[dict, ...]
    items: tuple[dict, ...]
    extra_entries: tuple[tuple[dict, ...], ...]  # per definition: ready entries, one per value variant
    signatures: tuple[str, ...]
    users: tuple[str, ...]


_POOL_CACHE: dict[int, Pools] = {}


def seed_pools(seed: int) -> Pools:
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
                "site": name if rng.random() < 0.7 else f"{name} – {rng.choice(LOCATIONS) or 'main site'}",
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
        kind = EXTRA_TYPES[k % len(EXTRA_TYPES)]
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
            for value in (_extra_value(definition, rng) for _ in range(EXTRA_VARIANTS))
        )
        for definition in extra_defs
    )
    pools = Pools(company_id, drivers, tuple(customers), tuple(items), extra_entries, signatures, users)
    _POOL_CACHE[seed] = pools
    return pools


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
