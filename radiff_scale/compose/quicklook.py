"""A quick-look PNG of a mosaic: is the map sane, where are the objects?

The map is reduced by an integer factor (never loaded whole) to block *maxima*, for the
image as for the class map (where classes meet, the larger id wins). A block mean would
show the noise honestly but dilutes every source smaller than a block: at a factor of 4
a 10-sigma compact source averages down to under 3 sigma of the averaged noise and is
gone, while its peak survives in the block maximum at any factor. The price is that the
noise of a block-maximum image sits a little above zero and negative features (bowls
around bright sources, artefacts of a real background) do not show; map.fits is the
place to look at those. Each chunk is reduced on its own (:func:`reduce_chunk`) to
per-output-pixel maxima; a window that straddles chunks gets a part from each, and the
parts are combined in chunk order (:class:`QuicklookCanvas`). A maximum is exact and
does not depend on order, so the picture does not depend on which worker reduced what,
or when. The map job reduces chunks in its export tasks, which have the chunk decoded
for the FITS files anyway.

Grey levels are set in units of the displayed noise, not by percentiles of all pixels
(:func:`display_levels`): sources cover a tiny fraction of a radio map, so the 99.8th
percentile is about +3 sigma of the noise, and a stretch up to it paints the noise over
the whole grey range and every source white, the same white as a noise peak. Here the
noise's centre and sigma are the median and the MAD of the reduced image; black is 2
sigma below the centre (the noise is a dark, unsaturated texture); white is near the
peaks of the brightest objects (a high percentile of the pixels above 5 sigma, and never
less than 10 sigma, so a map of faint objects still spends its grey levels on them); in
between an asinh with a softening of 5 sigma is close to linear across the noise and
the faint objects of a few sigma -- they stand out from the noise -- and logarithmic above,
so objects of hundreds of sigma do not flatten everything else to black.

Object outlines are rings drawn 2 pixels outside each object (:func:`outline_classes`),
in the class colours of :data:`radiff_scale.classes.CLASS_COLOURS`, so that the object's
own pixels keep showing how bright it is. docs/img/quicklook-stretch.png compares all this
with the old picture (block means, asinh between the 0.5 and 99.8th percentiles, outlines
on the objects' edge pixels).
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


#: Black, in noise sigmas below the noise's centre: about 2% of the noise is clipped to black.
BLACK_SIGMA = 2.0
#: The asinh's softening, in noise sigmas: about linear up to here above black, logarithmic beyond.
SOFTENING_SIGMA = 5.0
#: Pixels this many sigmas above the noise's centre are source pixels (for the white level).
SOURCE_SIGMA = 5.0
#: White: this percentile of the source pixels ...
WHITE_PERCENTILE = 99.5
#: ... but never fewer sigmas than this above the centre (a map of faint objects, or of none).
MIN_WHITE_SIGMA = 10.0


@dataclass(frozen=True)
class QuicklookPiece:
    """One chunk's share of the reduced map: output rows/cols from (row0, col0)."""

    index: tuple[int, int]
    row0: int
    col0: int
    #: Largest finite pixel of the image in each output pixel's window (this chunk's part);
    #: -inf where the part has none.
    peaks: np.ndarray
    #: Largest class id in each window (this chunk's part).
    class_max: np.ndarray


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
    """Per-window image and class maxima of one chunk (``image``/``classes`` cover ``bounds``).

    Blank (non-finite) pixels, which only a hand-made mosaic has, and the padding of a
    ragged window count as -inf, so they never win a window with a finite pixel in it.
    """
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float64)
    finite = np.isfinite(image)
    if not finite.all():
        image = np.where(finite, image, -np.inf).astype(image.dtype, copy=False)
    peaks = _blocks(image, bounds, factor, -np.inf).max(axis=1).max(axis=2)
    class_max = _blocks(classes, bounds, factor, 0).max(axis=1).max(axis=2)
    return QuicklookPiece(bounds.index, bounds.row0 // factor, bounds.col0 // factor, peaks, class_max)


class QuicklookCanvas:
    """Collects chunk pieces (in any order) and combines them in chunk order."""

    def __init__(self, shape: tuple[int, int], factor: int) -> None:
        self.factor = int(factor)
        self.shape = (-(-shape[0] // self.factor), -(-shape[1] // self.factor))
        self._pieces: dict[tuple[int, int], QuicklookPiece] = {}

    def add(self, piece: QuicklookPiece) -> None:
        self._pieces[tuple(piece.index)] = piece

    def reduced(self) -> tuple[np.ndarray, np.ndarray]:
        """(block-max image, block-max class map); a window without finite pixels is NaN."""
        peaks = np.full(self.shape, -np.inf, np.float64)
        classes = np.zeros(self.shape, np.uint8)
        for index in sorted(self._pieces):
            p = self._pieces[index]
            box = (slice(p.row0, p.row0 + p.peaks.shape[0]), slice(p.col0, p.col0 + p.peaks.shape[1]))
            np.maximum(peaks[box], p.peaks, out=peaks[box])
            np.maximum(classes[box], p.class_max, out=classes[box])
        return np.where(np.isneginf(peaks), np.nan, peaks), classes


@dataclass(frozen=True)
class DisplayLevels:
    """Where the grey scale sits on an image: its noise and the stretch's levels, in its units."""

    #: Median of the finite pixels (the noise's centre: sources are a small fraction of them).
    centre: float
    #: Robust noise sigma: 1.4826 x the median absolute deviation from ``centre``.
    sigma: float
    #: Grey 0 (and NaN).
    black: float
    #: Grey 255.
    white: float
    #: The asinh's softening: the stretch is about linear up to ``black + softening``.
    softening: float


def display_levels(image: np.ndarray) -> DisplayLevels:
    """Black at -:data:`BLACK_SIGMA` sigma, white near the brightest objects, softening in sigmas.

    Robust statistics, since the image is mostly noise: the median and MAD of the finite
    pixels (the standard deviation where the MAD is 0, e.g. a map made mostly of one
    value; 1 where that is 0 too). The white level is a high percentile of the source
    pixels (> :data:`SOURCE_SIGMA` sigma) rather than their maximum, so that one
    outlying pixel does not set it, and at least :data:`MIN_WHITE_SIGMA` sigma.
    """
    finite = np.asarray(image, dtype=np.float64)[np.isfinite(image)]
    if finite.size == 0:
        return DisplayLevels(0.0, 1.0, -BLACK_SIGMA, MIN_WHITE_SIGMA, SOFTENING_SIGMA)
    centre = float(np.median(finite))
    sigma = 1.4826 * float(np.median(np.abs(finite - centre)))
    if not (sigma > 0 and math.isfinite(sigma)):
        sigma = float(np.std(finite))
    if not (sigma > 0 and math.isfinite(sigma)):
        sigma = 1.0
    sources = finite[finite > centre + SOURCE_SIGMA * sigma]
    white = centre + MIN_WHITE_SIGMA * sigma
    if sources.size:
        white = max(white, float(np.percentile(sources, WHITE_PERCENTILE)))
    return DisplayLevels(centre, sigma, centre - BLACK_SIGMA * sigma, white, SOFTENING_SIGMA * sigma)


def asinh_stretch(image: np.ndarray, levels: DisplayLevels | None = None) -> np.ndarray:
    """uint8 grey levels: asinh((v - black) / a) / asinh((white - black) / a), clipped to [0, 1].

    ``levels`` defaults to :func:`display_levels` of ``image``; NaN is black.
    """
    levels = display_levels(image) if levels is None else levels
    black, a = levels.black, levels.softening
    x = np.nan_to_num(np.asarray(image, dtype=np.float64) - black, nan=0.0, posinf=np.inf, neginf=0.0)
    y = np.arcsinh(np.clip(x, 0.0, None) / a) / np.arcsinh((levels.white - black) / a)
    return np.round(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)


def _largest_within(classes: np.ndarray, radius: int) -> np.ndarray:
    """Largest class id within ``radius`` pixels (Chebyshev: a square) of each pixel."""
    rows, cols = classes.shape
    padded = np.pad(classes, radius, constant_values=0)
    across = padded[:, : cols].copy()  # a max over the columns, then over the rows
    for dc in range(1, 2 * radius + 1):
        np.maximum(across, padded[:, dc : dc + cols], out=across)
    out = across[:rows].copy()
    for dr in range(1, 2 * radius + 1):
        np.maximum(out, across[dr : dr + rows], out=out)
    return out


def outline_classes(classes: np.ndarray) -> np.ndarray:
    """The class to draw at each pixel as an outline; 0 where none.

    An outline is a closed ring of background pixels 2 pixels from an object (1 pixel of
    the map's own grey between it and the object), in the largest class within that
    reach. It is drawn around the object, not on its edge: a compact source is a pixel
    or two across in the reduced map, all edge, and an outline on it would paint over
    the very pixels that show it; the gap keeps a bright pixel of the source from
    merging into its own outline, and the pieces of a patchy mask closer than that into
    one ring.
    """
    classes = np.asarray(classes, dtype=np.uint8)
    near = _largest_within(classes, 1) > 0
    return np.where((classes == 0) & ~near, _largest_within(classes, 2), 0).astype(np.uint8)


def save_quicklook(canvas: QuicklookCanvas, out_png: str | Path, outlines: bool = True) -> Path:
    """Write the PNG of a filled canvas: greyscale ('L') without outlines, RGB with them.

    Written to a temporary name and renamed, like every other product of a run.
    """
    image, classes = canvas.reduced()
    grey = asinh_stretch(image)
    if outlines:
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        ring = outline_classes(classes)
        for cls in SourceClass:
            if cls != SourceClass.BACKGROUND:
                rgb[ring == int(cls)] = CLASS_COLOURS[cls]
        picture = Image.fromarray(rgb)
    else:
        picture = Image.fromarray(grey)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    return replace_when_done(out, lambda tmp: picture.save(tmp, format="PNG"))
