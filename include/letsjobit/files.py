"""Atomic writes: every file and folder the pipeline publishes appears whole or not at all.

A write goes to a hidden temporary name beside its target (a leading "." keeps a crashed write's
leftover out of readers that skip hidden files, like pyarrow.dataset) and is renamed over the target
in one step; on any error the temporary is removed and the target is as it was.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_path(target: Path) -> Path:
    """A hidden name beside ``target``, unique per process, thread and call."""
    return target.with_name(
        f".{target.name}.{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}.tmp"
    )


@contextmanager
def atomic_path(target: Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` in one rename.

    ``durable``: fsync the file before the rename, so that after a power loss the target holds either
    the old or the whole new content (for what a later run relies on, like raw pages).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(target)
    try:
        yield temporary
        if durable:
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes(target: Path, content: bytes, *, durable: bool = False) -> None:
    with atomic_path(target, durable=durable) as temporary:
        temporary.write_bytes(content)


def write_text(target: Path, content: str) -> None:
    write_bytes(target, content.encode())


def write_json(target: Path, payload: Any, *, indent: bool = True) -> None:
    """JSON (standard library, so that every process can use this module); dates and datetimes as ISO
    strings, anything else json cannot encode (paths, UUIDs) by ``str``."""
    text = json.dumps(payload, indent=2 if indent else None, default=_json_default)
    write_bytes(target, text.encode())


def _json_default(value: Any) -> str:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


# --- folders -------------------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc: Any = None


def exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the system cannot."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.renameat2  # noqa: B018 - probe: glibc >= 2.28
        except (OSError, AttributeError):
            _libc = False
    if _libc is False:
        return False
    result = _libc.renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(code, f"cannot exchange {first} and {second}: {os.strerror(code)}")


def replace_dir(new: Path, target: Path, trash: Path | None = None) -> None:
    """Make folder ``new`` visible as ``target`` in one step; the old ``target`` is deleted afterwards.

    Where the system cannot exchange two paths atomically, the old folder is renamed to ``trash``
    (default: a hidden name beside it) first, and a reader may see no folder for a moment.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.rename(new, target)
        return
    if exchange(new, target):
        shutil.rmtree(new)  # `new` now names the previous content
        return
    trash = trash or target.with_name(f".{target.name}-old-{uuid.uuid4().hex[:8]}")
    os.rename(target, trash)
    os.rename(new, target)
    shutil.rmtree(trash)


def link_or_copy(source: Path | str, target: Path | str) -> None:
    """A hard link where the file system allows one, else a copy; the source stays as it is."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_tree(source: Path, destination: Path) -> None:
    """Copy a folder tree by hard links (same file system) or copies."""
    shutil.copytree(source, destination, copy_function=link_or_copy)
