"""The API's reads: ``GET /visits`` (offset paging, every documented filter) and ``GET /visits/{ID}``.

Query values are validated here (400 naming the parameter and the value); the store does the matching.
"""

from __future__ import annotations

from datetime import date

import orjson

from .errors import ApiError
from .store import FLAG_FILTERS, VisitStore

PAGINATION_PARAM = "pagination"
FILTER_PARAMS = (
    "_id",
    "id",
    "date",
    "driverId",
    "docNo",
    "closed",
    "confirmClose",
    "inProgress",
    "priority",
    "skipped",
)
# GET /visits/{ID}: "data": [visit] (like the list) or "data": visit.
SINGLE_VISIT_SHAPES = ("list", "object")


def _parse_flag(name: str, value: str) -> int:
    text = value.strip().lower()
    if text in ("1", "true"):
        return 1
    if text in ("0", "false"):
        return 0
    raise ApiError(400, f"invalid value for {name}: expected 0 or 1, got {value!r}")


def parse_filters(params: dict[str, str]) -> tuple[tuple[str, object], ...]:
    """Validated filters in a canonical order (the filter cache key)."""
    filters: list[tuple[str, object]] = []
    for name in FILTER_PARAMS:
        if name not in params:
            continue
        value = params[name]
        if name in FLAG_FILTERS:
            filters.append((name, _parse_flag(name, value)))
        elif name == "priority":
            try:
                filters.append((name, float(value.strip())))
            except ValueError:
                raise ApiError(400, f"invalid value for priority: expected a number, got {value!r}") from None
        elif name == "date":
            try:
                day = date.fromisoformat(value.strip())
            except ValueError:
                raise ApiError(400, f"invalid value for date: expected YYYY-MM-DD, got {value!r}") from None
            if len(value.strip()) != 10:
                raise ApiError(400, f"invalid value for date: expected YYYY-MM-DD, got {value!r}")
            filters.append((name, day.isoformat()))
        else:
            filters.append((name, value))
    return tuple(filters)


def parse_pagination(value: str | None) -> int:
    if value is None or value.strip() == "":
        return 0
    text = value.strip()
    try:
        start = int(text)
    except ValueError:
        raise ApiError(400, f"invalid pagination {value!r}: expected a non-negative integer offset") from None
    if start < 0:
        raise ApiError(400, f"invalid pagination {value!r}: expected a non-negative integer offset")
    return start


def list_page(store: VisitStore, filters: tuple[tuple[str, object], ...], start: int, size: int) -> bytes:
    """The ``GET /visits`` body: the page of matching visits from offset ``start``, with its meta."""
    total, page = store.page(filters, start, size)
    returned = len(page)
    meta = orjson.dumps(
        {
            "totalRecords": total,
            "returnedRecords": returned,
            "remainingRecords": max(0, total - start - returned),
            "nextStart": start + returned,
        }
    )
    return b'{"meta":' + meta + b',"data":[' + b",".join(page) + b"]}"


def single_visit(store: VisitStore, visit_id: str | None, shape: str) -> bytes:
    """The ``GET /visits/{ID}`` body in ``shape`` (SINGLE_VISIT_SHAPES); 404 for an unknown ID."""
    raw = store.get_bytes(visit_id)
    if raw is None:
        raise ApiError(404, f"Not Found: no visit with ID {visit_id!r}")
    if shape == "object":
        return b'{"meta":{},"data":' + raw + b"}"
    return (
        b'{"meta":{"totalRecords":1,"returnedRecords":1,"remainingRecords":0,"nextStart":1},'
        b'"data":[' + raw + b"]}"
    )
