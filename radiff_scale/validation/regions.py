"""Big maps in overlapping pieces, each source kept by exactly one piece.

PyBDSF holds the whole image plus its rms and mean maps and island arrays in memory
(several times the image's size), so a 32768^2 map is found piece by piece, one Ray task
per piece. A source that straddles a cut would be found in pieces (or twice) if the pieces
did not overlap, so each piece is its **core** (the cores tile the map exactly) plus a
**margin** of a few beams on every side; PyBDSF runs on the core + margin, and a detection
is kept only by the piece whose core holds its centre. Cores partition the plane (the outer
cores reach to infinity), so every detection has exactly one owner: no duplicates, no gaps.
A source wider than the margin can still be cut by the margin's edge; the margin is
therefore sized in beams by the caller, well above the size of compact sources.

Pure geometry, no PyBDSF: tested on its own in tests/test_validation.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Region:
    """One piece of a map. Boxes are half-open pixel index ranges ``[row0, row1) x [col0, col1)``.

    ``index`` is (grid row, grid col) of the piece; ``core`` the box it owns; ``box`` the core
    plus its margin, clipped to the map: the pixels PyBDSF sees.
    """

    index: tuple[int, int]
    core: tuple[int, int, int, int]
    box: tuple[int, int, int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the box PyBDSF runs on."""
        r0, r1, c0, c1 = self.box
        return r1 - r0, c1 - c0

    @property
    def offset(self) -> tuple[int, int]:
        """(row0, col0) of the box in the full map: add to a box pixel to get a map pixel."""
        return self.box[0], self.box[2]

    def describe(self) -> dict[str, list[int]]:
        return {"index": list(self.index), "core": list(self.core), "box": list(self.box)}


@dataclass(frozen=True)
class RegionPlan:
    """The pieces of one map: cores cut at ``row_edges`` x ``col_edges`` (each from 0 to the map's size)."""

    shape: tuple[int, int]
    row_edges: tuple[int, ...]
    col_edges: tuple[int, ...]
    margin: int

    @property
    def regions(self) -> list[Region]:
        """Every piece, in row-major grid order."""
        rows, cols = self.shape
        out = []
        for i in range(len(self.row_edges) - 1):
            for j in range(len(self.col_edges) - 1):
                r0, r1 = self.row_edges[i], self.row_edges[i + 1]
                c0, c1 = self.col_edges[j], self.col_edges[j + 1]
                box = (max(0, r0 - self.margin), min(rows, r1 + self.margin),
                       max(0, c0 - self.margin), min(cols, c1 + self.margin))
                out.append(Region((i, j), (r0, r1, c0, c1), box))
        return out

    def owner(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(grid row, grid col) of the piece that owns each position (0-based map pixels, x = column).

        Pixel ``j`` covers ``[j - 0.5, j + 0.5)``, so a core of columns ``[c0, c1)`` owns
        ``c0 - 0.5 <= x < c1 - 0.5``; the first and last cores also own everything beyond the
        map's edge (a fitted centre can land just outside it), so the owner is always defined.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        inner_rows = np.asarray(self.row_edges[1:-1], dtype=np.float64) - 0.5
        inner_cols = np.asarray(self.col_edges[1:-1], dtype=np.float64) - 0.5
        return np.searchsorted(inner_rows, y, side="right"), np.searchsorted(inner_cols, x, side="right")

    def owned_by(self, region: Region, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask: which positions ``region`` keeps."""
        gi, gj = self.owner(x, y)
        return (gi == region.index[0]) & (gj == region.index[1])

    def describe(self) -> dict[str, object]:
        return {"shape": list(self.shape), "row_edges": list(self.row_edges), "col_edges": list(self.col_edges),
                "margin_px": self.margin, "n_regions": (len(self.row_edges) - 1) * (len(self.col_edges) - 1)}


def _edges(n: int, size: int) -> tuple[int, ...]:
    """Cut ``n`` pixels into ceil(n / size) nearly equal cores (no thin last sliver)."""
    pieces = max(1, math.ceil(n / size))
    return tuple(int(round(k * n / pieces)) for k in range(pieces + 1))


def plan_regions(shape: tuple[int, int], size: int = 4096, margin: int = 128) -> RegionPlan:
    """Pieces of at most ``size`` x ``size`` core pixels with ``margin`` pixels of overlap on each side.

    A map no larger than ``size`` is one piece (the caller then need not start Ray).
    """
    rows, cols = (int(v) for v in shape)
    if rows <= 0 or cols <= 0:
        raise ValueError(f"map shape must be positive, got {shape!r}")
    if size < 1:
        raise ValueError(f"region size must be >= 1 pixel, got {size}")
    if margin < 0:
        raise ValueError(f"region margin must be >= 0 pixels, got {margin}")
    return RegionPlan((rows, cols), _edges(rows, size), _edges(cols, size), int(margin))
