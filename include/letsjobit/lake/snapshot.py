"""One consistent state of the published lake, for a reader that needs it for minutes (the warehouse build).

``take(layout, root)`` returns a :class:`LakeSnapshot`: for each lake table, the parquet files of one
publication, plus a fingerprint of every (table, visit_date) partition, so that a later build can tell
which partitions changed since this one, and the version of each table where the lake has versions.

A publication replaces partition folders one after another and deletes the old files; a build
reading the lake itself meanwhile could see new visits with old lines, or lose a file it listed.
So the snapshot hard-links the files under ``root`` while holding the lake's publish lock: links are
taken in milliseconds and keep the files of one publication alive for the whole build, while the
next publication goes ahead. (Copies if the lake is on another file system.)
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from letsjobit import config
from letsjobit.lake import schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeSnapshot:
    """What a reader of one lake state needs: its files, partition fingerprints and table versions."""

    # lake table -> the local parquet files of this state (hive paths: .../visit_date=YYYY-MM-DD/x.parquet)
    files: Mapping[str, tuple[Path, ...]]
    # (keyed lake table, visit_date) -> a digest that changes whenever the partition's content may have
    fingerprints: Mapping[tuple[str, date], str]
    # lake table -> its version, for lakes whose tables have versions (None: this lake has none)
    versions: Mapping[str, int | None]

    @property
    def dates(self) -> set[date]:
        """Every visit_date with a partition in a keyed table."""
        return {day for _, day in self.fingerprints}


def take(layout: config.DataLayout, root: Path) -> LakeSnapshot:
    """Link the published lake's files under ``root`` (taken under the publish lock) and describe them."""
    from letsjobit.lake.publish import publish_lock

    snapshot = config.DataLayout(root)
    linked: dict[str, list[Path]] = {table: [] for table in schema.LAKE_TABLES}
    with publish_lock(layout):
        for table in schema.LAKE_TABLES:
            for source in sorted(layout.table(table).glob(f"{schema.PARTITION_COLUMN}=*/*.parquet")):
                target = snapshot.table(table) / source.parent.name / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copy2(source, target)
                linked[table].append(target)
    log.info(
        "reading a snapshot of the lake: %d files at %s", sum(len(paths) for paths in linked.values()), root
    )
    return LakeSnapshot(
        files={table: tuple(paths) for table, paths in linked.items()},
        fingerprints=partition_fingerprints(snapshot),
        versions=dict.fromkeys(schema.LAKE_TABLES),
    )


def partition_fingerprints(layout: config.DataLayout) -> dict[tuple[str, date], str]:
    """Fingerprint of each (lake table, visit_date) partition: its file names, sizes and mtimes.

    Only the keyed tables: the data issue marts are rebuilt from the whole issues table every build,
    so a change there needs no partition of visits reloaded."""
    fingerprints: dict[tuple[str, date], str] = {}
    for table in schema.TABLES:
        root = layout.table(table)
        if not root.is_dir():
            continue
        for folder in sorted(root.glob(f"{schema.PARTITION_COLUMN}=*")):
            day = _partition_date(folder)
            paths = sorted(folder.glob("*.parquet"))
            if day is None or not paths:
                continue
            digest = hashlib.sha256()
            for path in paths:
                stat = path.stat()
                digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
            fingerprints[(table, day)] = digest.hexdigest()[:16]
    return fingerprints


def _partition_date(folder: Path) -> date | None:
    value = folder.name.split("=", 1)[1]
    try:
        return date.fromisoformat(value)
    except ValueError:
        log.warning("lake folder %s is not a visit_date partition; it is read anyway", folder)
        return None
