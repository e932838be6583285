"""Whole files or none: every file the project writes goes through here.

A run can be killed at any instant and resumed, and a retried task may write the same
file as its first attempt; so a file is written under a unique temporary name beside
its target and renamed into place only once complete (``os.replace`` is atomic on one
file system). Readers then see a complete file or no file, never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radiff_scale.errors import RadiffError


def replace_when_done(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write through ``write(tmp_path)`` and rename into place only once it has succeeded, so
    ``path`` either holds a complete file or none (a failed write leaves no temporary behind).
    The temporary name is unique per call: a retried task may write the same file meanwhile."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON (sorted keys, indented) whole or not at all."""
    return replace_when_done(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` whole or not at all."""
    return replace_when_done(path, lambda tmp: tmp.write_bytes(data))


def replace_dir_when_done(final: Path, write: Callable[[Path], object]) -> Path:
    """Build a folder through ``write(tmp)`` and rename it to ``final`` only once complete.

    Folders, unlike files, cannot be renamed over a non-empty target, so an older
    ``final`` is removed just before the rename; the temporary name is unique per call.
    """
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}")
    try:
        write(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def check_output_path(out: str | Path, need_bytes: int = 0, *, folder: bool = True, what: str = "the output") -> None:
    """Refuse, before any work, an output that cannot be written: under a file, in a folder
    without write permission, or on a disk with fewer than ``need_bytes`` free bytes.

    ``folder``: ``out`` is a folder to create or fill (an existing file there is refused);
    otherwise a file, which may exist (replacing it is the caller's decision). ``what``
    names the product in the disk-space message.
    """
    out = Path(out)
    probe = out if folder else out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise RadiffError(f"cannot create {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RadiffError(f"cannot write {out}: no write permission in {probe}")
    if need_bytes > 0:
        free = shutil.disk_usage(probe).free
        if need_bytes > free:
            raise RadiffError(f"{what} needs {_size(need_bytes)} in {out}, but only {_size(free)} are free")


def _size(n: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (``4.5 MiB``, ``18.0 TiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
