"""The scene of one cutout being simulated: the objects accepted so far and the pixels they claim.

Labels are exact because every mask is the label rule (``model >= threshold``) applied to
the float32 model that is stored, and objects never touch because each accepted mask
claims itself grown by the gap; :class:`Scene` is where both rules live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radiff_scale.classes import SourceClass


@dataclass
class SimObject:
    """One labelled object: its exact mask and the noise-free model it came from.

    ``flux_jy`` is the model's pixel sum over the cutout divided by the beam area in pixels;
    ``peak_jy`` the model value of largest magnitude (negative for a negative ripple island).
    ``kind`` names the morphology drawn (point, resolved, fr1, fr2, tailed, rings, spokes, both,
    bright for the source of an artefact).
    """

    class_id: SourceClass
    mask: np.ndarray
    model: np.ndarray
    flux_jy: float
    peak_jy: float
    kind: str = ""


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate by a (2p+1)^2 square: everything within Chebyshev distance ``pixels`` of the mask.

    Separable shifted ORs; about 20x faster than ``ndimage.binary_dilation`` at 128^2,
    which matters because every accepted object claims its grown mask.
    """
    out = mask.copy()
    for _ in range(pixels):
        rows = out.copy()
        rows[1:] |= out[:-1]
        rows[:-1] |= out[1:]
        out = rows.copy()
        out[:, 1:] |= rows[:, :-1]
        out[:, :-1] |= rows[:, 1:]
    return out


def paste(shape: tuple[int, int], stamp: np.ndarray, row0: int, col0: int) -> np.ndarray:
    """A full-frame float32 copy of ``stamp`` with its [0, 0] at (row0, col0), cropped to the frame."""
    out = np.zeros(shape, dtype=np.float32)
    r_lo, c_lo = max(row0, 0), max(col0, 0)
    r_hi, c_hi = min(row0 + stamp.shape[0], shape[0]), min(col0 + stamp.shape[1], shape[1])
    if r_lo < r_hi and c_lo < c_hi:
        out[r_lo:r_hi, c_lo:c_hi] = stamp[r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0]
    return out


class Scene:
    """The objects accepted so far and the pixels they claim (each mask grown by the gap)."""

    def __init__(self, shape: tuple[int, int], threshold: float, gap: int, area: float) -> None:
        self.shape = shape
        self.threshold = np.float32(threshold)
        self.gap = gap
        self.area = area
        self.claimed = np.zeros(shape, dtype=bool)
        self.objects: list[SimObject] = []

    def mask_of(self, model32: np.ndarray, signed: bool = False) -> np.ndarray:
        """The label rule, applied to the stored float32 model so it can be re-applied exactly."""
        return (np.abs(model32) if signed else model32) >= self.threshold

    def fits(self, mask: np.ndarray, allow_border: bool = False) -> bool:
        if not mask.any() or (mask & self.claimed).any():
            return False
        if not allow_border and (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()):
            return False
        return True

    def accept(self, cls: SourceClass, model32: np.ndarray, mask: np.ndarray, kind: str) -> None:
        flux = float(model32.sum(dtype=np.float64)) / self.area
        extreme = model32.flat[int(np.argmax(np.abs(model32)))]
        self.objects.append(SimObject(cls, mask, model32, flux, float(extreme), kind))
        self.claimed |= grow(mask, self.gap)
