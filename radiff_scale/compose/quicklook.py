"""A quick-look PNG of a mosaic: is the map sane, where are the objects?

The map is reduced by an integer factor (never loaded whole): block *mean* for the
image (noise averages down, sources stay visible), block *max* for the class map (a
compact source smaller than one output pixel must not vanish; where classes meet, the
larger id wins). Each chunk is reduced on its own (:func:`reduce_chunk`) to per-output-
pixel sums, pixel counts and class maxima; a window that straddles chunks gets a part
from each, and the parts are combined in chunk order (:class:`QuicklookCanvas`), so the
picture does not depend on which worker reduced what, or when. The map job reduces
chunks in its export tasks, which have the chunk decoded for the FITS files anyway.

An asinh stretch between percentiles shows both the noise texture and bright sources;
object outlines are drawn in the class colours of :data:`radiff_scale.classes.CLASS_COLOURS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from radiff_scale.classes import CLASS_COLOURS, SourceClass
from radiff_scale.atomic import replace_when_done
from radiff_scale.compose.mosaic import ChunkBounds
from radiff_scale.errors import RadiffError

#: Default longest side of the PNG, in pixels.
QUICKLOOK_MAX_SIZE = 2048


def quicklook_factor(shape: tuple[int, int], max_size: int = QUICKLOOK_MAX_SIZE) -> int:
    """The smallest integer reduction that brings both sides within ``max_size``."""
    if int(max_size) < 1:
        raise RadiffError(f"quick-look max size must be >= 1 px, got {max_size!r}")
    return max(1, math.ceil(max(shape) / int(max_size)))


@dataclass(frozen=True)
class QuicklookPiece:
    """One chunk's share of the reduced map: output rows/cols from (row0, col0)."""

    index: tuple[int, int]
    row0: int
    col0: int
    #: float64 sums of the image's finite pixels in each output pixel's window (this chunk's part).
    sums: np.ndarray
    #: How many finite pixels each sum holds.
    counts: np.ndarray
    #: Largest class id in each window (this chunk's part).
    class_max: np.ndarray


def _window_lengths(lo: int, hi: int, factor: int) -> np.ndarray:
    """How many of [lo, hi)'s pixels fall in each output window it touches."""
    edges = np.arange(lo // factor, (hi - 1) // factor + 2, dtype=np.int64) * factor
    edges[0], edges[-1] = lo, hi
    return np.diff(edges)


def _blocks(window: np.ndarray, bounds: ChunkBounds, factor: int, fill: float | int) -> np.ndarray:
    """``window`` as (out_rows, factor, out_cols, factor) blocks on the map's window grid.

    A chunk whose edges are not on that grid is padded with ``fill`` to whole windows
    (a copy of one chunk); an aligned one is a free reshape.
    """
    lead_r, lead_c = bounds.row0 % factor, bounds.col0 % factor
    rows, cols = window.shape
    tail_r, tail_c = -(lead_r + rows) % factor, -(lead_c + cols) % factor
    if lead_r or lead_c or tail_r or tail_c:
        window = np.pad(window, ((lead_r, tail_r), (lead_c, tail_c)), constant_values=fill)
    r, c = window.shape
    return window.reshape(r // factor, factor, c // factor, factor)


def reduce_chunk(image: np.ndarray, classes: np.ndarray, bounds: ChunkBounds, factor: int) -> QuicklookPiece:
    """Per-window sums, counts and class maxima of one chunk (``image``/``classes`` cover ``bounds``).

    Sums are float64 over the rows of a window, then over its columns: the same additions
    in the same order whichever process does them (padding adds exact zeros).
    """
    finite = np.isfinite(image)
    if finite.all():
        counts = np.outer(_window_lengths(bounds.row0, bounds.row1, factor),
                          _window_lengths(bounds.col0, bounds.col1, factor))
    else:  # blank pixels (only a hand-made mosaic has them) count for nothing
        image = np.where(finite, image, 0.0)
        counts = _blocks(finite, bounds, factor, False).sum(axis=1, dtype=np.int64).sum(axis=2)
    sums = _blocks(image, bounds, factor, 0.0).sum(axis=1, dtype=np.float64).sum(axis=2)
    class_max = _blocks(classes, bounds, factor, 0).max(axis=1).max(axis=2)
    return QuicklookPiece(bounds.index, bounds.row0 // factor, bounds.col0 // factor, sums, counts, class_max)


class QuicklookCanvas:
    """Collects chunk pieces (in any order) and combines them in chunk order."""

    def __init__(self, shape: tuple[int, int], factor: int) -> None:
        self.factor = int(factor)
        self.shape = (-(-shape[0] // self.factor), -(-shape[1] // self.factor))
        self._pieces: dict[tuple[int, int], QuicklookPiece] = {}

    def add(self, piece: QuicklookPiece) -> None:
        self._pieces[tuple(piece.index)] = piece

    def reduced(self) -> tuple[np.ndarray, np.ndarray]:
        """(block-mean image, block-max class map); a window without finite pixels is NaN."""
        sums = np.zeros(self.shape, np.float64)
        counts = np.zeros(self.shape, np.int64)
        classes = np.zeros(self.shape, np.uint8)
        for index in sorted(self._pieces):
            p = self._pieces[index]
            box = (slice(p.row0, p.row0 + p.sums.shape[0]), slice(p.col0, p.col0 + p.sums.shape[1]))
            sums[box] += p.sums
            counts[box] += p.counts
            np.maximum(classes[box], p.class_max, out=classes[box])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), classes


def asinh_stretch(image: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.8, softening: float = 0.1) -> np.ndarray:
    """uint8 grey levels: percentiles map to 0..1, then asinh(x / a) / asinh(1 / a)."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [lo_pct, hi_pct])
    if not hi > lo:
        hi = lo + 1.0
    x = np.clip((np.nan_to_num(image, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    y = np.arcsinh(x / softening) / np.arcsinh(1.0 / softening)
    return np.round(y * 255.0).astype(np.uint8)


def outline_pixels(classes: np.ndarray) -> np.ndarray:
    """Pixels of an object whose 4-neighbourhood leaves its class (map edges count as outside)."""
    padded = np.pad(classes, 1, constant_values=0)
    centre = padded[1:-1, 1:-1]
    edge = np.zeros(classes.shape, dtype=bool)
    for dr, dc in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dr : dr + classes.shape[0], dc : dc + classes.shape[1]] != centre
    return edge & (classes > 0)


def save_quicklook(canvas: QuicklookCanvas, out_png: str | Path, outlines: bool = True) -> Path:
    """Write the PNG of a filled canvas: greyscale ('L') without outlines, RGB with them.

    Written to a temporary name and renamed, like every other product of a run.
    """
    image, classes = canvas.reduced()
    grey = asinh_stretch(image)
    if outlines:
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        edge = outline_pixels(classes)
        for cls in SourceClass:
            if cls == SourceClass.BACKGROUND:
                continue
            rgb[edge & (classes == int(cls))] = CLASS_COLOURS[cls]
        picture = Image.fromarray(rgb)
    else:
        picture = Image.fromarray(grey)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    return replace_when_done(out, lambda tmp: picture.save(tmp, format="PNG"))
