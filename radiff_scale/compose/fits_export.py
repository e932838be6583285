"""FITS export of a mosaic, written chunk by chunk at known offsets.

A 32768^2 float32 map is 4 GiB; the export must not hold it, and should not have to
go through one process either. A FITS image's bytes are fully determined by its header
and shape: the header (2880-byte blocks), then the pixels row-major and big-endian
(FITS row y=1 first, which is our array row 0), zero-padded to a 2880-byte boundary.
So the file is laid out first (headers written, the file sized, the data left as zeros)
and each mosaic chunk's rows are then written at their own offsets with ``pwrite``, by
any process, in any order: the bytes are the same however many export workers ran,
and no process ever holds more than a chunk.

Everything goes to ``out + ".partial"`` and is renamed only when every chunk is in, so
an interrupted export never leaves a file that looks done. (astropy's ``StreamingHDU``,
which this replaces, writes strictly in file order from one process, and decoded every
chunk twice: a row band of a 128 MiB budget is half a 2048-row chunk band at 32768 columns.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from radiff_scale.classes import SourceClass
from radiff_scale.compose.mosaic import ChunkBounds, Mosaic
from radiff_scale.errors import RadiffError
from radiff_scale.fits_types import STORED_DTYPES, bitpix_of

#: FITS files are made of blocks of this many bytes.
FITS_BLOCK = 2880

_STRUCTURAL = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS", "BSCALE", "BZERO", "BLANK", "EXTNAME", "END", "CHECKSUM", "DATASUM"}
_NAXIS_N = re.compile(r"^NAXIS\d+$")
#: Keywords of the image that would be wrong on a label map.
_IMAGE_ONLY = {"BUNIT", "BTYPE", "DATAMIN", "DATAMAX"}



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
    bitpix = bitpix_of(dtype)
    h = fits.Header()
    if primary:
        h["SIMPLE"] = (True, "conforms to FITS standard")
    else:
        h["XTENSION"] = ("IMAGE", "image extension")
    h["BITPIX"] = bitpix
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


def label_headers(header: fits.Header, shape: tuple[int, int]) -> tuple[fits.Header, fits.Header]:
    """Headers of the CLASS (primary, uint8) and INSTANCE (extension, int32) HDUs."""
    cls = hdu_header(header, shape, "uint8", primary=True, extname="CLASS", drop=_IMAGE_ONLY)
    cls["BTYPE"] = ("class", "per-pixel class id")
    for c in SourceClass:
        cls[f"CLASS{int(c)}"] = (c.label, f"meaning of class id {int(c)}")
    inst = hdu_header(header, shape, "int32", primary=False, extname="INSTANCE", drop=_IMAGE_ONLY)
    inst["BTYPE"] = ("instance", "object id per pixel; 0 = no object")
    return cls, inst


def _padded(n: int) -> int:
    return -(-n // FITS_BLOCK) * FITS_BLOCK


@dataclass(frozen=True)
class ImageSlot:
    """Where one HDU's pixels live in a FITS file: a mosaic array's place in the file."""

    array: str
    offset: int
    shape: tuple[int, int]
    #: Stored dtype: big-endian, as FITS requires.
    dtype: str

    @property
    def data_bytes(self) -> int:
        return self.shape[0] * self.shape[1] * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class FitsLayout:
    """A FITS file being written: the partial file, its final name, and each HDU's pixel slot.

    Small and picklable, so the driver lays a file out once and hands the layout to every
    export task.
    """

    partial: str
    final: str
    slots: tuple[ImageSlot, ...]
    size: int


def lay_out_fits(out_path: str | Path, hdus: Sequence[tuple[str, fits.Header]], shape: tuple[int, int],
                 overwrite: bool = False) -> FitsLayout:
    """Create ``out + '.partial'`` with every header in place and the data zero-filled.

    ``hdus`` are (mosaic array name, header) pairs in file order; each header must
    already be the HDU's own (structural cards from :func:`hdu_header`). The file is
    sized with ``ftruncate``, so the data blocks cost no disk until written.
    """
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise RadiffError(f"{out}: already exists (allow overwriting to replace it)")
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    slots, pieces, position = [], [], 0
    for array, header in hdus:
        text = header.tostring(sep="", endcard=True, padding=True).encode("ascii")
        dtype = STORED_DTYPES[int(header["BITPIX"])]
        if (int(header["NAXIS2"]), int(header["NAXIS1"])) != tuple(shape):
            raise RadiffError(f"header of {array!r} is {header['NAXIS2']}x{header['NAXIS1']}, the mosaic {shape}")
        pieces.append((position, text))
        slot = ImageSlot(array, position + len(text), tuple(shape), dtype)
        slots.append(slot)
        position = slot.offset + _padded(slot.data_bytes)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # a stale partial is emptied
    try:
        for offset, text in pieces:
            _pwrite_all(fd, memoryview(text), offset)
        os.ftruncate(fd, position)
    finally:
        os.close(fd)
    return FitsLayout(str(partial), str(out), tuple(slots), position)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


def write_window(fd: int, slot: ImageSlot, bounds: ChunkBounds, data: np.ndarray) -> None:
    """Write a window of the slot's array (``data`` covers ``bounds``) at its place in the file."""
    if data.shape != bounds.shape:
        raise ValueError(f"data {data.shape} does not cover window {bounds.shape}")
    rows, cols = slot.shape
    if not (0 <= bounds.row0 <= bounds.row1 <= rows and 0 <= bounds.col0 <= bounds.col1 <= cols):
        raise ValueError(f"window {bounds} is outside the {rows}x{cols} image")
    big = np.ascontiguousarray(data, dtype=np.dtype(slot.dtype))  # the byte swap, one copy of one chunk
    item = big.dtype.itemsize
    start = slot.offset + (bounds.row0 * cols + bounds.col0) * item
    view = memoryview(big).cast("B")
    if bounds.col0 == 0 and bounds.col1 == cols:  # whole rows: one contiguous piece of the file
        _pwrite_all(fd, view, start)
        return
    width = (bounds.col1 - bounds.col0) * item
    for r in range(bounds.row1 - bounds.row0):
        _pwrite_all(fd, view[r * width : (r + 1) * width], start + r * cols * item)


def write_chunk_into(layout: FitsLayout, bounds: ChunkBounds, arrays: dict[str, np.ndarray]) -> None:
    """Write one chunk's windows of every array the layout holds (``arrays`` by mosaic array name)."""
    fd = os.open(layout.partial, os.O_WRONLY)
    try:
        for slot in layout.slots:
            write_window(fd, slot, bounds, arrays[slot.array])
    finally:
        os.close(fd)


def finish(layout: FitsLayout) -> Path:
    """Rename the complete partial file to its final name (after every chunk is written)."""
    partial = Path(layout.partial)
    if partial.stat().st_size != layout.size:
        raise RuntimeError(f"{partial} is {partial.stat().st_size} bytes, its layout {layout.size}")
    os.replace(partial, layout.final)
    return Path(layout.final)


def abandon(layout: FitsLayout) -> None:
    Path(layout.partial).unlink(missing_ok=True)


def image_layout(mosaic: Mosaic, out_path: str | Path, header: fits.Header, array: str = "image",
                 overwrite: bool = False) -> FitsLayout:
    """Layout of a single-HDU file of mosaic array ``array`` (map.fits)."""
    h = hdu_header(header, mosaic.shape, mosaic.array(array).dtype, primary=True)
    return lay_out_fits(out_path, [(array, h)], mosaic.shape, overwrite)


def labels_layout(mosaic: Mosaic, out_path: str | Path, header: fits.Header, overwrite: bool = False) -> FitsLayout:
    """Layout of labels.fits: class map (primary HDU, EXTNAME 'CLASS', BITPIX 8) and instance
    map (extension 'INSTANCE', BITPIX 32), both with the image's WCS."""
    cls_header, inst_header = label_headers(header, mosaic.shape)
    return lay_out_fits(out_path, [("class", cls_header), ("instance", inst_header)], mosaic.shape, overwrite)
