"""Objects whose positions the user gives: what a catalogue becomes once it is in map pixels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GivenObjects:
    """Objects whose positions the user gives, in pixels of the map, id = index + 1.

    ``rows``/``cols`` are 0-based pixel coordinates (y, x) where each object's footprint
    centroid goes; ``class_ids`` < 0 and NaN ``k`` mean "draw it as a random map would".
    Sky coordinates and file formats are resolved before this (radiff_scale.api), so the
    planner only ever sees pixels.
    """

    rows: np.ndarray
    cols: np.ndarray
    class_ids: np.ndarray
    k: np.ndarray

    def __post_init__(self) -> None:
        arrays = {
            "rows": np.asarray(self.rows, dtype=np.float64), "cols": np.asarray(self.cols, dtype=np.float64),
            "class_ids": np.asarray(self.class_ids, dtype=np.int64), "k": np.asarray(self.k, dtype=np.float64),
        }
        lengths = {name: a.shape for name, a in arrays.items()}
        if len(set(lengths.values())) != 1 or arrays["rows"].ndim != 1:
            raise ValueError(f"given objects need 1-D arrays of one length, got {lengths}")
        for name, value in arrays.items():
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def fingerprint(self) -> str:
        """sha256 of exactly what the plan depends on: a resumed run must be given the same objects."""
        digest = hashlib.sha256(b"radiff-given-objects-v1")
        for name in ("rows", "cols", "class_ids", "k"):
            digest.update(np.ascontiguousarray(getattr(self, name)).astype("<f8" if name != "class_ids" else "<i8").tobytes())
        return digest.hexdigest()
