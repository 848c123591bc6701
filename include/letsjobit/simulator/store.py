"""The simulator's visit store: the ground truth, in the API's listing order, safe to share between threads.

Listing order is insertion order. Updates never move a record; inserts go to the end, the start or a
random position (``insert_position``); deletes shift every later offset, which is what offset drift is.

Serving is fast because each visit's JSON bytes are cached until the visit changes, and the matching
``_id`` list of a filter set is cached per store version.

Records are stored as served. A record's key is its ``_id``; a generated record that is served without
one (the ``missing_id`` bad record kind) is keyed by its ERP id as text, so ``GET /visits/{ERP id}``, the
``id=`` filter and every store method still reach it (no ``_id=`` filter matches it).

``bad_records`` (``{key: kind name}``) is the ground truth of the deliberately bad records: a delete
removes the entry, and so does an update after which the record no longer carries its kind's bad value
(drift re-rating, closing or rescheduling it repairs it). Records inserted later are clean.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime

import orjson

from . import data
from .bad_record_kinds import bad_record_kind, locate
from .pools import meteor_id

INSERT_POSITIONS = ("end", "start", "random")
_FILTER_CACHE_SIZE = 64
CHANGE_HISTORY = 10_000  # changes kept for GET /_sim/changes (a few KB each)

# Values of a 0/1 flag as the API stores them. Anything else (False, 0, "0", "", None, missing) is 0.
_TRUTHY = frozenset({"1", "true", "True", "TRUE", "yes"})


def flag_value(value) -> int:
    """The 0/1 a stored flag filters as: true/1/"1" are 1, everything else 0."""
    if value is True:
        return 1
    if value is False or value is None:
        return 0
    if isinstance(value, int | float):
        return 1 if value == 1 else 0
    return 1 if str(value).strip() in _TRUTHY else 0


def number_value(value) -> float | None:
    """A stored number that may be a string ("3"), or None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def now_stamp() -> str:
    """The API's timestamp format (no time zone), in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class VisitStore:
    """Ordered visits with lookups by internal ``_id`` and ERP ``id``; every method takes the lock."""

    def __init__(
        self,
        visits: Iterable[dict] = (),
        *,
        seed: int = 0,
        anchor_date: date | None = None,
        days: int = data.DEFAULT_DAYS,
        days_ahead: int = data.DEFAULT_DAYS_AHEAD,
        insert_position: str = "end",
        next_index: int | None = None,
    ) -> None:
        if insert_position not in INSERT_POSITIONS:
            raise ValueError(f"insert_position must be one of {INSERT_POSITIONS}, got {insert_position!r}")
        self._lock = threading.RLock()
        self._order: list[str] = []
        self._visits: dict[str, dict] = {}
        self._by_erp: dict[str, str] = {}
        self._bytes: dict[str, bytes] = {}
        self._filter_cache: OrderedDict[tuple, list[str]] = OrderedDict()
        self.version = 0
        # Every version a visit took, so that a checker can tell what a reader may have seen mid-run.
        self._changes: deque[tuple[int, str, bytes | None]] = deque(maxlen=CHANGE_HISTORY)
        self.seed = seed
        self.anchor_date = anchor_date or datetime.now(UTC).date()
        self.days = days
        self.days_ahead = days_ahead
        self.insert_position = insert_position
        self._rng = random.Random(f"letsjobit-store-{seed}")
        for visit in visits:
            self._add(visit, len(self._order))
        # ERP ids of new visits continue after the generated ones.
        self._next_index = len(self._order) if next_index is None else next_index
        self.bad_records: dict[str, str] = {}  # key -> BAD_RECORD_KINDS name, kept true by writes

    # -- reading ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._order)

    def snapshot(self) -> list[dict]:
        """A deep copy of every visit, in listing order."""
        with self._lock:
            body = b"[" + b",".join(self._visit_bytes(vid) for vid in self._order) + b"]"
        return orjson.loads(body)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._order)

    def get(self, key: str) -> dict | None:
        """A copy of the visit whose ``_id`` or ERP ``id`` is ``key``, or None."""
        with self._lock:
            vid = self._resolve(key)
            return None if vid is None else orjson.loads(self._visit_bytes(vid))

    def get_bytes(self, key: str) -> bytes | None:
        with self._lock:
            vid = self._resolve(key)
            return None if vid is None else self._visit_bytes(vid)

    def page(self, filters: tuple[tuple[str, object], ...], start: int, size: int) -> tuple[int, list[bytes]]:
        """(total matching, the JSON bytes of the visits ``start .. start+size-1`` of the match)."""
        with self._lock:
            matching = self._order if not filters else self._matching(filters)
            return len(matching), [self._visit_bytes(vid) for vid in matching[start : start + size]]

    def truth_bytes(self) -> bytes:
        with self._lock:
            return b"[" + b",".join(self._visit_bytes(vid) for vid in self._order) + b"]"

    def truth_with_bad_records(self) -> tuple[bytes, int, int, dict[str, str]]:
        """(every visit as a JSON list, how many, the store version, a copy of ``bad_records``) of one moment."""
        with self._lock:
            return self.truth_bytes(), len(self._order), self.version, dict(self.bad_records)

    def bad_records_snapshot(self) -> tuple[int, dict[str, str]]:
        """(the store version, a copy of ``bad_records``) of one moment."""
        with self._lock:
            return self.version, dict(self.bad_records)

    def key_of(self, key) -> str | None:
        """The store key of the visit whose ``_id``, ERP ``id`` or key is ``key``, or None."""
        with self._lock:
            return self._resolve(key)

    # -- writing ---------------------------------------------------------------------------------------

    def insert(self, visit: dict, position: int | str | None = None) -> str:
        """Insert a visit (``_id`` assigned if missing); returns its ``_id``."""
        with self._lock:
            visit = dict(visit)
            if not visit.get("_id"):
                visit["_id"] = self._new_id()
            if visit["_id"] in self._visits:
                raise ValueError(f"visit _id {visit['_id']!r} already exists")
            self._add(visit, self._position(position))
            self._changed(visit["_id"])
            return visit["_id"]

    def update(self, key: str, fields: dict, *, stamp: bool = True) -> dict | None:
        """Merge ``fields`` into the visit ``key`` (``_id`` or ERP id); returns the new visit or None."""
        with self._lock:
            vid = self._resolve(key)
            if vid is None:
                return None
            visit = self._visits[vid]
            old_erp = visit.get("id")
            fields = {k: v for k, v in fields.items() if k != "_id"}
            visit.update(fields)
            if stamp:
                visit["modifieddAt"] = now_stamp()
            if "id" in fields and str(old_erp) != str(fields["id"]):
                if self._by_erp.get(str(old_erp)) == vid:
                    del self._by_erp[str(old_erp)]
                self._by_erp[str(fields["id"])] = vid
            self._bytes.pop(vid, None)
            kind = self.bad_records.get(vid)
            if kind is not None and locate(bad_record_kind(kind), visit) is None:
                del self.bad_records[vid]  # repaired: the record no longer carries its bad value
            self._changed(vid)
            return orjson.loads(self._visit_bytes(vid))

    def delete(self, key: str) -> bool:
        with self._lock:
            vid = self._resolve(key)
            if vid is None:
                return False
            visit = self._visits.pop(vid)
            self._order.remove(vid)
            self._bytes.pop(vid, None)
            self.bad_records.pop(vid, None)
            if self._by_erp.get(str(visit.get("id"))) == vid:
                del self._by_erp[str(visit.get("id"))]
            self._changed(vid, deleted=True)
            return True

    def upsert(self, visit: dict) -> tuple[str, bool]:
        """Insert or update by ERP ``id``; returns (``_id``, inserted?). Sets the server-side fields."""
        with self._lock:
            stamp = now_stamp()
            vid = self._by_erp.get(str(visit["id"]))
            if vid is not None:
                self.update(vid, {**visit, "modifyUser": "API"})
                return vid, False
            record = {k: v for k, v in visit.items() if k != "_id"}
            record["createdAt"] = stamp  # server-side fields: what a client sends is ignored
            record["createdUser"] = "API"
            record["modifieddAt"] = stamp
            record["modifyUser"] = "API"
            if isinstance(record.get("lines"), list):
                record.setdefault(
                    "totalJobs",
                    sum(
                        1
                        for line in record["lines"]
                        if isinstance(line, dict) and flag_value(line.get("actionItem"))
                    ),
                )
            return self.insert(record), True

    def new_visit(self) -> dict:
        """A freshly generated visit (new ``_id`` and ERP id) that is not inserted yet."""
        with self._lock:
            index = self._next_index
            self._next_index += 1
        visit = data.new_visit(index, self.seed, self.anchor_date, self.days, self.days_ahead)
        with self._lock:
            while visit["_id"] in self._visits:
                visit["_id"] = self._new_id()
        return visit

    def mutate(
        self,
        *,
        inserts: int = 0,
        deletes: int = 0,
        updates: int = 0,
        position: str | None = None,
        rng: random.Random | None = None,
    ) -> dict[str, list[str]]:
        """Random drift: delete, update (status, rating, date) and insert visits. Returns the ``_id``s."""
        rng = rng or self._rng
        done: dict[str, list[str]] = {"inserted": [], "deleted": [], "updated": []}
        with self._lock:
            for _ in range(min(deletes, len(self._order))):
                vid = self._order[rng.randrange(len(self._order))]
                self.delete(vid)
                done["deleted"].append(vid)
            for _ in range(min(updates, len(self._order))):
                vid = self._order[rng.randrange(len(self._order))]
                self.update(vid, self._drift_update(self._visits[vid], rng))
                done["updated"].append(vid)
            for _ in range(inserts):
                done["inserted"].append(self.insert(self.new_visit(), position))
        return done

    # -- internals -------------------------------------------------------------------------------------

    @staticmethod
    def _drift_update(visit: dict, rng: random.Random) -> dict:
        """A realistic change: close an open visit (with a rating), re-rate a closed one, or reschedule."""
        choice = rng.random()
        if not flag_value(visit.get("closed")) and not flag_value(visit.get("skipped")) and choice < 0.5:
            return {
                "closed": True,
                "inProgress": False,
                "confirmClose": rng.random() < 0.5,
                "closeDate": now_stamp()[:16],
                "signeeRating": str(rng.randint(1, 5)),
            }
        if flag_value(visit.get("closed")) and choice < 0.75:
            return {"signeeRating": rng.choice((1, 2, 3, 4, 5, "4", "5", "0", ""))}
        day = (
            date.fromisoformat(str(visit.get("date"))[:10])
            if _is_iso_date(visit.get("date"))
            else date.today()
        )
        return {"date": day.fromordinal(day.toordinal() + rng.choice((-2, -1, 1, 2, 7))).isoformat()}

    def _add(self, visit: dict, position: int) -> None:
        vid = data.record_key(visit)
        self._visits[vid] = visit
        if position >= len(self._order):
            self._order.append(vid)
        else:
            self._order.insert(position, vid)
        if "id" in visit:
            self._by_erp.setdefault(str(visit["id"]), vid)

    def _position(self, position: int | str | None) -> int:
        position = self.insert_position if position is None else position
        if isinstance(position, int):
            return max(0, min(position, len(self._order)))
        if position == "start":
            return 0
        if position == "random":
            return self._rng.randrange(len(self._order) + 1)
        if position == "end":
            return len(self._order)
        raise ValueError(f"insert position must be an index or one of {INSERT_POSITIONS}, got {position!r}")

    def _new_id(self) -> str:
        while True:
            vid = meteor_id(self._rng)
            if vid not in self._visits:
                return vid

    def _resolve(self, key) -> str | None:
        key = str(key)
        if key in self._visits:
            return key
        return self._by_erp.get(key)

    def _visit_bytes(self, vid: str) -> bytes:
        cached = self._bytes.get(vid)
        if cached is None:
            cached = self._bytes[vid] = orjson.dumps(self._visits[vid])
        return cached

    def _changed(self, vid: str, *, deleted: bool = False) -> None:
        self.version += 1
        self._filter_cache.clear()
        self._changes.append((self.version, vid, None if deleted else self._visit_bytes(vid)))

    def changes_bytes(self, since: int) -> bytes:
        """JSON list of the changes after version ``since``, oldest first:
        ``{"version", "_id", "visit"}`` with ``visit`` null for a deletion.

        Raises ValueError when the history no longer reaches back to ``since`` (it keeps the last
        CHANGE_HISTORY changes)."""
        with self._lock:
            oldest = self._changes[0][0] if self._changes else self.version + 1
            if len(self._changes) == self._changes.maxlen and since < oldest - 1:
                raise ValueError(f"changes since version {since} are no longer kept (oldest: {oldest})")
            items = [
                b'{"version":%d,"_id":%s,"visit":%s}' % (version, orjson.dumps(vid), body or b"null")
                for version, vid, body in self._changes
                if version > since
            ]
        return b"[" + b",".join(items) + b"]"

    def _matching(self, filters: tuple[tuple[str, object], ...]) -> list[str]:
        cached = self._filter_cache.get(filters)
        if cached is not None:
            self._filter_cache.move_to_end(filters)
            return cached
        predicates = [_predicate(name, value) for name, value in filters]
        visits = self._visits
        result = [vid for vid in self._order if all(p(visits[vid]) for p in predicates)]
        self._filter_cache[filters] = result
        if len(self._filter_cache) > _FILTER_CACHE_SIZE:
            self._filter_cache.popitem(last=False)
        return result


def _is_iso_date(value) -> bool:
    try:
        date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


FLAG_FILTERS = ("closed", "confirmClose", "inProgress", "skipped")
TEXT_FILTERS = ("_id", "id", "driverId", "date")


def _predicate(name: str, value) -> Callable[[dict], bool]:
    """The match rule of one (already validated) filter, exactly as the reference documents it."""
    if name == "docNo":
        needle = str(value).casefold()
        return lambda v: needle in str(v.get("docNo") or "").casefold()
    if name in FLAG_FILTERS:
        return lambda v: flag_value(v.get(name)) == value
    if name == "priority":
        return lambda v: number_value(v.get("priority")) == value
    if name in TEXT_FILTERS:
        text = str(value)
        return lambda v: name in v and str(v[name]) == text
    raise ValueError(f"unknown filter {name!r}")
