"""One consistent state of the published lake, for a reader that needs it for minutes (the warehouse build).

``take(layout, root)`` returns a :class:`LakeSnapshot`: the published Delta version of each lake table
(the lake's publication record names them, so the four tables are one publication), the local parquet
files of that version, and a fingerprint of every (table, visit_date) partition, so that a later build
can tell which partitions changed since this one.

Why the files stay readable for the whole build:

- **Local lake.** A version's files are the table's own files (``<table>/visit_date=.../part-*.parquet``,
  absolute paths). Delta never rewrites a file in place: a publication adds new files and marks the
  old ones removed in its commit, and only ``vacuum`` deletes them, once no version of the last
  ``config.LAKE_RETENTION`` (7 days) references them. A build holds a version for at most its task's
  2-hour timeout, far inside that.
- **Object-store lake.** DuckDB reads local files, so the version's files are copied to a cache under the
  worker's data dir (``layout.lake_cache``), keyed by their path in the table: a file name is never
  reused for other content, so a file cached once is current for good, and an incremental build
  downloads only the files published since. The cache then drops the files that are no longer in the
  version. The snapshot hands out hard links of the cached files under ``root`` (the build's own
  folder on the same disk), so a later ``take`` pruning the cache cannot pull a file from under a build
  still reading it; the cache's lock makes downloading, linking and pruning one step.

A fingerprint is a digest of the partition's files (path, size, modification time): a commit that
changes a partition replaces its files by new ones with new names, so the digest changes with it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.parse
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
from filelock import FileLock

from letsjobit import config, files
from letsjobit.lake import schema, tables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeSnapshot:
    """What a reader of one lake state needs: its files, partition fingerprints and table versions."""

    # lake table -> the local parquet files of this state (hive paths: .../visit_date=YYYY-MM-DD/x.parquet)
    files: Mapping[str, tuple[Path, ...]]
    # (keyed lake table, visit_date) -> a digest that changes whenever the partition's content may have
    fingerprints: Mapping[tuple[str, date], str]
    # lake table -> its Delta version in this state (None: the table was never published)
    versions: Mapping[str, int | None]
    # where the lake is (credentials redacted) and the run whose publication this state is (None: none yet)
    location: str = ""
    run_id: str | None = None

    @property
    def dates(self) -> set[date]:
        """Every visit_date with a partition in a keyed table."""
        return {day for _, day in self.fingerprints}


@dataclass(frozen=True)
class _DataFile:
    path: str  # relative to the table's root, as the Delta log names it (decoded)
    size: int
    modified: int  # milliseconds, from the add action
    day: date | None


def take(layout: config.DataLayout, root: Path) -> LakeSnapshot:
    """The published lake state: versions, local files (copied under ``root`` if the lake is remote),
    partition fingerprints."""
    published = tables.read_state(layout.lake_location).published
    versions = tables.versions_of(published)
    data_files = {
        table: _data_files(layout, table, version) if version is not None else []
        for table, version in versions.items()
    }
    location = layout.lake_location
    if location.is_local:
        local = {
            table: tuple(location.local_root / table / item.path for item in items)
            for table, items in data_files.items()
        }
    else:
        local = _local_copies(layout, root, data_files)
    log.info(
        "reading the lake at %s, versions %s: %d files",
        location.redacted, versions, sum(len(paths) for paths in local.values()),
    )  # fmt: skip
    return LakeSnapshot(
        files=local,
        fingerprints=_fingerprints(data_files),
        versions=versions,
        location=location.redacted,
        run_id=published.run_id if published else None,
    )


def _data_files(layout: config.DataLayout, table: str, version: int) -> list[_DataFile]:
    """The files of a table version, from its add actions."""
    actions = pa.table(tables.open_table(layout, table, version).get_add_actions(flatten=True))
    columns = [
        actions.column(name).to_pylist()
        for name in ("path", "size_bytes", "modification_time", f"partition.{schema.PARTITION_COLUMN}")
    ]
    return sorted(
        (
            _DataFile(urllib.parse.unquote(path), size, _milliseconds(modified), day)
            for path, size, modified, day in zip(*columns, strict=True)
        ),
        key=lambda item: item.path,
    )


def _milliseconds(modified) -> int:
    return modified if isinstance(modified, int) else int(modified.timestamp() * 1000)


def _fingerprints(data_files: Mapping[str, list[_DataFile]]) -> dict[tuple[str, date], str]:
    """Fingerprint of each (keyed table, visit_date) partition: its files' paths, sizes and times.

    Only the keyed tables: the data issue marts are rebuilt from the whole issues table every build,
    so a change there needs no partition of visits reloaded."""
    digests: dict[tuple[str, date], Any] = defaultdict(hashlib.sha256)
    for table in schema.TABLES:
        for item in data_files.get(table, ()):
            if item.day is not None:
                digests[(table, item.day)].update(f"{item.path}:{item.size}:{item.modified}\n".encode())
    return {key: digest.hexdigest()[:16] for key, digest in sorted(digests.items())}


def _local_copies(
    layout: config.DataLayout, root: Path, data_files: Mapping[str, list[_DataFile]]
) -> dict[str, tuple[Path, ...]]:
    """Download the files not cached yet, link every file of the version under ``root``, prune the rest."""
    cache = layout.lake_cache
    layout.state.mkdir(parents=True, exist_ok=True)
    downloaded = pruned = 0
    linked: dict[str, tuple[Path, ...]] = {}
    store, lake_root = tables.filesystem(layout.lake_location)
    with FileLock(str(layout.state / "lake-cache.lock")):
        for table, items in data_files.items():
            paths = []
            for item in items:
                cached = cache / table / item.path
                if not cached.exists() or cached.stat().st_size != item.size:
                    remote = f"{lake_root}/{table}/{item.path}"
                    with store.open_input_stream(remote) as source, files.atomic_path(cached) as temporary:
                        with open(temporary, "wb") as target:
                            shutil.copyfileobj(source, target, 2**20)
                    downloaded += 1
                target = root / table / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                files.link_or_copy(cached, target)
                paths.append(target)
            linked[table] = tuple(paths)
            keep = {cache / table / item.path for item in items}
            for path in sorted((cache / table).rglob("*.parquet")) if (cache / table).is_dir() else ():
                if path not in keep:
                    path.unlink()
                    pruned += 1
            for folder in (cache / table).glob("*/") if (cache / table).is_dir() else ():
                if folder.is_dir() and not any(folder.iterdir()):
                    os.rmdir(folder)
    log.info("lake cache %s: %d files downloaded, %d pruned", cache, downloaded, pruned)
    return linked
