"""The unit of work between the stamp cutter and the chunk owners."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stamp:
    """One placed object, ready to add to the mosaic.

    Arrays are indexed [row, col] = [y, x]; ``row0, col0`` is the global map pixel of
    ``data[0, 0]`` (0-based). ``data`` is in Jy/beam and already zero outside ``mask``.
    """

    object_id: int
    class_id: int
    row0: int
    col0: int
    data: np.ndarray
    mask: np.ndarray

    @property
    def row1(self) -> int:
        return self.row0 + self.data.shape[0]

    @property
    def col1(self) -> int:
        return self.col0 + self.data.shape[1]

    def overlaps(self, row0: int, row1: int, col0: int, col1: int) -> bool:
        """Whether this stamp's box touches the half-open box [row0,row1) x [col0,col1)."""
        return self.row0 < row1 and row0 < self.row1 and self.col0 < col1 and col0 < self.col1
