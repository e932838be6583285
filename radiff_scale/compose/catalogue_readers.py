"""Catalogue files read into plain columns: Parquet, CSV, FITS tables and whitespace text.

Users bring catalogues from many tools; this module only turns a file into
``{column name: 1-D array}`` and says in one line why a file cannot be read, so that
what the columns *mean* (which is RA, which is a class) is decided in one place,
:mod:`radiff_scale.compose.positions`, whatever the format. Text catalogues follow
SDC1's truth catalogue: numbers only, named by one header line or by ``COLUMNn:``
description lines.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from radiff_scale.errors import RadiffError

#: File suffixes of each catalogue reader.
SUFFIXES = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".fits": "fits", ".fit": "fits", ".fts": "fits",
    ".fits.gz": "fits", ".txt": "text", ".dat": "text", ".cat": "text",
}


def read_catalogue_columns(path: str | Path) -> dict[str, np.ndarray]:
    """Every 1-D column of a catalogue file, by its name in the file."""
    path = Path(path)
    if not path.is_file():
        raise RadiffError(f"catalogue {path}: no such file")
    name = path.name.lower()
    kind = next((kind for suffix, kind in SUFFIXES.items() if name.endswith(suffix)), None)
    if kind is None:
        raise RadiffError(f"catalogue {path}: unknown format (expected .fits, .csv, .parquet or a .txt table)")
    try:
        data = {"parquet": _read_parquet, "csv": _read_csv, "fits": _read_fits, "text": _read_text}[kind](path)
    except RadiffError:
        raise
    except Exception as exc:  # noqa: BLE001 -- any reader failure is a bad input file, said in one line
        message = " ".join(str(exc).split())[:200]
        raise RadiffError(f"catalogue {path}: cannot read it as {kind} ({type(exc).__name__}: {message})") from None
    if not data:
        raise RadiffError(f"catalogue {path}: no columns")
    return data


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return {n: table.column(n).to_numpy(zero_copy_only=False) for n in table.column_names}


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(path)
    return {n: table.column(n).to_numpy(zero_copy_only=False) for n in table.column_names}


def _read_fits(path: Path) -> dict[str, np.ndarray]:
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-standard units in real catalogues are not our concern here
        with fits.open(path, memmap=False) as hdul:
            table = next((h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU))), None)
            if table is None:
                raise RadiffError(f"catalogue {path}: no table extension in this FITS file")
            return {col.name: np.array(table.data[col.name]) for col in table.columns
                    if np.ndim(table.data[col.name]) == 1}


_SDC_COLUMN = re.compile(r"^COLUMN(\d+):\s*(.*?)\s*(\[|$)")


def _read_text(path: Path) -> dict[str, np.ndarray]:
    """Numbers only, below one header line (or SDC1-style ``COLUMNn:`` descriptions, whose
    notes may run over several lines), and one number per column in every row: a line that
    does not fit is an error, never skipped."""
    described: dict[int, str] = {}
    header: list[str] | None = None
    rows: list[list[float]] = []
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        raise RadiffError(f"catalogue {path}: a binary file, not a text catalogue (NUL bytes in its first 8 kB)")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            match = _SDC_COLUMN.match(text)
            if match and not rows:
                described[int(match.group(1))] = match.group(2)
                continue
            words = text.split()
            try:
                rows.append([float(w) for w in words])
            except ValueError:
                if rows or (header is not None and not described):  # one header line, or SDC1-style notes
                    raise RadiffError(f"catalogue {path}: line {number} is not all numbers (text catalogues "
                                      "hold numbers only; use CSV for class names)") from None
                if header is None:
                    header = words
                continue
            width = len(described) or (len(header) if header else 0)
            if width and len(words) != width:
                raise RadiffError(f"catalogue {path}: line {number} has {len(words)} values for {width} columns")
    names = [described[i] for i in sorted(described)] if described else header
    if not names:
        raise RadiffError(f"catalogue {path}: no column names (a header line or COLUMNn: lines)")
    if not rows:
        raise RadiffError(f"catalogue {path}: no data rows")
    values = np.array(rows, dtype=np.float64)
    return {name: values[:, i] for i, name in enumerate(names)}
