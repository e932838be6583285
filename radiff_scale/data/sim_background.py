"""Backgrounds of simulated cutouts: a smooth diffuse field, or patches of real maps.

The beam-correlated noise itself comes from :func:`.sim_convolution.beam_noise`; this
module adds what noise alone lacks: unlabelled Galactic-like diffuse emission
(``"noise+diffuse"``) and the real thing (``"real"``), patches of real maps with their
own noise texture and their own faint, unlabelled sources.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from radiff_scale.beam import Beam
from radiff_scale.data.sim_config import SimConfig
from radiff_scale.errors import RadiffError
from radiff_scale.fits_header import fits_error_text
from radiff_scale.robust import robust_sigma


@dataclass(frozen=True)
class RealMap:
    """A real map to cut background patches from, with its beam and pixel scale if known."""

    path: str
    data: np.ndarray
    beam: Beam | None
    pixel_scale_arcsec: float | None


def load_real_maps(paths: list[str]) -> tuple[RealMap, ...]:
    """Open the maps once (memory-mapped where possible); a bad or too-small file is a user error."""
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyWarning

    maps = []
    for path in paths:
        try:
            with warnings.catch_warnings():  # real maps' header quirks: nothing the user can act on
                warnings.simplefilter("ignore", AstropyWarning)
                with fits.open(path, memmap=True) as hdul:
                    hdu = next((h for h in hdul if h.data is not None and h.data.ndim >= 2), None)
                    if hdu is None:
                        raise RadiffError(f"real background {path}: no image data")
                    data = hdu.data
                    while data.ndim > 2 and data.shape[0] == 1:
                        data = data[0]
                    header = hdu.header
                    beam = None
                    if header.get("BMAJ") and header.get("BMIN"):
                        beam = Beam(float(header["BMAJ"]) * 3600, float(header["BMIN"]) * 3600,
                                    float(header.get("BPA", 0.0) or 0.0))
                    step = header.get("CDELT2", header.get("CD2_2"))
                    scale = abs(float(step)) * 3600 if step else None
        except RadiffError:
            raise
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise RadiffError(f"real background {path}: cannot read FITS ({fits_error_text(exc)})") from None
        if data.ndim != 2:
            raise RadiffError(f"real background {path}: image is not 2-D (shape {data.shape})")
        maps.append(RealMap(str(path), data, beam, scale))
    return tuple(maps)


def power_law_field(rng: np.random.Generator, size: int, slope: float) -> np.ndarray:
    """A zero-mean, unit-rms Gaussian random field with power spectrum P(k) ~ k^-slope."""
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.rfftfreq(size), indexing="ij"))
    k[0, 0] = np.inf
    amp = k ** (-slope / 2.0)
    noise = rng.standard_normal((size, size // 2 + 1)) + 1j * rng.standard_normal((size, size // 2 + 1))
    field_ = np.fft.irfft2(noise * amp, s=(size, size))
    field_ -= field_.mean()
    std = field_.std()
    return field_ / std if std > 0 else field_


def real_patch(config: SimConfig, rng: np.random.Generator, maps: tuple[RealMap, ...]) -> tuple[np.ndarray, float, RealMap, int, int]:
    """A random size x size patch (NaN -> 0) of a random map, with its robust rms."""
    n = config.size
    for _ in range(50):
        m = maps[int(rng.integers(len(maps)))]
        h, w = m.data.shape
        if h < n or w < n:
            raise RadiffError(f"real background {m.path}: map {h}x{w} is smaller than size {n}")
        r0, c0 = int(rng.integers(0, h - n + 1)), int(rng.integers(0, w - n + 1))
        patch = np.array(m.data[r0 : r0 + n, c0 : c0 + n], dtype=np.float64)
        finite = np.isfinite(patch)
        if finite.mean() < 0.5:
            continue
        rms = robust_sigma(patch)  # of the finite pixels
        if rms > 0 and math.isfinite(rms):
            patch[~finite] = 0.0
            return patch, rms, m, r0, c0
    raise RadiffError(
        f"real backgrounds {', '.join(x.path for x in maps)}: no patch with mostly finite, non-constant data in 50 tries"
    )
