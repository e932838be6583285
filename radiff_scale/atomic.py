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
