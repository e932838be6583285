"""The pixel stretch between flux and the models' [0, 1] range, recorded in each model bundle.

Two stretches exist, and a bundle's card says which one its models were trained with:

* ``asinh_sigma`` (the default since the models learned from real FIRST images): an
  image is measured in units of its own background rms, ``s = (x - centre) / rms``, and
  compressed with ``asinh(s / softening)`` between fixed ends ``s_lo`` and ``s_hi``.
  Nothing is clipped that real data reaches (real FIRST galaxies peak at 9-1600 rms;
  ``s_hi`` = 5000), the noise keeps a third of the range, and the inverse is exact.
  A generated tile decodes straight into rms units, which is what the map job scales
  by the local noise and ``k``.
* ``zscale_tanh``: the published RADiff chain (ZScale, tanh, min-max;
  :mod:`radiff_scale.data.preprocess`), which flattens everything above ~5 ZScale
  units (10-14 rms). Kept so that bundles trained with it still load and decode.

Both offer ``encode(image) -> y`` (the model's input, its own background measured) and
``decode(y) -> s`` (a model output in rms units of its background). See
docs/preprocessing.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from radiff_scale.errors import FlatImageError, RadiffError

#: Iterations and width of the sigma clip that finds an image's background.
_CLIP_SIGMA = 3.0
_CLIP_ITERS = 5


def background_stats(image: Any, *, source: str | None = None) -> tuple[float, float]:
    """(centre, rms) of an image's background in its own units: the sigma-clipped
    median and MAD-based standard deviation (astropy), NaN and inf ignored.

    The MAD, not the standard deviation: a bright source covers a few percent of a
    cutout and would inflate a standard deviation even after clipping. A constant or
    empty image has no rms and is a user error naming ``source``.
    """
    from astropy.stats import sigma_clipped_stats

    arr = np.asarray(image, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    where = f" {source}" if source else ""
    if finite.size < 2:
        raise FlatImageError(f"image{where} has fewer than 2 finite pixels; it cannot be normalised")
    _, median, rms = sigma_clipped_stats(finite, sigma=_CLIP_SIGMA, maxiters=_CLIP_ITERS, stdfunc="mad_std")
    if not (math.isfinite(rms) and rms > 0.0):
        # Most pixels equal (e.g. zero-padded edges): the plain standard deviation is the scale left.
        rms = float(np.std(finite))
        median = float(np.median(finite))
    if not rms > 0.0:
        raise FlatImageError(f"image{where} is constant; it cannot be normalised")
    return float(median), float(rms)


class Stretch(Protocol):
    """What the training job, the map job and the evaluation need of a stretch."""

    kind: str

    def encode(self, image: Any, *, source: str | None = None) -> np.ndarray:
        """Flux image -> float32 [0, 1], normalised by the image's own background."""

    def decode(self, y: Any) -> np.ndarray:
        """[0, 1] image -> float64 image in rms units of its background."""

    def to_card(self) -> dict[str, Any]:
        """What the bundle card records to rebuild this stretch."""


@dataclass(frozen=True)
class AsinhStretch:
    """``y = (asinh(s / a) - asinh(s_lo / a)) / (asinh(s_hi / a) - asinh(s_lo / a))``, ``s`` in rms units.

    ``softening`` ``a`` sets where the stretch turns from linear to logarithmic: at 1 rms
    the noise stays nearly linear (its texture is what the autoencoder must carry) while
    a 1000-rms hotspot still sits below 1. ``s_lo`` only bounds deep negative artefacts.
    """

    kind: str = "asinh_sigma"
    softening: float = 1.0
    s_lo: float = -20.0
    s_hi: float = 5000.0

    def __post_init__(self) -> None:
        if self.kind != "asinh_sigma":
            raise RadiffError(f"AsinhStretch kind must be 'asinh_sigma', got {self.kind!r}")
        for name in ("softening", "s_lo", "s_hi"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
                raise RadiffError(f"stretch {name} must be a finite number, got {value!r}")
        if not self.softening > 0.0:
            raise RadiffError(f"stretch softening must be > 0, got {self.softening!r}")
        if not self.s_lo < 0.0 < self.s_hi:
            raise RadiffError(f"stretch needs s_lo < 0 < s_hi, got {self.s_lo!r}, {self.s_hi!r}")

    @property
    def _ends(self) -> tuple[float, float]:
        return math.asinh(self.s_lo / self.softening), math.asinh(self.s_hi / self.softening)

    def forward(self, s: Any) -> np.ndarray:
        """rms units -> [0, 1] (float64); values beyond ``s_lo``/``s_hi`` end at 0/1."""
        lo, hi = self._ends
        y = (np.arcsinh(np.asarray(s, dtype=np.float64) / self.softening) - lo) / (hi - lo)
        return np.clip(y, 0.0, 1.0)

    def decode(self, y: Any) -> np.ndarray:
        lo, hi = self._ends
        y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
        return self.softening * np.sinh(lo + y * (hi - lo))

    def encode(self, image: Any, *, source: str | None = None) -> np.ndarray:
        arr = np.asarray(image, dtype=np.float64)
        centre, rms = background_stats(arr, source=source)
        s = np.where(np.isfinite(arr), (arr - centre) / rms, 0.0)
        return self.forward(s).astype(np.float32)

    def to_card(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ZScaleTanhStretch:
    """The published RADiff chain; decoding uses the card's reference parameters (rms units)."""

    reference: dict[str, float]
    kind: str = "zscale_tanh"
    #: ``reference`` checked once, here: decode runs twice per stamp in the stamp stage.
    params: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from radiff_scale.data.preprocess import PreprocessParams

        object.__setattr__(self, "params", PreprocessParams.from_dict(self.reference))

    def encode(self, image: Any, *, source: str | None = None) -> np.ndarray:
        from radiff_scale.data.preprocess import fit_params, preprocess

        return preprocess(image, fit_params(image, source=source))

    def decode(self, y: Any) -> np.ndarray:
        from radiff_scale.data.preprocess import inverse_preprocess

        return inverse_preprocess(y, self.params)

    def to_card(self) -> dict[str, Any]:
        return {"kind": self.kind, "reference": dict(self.reference)}


def stretch_from_dict(data: dict[str, Any] | None) -> AsinhStretch:
    """An asinh stretch from a config or card mapping (None: the defaults)."""
    from radiff_scale.config import from_dict

    return from_dict(AsinhStretch, dict(data or {}), where="stretch")


def stretch_for_card(card: dict[str, Any]) -> Stretch:
    """The stretch a bundle was trained with: ``card["stretch"]``, or the published
    ZScale chain for older bundles, which carry only ``preprocess_reference``."""
    data = card.get("stretch")
    reference = card.get("preprocess_reference")
    if data is not None:
        if not isinstance(data, dict) or data.get("kind") not in ("asinh_sigma", "zscale_tanh"):
            raise RadiffError(f"model card: unknown stretch {data!r}")
        if data["kind"] == "asinh_sigma":
            return stretch_from_dict(data)
        reference = data.get("reference", reference)
    if reference is None:
        raise RadiffError("the model card names no stretch and has no preprocess_reference: tiles cannot go back to flux")
    return ZScaleTanhStretch(reference=dict(reference))
