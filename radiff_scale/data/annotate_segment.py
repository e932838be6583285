"""Segmentation of an S/N image into islands and peaks, the way a radio source finder does.

PyBDSF-like double threshold: islands are connected pixels above ``--island-sigma``, kept
only if they hold a seed above ``--seed-sigma``; peaks (local maxima above the seed, a beam
apart) tell one Gaussian from several. photutils does the pixel work.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import ndimage

from radiff_scale.data.annotate_config import AnnotateConfig
from radiff_scale.data.annotate_image import InputImage

#: Fraction of the beam area (pixels) an island must cover (``npixels`` of detect_sources).
#: 0.5 keeps a point source just above the seed threshold (its 3-sigma island is ~0.5 beam)
#: and rejects single-pixel noise spikes; never below 3 pixels.
NPIXELS_BEAM_FRACTION = 0.5
MIN_NPIXELS = 3


def disk(radius: float) -> np.ndarray:
    """A boolean disk of ``radius`` pixels: the footprint and dilation structure sized by the beam."""
    r = max(0, int(math.floor(radius)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= radius * radius + 1e-9


def detect_islands(snr: np.ndarray, nan: np.ndarray, image: InputImage, config: AnnotateConfig) -> np.ndarray:
    """Island labels (int, 0 = none): photutils detect_sources above island-sigma, kept if they hold a seed."""
    from photutils.segmentation import deblend_sources, detect_sources

    npixels = max(MIN_NPIXELS, int(NPIXELS_BEAM_FRACTION * image.beam_area_px))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NoDetectionsWarning: an empty image is counted, not warned about
        segm = detect_sources(snr, config.island_sigma, npixels, mask=nan)
        if segm is None:
            return np.zeros(snr.shape, dtype=np.int32)
        if config.deblend:
            segm = deblend_sources(snr, segm, npixels, progress_bar=False)
    labels = np.asarray(segm.data, dtype=np.int32)
    n = int(labels.max())
    peaks = ndimage.maximum(snr, labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = np.asarray(peaks) >= config.seed_sigma
    labels = np.where(keep[labels], labels, 0)
    # Renumber 1..n (0 stays 0 as the smallest value); deblended segments keep their own labels.
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def count_peaks(snr: np.ndarray, nan: np.ndarray, image: InputImage, config: AnnotateConfig) -> np.ndarray:
    """(row, col) of local maxima above seed-sigma, at least one beam FWHM apart (photutils find_peaks)."""
    from photutils.detection import find_peaks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = find_peaks(np.where(nan, 0.0, snr), config.seed_sigma, footprint=disk(image.fwhm_px), mask=nan)
    if table is None or len(table) == 0:
        return np.zeros((0, 2), dtype=int)
    return np.stack([np.asarray(table["y_peak"]), np.asarray(table["x_peak"])], axis=1).astype(int)
