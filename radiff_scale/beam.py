"""The restoring beam: its kernel, its area, and beam-correlated noise.

Radio maps are in Jy/beam: a point source of flux S (Jy) has peak S (Jy/beam), and the
integrated flux of an extended source is sum(pixels) / beam area in pixels. Every
module that converts between the two goes through :class:`Beam`.

Position angle follows the astronomical convention: degrees east of north, with north
along +row (image y up) and east along -col (RA increasing to the left).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class Beam:
    """An elliptical Gaussian beam. Axes are FWHM in arcsec, ``bpa_deg`` east of north."""

    bmaj_arcsec: float
    bmin_arcsec: float
    bpa_deg: float = 0.0

    def __post_init__(self) -> None:
        if not (self.bmaj_arcsec > 0 and self.bmin_arcsec > 0):
            raise ValueError(f"beam axes must be > 0, got {self.bmaj_arcsec}, {self.bmin_arcsec}")
        if self.bmin_arcsec > self.bmaj_arcsec:
            object.__setattr__(self, "bmaj_arcsec", self.bmin_arcsec)
            object.__setattr__(self, "bmin_arcsec", self.bmaj_arcsec)

    def area_pixels(self, pixel_scale_arcsec: float) -> float:
        """Beam solid angle in pixels: pi * bmaj * bmin / (4 ln 2) / pixel^2."""
        return math.pi * self.bmaj_arcsec * self.bmin_arcsec / (4.0 * math.log(2.0)) / pixel_scale_arcsec**2

    def kernel(self, pixel_scale_arcsec: float, size: int | None = None) -> np.ndarray:
        """The beam sampled on pixels, peak 1 (odd size; default covers +-4 sigma of the major axis)."""
        return gaussian_kernel(
            self.bmaj_arcsec / pixel_scale_arcsec,
            self.bmin_arcsec / pixel_scale_arcsec,
            self.bpa_deg,
            size,
        )


def gaussian_kernel(fwhm_major_px: float, fwhm_minor_px: float, pa_deg: float, size: int | None = None) -> np.ndarray:
    """Elliptical Gaussian of peak 1 on an odd square grid, PA east of north (see module doc)."""
    sig_maj = fwhm_major_px * FWHM_TO_SIGMA
    sig_min = fwhm_minor_px * FWHM_TO_SIGMA
    if size is None:
        size = 2 * int(math.ceil(4.0 * sig_maj)) + 1
    if size % 2 == 0:
        size += 1
    half = size // 2
    rows, cols = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    # Major axis direction: PA from north (+row) towards east (-col).
    theta = math.radians(pa_deg)
    along = rows * math.cos(theta) - cols * math.sin(theta)
    across = rows * math.sin(theta) + cols * math.cos(theta)
    return np.exp(-0.5 * ((along / sig_maj) ** 2 + (across / sig_min) ** 2))


def correlated_noise(white: np.ndarray, kernel: np.ndarray, rms: float) -> np.ndarray:
    """Convolve unit white noise with ``kernel`` and scale to ``rms``.

    The scale is analytic (std of white noise convolved with k is sqrt(sum k^2)), not
    measured from the realisation, so a map made chunk by chunk from the same white
    noise has exactly the same values as one made in one piece. Output is the 'valid'
    part: ``white`` must carry a halo of ``kernel.shape[0] // 2`` pixels on each side.
    """
    from scipy import signal  # here, not at import: scipy.signal is ~0.9 s of a chunk worker's start-up

    norm = float(np.sqrt(np.sum(kernel * kernel)))
    out = signal.fftconvolve(white, kernel, mode="valid")
    return (out * (rms / norm)).astype(np.float32)
