"""Objects whose positions the user gives: what a catalogue becomes once it is in map pixels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GivenObjects:
    """Objects whose positions the user gives, in pixels of the map, id = index + 1.

    ``rows``/``cols`` are 0-based pixel coordinates (y, x) where each object's flux
    centroid goes; ``class_ids`` < 0 and NaN ``k``/``flux_jy`` mean "draw it as a random
    map would". ``major_px``/``minor_px``/``pa_deg``: the intrinsic FWHM size (pixels of
    this map) and PA the object must have, NaN for "keep the mask's shape" (major 0: a
    point source, drawn as the beam). Sky coordinates, arcseconds and file formats are
    resolved before this (radiff_scale.compose.positions), so the planner only sees pixels.
    """

    rows: np.ndarray
    cols: np.ndarray
    class_ids: np.ndarray
    k: np.ndarray
    flux_jy: np.ndarray | None = None
    major_px: np.ndarray | None = None
    minor_px: np.ndarray | None = None
    pa_deg: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = np.asarray(self.rows).shape
        blank = np.full(n, np.nan)
        arrays = {
            "rows": np.asarray(self.rows, dtype=np.float64), "cols": np.asarray(self.cols, dtype=np.float64),
            "class_ids": np.asarray(self.class_ids, dtype=np.int64), "k": np.asarray(self.k, dtype=np.float64),
        }
        for name in ("flux_jy", "major_px", "minor_px", "pa_deg"):
            value = getattr(self, name)
            arrays[name] = blank.copy() if value is None else np.asarray(value, dtype=np.float64)
        lengths = {name: a.shape for name, a in arrays.items()}
        if len(set(lengths.values())) != 1 or arrays["rows"].ndim != 1:
            raise ValueError(f"given objects need 1-D arrays of one length, got {lengths}")
        for name, value in arrays.items():
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def has_shape(self, i: int) -> bool:
        """Whether object index ``i`` (id i + 1) must take a given size and PA."""
        return bool(np.isfinite(self.major_px[i]))

    def fingerprint(self) -> str:
        """sha256 of exactly what the plan depends on: a resumed run must be given the same objects."""
        digest = hashlib.sha256(b"radiff-given-objects-v1")
        for name in ("rows", "cols", "class_ids", "k"):
            digest.update(np.ascontiguousarray(getattr(self, name)).astype("<f8" if name != "class_ids" else "<i8").tobytes())
        extra = (self.flux_jy, self.major_px, self.minor_px, self.pa_deg)
        if any(np.isfinite(a).any() for a in extra):  # v1 runs (positions, classes, k only) keep their identity
            digest.update(b"flux-shape-v2")
            for a in extra:
                digest.update(np.ascontiguousarray(a).astype("<f8").tobytes())
        return digest.hexdigest()
