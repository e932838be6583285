"""Invertible version of RADiff's cutout preprocessing (NaN->0, ZScale, clip, tanh, min-max).

The paper (sec. 3.1) and its reference code normalise every FITS cutout with
``NaN -> 0``, an astropy ZScale stretch, a sigma clip, ``tanh`` and a min-max to
[0, 1]. As published that chain cannot be undone: the min-max and ZScale limits
are thrown away, the sigma clip is a silent no-op (``torch.tensor`` of a masked
array keeps the raw data) and ``tanh`` of a bright source (ZScale units of 15-50
on real cutouts) is exactly 1.0 in floating point. A synthetic map needs the
way back to flux, so here every per-image number is kept in
:class:`PreprocessParams` and the two clip bounds are chosen so that ``arctanh``
stays well conditioned:

* lower bound: the real ``sigma``-sigma lower clip bound of the z-scaled image
  (astropy ``sigma_clip``, median centre; ``sigma`` = 5 by default), or the
  data minimum when that is higher. It only bites on extreme negative outliers
  (artefacts, deep bowls), which would otherwise squeeze the whole background
  into a narrow band of [0, 1] through the min-max.
* upper bound: ``z_max`` ZScale units, *not* the 3-sigma upper bound (that would
  flatten every source). Above ``z_max`` the published chain already maps
  pixels to within ``1 - tanh(z_max)`` of 1, which no model resolves.

See docs/preprocessing.md for measurements on real data and what clipping loses.
The module is numpy/astropy only (no torch): it runs per sample in data-loader
workers and in the compositor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from radiff_scale.errors import RadiffError

#: Largest accepted ``z_max``: tanh(15) = 1 - 1.9e-13, still invertible in float64.
Z_MAX_LIMIT = 15.0

#: Iterations of the sigma clip that estimates the z-scaled background (astropy's default).
_SIGMA_CLIP_MAXITERS = 5


@dataclass
class PreprocessConfig:
    """How cutouts are normalised for the models; the output is always in [0, 1].

    The model maps [0, 1] to [-1, 1] itself (``2 y - 1``), so that no second
    convention travels with the data.
    """

    #: ZScale contrast (astropy ``ZScaleInterval``); 0.15 as in RADiff.
    contrast: float = 0.15
    #: Lower clip where a real ``sigma``-sigma clip (astropy ``sigma_clip``, median
    #: centre) of the z-scaled image rejects pixels; ``None`` clips nothing at the
    #: low end but -z_max (the published behaviour). 5, not RADiff's 3: a 3-sigma bound
    #: flattens the noise tail of half of all real patches (docs/preprocessing.md).
    sigma: float | None = 5.0
    #: Upper clip in ZScale units (0 = ZScale minimum, 1 = ZScale maximum). Keeps
    #: ``arctanh`` well conditioned: see docs/preprocessing.md for the precision.
    z_max: float = 5.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.contrast) and 0.0 < self.contrast <= 1.0):
            raise RadiffError(f"preprocess option contrast must be in (0, 1], got {self.contrast!r}")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0.0):
            raise RadiffError(f"preprocess option sigma must be positive or null, got {self.sigma!r}")
        if not (math.isfinite(self.z_max) and 0.0 < self.z_max <= Z_MAX_LIMIT):
            raise RadiffError(f"preprocess option z_max must be in (0, {Z_MAX_LIMIT:g}], got {self.z_max!r}")


@dataclass(frozen=True)
class PreprocessParams:
    """Everything needed to map one image to [0, 1] and back.

    ``zmin``/``zmax`` are in flux units (they scale with the image); the clip
    bounds are in ZScale units and ``tmin``/``tmax`` are ``tanh`` of them (the
    ends of the min-max stage), so those four are scale-free. The invariants are checked on construction so a
    hand-edited JSON file cannot produce NaNs later.
    """

    zmin: float
    zmax: float
    clip_lo: float
    clip_hi: float
    tmin: float
    tmax: float

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise RadiffError(f"preprocess parameter {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not self.zmax > self.zmin:
            raise RadiffError(f"preprocess parameters need zmax > zmin, got zmin={self.zmin!r} zmax={self.zmax!r}")
        if not self.clip_hi > self.clip_lo:
            raise RadiffError(
                "preprocess parameters need clip_hi > clip_lo, "
                f"got clip_lo={self.clip_lo!r} clip_hi={self.clip_hi!r}"
            )
        if not -1.0 < self.tmin < self.tmax < 1.0:
            raise RadiffError(
                f"preprocess parameters need -1 < tmin < tmax < 1, got tmin={self.tmin!r} tmax={self.tmax!r}"
            )

    def to_dict(self) -> dict[str, float]:
        """Plain floats (JSON round-trips them exactly)."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessParams:
        """Inverse of :meth:`to_dict`; a missing or extra key is a user error naming it."""
        if not isinstance(data, dict):
            raise RadiffError(f"preprocess parameters must be a mapping, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        extra = sorted(set(data) - set(names))
        if missing or extra:
            raise RadiffError(
                f"preprocess parameters: missing {', '.join(missing) or 'nothing'}, "
                f"unknown {', '.join(extra) or 'nothing'}"
            )
        return cls(**{n: data[n] for n in names})

    def scaled(self, factor: float) -> PreprocessParams:
        """Parameters for the image multiplied by ``factor`` > 0.

        Only the flux-unit limits change: ZScale is scale-equivariant and all other
        fields live in ZScale units. The compositor uses this to turn reference
        parameters (in units of a background rms) into flux for a local sigma.
        """
        factor = float(factor)
        if not (math.isfinite(factor) and factor > 0.0):
            raise RadiffError(f"preprocess scale factor must be a positive finite number, got {factor!r}")
        return PreprocessParams(
            zmin=self.zmin * factor,
            zmax=self.zmax * factor,
            clip_lo=self.clip_lo,
            clip_hi=self.clip_hi,
            tmin=self.tmin,
            tmax=self.tmax,
        )


def _as_float_image(image: Any, source: str | None) -> np.ndarray:
    """float64 copy with NaN (and +-inf, equally unusable) set to 0, as RADiff does."""
    where = f" ({source})" if source else ""
    try:
        arr = np.array(image, dtype=np.float64)
    except (TypeError, ValueError):
        raise RadiffError(f"image{where} is not a numeric array") from None
    if arr.size < 2:
        raise RadiffError(f"image{where} has {arr.size} pixel(s); nothing to normalise")
    arr[~np.isfinite(arr)] = 0.0
    return arr


def _zscale_limits(arr: np.ndarray, contrast: float) -> tuple[float, float]:
    """ZScale limits, falling back to the data range when ZScale collapses.

    ZScale returns ``lo == hi`` when most sampled pixels are equal (for instance a
    cutout that is mostly NaN, now 0); the data range is then the only scale left.
    """
    from astropy.visualization import ZScaleInterval

    lo, hi = (float(v) for v in ZScaleInterval(contrast=contrast).get_limits(arr))
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        lo, hi = float(arr.min()), float(arr.max())
    return lo, hi


def _lower_bound(z: np.ndarray, sigma: float) -> float:
    """The lower bound at which a real ``sigma``-sigma clip of ``z`` rejects pixels."""
    from astropy.stats import SigmaClip

    clipper = SigmaClip(sigma=sigma, maxiters=_SIGMA_CLIP_MAXITERS, cenfunc="median", stdfunc="std")
    _, lower, _ = clipper(z, masked=False, return_bounds=True, copy=False)
    return float(lower)


def fit_params(
    image: Any, config: PreprocessConfig | None = None, *, source: str | None = None
) -> PreprocessParams:
    """Measure the normalisation of one image.

    A constant image (all NaN included) carries no scale and is a user error
    naming ``source``: training and map jobs should drop such cutouts, not invent
    a scale for them.
    """
    config = config or PreprocessConfig()
    arr = _as_float_image(image, source)
    data_lo, data_hi = float(arr.min()), float(arr.max())
    if not data_hi > data_lo:
        where = f" {source}" if source else ""
        raise RadiffError(
            f"image{where} is constant ({data_lo:g} everywhere after NaN->0); it cannot be normalised"
        )
    zmin, zmax = _zscale_limits(arr, config.contrast)
    z = (arr - zmin) / (zmax - zmin)
    z_lo, z_hi = float(z.min()), float(z.max())

    # Both ends stay inside the data, so tanh of them are the min and max of the
    # tanh stage (the published min-max) and every pixel between is reproduced.
    # Top: capped at z_max. Bottom: raised to the sigma-clip bound, which only
    # happens for extreme negative outliers; never below -z_max, so |tmin| < 1.
    clip_hi = min(config.z_max, z_hi)
    lower = -config.z_max if config.sigma is None else max(_lower_bound(z, config.sigma), -config.z_max)
    clip_lo = max(lower, z_lo)
    if not clip_hi > clip_lo:
        where = f" {source}" if source else ""
        raise RadiffError(
            f"image{where} has no range left between the clip bounds ({clip_lo:g} >= {clip_hi:g} in ZScale units)"
        )
    return PreprocessParams(
        zmin=zmin,
        zmax=zmax,
        clip_lo=clip_lo,
        clip_hi=clip_hi,
        tmin=math.tanh(clip_lo),
        tmax=math.tanh(clip_hi),
    )


def preprocess(image: Any, params: PreprocessParams, dtype: Any = np.float32) -> np.ndarray:
    """Map flux to [0, 1] with given parameters (any image: its own or a reference's).

    Computed in float64; ``dtype`` only sets what is returned. Pixels outside
    ``[clip_lo, clip_hi]`` (ZScale units) end at 0 or 1.
    """
    arr = _as_float_image(image, None)
    z = (arr - params.zmin) / (params.zmax - params.zmin)
    t = np.tanh(np.clip(z, params.clip_lo, params.clip_hi))
    y = (t - params.tmin) / (params.tmax - params.tmin)
    return np.clip(y, 0.0, 1.0).astype(dtype, copy=False)


def inverse_preprocess(y: Any, params: PreprocessParams) -> np.ndarray:
    """Map [0, 1] back to flux (float64).

    ``y`` is clipped to [0, 1] first, so a model output slightly out of range
    lands on the clip bounds instead of on ``arctanh(+-1)``; the params' validation
    keeps ``|tmin|, |tmax| < 1``. Pixels that were clipped come back at their
    bound, not at their original value.
    """
    y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
    t = params.tmin + y * (params.tmax - params.tmin)
    z = np.arctanh(t)
    return params.zmin + z * (params.zmax - params.zmin)


def preprocess_image(
    image: Any, config: PreprocessConfig | None = None, *, source: str | None = None, dtype: Any = np.float32
) -> tuple[np.ndarray, PreprocessParams]:
    """Fit and apply in one go: the training data path."""
    params = fit_params(image, config, source=source)
    return preprocess(image, params, dtype=dtype), params


def reference_params(params: Sequence[PreprocessParams], rms: Sequence[float]) -> PreprocessParams:
    """Typical parameters in units of the background rms.

    Generated tiles have no parameters of their own. Each cutout's flux-unit limits
    are divided by that cutout's background rms, then every field takes its median
    over the cutouts; ``tmin``/``tmax`` are recomputed as ``tanh`` of the median
    clip bounds (identical to their medians for an odd count, tanh being
    monotonic). The compositor calls ``.scaled(local_sigma)`` on the result.
    """
    params = list(params)
    rms_values = [float(r) for r in rms]
    if not params:
        raise RadiffError("reference_params needs at least one set of preprocess parameters")
    if len(params) != len(rms_values):
        raise RadiffError(f"reference_params got {len(params)} parameter sets but {len(rms_values)} rms values")
    in_rms = []
    for i, (p, r) in enumerate(zip(params, rms_values)):
        if not (math.isfinite(r) and r > 0.0):
            raise RadiffError(f"reference_params: rms value {i} must be positive and finite, got {r!r}")
        in_rms.append(p.scaled(1.0 / r))
    med = {
        name: float(np.median([getattr(p, name) for p in in_rms]))
        for name in ("zmin", "zmax", "clip_lo", "clip_hi")
    }
    return PreprocessParams(tmin=math.tanh(med["clip_lo"]), tmax=math.tanh(med["clip_hi"]), **med)
