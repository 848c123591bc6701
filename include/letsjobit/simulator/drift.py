"""Deterministic changes to the visits of given dates: what a window run should then pick up.

``make run-window`` restarts the simulator with the same seed and anchor as the ``make run`` before it,
so the source would be exactly what the lake already holds. These changes, applied through
``POST /_sim/mutate`` before the window run, give it something to find: a few visits of the window's
dates updated, deleted and inserted, the same ones for the same seed and dates. Updates keep each visit's
date and its invariants (a closed visit is re-rated, an open past one is closed with a rating, any other
gets an access note in ``obs``); inserts are copies of window visits under new ERP ids and document
numbers, so they pass the gate like their originals.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from .store import flag_value


@dataclass(frozen=True)
class WindowDrift:
    """How many visits of the window's dates to change."""

    updates: int = 10
    deletes: int = 3
    inserts: int = 5
    seed: int = 1


def window_drift_ops(
    visits: Iterable[dict], dates: Iterable[date], anchor_date: date, drift: WindowDrift = WindowDrift()
) -> list[dict]:
    """``/_sim/mutate`` ops changing visits dated within ``dates``; fewer when the dates hold fewer visits."""
    days = {day.isoformat() for day in dates}
    everything = list(visits)
    # A visit served without _id never lands: changing it would show nothing in the lake.
    candidates = sorted(
        (v for v in everything if "_id" in v and str(v.get("date"))[:10] in days), key=lambda v: v["_id"]
    )
    rng = random.Random(f"letsjobit-window-drift-{drift.seed}")
    chosen = rng.sample(candidates, min(len(candidates), drift.updates + drift.deletes))
    updated, deleted = chosen[: drift.updates], chosen[drift.updates :]
    kept = [v for v in candidates if v not in deleted]
    copied = rng.sample(kept, min(len(kept), drift.inserts))
    next_erp_id = 1 + max((int(v["id"]) for v in everything if str(v.get("id", "")).isdigit()), default=0)
    ops: list[dict] = [{"op": "update", "id": v["_id"], "fields": _change(v, anchor_date)} for v in updated]
    ops += [{"op": "delete", "id": v["_id"]} for v in deleted]
    for number, original in enumerate(copied):
        copy = {k: value for k, value in original.items() if k != "_id"}
        copy["id"] = next_erp_id + number
        copy["docNo"] = f"{original.get('docNo', 'DOC')}-B{number + 1}"
        ops.append({"op": "insert", "visit": copy})
    return ops


def _change(visit: dict, anchor_date: date) -> dict:
    if flag_value(visit.get("closed")):
        rating = str(visit.get("signeeRating", ""))
        return {"signeeRating": "3" if rating == "5" else "5"}
    day = str(visit.get("date"))[:10]
    if not flag_value(visit.get("skipped")) and day < anchor_date.isoformat():
        closed_at = max(f"{day} 17:00", str(visit.get("createdAt", ""))[:16])
        return {"closed": True, "inProgress": False, "closeDate": closed_at, "signeeRating": "4"}
    return {"obs": f"{visit.get('obs') or ''}\r\nAccess changed: ring the bell at the side gate".lstrip()}
