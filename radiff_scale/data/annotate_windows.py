"""Crop windows of an input image: one centred on its objects, or tiles over a large map.

The Survey Collection's cutouts are ``--cutout`` pixels square; small inputs give one
window around their objects, large maps are tiled with ``--overlap`` so an object cut
by one tile's edge is whole in its neighbour.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from radiff_scale.data.annotate_config import SINGLE_WINDOW_FACTOR, AnnotateConfig
from radiff_scale.data.annotate_objects import FoundObject


def tile_starts(length: int, size: int, overlap: int) -> list[int]:
    """Window starts covering ``length`` with windows of ``size`` overlapping by at least ``overlap``.

    Steps of ``size - overlap`` from 0; the last window is aligned to the far edge, so it
    may overlap its neighbour by more.
    """
    if length <= size:
        return [(length - size) // 2]
    step = size - overlap
    starts = list(range(0, length - size, step))
    if not starts or starts[-1] != length - size:
        starts.append(length - size)
    return starts


def _centred_start(centre: float, length: int, size: int) -> int:
    """Start of a window of ``size`` centred on ``centre``, clamped inside ``length`` (centred padding if smaller)."""
    if length <= size:
        return (length - size) // 2
    start = int(math.floor(centre - size / 2.0 + 0.5))
    return min(max(start, 0), length - size)


def choose_windows(shape: tuple[int, int], objects: list[FoundObject], config: AnnotateConfig) -> tuple[list[tuple[int, int]], bool]:
    """Crop windows (row0, col0) and whether the image is tiled.

    An image up to ``SINGLE_WINDOW_FACTOR`` x cutout gives one window containing the
    flux-weighted centre of all its objects (clamped inside the image); larger images
    are tiled with ``--overlap``.
    """
    rows, cols = shape
    size = config.cutout
    if max(rows, cols) <= SINGLE_WINDOW_FACTOR * size:
        if objects:
            weights = np.array([max(o.flux_jy, 0.0) for o in objects]) + 1e-30
            centres = np.array([o.weight_centre for o in objects])
            cy, cx = (weights[:, None] * centres).sum(axis=0) / weights.sum()
        else:
            cy, cx = rows / 2.0, cols / 2.0
        return [(_centred_start(cy, rows, size), _centred_start(cx, cols, size))], False
    return [(r, c) for r in tile_starts(rows, size, config.overlap) for c in tile_starts(cols, size, config.overlap)], True


def crop(array: np.ndarray, row0: int, col0: int, size: int, fill: Any) -> np.ndarray:
    """A size x size window starting at (row0, col0); parts outside the array are ``fill``."""
    out = np.full((size, size), fill, dtype=array.dtype)
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + size, array.shape[0]), min(col0 + size, array.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = array[r0:r1, c0:c1]
    return out
