"""Cut one placed object out of its generated tile and scale it to Jy/beam.

The model generates a 128x128 tile in its preprocessed [0, 1] range. To paste the
object on a real map we undo the preprocessing, remove whatever background the model
painted around the object, keep only the object's own mask, and give it a physical
brightness: its peak becomes ``k * sigma_local``, so ``k`` is exactly the peak
signal-to-noise of the placed object against the local noise of the map (RADiff,
section 5.3: objects modulated by the background sigma and an exponential k).

Background of a tile = median of its pixels *outside* the footprint, after the
inverse preprocessing. The median rather than the mean because the model may paint
faint artefacts or other sources in the background, and the median of the (mostly
noise) outside pixels is robust to them. A tile whose mask covers every pixel has no
outside pixels; its background is taken as 0.

The inverse preprocessing (an arctanh per pixel) was the costliest step of cutting, and
most of a tile lies outside its object's box. With ``monotonic=True`` (the inverse is
elementwise and non-decreasing, as the tanh stretch's inverse is) it is applied only to
the box and to the one or two order statistics the median needs: the k-th smallest of
f(x) is f(k-th smallest of x), so the stamp comes out with the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from radiff_scale.compose.placement import mask_bbox
from radiff_scale.compose.planner import PlacedObject


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


#: The peak of the background-subtracted cut was > 0 and became k * sigma, or the requested peak (normal case).
NORM_PEAK = "peak"
#: The cut's sum was > 0 and became the requested integrated flux (normal case of the flux modes).
NORM_FLUX = "flux"
#: The cut had no positive pixel; it was divided by its largest |value| instead (so it stays <= 0).
NORM_ABS = "abs_peak"
#: The cut was identically zero; the stamp is all zeros.
NORM_ZERO = "zero"
#: An integrated flux was asked of a cut whose sum was <= 0 although some pixels were > 0:
#: only its positive part was kept and scaled (the request is met; the tile was poor).
NORM_POSITIVE = "positive_part"
#: The normalisations that mean "the object came out as asked".
NORMAL = (NORM_PEAK, NORM_FLUX)


@dataclass(frozen=True)
class Brightness:
    """What a stamp is scaled to: its ``peak`` in Jy/beam (k * sigma in the paper's mode), or
    its ``integrated`` flux in Jy (sum of pixels / ``beam_area_px``)."""

    kind: str
    value: float
    beam_area_px: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("peak", "integrated"):
            raise ValueError(f"brightness kind must be 'peak' or 'integrated', got {self.kind!r}")
        if not (math.isfinite(self.value) and self.value >= 0 and self.beam_area_px > 0):
            raise ValueError(f"brightness needs a finite value >= 0 and a beam area > 0, got {self}")


def scale_cut(cut: np.ndarray, mask: np.ndarray, brightness: Brightness) -> tuple[np.ndarray, str]:
    """``cut`` (zero outside ``mask``) scaled to ``brightness``, as float32, and how (``NORM_*``).

    A cut with nothing positive to scale (its peak, or its sum, <= 0) is divided by its
    largest |value| (or the sum of |values|) instead and flagged, so it stays what it was:
    darker than its background -- except that a flux asked of a cut with some positive
    pixels scales their positive part (flagged ``NORM_POSITIVE``): a catalogue's flux is
    met. The scale is one float64 factor, so the float32 sum of an integrated stamp equals
    the request to float32 rounding (~1e-7).
    """
    inside = cut[mask]
    if brightness.kind == "peak":
        peak = float(inside.max()) if inside.size else 0.0
        if peak > 0:
            norm, scale = NORM_PEAK, peak
        else:
            scale = float(np.abs(inside).max()) if inside.size else 0.0
            norm = NORM_ABS if scale > 0 else NORM_ZERO
        amplitude = brightness.value
    else:
        total = float(inside.sum())
        if total > 0:
            norm, scale = NORM_FLUX, total
        elif inside.size and inside.max() > 0:
            # A catalogue asked for a flux: keep the object's emission, drop the negative noise.
            cut = np.maximum(cut, 0.0)
            norm, scale = NORM_POSITIVE, float(cut[mask].sum())
        else:
            scale = float(np.abs(inside).sum())
            norm = NORM_ABS if scale > 0 else NORM_ZERO
        amplitude = brightness.value * brightness.beam_area_px
    data = cut * (amplitude / scale) if scale > 0 else np.zeros_like(cut)
    return np.where(mask, data, 0.0).astype(np.float32), norm


@dataclass(frozen=True)
class CutStamp(Stamp):
    """A :class:`Stamp` that also records how its peak was normalised (``NORM_*``).

    Anything other than ``NORM_PEAK`` means the generated tile did not contain a
    brighter-than-background object inside its mask; the driver should log it.
    """

    normalisation: str = NORM_PEAK


def cut_stamp(
    placed: PlacedObject,
    tile: np.ndarray,
    footprint: np.ndarray,
    sigma_local: float,
    inverse: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    monotonic: bool = False,
    brightness: Brightness | None = None,
) -> CutStamp:
    """The object of ``placed`` in Jy/beam, trimmed to its footprint's bounding box.

    ``tile`` is the generated image in the model's [0, 1] range, ``footprint`` the
    object's boolean mask on the same grid, ``sigma_local`` the map's local noise
    (Jy/beam) at the object, ``inverse`` the inverse stretch (tile values to
    flux-like values, e.g. the model stretch's ``decode``); None means the
    tile is already linear. Output is float32, zero outside the mask, peak ``k *
    sigma_local``; ``row0, col0`` are the map pixel of the trimmed box's [0, 0].
    ``monotonic`` promises that ``inverse`` is elementwise and non-decreasing, which
    lets it skip most pixels (same result; see the module docstring). ``brightness``
    replaces the peak ``k * sigma_local`` (a flux in Jy, or a peak in Jy/beam).
    """
    tile = np.asarray(tile)
    footprint = np.asarray(footprint).astype(bool, copy=False)
    if tile.shape != footprint.shape or tile.ndim != 2:
        raise ValueError(f"tile {tile.shape} and footprint {footprint.shape} must be the same 2-D shape")
    if not (np.isfinite(sigma_local) and sigma_local >= 0):
        raise ValueError(f"object {placed.object_id}: sigma_local must be finite and >= 0, got {sigma_local}")
    box = mask_bbox(footprint)
    if box is None:
        raise ValueError(f"object {placed.object_id}: empty footprint (the planner never places these)")

    r0, r1, c0, c1 = box
    cut, mask = linear_cut(placed.object_id, tile, footprint, box, inverse, monotonic)
    if brightness is None:
        brightness = Brightness("peak", float(placed.k) * float(sigma_local))
    data, norm = scale_cut(cut, mask, brightness)
    return CutStamp(
        object_id=int(placed.object_id),
        class_id=int(placed.class_id),
        row0=int(placed.row0) + r0,
        col0=int(placed.col0) + c0,
        data=data,
        mask=mask,
        normalisation=norm,
    )


def linear_cut(
    object_id: int,
    tile: np.ndarray,
    footprint: np.ndarray,
    box: tuple[int, int, int, int],
    inverse: Callable[[np.ndarray], np.ndarray] | None,
    monotonic: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(cut, mask) over the footprint's box: the tile made linear, minus its background (the
    median outside the footprint), zero outside the footprint; float64."""
    r0, r1, c0, c1 = box
    if inverse is not None and monotonic:
        linear_box, background = _box_and_background_monotonic(object_id, tile, footprint, box, inverse)
    else:
        linear = np.asarray(inverse(tile) if inverse is not None else tile, dtype=np.float64)
        if linear.shape != tile.shape:
            raise ValueError(f"inverse changed the tile shape {tile.shape} -> {linear.shape}")
        if not np.all(np.isfinite(linear)):
            raise ValueError(f"object {object_id}: inverse preprocessing gave non-finite values")
        outside = linear[~footprint]
        background = float(np.median(outside)) if outside.size else 0.0
        linear_box = linear[r0:r1, c0:c1]
    mask = np.ascontiguousarray(footprint[r0:r1, c0:c1])
    return np.where(mask, linear_box - background, 0.0), mask


def _box_and_background_monotonic(
    object_id: int,
    tile: np.ndarray,
    footprint: np.ndarray,
    box: tuple[int, int, int, int],
    inverse: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, float]:
    """The inverse over the footprint box and the median of the inverse outside the footprint,
    equal to the bytes of the whole-tile computation for an elementwise non-decreasing inverse.

    Inputs to the inverse are contiguous arrays, as the whole tile is, so a SIMD ufunc loop
    treats every pixel the way it would inside the whole tile. Finiteness of the whole
    inverse follows from a finite minimum and maximum of the tile (NaN propagates into
    both) and finite images of them.
    """
    r0, r1, c0, c1 = box
    lo, hi = tile.min(), tile.max()  # NaN or inf anywhere makes one of them non-finite
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"object {object_id}: inverse preprocessing gave non-finite values")
    linear_box = np.asarray(inverse(np.ascontiguousarray(tile[r0:r1, c0:c1])), dtype=np.float64)
    outside = tile[~footprint]
    n = outside.size
    if n == 0:
        stats = outside[:0]
    else:
        # One partition at n // 2; the lower middle of an even count is the largest value
        # below it (a second kth in the same partition call costs ~6x more).
        part = np.partition(outside, n // 2)
        stats = part[n // 2 : n // 2 + 1] if n % 2 else np.array([part[: n // 2].max(), part[n // 2]], dtype=tile.dtype)
    # One call for the extremes (finiteness) and the median's order statistics.
    picked = np.concatenate([np.array([lo, hi], dtype=tile.dtype), stats])
    mapped = np.asarray(inverse(picked), dtype=np.float64)
    if linear_box.shape != (r1 - r0, c1 - c0) or mapped.shape != picked.shape:
        raise ValueError(f"object {object_id}: inverse changed the shape of its input")
    if not np.all(np.isfinite(mapped[:2])):
        raise ValueError(f"object {object_id}: inverse preprocessing gave non-finite values")
    if n == 0:
        return linear_box, 0.0
    # The median of the one or two middle order statistics, as np.median computes it.
    return linear_box, float(mapped[2]) if n % 2 else float((mapped[2] + mapped[3]) / 2.0)
