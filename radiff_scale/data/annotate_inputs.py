"""Which input files ``radiff-scale annotate`` reads, and the sample names they give.

Inputs are files or folders of FITS files, optionally narrowed by name lists
(``--include-names``, ``--exclude-names``) that may name a file with or without its
FITS suffix, as survey catalogues do.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Iterable

from radiff_scale.data.annotate_config import AnnotateConfig
from radiff_scale.errors import RadiffError

#: File name endings accepted as FITS inputs (lower-cased comparison).
FITS_SUFFIXES = (".fits.gz", ".fits", ".fit", ".fit.gz", ".fts")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


def strip_fits_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in FITS_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def sample_name(file_name: str) -> str:
    """A sample name allowed by sc_format (letters, digits, '.', '_', '-') from an input file name."""
    name = _UNSAFE_CHARS.sub("_", strip_fits_suffix(file_name))
    return name if name and not name.startswith((".", "-")) else f"_{name}"


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files and folders (sorted, non-recursive FITS files) as a list of files, duplicates dropped."""
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_fits_name(p.name))
            if not found:
                raise RadiffError(f"{path}: folder holds no FITS file (.fits, .fits.gz, .fit)")
        elif path.is_file():
            found = [path]
        else:
            raise RadiffError(f"{path}: no such file or folder")
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    if not out:
        raise RadiffError("no input files given")
    return out


def read_name_list(path: str | os.PathLike[str]) -> list[str]:
    """Names of a list file: one per line, '#' starts a comment, blank lines ignored."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RadiffError(f"{p}: cannot read name list ({exc})") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def _name_keys(path: Path) -> set[str]:
    """The names a list may use for an input: the file name, or the name without its FITS suffix."""
    return {path.name, strip_fits_suffix(path.name)}


def match_names(files: list[Path], list_path: str, option: str, required: bool) -> set[Path]:
    """Inputs named in a list file. Unmatched names warn; a list matching nothing fails when ``required``."""
    names = read_name_list(list_path)
    matched = {f for f in files if _name_keys(f) & set(names)}
    known = set().union(*(_name_keys(f) for f in files))
    unmatched = [n for n in names if n not in known]
    if required and not matched:
        raise RadiffError(f"{option} {list_path}: none of its {len(names)} names matches an input file")
    if unmatched:
        print(f"radiff-scale: warning: {option} {list_path}: {len(unmatched)} names match no input "
              f"(first: {unmatched[0]})", file=sys.stderr)
    return matched


def select_inputs(files: list[Path], config: AnnotateConfig) -> list[Path]:
    """Apply ``--include-names`` / ``--exclude-names`` (input order kept)."""
    if config.include_names:
        keep = match_names(files, config.include_names, "--include-names", required=True)
        files = [f for f in files if f in keep]
    if config.exclude_names:
        drop = match_names(files, config.exclude_names, "--exclude-names", required=True)
        files = [f for f in files if f not in drop]
    if not files:
        raise RadiffError("no input file left after --include-names/--exclude-names")
    return files
