"""The local noise level of a background, at any pixel.

Objects are scaled by the local sigma times k (paper sect. 5.3), and real maps are
not uniform: noise rises near bright sources and towards the primary-beam edge. A
robust rms (1.4826 * MAD, blind to the sources themselves) on a coarse grid of blocks,
median-filtered so one odd block cannot make one object a hundred times too bright,
and interpolated bilinearly, is smooth, cheap, and small enough to ship to every
worker: a 32768^2 map at 256 px blocks is a 128 x 128 grid.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import dask
import numpy as np

from radiff_scale.compose.background import BackgroundSource
from radiff_scale.errors import RadiffError
from radiff_scale.robust import robust_sigma


@dataclass(frozen=True)
class SigmaMap:
    """Robust rms per block (Jy/beam), read anywhere by bilinear interpolation between block centres."""

    grid: np.ndarray
    block: int
    shape: tuple[int, int]

    def _centres(self, axis: int) -> np.ndarray:
        n = self.grid.shape[axis]
        starts = np.arange(n) * self.block
        ends = np.minimum(starts + self.block, self.shape[axis])
        return (starts + ends - 1) / 2.0

    def at(self, rows: np.ndarray | float, cols: np.ndarray | float) -> np.ndarray:
        """Sigma at (row, col) pixel positions (any broadcastable shapes; beyond the outer
        block centres the value is held constant)."""
        rows_a, cols_a = np.broadcast_arrays(np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64))
        fr = np.interp(rows_a, self._centres(0), np.arange(self.grid.shape[0], dtype=np.float64))
        fc = np.interp(cols_a, self._centres(1), np.arange(self.grid.shape[1], dtype=np.float64))
        r0 = np.floor(fr).astype(np.intp)
        c0 = np.floor(fc).astype(np.intp)
        r1 = np.minimum(r0 + 1, self.grid.shape[0] - 1)
        c1 = np.minimum(c0 + 1, self.grid.shape[1] - 1)
        wr, wc = fr - r0, fc - c0
        g = self.grid.astype(np.float64)
        top = g[r0, c0] * (1 - wc) + g[r0, c1] * wc
        bottom = g[r1, c0] * (1 - wc) + g[r1, c1] * wc
        return top * (1 - wr) + bottom * wr

    @property
    def median(self) -> float:
        """The map's typical noise: the median of the block grid."""
        return float(np.median(self.grid))


def robust_rms(values: np.ndarray, min_valid: int = 16) -> float:
    """1.4826 * MAD of the non-zero finite values (zeros are blanked pixels), NaN if too few or zero."""
    rms = robust_sigma(values, zeros_are_blank=True, min_valid=min_valid)
    return rms if rms > 0 else math.nan


def _tile_rms(source: BackgroundSource, r0: int, r1: int, c0: int, c1: int, block: int) -> np.ndarray:
    """Robust rms of every block inside one read tile (tile edges are block-aligned)."""
    data = source.read(r0, r1, c0, c1)
    nr, nc = -(-(r1 - r0) // block), -(-(c1 - c0) // block)
    out = np.full((nr, nc), np.nan)
    for i in range(nr):
        for j in range(nc):
            sub = data[i * block : (i + 1) * block, j * block : (j + 1) * block]
            out[i, j] = robust_rms(sub, min_valid=max(16, sub.size // 4))
    return out


def _nan_median_filter(grid: np.ndarray, size: int) -> np.ndarray:
    """Median over a size x size neighbourhood, ignoring NaN (blank blocks) and the outside."""
    if size <= 1:
        return grid.copy()
    r = size // 2
    padded = np.pad(grid, r, mode="constant", constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * r + 1, 2 * r + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods stay NaN
        return np.nanmedian(windows, axis=(-2, -1))


def sigma_map(
    source: BackgroundSource,
    block: int = 256,
    filter_size: int = 3,
    tile: int | None = None,
    num_workers: int | None = None,
) -> SigmaMap:
    """Block-wise robust rms of ``source``, computed with dask over read tiles.

    Each dask task reads one ``tile`` (default ~2048 px, a multiple of ``block``) and
    returns the rms of the blocks inside, so memory holds a few tiles, never the map.
    Blocks with fewer than a quarter of their pixels valid take the median of their
    neighbours; the grid is then median-filtered (``filter_size`` blocks).
    """
    block = int(block)
    if block < 8:
        raise RadiffError(f"sigma map block must be >= 8 px, got {block}")
    rows, cols = source.shape
    tile = int(tile) if tile else block * max(1, 2048 // block)
    tile = max(block, (tile // block) * block)
    tasks, places = [], []
    for r0 in range(0, rows, tile):
        for c0 in range(0, cols, tile):
            r1, c1 = min(rows, r0 + tile), min(cols, c0 + tile)
            tasks.append(dask.delayed(_tile_rms)(source, r0, r1, c0, c1, block))
            places.append((r0 // block, c0 // block))
    results = dask.compute(*tasks, scheduler="threads", num_workers=num_workers)
    raw = np.full((-(-rows // block), -(-cols // block)), np.nan)
    for (i, j), part in zip(places, results):
        raw[i : i + part.shape[0], j : j + part.shape[1]] = part
    if not np.any(np.isfinite(raw)):
        raise RadiffError("background has no usable pixels for a noise estimate (all blank or constant)")
    grid = _nan_median_filter(raw, filter_size)
    # Blocks still unknown (a blank region wider than the filter): the map's typical noise.
    grid[~np.isfinite(grid)] = np.nanmedian(raw)
    return SigmaMap(grid=grid.astype(np.float32), block=block, shape=(rows, cols))
