"""The background image of a cutout: its sources replaced by noise like the noise around them.

The diffusion model is conditioned on a background without the objects it is asked to
draw; for a real image that background does not exist, so source pixels (masks grown
by a beam) are filled with beam-correlated noise of the measured rms on the measured level.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import ndimage

from radiff_scale.beam import Beam, correlated_noise
from radiff_scale.data.annotate_objects import FoundObject
from radiff_scale.data.annotate_segment import disk


def noise_seed(seed: int, name: str) -> list[int]:
    """Seed words for a cutout's noise: the run seed and a hash of the name (stable across runs/platforms)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return [int(seed) & 0xFFFFFFFF, *(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))]


def background_image(image: np.ndarray, source_px: np.ndarray, bkg: np.ndarray, rms: np.ndarray,
                     beam: Beam, pixel_scale: float, seed: list[int]) -> np.ndarray:
    """The cutout with source pixels replaced by beam-correlated noise of the measured rms plus the background level.

    Noise is white Gaussian convolved with the beam (radiff_scale.beam.correlated_noise,
    analytic rescaling to unit rms), so the filled area has the same texture as the real
    noise around it. NaN pixels stay NaN.
    """
    kernel = beam.kernel(pixel_scale)
    halo = kernel.shape[0] // 2
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((image.shape[0] + 2 * halo, image.shape[1] + 2 * halo))
    noise = correlated_noise(white, kernel, 1.0).astype(np.float64)
    out = image.astype(np.float64)
    fill = source_px & np.isfinite(image)
    out[fill] = bkg[fill] + rms[fill] * noise[fill]
    return out.astype(np.float32)


def source_pixels(objects: list[FoundObject], shape: tuple[int, int], fwhm_px: float) -> np.ndarray:
    """Union of object masks dilated by one beam FWHM: what the background image replaces."""
    union = np.zeros(shape, dtype=bool)
    for obj in objects:
        union |= obj.mask
    return ndimage.binary_dilation(union, structure=disk(fwhm_px)) if union.any() else union
