"""Extraction to the raw zone: one chunk of the visits listing, written as the API answered it.

``extract_to_raw`` streams every page of one filtered listing into ``layout.raw_part(run_id, chunk)``
(``raw/run_id=<run_id>/part-<chunk>.jsonl.gz``, one JSON object per page: offset, filters, fetched_at,
body) and writes ``layout.raw_manifest(run_id, chunk)`` (``manifest-<chunk>.json``) beside it with the
extraction report. Both are written to a temporary name and renamed, so a chunk is either wholly there
or absent, and a re-run replaces it exactly. Memory stays flat: pages go to disk as they arrive.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from letsjobit import files
from letsjobit.api.client import LetsJobItClient
from letsjobit.api.pages import Page
from letsjobit.api.paging import ScanStats
from letsjobit.api.settings import normalize_filters
from letsjobit.config import DataLayout
from letsjobit.lake import coerce

log = logging.getLogger(__name__)

MANIFEST_FORMAT_VERSION = 1
GZIP_LEVEL = 5


@dataclass(frozen=True)
class ExtractResult:
    """What one chunk's extraction wrote and did; small enough for XCom (``as_dict()``)."""

    run_id: str
    chunk: str
    part_path: str
    manifest_path: str
    total_records: int | None
    distinct_visits: int
    pages: int
    requests: int
    rate_limited_429: int
    retries: int
    drift_events: int
    wall_seconds: float
    visit_dates: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["visit_dates"] = list(self.visit_dates)
        return out


def extract_to_raw(
    client: LetsJobItClient,
    run_id: str,
    chunk: str | int,
    filters: dict[str, Any] | None,
    layout: DataLayout,
) -> ExtractResult:
    """Read every page of the listing selected by ``filters`` into the run's raw part ``chunk``."""
    chunk = str(chunk)
    filters = dict(filters or {})
    normalize_filters(filters)  # refuse a bad filter before touching the disk
    target = layout.raw_part(run_id, chunk)
    manifest_target = layout.raw_manifest(run_id, chunk)
    stats = ScanStats()
    visit_dates: set[str] = set()
    started_at = datetime.now(UTC)
    log.info("Extracting chunk %s of run %s into %s", chunk, run_id, target)
    # Durable: later runs replay the raw pages, so after a power loss a part is old or whole, never half.
    with (
        files.atomic_path(target, durable=True) as temporary,
        gzip.open(temporary, "wb", compresslevel=GZIP_LEVEL) as out,
    ):
        for page in client.iter_pages(stats=stats, **filters):
            out.write(_raw_line(page))
            out.write(b"\n")
            for visit in page.new_data:
                if isinstance(visit, dict) and visit.get("date") is not None:
                    visit_dates.add(str(visit["date"]))
    report = stats.as_dict()
    manifest = {
        "format": MANIFEST_FORMAT_VERSION,
        "run_id": run_id,
        "chunk": chunk,
        "filters": normalize_filters(filters),
        "part": target.name,
        "part_bytes": target.stat().st_size,
        "started_at": started_at.isoformat(timespec="microseconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "visit_dates": sorted(visit_dates),
        **report,
    }
    files.write_json(manifest_target, manifest)
    result = ExtractResult(
        run_id=run_id,
        chunk=chunk,
        part_path=str(target),
        manifest_path=str(manifest_target),
        total_records=report["total_records_reported"],
        distinct_visits=report["distinct_visits"],
        pages=report["pages"],
        requests=report["requests"],
        rate_limited_429=report["rate_limited_429"],
        retries=report["retries"],
        drift_events=report["drift_events"],
        wall_seconds=report["wall_seconds"],
        visit_dates=tuple(sorted(visit_dates)),
    )
    log.info(
        "Chunk %s of run %s: %s distinct visits (%s reported) in %s pages, %.1f s, %s 429s, %s retries, "
        "%s drift events",
        chunk,
        run_id,
        result.distinct_visits,
        result.total_records,
        result.pages,
        result.wall_seconds,
        result.rate_limited_429,
        result.retries,
        result.drift_events,
    )
    return result


def _raw_line(page: Page) -> bytes:
    """One page as a raw JSON line."""
    line = {
        "offset": page.offset,
        "filters": page.filters,
        "fetched_at": page.fetched_at.isoformat(timespec="microseconds"),
        "body": page.body,
    }
    try:
        return orjson.dumps(line)
    except orjson.JSONEncodeError:  # nested beyond the 254 levels orjson writes (it reads 1,024)
        return coerce.json_text(line).encode()


def read_raw_pages(path: Path):
    """Yield the page objects of one raw part (for tests and tools; the lake has its own reader)."""
    with gzip.open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)
