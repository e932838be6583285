"""Robust noise level: 1.4826 times the median absolute deviation about the median.

Radio images are mostly noise with a few bright sources; a plain standard deviation is
dragged up by the sources, the MAD is not. The simulator's real-background patches, the
compositor's sigma map and the mask-agreement check all measure noise this way, so they
share this one definition rather than three hand-written copies that could drift apart.

The factor is exactly 1.4826, not astropy's ``mad_std`` (1.482602218505602): every map
and dataset the project has written was scaled with 1.4826, and switching would change
the bytes of all of them (and the golden hashes) for a difference of 1.5e-6.
"""

from __future__ import annotations

import math

import numpy as np

#: Gaussian sigma per median absolute deviation (1 / Phi^-1(3/4), rounded as it always was).
MAD_TO_SIGMA = 1.4826


def median_and_sigma(values: np.ndarray) -> tuple[float, float]:
    """Median and 1.4826 * MAD of ``values`` exactly as given, nothing filtered out.

    For callers that need the centre too (a threshold above the background) and whose
    data cannot hold blanks; a NaN anywhere makes both results NaN.
    """
    median = np.median(values)
    return float(median), MAD_TO_SIGMA * float(np.median(np.abs(values - median)))


def robust_sigma(values: np.ndarray, *, zeros_are_blank: bool = False, min_valid: int = 1) -> float:
    """1.4826 * MAD of the finite values of ``values`` (in float64), NaN if fewer than ``min_valid``.

    NaN and infinite pixels are blanks in every map we read. ``zeros_are_blank`` also drops
    exact zeros, which is how mosaics and primary-beam-cut maps mark pixels outside the
    survey. The result may be 0 (more than half the values equal); callers decide what a
    zero noise means for them.
    """
    keep = np.isfinite(values)
    if zeros_are_blank:
        keep &= values != 0
    valid = values[keep].astype(np.float64, copy=False)
    if valid.size < max(min_valid, 1):
        return math.nan
    return median_and_sigma(valid)[1]
