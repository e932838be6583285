"""Detections paired with truth objects: nearest first, one to one, within a radius.

Why greedy by distance rather than "each detection's nearest truth": with blended or
close objects two detections can share a nearest truth object (or the reverse), and
counting both as matched would raise completeness and reliability at once. Taking all
pairs closer than the radius, shortest first, and never reusing either side, gives each
object at most one partner and prefers the closest pairs; ties are broken by row order,
so the result does not depend on how the detections were split into regions.

Matching is on the map's pixel grid (x = column, y = row, 0-based, as in docs/truth.md):
the truth's flux-weighted centroid against PyBDSF's source centroid. The radius is in
pixels; the caller gives it in beams times the beam's FWHM in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Matches:
    """One-to-one pairs: ``truth[k]`` matches ``det[k]`` at ``distance[k]`` pixels (sorted by truth row)."""

    truth: np.ndarray
    det: np.ndarray
    distance: np.ndarray
    n_truth: int
    n_det: int

    def truth_partner(self) -> np.ndarray:
        """For each truth row, the matched detection row, or -1."""
        out = np.full(self.n_truth, -1, dtype=np.int64)
        out[self.truth] = self.det
        return out

    def det_partner(self) -> np.ndarray:
        """For each detection row, the matched truth row, or -1."""
        out = np.full(self.n_det, -1, dtype=np.int64)
        out[self.det] = self.truth
        return out


def _points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    pts = np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    if pts.size and not np.all(np.isfinite(pts)):
        raise ValueError("positions to match must be finite")
    return pts.reshape(-1, 2)


def cross_match(truth_x: np.ndarray, truth_y: np.ndarray, det_x: np.ndarray, det_y: np.ndarray,
                radius: float) -> Matches:
    """Greedy one-to-one matching of truth and detections closer than ``radius`` pixels (see the module doc)."""
    if not radius > 0:
        raise ValueError(f"match radius must be > 0, got {radius}")
    t, d = _points(truth_x, truth_y), _points(det_x, det_y)
    empty = np.zeros(0, dtype=np.int64)
    if len(t) == 0 or len(d) == 0:
        return Matches(empty, empty, np.zeros(0), len(t), len(d))
    pairs = cKDTree(t).sparse_distance_matrix(cKDTree(d), radius, output_type="ndarray")
    # sparse_distance_matrix uses <= radius; the radius is exclusive here, like every "within".
    pairs = pairs[pairs["v"] < radius]
    order = np.lexsort((pairs["j"], pairs["i"], pairs["v"]))
    used_t = np.zeros(len(t), dtype=bool)
    used_d = np.zeros(len(d), dtype=bool)
    ti, di, dist = [], [], []
    for i, j, v in zip(pairs["i"][order], pairs["j"][order], pairs["v"][order]):
        if used_t[i] or used_d[j]:
            continue
        used_t[i] = used_d[j] = True
        ti.append(i)
        di.append(j)
        dist.append(v)
    ti_a, di_a, dist_a = np.asarray(ti, dtype=np.int64), np.asarray(di, dtype=np.int64), np.asarray(dist, dtype=np.float64)
    by_truth = np.argsort(ti_a, kind="stable")
    return Matches(ti_a[by_truth], di_a[by_truth], dist_a[by_truth], len(t), len(d))
