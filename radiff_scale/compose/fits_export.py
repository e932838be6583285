"""FITS export of a mosaic, streamed row block by row block.

A 32768^2 float32 map is 4 GiB; the export must not hold it. astropy's
``StreamingHDU`` writes a header, then accepts the data in pieces in file order; FITS
stores row y=1 first, which is our array row 0, so a band of rows read from Zarr is
exactly the next piece of the file. Everything goes to ``out + ".partial"`` and is
renamed only when complete, so a killed export never leaves a file that looks done.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

from radiff_scale.classes import SourceClass
from radiff_scale.compose.mosaic import Mosaic
from radiff_scale.errors import RadiffError

#: FITS BITPIX for the dtypes a mosaic holds (uint8 is FITS' native unsigned byte).
BITPIX: dict[str, int] = {"uint8": 8, "int16": 16, "int32": 32, "float32": -32, "float64": -64}

#: Bytes of one row block when the caller does not choose: the chunk height if a full
#: band of chunks fits in this, otherwise fewer rows.
DEFAULT_BLOCK_BYTES = 128 << 20

_STRUCTURAL = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS", "BSCALE", "BZERO", "BLANK", "EXTNAME", "END", "CHECKSUM", "DATASUM"}
_NAXIS_N = re.compile(r"^NAXIS\d+$")
#: Keywords of the image that would be wrong on a label map.
_IMAGE_ONLY = {"BUNIT", "BTYPE", "DATAMIN", "DATAMAX"}

ProgressFn = Callable[[int, int], None]


def hdu_header(
    header: fits.Header,
    shape: tuple[int, int],
    dtype: np.dtype | str,
    primary: bool = True,
    extname: str | None = None,
    drop: set[str] | frozenset[str] = frozenset(),
) -> fits.Header:
    """A 2-D image header for ``shape``/``dtype``: structural cards ours, everything else the caller's.

    Structural keywords in ``header`` (SIMPLE, BITPIX, NAXISn, BSCALE, ...) are replaced,
    so a header made for float32 can be reused for the label maps. A caller NAXIS1/2
    that disagrees with the data is a mistake worth stopping on.
    """
    rows, cols = shape
    for key, want in (("NAXIS1", cols), ("NAXIS2", rows)):
        if key in header and int(header[key]) != want:
            raise RadiffError(f"header {key}={header[key]} does not match the mosaic shape {shape}")
    name = np.dtype(dtype).name
    if name not in BITPIX:
        raise ValueError(f"no FITS BITPIX for dtype {name}")
    h = fits.Header()
    if primary:
        h["SIMPLE"] = (True, "conforms to FITS standard")
    else:
        h["XTENSION"] = ("IMAGE", "image extension")
    h["BITPIX"] = BITPIX[name]
    h["NAXIS"] = 2
    h["NAXIS1"] = cols
    h["NAXIS2"] = rows
    if primary:
        h["EXTEND"] = True
    else:
        h["PCOUNT"] = 0
        h["GCOUNT"] = 1
    if extname:
        h["EXTNAME"] = extname
    for card in header.cards:
        key = card.keyword
        if key in _STRUCTURAL or _NAXIS_N.match(key) or key in drop:
            continue
        h.append(card, end=True)
    return h


def default_rows_per_block(chunk_rows: int, cols: int, itemsize: int, budget: int = DEFAULT_BLOCK_BYTES) -> int:
    """The chunk height (each chunk decoded once) unless a band of that height exceeds ``budget``."""
    row_bytes = max(1, cols * itemsize)
    return max(1, min(chunk_rows, budget // row_bytes))


def _stream_array(
    mosaic: Mosaic,
    name: str,
    target: Path,
    header: fits.Header,
    rows_per_block: int | None,
    progress: ProgressFn | None,
) -> None:
    """Append one HDU (header + data of array ``name``) to ``target``, a row band at a time."""
    arr = mosaic.array(name)
    rows, cols = arr.shape
    dtype = np.dtype(arr.dtype)
    step = int(rows_per_block) if rows_per_block else default_rows_per_block(mosaic.chunk, cols, dtype.itemsize)
    if step <= 0:
        raise RadiffError(f"rows_per_block must be positive, got {rows_per_block!r}")
    shdu = fits.StreamingHDU(str(target), header)
    try:
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            band = np.ascontiguousarray(arr[r0:r1, :], dtype=dtype)
            if dtype.itemsize > 1 and band.dtype.byteorder != ">":
                # Big-endian in place: spares StreamingHDU's own byte-swapped copy of the band.
                band = band.byteswap(inplace=True).view(band.dtype.newbyteorder(">"))
            shdu.write(band)
            del band
            if progress is not None:
                progress(r1, rows)
        if not shdu.writecomplete:
            raise RuntimeError(f"FITS stream of {name!r} ended early")
    finally:
        shdu.close()


def _start(out_path: str | Path, overwrite: bool) -> tuple[Path, Path]:
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise RadiffError(f"{out}: already exists (allow overwriting to replace it)")
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)  # a stale partial from a killed export: StreamingHDU would append to it
    out.parent.mkdir(parents=True, exist_ok=True)
    return out, partial


def export_fits(
    mosaic_path: Mosaic | str | Path,
    out_path: str | Path,
    header: fits.Header,
    array: str = "image",
    rows_per_block: int | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Stream one mosaic array into a single-HDU FITS file; returns the final path.

    ``header`` supplies WCS, beam, frequency, unit and the caller's seed/version
    keywords (e.g. ``MapGeometry.header()`` plus extras); its structural keywords are
    rewritten to match the array.
    """
    mosaic = mosaic_path if isinstance(mosaic_path, Mosaic) else Mosaic(mosaic_path)
    out, partial = _start(out_path, overwrite)
    arr = mosaic.array(array)
    h = hdu_header(header, mosaic.shape, arr.dtype, primary=True)
    try:
        _stream_array(mosaic, array, partial, h, rows_per_block, progress)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    return out


def label_headers(header: fits.Header, shape: tuple[int, int]) -> tuple[fits.Header, fits.Header]:
    """Headers of the CLASS (primary, uint8) and INSTANCE (extension, int32) HDUs."""
    cls = hdu_header(header, shape, "uint8", primary=True, extname="CLASS", drop=_IMAGE_ONLY)
    cls["BTYPE"] = ("class", "per-pixel class id")
    for c in SourceClass:
        cls[f"CLASS{int(c)}"] = (c.label, f"meaning of class id {int(c)}")
    inst = hdu_header(header, shape, "int32", primary=False, extname="INSTANCE", drop=_IMAGE_ONLY)
    inst["BTYPE"] = ("instance", "object id per pixel; 0 = no object")
    return cls, inst


def export_labels_fits(
    mosaic_path: Mosaic | str | Path,
    out_path: str | Path,
    header: fits.Header,
    rows_per_block: int | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Class map (primary HDU, EXTNAME 'CLASS', BITPIX 8) and instance map (extension
    'INSTANCE', BITPIX 32) in one file, both with the image's WCS; streamed like the image."""
    mosaic = mosaic_path if isinstance(mosaic_path, Mosaic) else Mosaic(mosaic_path)
    out, partial = _start(out_path, overwrite)
    cls_header, inst_header = label_headers(header, mosaic.shape)
    try:
        _stream_array(mosaic, "class", partial, cls_header, rows_per_block, progress)
        _stream_array(mosaic, "instance", partial, inst_header, rows_per_block, progress)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    return out
