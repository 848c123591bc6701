"""Listing pages: one page as the API answered it, and the check that its shape and meta hold together.

A page that fails :func:`validate_page` raises :class:`~letsjobit.api.errors.LetsJobItMalformedPage`
naming its offset and the field, and is retried like a truncated answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from letsjobit.api.errors import LetsJobItMalformedPage

PAGE_META_FIELDS = ("totalRecords", "returnedRecords", "remainingRecords")


@dataclass(frozen=True)
class Page:
    """One listing page as the API answered it, plus what it added to the extraction."""

    offset: int
    filters: dict
    fetched_at: datetime
    body: dict
    # The records of this page not delivered by an earlier page (de-duplicated by ``_id``).
    new_data: list = field(default_factory=list, compare=False, repr=False)

    @property
    def meta(self) -> dict:
        return self.body["meta"]

    @property
    def data(self) -> list:
        return self.body["data"]

    @property
    def total_records(self) -> int:
        return _meta_number(self.meta, "totalRecords", self.offset)

    @property
    def remaining_records(self) -> int:
        return _meta_number(self.meta, "remainingRecords", self.offset)

    @property
    def ids(self) -> list[str]:
        return [r["_id"] for r in self.data if isinstance(r, dict) and isinstance(r.get("_id"), str)]


def validate_page(body: Any, offset: int) -> None:
    """Refuse a listing page whose shape or meta does not hold together (the error names the offset)."""
    if not isinstance(body, dict) or not isinstance(body.get("meta"), dict):
        raise LetsJobItMalformedPage(f"page at offset {offset}: answer has no meta object")
    data = body.get("data")
    if not isinstance(data, list):
        raise LetsJobItMalformedPage(f"page at offset {offset}: data is {type(data).__name__}, not a list")
    meta = body["meta"]
    total, returned, remaining = (_meta_number(meta, name, offset) for name in PAGE_META_FIELDS)
    next_start = _meta_number(meta, "nextStart", offset, required=False)
    if returned != len(data):
        raise LetsJobItMalformedPage(
            f"page at offset {offset}: meta.returnedRecords={returned} but data holds {len(data)} records"
        )
    expected_remaining = max(0, total - offset - returned)
    if remaining != expected_remaining:
        raise LetsJobItMalformedPage(
            f"page at offset {offset}: meta.remainingRecords={remaining} but totalRecords={total} - "
            f"offset {offset} - returned {returned} = {expected_remaining}"
        )
    if remaining > 0:
        if returned == 0:
            raise LetsJobItMalformedPage(f"page at offset {offset}: no records but {remaining} remaining")
        if next_start is not None and next_start != offset + returned:
            raise LetsJobItMalformedPage(
                f"page at offset {offset}: meta.nextStart={next_start}, expected offset + returned = "
                f"{offset + returned}"
            )


def _meta_number(meta: dict, name: str, offset: int, required: bool = True) -> int | None:
    value = meta.get(name)
    if value is None:
        if required:
            raise LetsJobItMalformedPage(f"page at offset {offset}: meta.{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LetsJobItMalformedPage(f"page at offset {offset}: meta.{name} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise LetsJobItMalformedPage(
            f"page at offset {offset}: meta.{name} is not a number: {value!r}"
        ) from None
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise LetsJobItMalformedPage(f"page at offset {offset}: meta.{name} is not a count >= 0: {value!r}")
    return int(number)


def meta_of(body: Any) -> dict:
    """An answer's ``meta`` object, or ``{}`` when it has none."""
    if isinstance(body, dict) and isinstance(body.get("meta"), dict):
        return body["meta"]
    return {}
