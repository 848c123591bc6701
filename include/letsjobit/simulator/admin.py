"""The ``/_sim/`` control endpoints: health, counters, reset, faults, run-time config, ground truth, mutate.

No key: they answer loopback clients only, unless the simulator runs with ``admin_from_anywhere``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson

from .bad_record_kinds import bad_record_kind
from .errors import ApiError
from .faults import FaultConfig
from .settings import RUNTIME_SETTINGS
from .store import VisitStore

if TYPE_CHECKING:
    from .server import SimulatorServer

ADMIN_ENDPOINTS = (
    "health",
    "counters",
    "reset",
    "faults",
    "config",
    "truth",
    "bad_records",
    "mutate",
    "changes",
)


def admits(host: str, admin_from_anywhere: bool) -> bool:
    """Whether a client at ``host`` may use the admin endpoints."""
    return admin_from_anywhere or host.startswith("127.") or host in ("::1", "localhost")


def answer(
    sim: SimulatorServer, method: str, path: str, body: bytes, query: str = ""
) -> tuple[int, dict | bytes]:
    """(status, JSON payload or its bytes) of one admin request; ApiError for a refused one."""
    name = path.rstrip("/").removeprefix("/_sim/")
    payload = orjson.loads(body) if body.strip() else {}
    if not isinstance(payload, dict):
        raise ApiError(400, "admin endpoints take a JSON object")
    if name == "health" and method == "GET":
        return 200, {"ok": True, "visits": len(sim.store), "base_url": sim.base_url}
    if name == "counters" and method == "GET":
        return 200, sim.counters()
    if name == "reset" and method == "POST":
        if payload.get("counters", True):
            sim.reset_counters()
        if payload.get("rate_limit", False):
            sim.reset_rate_limit()
        if payload.get("faults", False):
            sim.set_faults()
        return 200, {"ok": True}
    if name == "faults" and method == "GET":
        return 200, sim.faults.to_dict()
    if name == "faults" and method == "POST":
        merge = payload.pop("merge", False)
        base = sim.faults.to_dict() if merge else {}
        if merge and "fail_next" in payload:
            payload["fail_next"] = base["fail_next"] + list(payload["fail_next"])
        return 200, sim.set_faults(FaultConfig.from_dict({**base, **payload})).to_dict()
    if name == "config" and method == "GET":
        return 200, {n: getattr(sim.config, n) for n in RUNTIME_SETTINGS}
    if name == "config" and method == "POST":
        return 200, sim.configure(**payload)
    if name == "truth" and method == "GET":
        truth, total, version, bad_records = sim.store.truth_with_bad_records()
        meta = {"totalRecords": total, "version": version, "bad_records": bad_records}
        return 200, (b'{"meta":' + orjson.dumps(meta) + b',"data":' + truth + b"}")
    if name == "bad_records" and method == "GET":
        version, bad_records = sim.store.bad_records_snapshot()
        kinds: dict[str, int] = {}
        for kind in bad_records.values():
            kinds[kind] = kinds.get(kind, 0) + 1
        return 200, {
            "meta": {"totalRecords": len(bad_records), "version": version, "kinds": kinds},
            "data": {key: bad_record_kind(kind).outcome() for key, kind in bad_records.items()},
        }
    if name == "mutate" and method == "POST":
        return 200, mutate(sim.store, payload)
    if name == "changes" and method == "GET":
        since = dict(parse_qsl(query)).get("since", "0")
        if not since.isdigit():
            raise ApiError(400, f"Bad Request: since must be a version number, got {since!r}")
        return 200, (
            b'{"meta":'
            + orjson.dumps({"since": int(since), "version": sim.store.version})
            + b',"data":'
            + sim.store.changes_bytes(int(since))
            + b"}"
        )
    if name in ADMIN_ENDPOINTS:
        raise ApiError(405, f"Method Not Allowed: {method} {path}")
    raise ApiError(404, f"Not Found: no admin endpoint {path}")


def mutate(store: VisitStore, payload: dict) -> dict:
    """Explicit ``ops`` ([{"op": "insert"|"update"|"delete", ...}]) then random inserts/deletes/updates."""
    done: dict[str, list[str]] = {"inserted": [], "deleted": [], "updated": []}
    for op in payload.get("ops", []):
        kind = op.get("op")
        if kind == "insert":
            visit = op.get("visit") or store.new_visit()
            done["inserted"].append(store.insert(visit, op.get("position")))
        elif kind == "update":
            if store.update(str(op["id"]), op.get("fields", {})) is None:
                raise ApiError(404, f"no visit with ID {op['id']!r}")
            done["updated"].append(str(op["id"]))
        elif kind == "delete":
            if not store.delete(str(op["id"])):
                raise ApiError(404, f"no visit with ID {op['id']!r}")
            done["deleted"].append(str(op["id"]))
        else:
            raise ApiError(400, f"unknown mutate op {kind!r}: use insert, update or delete")
    random_done = store.mutate(
        inserts=int(payload.get("inserts", 0)),
        deletes=int(payload.get("deletes", 0)),
        updates=int(payload.get("updates", 0)),
        position=payload.get("position"),
    )
    for name in done:
        done[name] += random_done[name]
    return {**done, "visits": len(store), "version": store.version}
