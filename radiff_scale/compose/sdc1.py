"""SKA Science Data Challenge 1 (SDC1) catalogues: our truth written in SDC1's format, SDC1 files read.

SDC1 truth and submission catalogues are whitespace text with 12 columns (``SDC1_COLUMNS``,
the order of the official scorer, ``ska_sdc.sdc1.dc_defns.CAT_COLUMNS``); the released
truth files add SELECTION, x and y and describe the columns in ``COLUMNn:`` lines. The
mapping from our truth catalogue (``docs/truth.md``) is documented in the "SDC1
catalogue" section there; in short:

- our class 3 extended -> SDC1 class 1 (SS-AGN, lobed steep-spectrum AGN), size code 1
  (LAS: sizes are converted from FWHM with the scorer's own factor 5 / 2.355);
- our class 2 compact -> SDC1 class 3 (SFG), size code 2 (Gaussian FWHM);
- our class 1 spurious (imaging artefacts, not sources) and objects with no positive flux
  are left out.

PA: SDC1 measures it "clockwise from the longitude-wise direction" (from the RA axis,
clockwise on a north-up image), ours is east of north, so ``pa_sdc1 = (90 - pa) mod 180``
(the same formula converts back). RA is written as SDC1 does, in (-180, 180]: the
scorer wraps RA > 180 the same way before it compares anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from radiff_scale.atomic import check_output_path, replace_when_done
from radiff_scale.classes import SourceClass
from radiff_scale.compose.catalogue_readers import SUFFIXES, read_catalogue_columns
from radiff_scale.errors import RadiffError

#: The 12 columns of an SDC1 truth or submission catalogue, in the scorer's order.
SDC1_COLUMNS: tuple[str, ...] = (
    "id", "ra_core", "dec_core", "ra_cent", "dec_cent", "flux", "core_frac", "b_maj", "b_min", "pa", "size", "class",
)
#: Further columns of SDC1's released truth files, returned by ``read_sdc1`` when present.
EXTRA_COLUMNS: tuple[str, ...] = ("selection", "x", "y")
_INT_COLUMNS = frozenset({"id", "size", "class", "selection"})

#: Frequencies (MHz) the scorer accepts; they set its nominal beam, 0.25" * 1400 / freq.
SDC1_FREQS_MHZ: tuple[int, ...] = (560, 1400, 9200)

#: SDC1 size codes and classes.
SIZE_LAS, SIZE_GAUSSIAN, SIZE_EXPONENTIAL = 1, 2, 3
CLASS_SS_AGN, CLASS_FS_AGN, CLASS_SFG = 1, 2, 3

#: Gaussian FWHM -> largest angular scale, the scorer's ``gauss_to_las`` (LAS = 5 sigma).
GAUSS_TO_LAS = 5.0 / 2.355

#: Our class id -> (SDC1 class, SDC1 size code). Spurious objects are not sources: left out.
CLASS_MAP: dict[int, tuple[int, int]] = {
    int(SourceClass.EXTENDED): (CLASS_SS_AGN, SIZE_LAS),
    int(SourceClass.COMPACT): (CLASS_SFG, SIZE_GAUSSIAN),
}

# Column names by normalised spelling (lower case, letters and digits only): ours, the
# scorer's and SDC1's ("RA (core)", "Core frac", "BMAJ", ...).
_ALIASES = {
    "id": "id", "racore": "ra_core", "deccore": "dec_core", "racent": "ra_cent", "racentroid": "ra_cent",
    "deccent": "dec_cent", "deccentroid": "dec_cent", "flux": "flux", "corefrac": "core_frac",
    "bmaj": "b_maj", "bmin": "b_min", "pa": "pa", "size": "size", "class": "class",
    "selection": "selection", "x": "x", "y": "y",
}
_ALIAS_KEYS = sorted(_ALIASES, key=len, reverse=True)  # longest first: "racentroid" before "racent"
_COLUMN_LINE = re.compile(r"^COLUMN\d+:")
_TEXT_SUFFIXES = tuple(s for s, kind in SUFFIXES.items() if kind == "text")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# ----------------------------------------------------------------------------- our truth -> SDC1


def truth_to_sdc1(table: pa.Table) -> dict[str, np.ndarray]:
    """Our truth catalogue (docs/truth.md columns) as SDC1 columns, in table order.

    Rows kept: class 3 extended (-> SDC1 class 1 SS-AGN, size 1 LAS) and class 2 compact
    (-> class 3 SFG, size 2 Gaussian) with ``flux_jy > 0``. Left out: class 1 spurious
    (imaging artefacts, which a finder should not report as sources) and objects with no
    positive flux (``normalisation`` "abs_peak"/"zero" in docs/truth.md; the scorer drops
    them anyway).

    - ``ra_cent``/``dec_cent``: our ``ra``/``dec`` (flux-weighted centroid);
      ``ra_core``/``dec_core``: ``ra_peak``/``dec_peak`` (the brightest pixel) when the
      table has them, else the centroid. RA > 180 is written as RA - 360, as SDC1 does.
    - ``flux``: ``flux_jy``; ``core_frac``: 0 (we do not separate a core from its lobes).
    - ``b_maj``/``b_min``/``pa``: ``src_major_arcsec``/``src_minor_arcsec``/``src_pa_deg``
      (intrinsic, beam deconvolved) when present, else ``major_arcsec``/``minor_arcsec``/
      ``pa_deg`` (the mask's equivalent Gaussian). FWHM for size 2; times ``GAUSS_TO_LAS``
      for size 1. PA converted to SDC1's convention, ``(90 - pa) mod 180``, in [0, 180).

    A row SDC1 cannot hold (no sky position: a map without WCS; a NaN size) is a
    RadiffError naming the object.
    """
    names = set(table.column_names)
    need = ("id", "class", "ra", "dec", "flux_jy", "major_arcsec", "minor_arcsec", "pa_deg")
    missing = [n for n in need if n not in names]
    if missing:
        raise RadiffError(f"truth catalogue lacks column(s) {', '.join(missing)} needed for SDC1 (docs/truth.md)")

    def col(name: str, fallback: str | None = None) -> np.ndarray:
        use = name if name in names or fallback is None else fallback
        return np.asarray(table.column(use).to_numpy(zero_copy_only=False), dtype=np.float64)

    ids = np.asarray(table.column("id").to_numpy(zero_copy_only=False), dtype=np.int64)
    cls = np.asarray(table.column("class").to_numpy(zero_copy_only=False), dtype=np.int64)
    unknown = ~np.isin(cls, [int(c) for c in SourceClass if c != SourceClass.BACKGROUND])
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise RadiffError(f"truth catalogue: object id {ids[i]}, column class: unknown class id {cls[i]}")
    flux = col("flux_jy")
    keep = np.isin(cls, list(CLASS_MAP)) & (flux > 0)
    sdc1_class = np.array([CLASS_MAP[int(c)][0] for c in cls[keep]], dtype=np.int64)
    size = np.array([CLASS_MAP[int(c)][1] for c in cls[keep]], dtype=np.int64)
    scale = np.where(size == SIZE_LAS, GAUSS_TO_LAS, 1.0)
    pa_sdc1 = (90.0 - col("src_pa_deg", "pa_deg")[keep]) % 180.0
    out = {
        "id": ids[keep],
        "ra_core": _wrap_ra(col("ra_peak", "ra")[keep]),
        "dec_core": col("dec_peak", "dec")[keep],
        "ra_cent": _wrap_ra(col("ra")[keep]),
        "dec_cent": col("dec")[keep],
        "flux": flux[keep],
        "core_frac": np.zeros(int(keep.sum())),
        "b_maj": col("src_major_arcsec", "major_arcsec")[keep] * scale,
        "b_min": col("src_minor_arcsec", "minor_arcsec")[keep] * scale,
        "pa": np.where(pa_sdc1 >= 180.0, pa_sdc1 - 180.0, pa_sdc1),
        "size": size,
        "class": sdc1_class,
    }
    if out["id"].size and not np.isfinite(out["ra_cent"]).any():
        raise RadiffError("truth catalogue has no sky positions (a map without a WCS): SDC1 catalogues need RA/Dec")
    _check(out, "truth catalogue", lambda i: f"object id {out['id'][i]}")
    return out


def _wrap_ra(ra: np.ndarray) -> np.ndarray:
    """RA in (-180, 180], as SDC1 writes it (and as its scorer wraps RA > 180)."""
    return np.where(ra > 180.0, ra - 360.0, ra)


# ----------------------------------------------------------------------------- checks


def _check(columns: Mapping[str, np.ndarray], where: str, row: Callable[[int], str]) -> None:
    """Raise a one-line RadiffError for the first bad row (file order) of the SDC1 ``columns``."""
    finite = {name: np.isfinite(np.asarray(columns[name], dtype=np.float64)) for name in SDC1_COLUMNS}
    v = {name: np.asarray(columns[name], dtype=np.float64) for name in SDC1_COLUMNS}
    with np.errstate(invalid="ignore"):
        rules: list[tuple[str, np.ndarray, str]] = [
            ("id", ~finite["id"] | (v["id"] != np.round(v["id"])), "the id must be an integer"),
            ("ra_core", ~finite["ra_core"], "RA must be a finite number of degrees"),
            ("dec_core", ~finite["dec_core"] | (np.abs(v["dec_core"]) > 90), "Dec must be finite, in [-90, 90] deg"),
            ("ra_cent", ~finite["ra_cent"], "RA must be a finite number of degrees"),
            ("dec_cent", ~finite["dec_cent"] | (np.abs(v["dec_cent"]) > 90), "Dec must be finite, in [-90, 90] deg"),
            ("flux", np.isnan(v["flux"]), "the flux is NaN"),
            ("flux", ~finite["flux"] | (v["flux"] < 0), "the flux is negative or infinite (must be > 0 Jy)"),
            ("flux", v["flux"] == 0, "the flux is 0 (must be > 0 Jy)"),
            ("core_frac", ~finite["core_frac"] | (v["core_frac"] < 0), "the core fraction must be finite, >= 0"),
            ("b_maj", ~finite["b_maj"] | (v["b_maj"] < 0), "the size must be finite, >= 0 arcsec"),
            ("b_min", ~finite["b_min"] | (v["b_min"] < 0), "the size must be finite, >= 0 arcsec"),
            ("pa", ~finite["pa"], "the PA must be a finite number of degrees"),
            ("size", ~np.isin(v["size"], [1, 2, 3]), "the size code must be 1 (LAS), 2 (Gaussian) or 3 (exponential)"),
            ("class", ~np.isin(v["class"], [1, 2, 3]), "the class must be 1 (SS-AGN), 2 (FS-AGN) or 3 (SFG)"),
        ]
    worst: tuple[int, str, str] | None = None
    for name, bad, why in rules:
        idx = np.flatnonzero(bad)
        if idx.size and (worst is None or idx[0] < worst[0]):
            worst = (int(idx[0]), name, why)
    if worst is None:
        ids = v["id"]
        order = np.argsort(ids, kind="stable")
        dup = np.flatnonzero(ids[order][1:] == ids[order][:-1])
        if dup.size:
            first, again = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
            worst = (again, "id", f"id {int(ids[again])} repeats {row(first)} (ids must be unique)")
    if worst is not None:
        i, name, why = worst
        raise RadiffError(f"{where}: {row(i)}, column {name}: {why} (value {float(v[name][i])!r})")


# ----------------------------------------------------------------------------- writing


def write_sdc1(table: pa.Table | Mapping[str, Any], path: str | Path) -> Path:
    """Write an SDC1 catalogue: a header line of ``SDC1_COLUMNS`` names, then one row per source.

    ``table``: our truth catalogue (converted by ``truth_to_sdc1``) or SDC1 columns (e.g.
    from ``read_sdc1``). Floats are written as the shortest text that reads back to the
    same double and every column is right-aligned to its widest entry, so the same table
    gives the same bytes and ``read_sdc1`` returns exactly the values written. Written
    under a temporary name and renamed when complete. The scorer reads it with
    ``Sdc1Scorer.from_txt(..., sub_skiprows=1, truth_skiprows=1)`` (the header line).
    """
    path = Path(path)
    if isinstance(table, pa.Table):
        columns = truth_to_sdc1(table)
    else:
        missing = [n for n in SDC1_COLUMNS if n not in table]
        if missing:
            raise RadiffError(f"SDC1 columns for {path}: no column(s) {', '.join(missing)}")
        columns = {n: np.asarray(table[n]) for n in SDC1_COLUMNS}
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise RadiffError(f"SDC1 columns for {path}: columns of different lengths {sorted(lengths)}")
        _check(columns, f"SDC1 columns for {path}", lambda i: f"row {i + 1}")
    text = _format(columns)
    check_output_path(path, len(text), folder=False, what="the SDC1 catalogue")
    path.parent.mkdir(parents=True, exist_ok=True)
    return replace_when_done(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))


def _format(columns: Mapping[str, np.ndarray]) -> str:
    cells = []
    for name in SDC1_COLUMNS:
        values = np.asarray(columns[name])
        if name in _INT_COLUMNS:
            cells.append([name] + [str(int(x)) for x in values])
        else:
            cells.append([name] + [repr(float(x)) for x in values])
    widths = [max(len(c) for c in column) for column in cells]
    lines = (" ".join(c.rjust(w) for c, w in zip(row, widths)) for row in zip(*cells))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- reading


def read_sdc1(path: str | Path) -> dict[str, np.ndarray]:
    """An SDC1 truth or submission catalogue, by SDC1 column name (``SDC1_COLUMNS``, plus
    ``selection``/``x``/``y`` when the file has them; id, size, class and selection as int64).

    Columns are named by ``COLUMNn:`` lines (SDC1's truth files), by one header line (ours,
    the scorer's names, or SDC1's "ID RA (core) ... x y"), matched by normalised name
    ("RA (core)" -> ``ra_core``), or, with no header at all, by position (12 columns: a
    submission; 15: a truth file). Values are returned as written (RA is not wrapped).

    Every problem is a one-line RadiffError naming the file, the column and the row, as
    "data row N" (1-based, counting data rows only) with its "file line M": a missing
    column, NaN, zero or negative flux, negative sizes, RA/Dec not finite or Dec outside
    [-90, 90], bad size or class codes, repeated ids, and binary (non-UTF-8 or NUL) files.
    """
    path = Path(path)
    where = f"SDC1 catalogue {path}"
    if not path.is_file():
        raise RadiffError(f"{where}: no such file")
    raw = path.read_bytes()
    _refuse_binary(raw, where)
    # Universal newlines, as open() splits them, so rows are counted as read_catalogue_columns counts them.
    lines = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    data_lines: list[int] = []  # 1-based file line of each data row
    column_lines: list[int] = []
    header: tuple[int, str] | None = None
    text_lines: list[int] = []  # lines of words before the data: the header (and COLUMNn notes)
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if _numeric(text):
            data_lines.append(number)
        elif _COLUMN_LINE.match(text) and not data_lines:
            column_lines.append(number)
        elif not data_lines:
            text_lines.append(number)
            header = header or (number, text)
    if not data_lines:
        keys = _split_header(header[1]) if header and not column_lines else None
        names = {_ALIASES[k] for k in keys or ()}
        if not set(SDC1_COLUMNS) <= names:
            raise RadiffError(f"{where}: no data rows")
        return {n: np.zeros(0, dtype=np.int64 if n in _INT_COLUMNS else np.float64)
                for n in SDC1_COLUMNS + EXTRA_COLUMNS if n in names}
    width = len(lines[data_lines[0] - 1].split())
    if column_lines or (header and len(header[1].split()) == width and path.name.lower().endswith(_TEXT_SUFFIXES)):
        found = read_catalogue_columns(path)  # SDC1-style COLUMNn lines, or one name per column
        names_at = f"line {column_lines[0]} (COLUMNn lines)" if column_lines else f"line {header[0]} (header)"
        if any(len(v) != len(data_lines) for v in found.values()):  # never expected: both count rows alike
            raise RadiffError(f"{where}: cannot count its data rows consistently (unusual line breaks?)")
    else:
        if len(text_lines) > 1:
            raise RadiffError(f"{where}: file line {text_lines[1]}, column 1: not all numbers (one header line, "
                              "or COLUMNn: lines, then numbers only)")
        found, names_at = _read_plain(lines, data_lines, header, width, where)
    named: dict[str, np.ndarray] = {}
    for name, values in found.items():
        key = _ALIASES.get(_norm(name))
        if key is not None and key not in named:
            named[key] = np.asarray(values, dtype=np.float64)
    missing = [n for n in SDC1_COLUMNS if n not in named]
    if missing:
        raise RadiffError(f"{where}: {names_at}, column {missing[0]}: missing (columns found: {', '.join(found)})")
    _check(named, where, lambda i: f"data row {i + 1} (file line {data_lines[i]})")
    out = {n: named[n] for n in SDC1_COLUMNS}
    out.update({n: named[n] for n in EXTRA_COLUMNS if n in named})
    return {n: (v.astype(np.int64) if n in _INT_COLUMNS and np.isfinite(v).all() else v) for n, v in out.items()}


def _refuse_binary(raw: bytes, where: str) -> None:
    """One line for a file that is not text: where its first NUL or non-UTF-8 byte is."""
    nul = raw.find(b"\x00")
    try:
        raw.decode("utf-8")
        bad = nul
    except UnicodeDecodeError as exc:
        bad = exc.start if nul < 0 else min(nul, exc.start)
    if bad < 0:
        return
    newline = b"\n"
    line_start = raw.rfind(newline, 0, bad) + 1
    prefix = raw[line_start:bad]
    field = len(prefix.split()) + (1 if not prefix or prefix[-1:].isspace() else 0)
    line = raw.count(newline, 0, bad) + 1
    raise RadiffError(f"{where}: file line {line}, column {field} (whitespace field): "
                      f"byte 0x{raw[bad]:02x} (NUL, or not UTF-8): this looks like a binary file, "
                      "not an SDC1 text catalogue")


def _numeric(text: str) -> bool:
    try:
        [float(w) for w in text.split()]
    except ValueError:
        return False
    return True


def _read_plain(lines: list[str], data_lines: list[int], header: tuple[int, str] | None,
                width: int, where: str) -> tuple[dict[str, np.ndarray], str]:
    """Files ``read_catalogue_columns`` cannot name: no header (columns by position), or
    SDC1's header of multi-word names ("RA (core)", "Core frac"), split by known names."""
    if header is None:
        if width == len(SDC1_COLUMNS):
            names = list(SDC1_COLUMNS)
        elif width == len(SDC1_COLUMNS) + len(EXTRA_COLUMNS):
            names = list(SDC1_COLUMNS + EXTRA_COLUMNS)
        else:
            raise RadiffError(f"{where}: file line {data_lines[0]}, column {width}: {width} values per row and no "
                              f"header; an SDC1 file without one has 12 (submission) or 15 (truth) columns")
        names_at = "no header (columns by position)"
    else:
        names = _split_header(header[1])
        names_at = f"line {header[0]} (header)"
        if names is None or len(names) != width:
            raise RadiffError(f"{where}: {names_at}, column {width}: cannot match its names to the {width} "
                              "columns of the data rows (expected SDC1 column names, one set per column)")
    rows = []
    for number in data_lines:
        words = lines[number - 1].split()
        if len(words) != width:
            raise RadiffError(f"{where}: file line {number}, column {min(len(words), width) + 1}: "
                              f"{len(words)} values for {width} columns")
        rows.append([float(w) for w in words])
    stray = next((n for n, line in enumerate(lines, start=1) if n > data_lines[0] and line.strip()
                  and not line.strip().startswith("#") and not _numeric(line.strip())), None)
    if stray is not None:
        raise RadiffError(f"{where}: file line {stray}, column 1: not all numbers (data rows hold numbers only)")
    values = np.array(rows, dtype=np.float64)
    return {name: values[:, i] for i, name in enumerate(names)}, names_at


def _split_header(text: str) -> list[str] | None:
    """The header's column names, found by longest known normalised name first; None if it has others."""
    rest, names = _norm(text), []
    while rest:
        key = next((k for k in _ALIAS_KEYS if rest.startswith(k)), None)
        if key is None:
            return None
        names.append(key)
        rest = rest[len(key):]
    return names


def sdc1_dataframe(columns: Mapping[str, Any]) -> Any:
    """SDC1 columns as the ``pandas.DataFrame`` the scorer takes (``SDC1_COLUMNS`` only, in order)."""
    import pandas as pd

    return pd.DataFrame({n: np.asarray(columns[n]) for n in SDC1_COLUMNS}, columns=list(SDC1_COLUMNS))
