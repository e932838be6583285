"""Background patches that condition the tile sampler on the map's own local texture.

The model was trained with the cutout's own background as its background condition,
so at map time it gets the 128x128 window of the map background where the object will
land, encoded with the model's own stretch exactly like a training cutout.
"""

from __future__ import annotations

import numpy as np

from radiff_scale.compose.background import BackgroundSource
from radiff_scale.constants import TILE
from radiff_scale.data.stretch import Stretch
from radiff_scale.errors import FlatImageError


def read_padded(source: BackgroundSource, row0: int, col0: int, size: int = TILE) -> np.ndarray:
    """The ``size`` x ``size`` background window at (row0, col0), zero where it leaves the map."""
    rows, cols = source.shape
    out = np.zeros((size, size), dtype=np.float32)
    r0, r1 = max(row0, 0), min(row0 + size, rows)
    c0, c1 = max(col0, 0), min(col0 + size, cols)
    if r0 < r1 and c0 < c1:
        out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = source.read(r0, r1, c0, c1)
    return out


def background_patches(source: BackgroundSource, origins: list[tuple[int, int]], stretch: Stretch) -> np.ndarray:
    """Encoded windows, float32 (N, 128, 128) in [0, 1]; a flat window gives all zeros."""
    patches = np.zeros((len(origins), TILE, TILE), dtype=np.float32)
    for i, (row0, col0) in enumerate(origins):
        window = read_padded(source, row0, col0)
        try:
            patches[i] = stretch.encode(window)
        except FlatImageError:  # a constant window (e.g. a blanked region): nothing to condition on
            patches[i] = 0.0
    return patches
