"""Raw pages across hosts: a run's raw parts, also in the lake's store, so any worker can stage the run.

Extract tasks are mapped across workers and write their chunk's part into their own data directory
(`layout.raw_run(run)`); the stage task may run on another host. After a chunk is written, ``push`` puts
its part and manifest under `<lake_url>/_raw/run_id=<run>/` (the part first, the manifest last: a
manifest in the store means its part is whole there), and ``fetch`` brings the run's parts this host
lacks (or holds in another version) into its raw folder before staging. ``prune`` keeps the store's
run folders to the newest runs, as `publish.prune_runs` does on disk, and ``prune_local`` does the same
for the raw folder of a host that extracts but never publishes (nothing else would prune it).

For a local lake all three do nothing: a local lake is one host's, and its raw folder is already on it.
The store is reached with the lake's own file system (`tables.filesystem`), so an S3 lake's settings
(the AWS variables) serve both.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pyarrow.fs as pa_fs

from letsjobit import config, files
from letsjobit.lake import tables

log = logging.getLogger(__name__)

RAW_PREFIX = "_raw"  # beside the lake tables: not a Delta table, never read by lake readers
_MANIFEST_PREFIX, _MANIFEST_SUFFIX = "manifest-", ".json"


def _run_folder(layout: config.DataLayout) -> tuple[pa_fs.FileSystem, str] | None:
    """The store and its `_raw` root, or None for a local lake (nothing to share)."""
    if layout.lake_location.is_local:
        return None
    store, lake_root = tables.filesystem(layout.lake_location)
    return store, f"{lake_root}/{RAW_PREFIX}"


def push(layout: config.DataLayout, run_id: str, chunk: str) -> None:
    """Copy one written chunk (its part, then its manifest) into the store; a re-run replaces both."""
    found = _run_folder(layout)
    if found is None:
        return
    store, raw_root = found
    part, manifest = layout.raw_part(run_id, chunk), layout.raw_manifest(run_id, chunk)
    remote = f"{raw_root}/{part.parent.name}"
    for path in (part, manifest):  # the manifest last: it marks the part as whole in the store
        with open(path, "rb") as source, store.open_output_stream(f"{remote}/{path.name}") as target:
            shutil.copyfileobj(source, target, 2**20)
    log.info(
        "Raw part %s of run %s copied to %s/%s", chunk, run_id, layout.lake_location.redacted, RAW_PREFIX
    )


def fetch(layout: config.DataLayout, run_id: str) -> int:
    """Download the run's parts whose manifest differs from this host's (or is missing); how many."""
    found = _run_folder(layout)
    if found is None:
        return 0
    store, raw_root = found
    local_dir = layout.raw_run(run_id)
    remote = f"{raw_root}/{local_dir.name}"
    listing = store.get_file_info(pa_fs.FileSelector(remote, allow_not_found=True))
    manifests = sorted(
        info.base_name
        for info in listing
        if info.type == pa_fs.FileType.File
        and info.base_name.startswith(_MANIFEST_PREFIX)
        and info.base_name.endswith(_MANIFEST_SUFFIX)
    )
    fetched = 0
    for name in manifests:
        chunk = name.removeprefix(_MANIFEST_PREFIX).removesuffix(_MANIFEST_SUFFIX)
        with store.open_input_stream(f"{remote}/{name}") as source:
            manifest_bytes = source.read()
        local_manifest = layout.raw_manifest(run_id, chunk)
        if local_manifest.exists() and local_manifest.read_bytes() == manifest_bytes:
            continue
        part = layout.raw_part(run_id, chunk)
        expected_bytes = json.loads(manifest_bytes)["part_bytes"]
        _download(store, f"{remote}/{part.name}", part)
        if part.stat().st_size != expected_bytes:
            raise OSError(
                f"raw part {part.name} of run {run_id} in the store has {part.stat().st_size} bytes,"
                f" its manifest says {expected_bytes}"
            )
        files.write_bytes(local_manifest, manifest_bytes)
        fetched += 1
    log.info(
        "Run %s: %d raw part(s) fetched from the store, %d listed there", run_id, fetched, len(manifests)
    )
    return fetched


def _download(store: pa_fs.FileSystem, remote: str, target: Path) -> None:
    with store.open_input_stream(remote) as source, files.atomic_path(target, durable=True) as temporary:
        with open(temporary, "wb") as sink:
            shutil.copyfileobj(source, sink, 2**20)


def prune(
    layout: config.DataLayout, keep: int, pending: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Delete the store's raw run folders but the ``keep`` newest (by their newest file) and ``pending``."""
    found = _run_folder(layout)
    if found is None:
        return []
    store, raw_root = found
    newest: dict[str, float] = {}
    for info in store.get_file_info(pa_fs.FileSelector(raw_root, recursive=True, allow_not_found=True)):
        if info.type != pa_fs.FileType.File:
            continue
        folder = info.path.removeprefix(f"{raw_root}/").split("/", 1)[0]
        stamp = info.mtime.timestamp() if info.mtime else 0.0
        newest[folder] = max(newest.get(folder, 0.0), stamp)
    # Object stores keep whole seconds: the name breaks a tie (Airflow's run ids start with their time).
    ranked = sorted(newest, key=lambda folder: (newest[folder], folder), reverse=True)
    removed = []
    for folder in ranked[keep:]:
        if folder.removeprefix("run_id=") in pending:
            continue
        store.delete_dir(f"{raw_root}/{folder}")
        removed.append(folder)
        log.info("Pruned %s/%s/%s", layout.lake_location.redacted, RAW_PREFIX, folder)
    return removed


def prune_local(layout: config.DataLayout, keep: int) -> list[Path]:
    """This host's raw run folders but the ``keep`` newest (by modification time); an object-store lake only.

    A host whose workers only extract never runs ``publish`` (whose ``prune_runs`` keeps the owning
    host's disk in bounds), so its raw folder would otherwise grow with every run. Every part in it was
    pushed to the store, which keeps the runs a pending publication needs.
    """
    if layout.lake_location.is_local or not layout.raw.is_dir():
        return []
    runs = sorted(
        (path for path in layout.raw.iterdir() if path.is_dir() and not path.name.startswith(".")),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for path in runs[keep:]:
        shutil.rmtree(path, ignore_errors=True)  # another task of this host may be pruning it too
        log.info("Pruned %s (its parts are in the store)", path)
    return runs[keep:]
