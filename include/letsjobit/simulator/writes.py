"""The API's writes: ``POST /visits`` (upsert by ERP id), ``PUT /visits/{ID}`` and ``DELETE /visits/{ID}``.

A POSTed visit is checked against the reference's POST table (required fields, a real date, documented
extraData types); the problems of each refused visit come back in ``meta.errors``, the others are written.
"""

from __future__ import annotations

from datetime import date

import orjson

from .errors import ApiError
from .pools import EXTRA_TYPES
from .store import VisitStore

REQUIRED_VISIT_FIELDS = ("driverId", "date", "id", "docNo", "customer", "address", "city", "companyId")
REQUIRED_LINE_FIELDS = ("actionItem", "description")
REQUIRED_EXTRA_FIELDS = ("type", "caption", "name")


def _is_date(value) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _missing(record: dict, name: str) -> bool:
    value = record.get(name)
    return value is None or (isinstance(value, str) and not value.strip())


def _missing_required(record: dict, names: tuple[str, ...], where: str = "") -> list[str]:
    """One problem per required field of ``names`` that ``record`` (at ``where``) lacks or leaves empty."""
    prefix = f"{where}: " if where else ""
    return [f"{prefix}missing required field '{name}'" for name in names if _missing(record, name)]


def validate_posted_visit(record) -> list[str]:
    """The problems of one POSTed visit per the reference's POST table (empty: fine)."""
    if not isinstance(record, dict):
        return [f"expected a visit object, got {type(record).__name__}"]
    problems = _missing_required(record, REQUIRED_VISIT_FIELDS)
    if not _missing(record, "date") and not _is_date(record["date"]):
        problems.append(f"invalid date {record['date']!r}: expected YYYY-MM-DD")
    if not _missing(record, "id") and (isinstance(record["id"], bool | dict | list | float)):
        problems.append(f"invalid id {record['id']!r}: expected a number or a reference string")
    lines = record.get("lines")
    if lines is not None and not isinstance(lines, list):
        problems.append(f"invalid lines: expected an array, got {type(lines).__name__}")
    for line_index, line in enumerate(lines if isinstance(lines, list) else []):
        if not isinstance(line, dict):
            problems.append(f"lines[{line_index}]: expected an object")
            continue
        problems += _missing_required(line, REQUIRED_LINE_FIELDS, f"lines[{line_index}]")
        extras = line.get("extraData")
        if extras is not None and not isinstance(extras, list):
            problems.append(f"lines[{line_index}].extraData: expected an array")
            continue
        for extra_index, extra in enumerate(extras or []):
            where = f"lines[{line_index}].extraData[{extra_index}]"
            if not isinstance(extra, dict):
                problems.append(f"{where}: expected an object")
                continue
            problems += _missing_required(extra, REQUIRED_EXTRA_FIELDS, where)
            if not _missing(extra, "type") and extra["type"] not in EXTRA_TYPES:
                problems.append(f"{where}: invalid type {extra['type']!r}")
    return problems


def _json(body: bytes):
    if not body.strip():
        raise ApiError(400, "Bad Request: a JSON body is required (Content-Type: application/json)")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"Bad Request: the body is not valid JSON ({error})") from None


def post_visits(store: VisitStore, body: bytes) -> bytes:
    """``POST /visits``: one visit or an array, each inserted or updated by its ERP id."""
    records = _json(body)
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise ApiError(400, "Bad Request: expected an array of visit objects")
    inserted = updated = 0
    errors = []
    for index, record in enumerate(records):
        problems = validate_posted_visit(record)
        if problems:
            erp_id = record.get("id") if isinstance(record, dict) else None
            errors.append(
                {
                    "error": 400,
                    "index": index,
                    "id": erp_id,
                    "message": f"visit at index {index} (id {erp_id!r}): " + "; ".join(problems),
                }
            )
            continue
        _, was_inserted = store.upsert(record)
        inserted += was_inserted
        updated += not was_inserted
    meta: dict = {"recordsUpdated": updated, "recordsInserted": inserted}
    if errors:
        meta["errors"] = errors
    return orjson.dumps({"meta": meta, "data": None})


def put_visit(store: VisitStore, visit_id: str | None, body: bytes) -> bytes:
    """``PUT /visits/{ID}``: merge the body's fields into the visit."""
    fields_ = _json(body)
    if not isinstance(fields_, dict) or not fields_:
        raise ApiError(400, "Bad Request: expected a JSON object with the fields to update")
    if "date" in fields_ and not _is_date(fields_["date"]):
        raise ApiError(400, f"Bad Request: invalid date {fields_['date']!r}: expected YYYY-MM-DD")
    for name in REQUIRED_VISIT_FIELDS:
        if name in fields_ and _missing(fields_, name):
            raise ApiError(400, f"Bad Request: required field '{name}' cannot be emptied")
    with store._lock:
        key = store.key_of(visit_id)  # a visit served without _id is still reachable by ERP id
        if key is None:
            raise ApiError(404, f"Not Found: no visit with ID {visit_id!r}")
        if "id" in fields_:
            owner = store.key_of(str(fields_["id"]))
            if owner is not None and owner != key:
                raise ApiError(400, f"Bad Request: ERP id {fields_['id']!r} belongs to another visit")
        store.update(key, {**fields_, "modifyUser": "API"})
    return orjson.dumps({"meta": {"updatedRecords": 1}, "data": None})


def delete_visit(store: VisitStore, visit_id: str | None) -> bytes:
    """``DELETE /visits/{ID}``."""
    if not store.delete(visit_id):
        raise ApiError(404, f"Not Found: no visit with ID {visit_id!r}")
    return orjson.dumps({"meta": {"deletedRecords": 1}, "data": None})
