"""Beam convolution on a periodic grid, for the simulator's noise and artefact patterns.

Noise and sidelobe patterns are not sums of Gaussians, so they go through a numerical
convolution; on a cutout-sized periodic grid an FFT with a cached beam transfer is the
cheapest exact way (see :func:`beam_noise` for why periodic is fine for noise).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sp_fft

from radiff_scale.beam import Beam


@functools.lru_cache(maxsize=16)
def _beam_transfer(shape: tuple[int, int], bmaj: float, bmin: float, bpa: float, scale: float) -> tuple[np.ndarray, float, float, int]:
    """rfft2 of the peak-1 beam kernel centred on pixel (0, 0) of a periodic ``shape`` grid.

    Cached because every cutout of a run shares it (a pure function of its arguments, so
    the cache can never change a result). Returns (transfer, sum k, sqrt(sum k^2), half size).
    """
    kernel = Beam(bmaj, bmin, bpa).kernel(scale)
    half = kernel.shape[0] // 2
    if kernel.shape[0] > min(shape):
        raise ValueError(f"beam kernel {kernel.shape} larger than grid {shape}")
    grid = np.zeros(shape)
    grid[: kernel.shape[0], : kernel.shape[1]] = kernel
    grid = np.roll(grid, (-half, -half), axis=(0, 1))
    transfer = sp_fft.rfft2(grid)
    transfer.setflags(write=False)
    return transfer, float(kernel.sum()), float(np.sqrt(np.sum(kernel * kernel))), half


def beam_noise(rng: np.random.Generator, shape: tuple[int, int], beam: Beam, pixel_scale_arcsec: float,
               rms: float) -> np.ndarray:
    """Beam-correlated Gaussian noise of exactly ``rms`` (in expectation), by periodic FFT convolution.

    A cutout needs no halo (unlike :func:`radiff_scale.beam.correlated_noise`, which keeps
    chunks of a mosaic seamless): white noise convolved circularly is just as stationary,
    and at 128^2 it is several times cheaper than a linear convolution of a padded field.
    The scale is analytic (rms / sqrt(sum k^2)), as in the mosaic code.
    """
    transfer, _, norm, _ = _beam_transfer(tuple(shape), beam.bmaj_arcsec, beam.bmin_arcsec, beam.bpa_deg,
                                          pixel_scale_arcsec)
    white = rng.standard_normal(shape)
    return sp_fft.irfft2(sp_fft.rfft2(white) * transfer, s=shape) * (rms / norm)


def smooth_by_beam(image: np.ndarray, beam: Beam, pixel_scale_arcsec: float) -> np.ndarray:
    """Convolve with the unit-sum beam; ``image`` must already carry a halo it can lose.

    Periodic convolution wraps only within the kernel's half size of the edges, so callers
    evaluate on a grid padded by that much and crop it (see :func:`sidelobe_pattern`).
    """
    transfer, total, _, _ = _beam_transfer(image.shape, beam.bmaj_arcsec, beam.bmin_arcsec, beam.bpa_deg,
                                           pixel_scale_arcsec)
    return sp_fft.irfft2(sp_fft.rfft2(image) * transfer, s=image.shape) / total
