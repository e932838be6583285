"""Background level and noise rms of an input image, per pixel, for the S/N that segmentation thresholds.

Statistics are photutils/astropy's (sigma-clipped median, MAD std); what is ours is the
choice between one global estimate and a 2-D map, explained in :func:`estimate_background`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from radiff_scale.data.annotate_config import SINGLE_WINDOW_FACTOR, AnnotateConfig
from radiff_scale.errors import RadiffError


def _background2d(data: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """photutils Background2D (sigma-clipped median level, MAD-std rms), NaNs excluded via coverage_mask."""
    import inspect

    from photutils.background import Background2D, MADStdBackgroundRMS, MedianBackground
    from astropy.stats import SigmaClip

    # photutils 3 renamed bkgrms_estimator to bkg_rms_estimator; accept both (we require >=2).
    params = inspect.signature(Background2D.__init__).parameters
    rms_key = "bkg_rms_estimator" if "bkg_rms_estimator" in params else "bkgrms_estimator"
    nan = ~np.isfinite(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bkg = Background2D(
            data, box, coverage_mask=nan, fill_value=0.0, filter_size=(3, 3),
            sigma_clip=SigmaClip(sigma=3.0, maxiters=10), bkg_estimator=MedianBackground(),
            **{rms_key: MADStdBackgroundRMS()}, exclude_percentile=50.0,
        )
    return np.asarray(bkg.background, dtype=np.float64), np.asarray(bkg.background_rms, dtype=np.float64)


def estimate_background(data: np.ndarray, config: AnnotateConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-pixel background level and rms, and the method used.

    Cutouts (up to ``SINGLE_WINDOW_FACTOR`` x ``--cutout``) get one sigma-clipped median and
    MAD-std over the whole image: a 2-D background on four boxes of a 160x160 cutout
    dominated by one galaxy would follow the galaxy. Larger maps get photutils Background2D
    with ``--cutout // 2`` pixel boxes (~15-30 beams), because real maps' noise varies
    across the field (primary-beam correction, bright-source sidelobes).
    """
    from astropy.stats import sigma_clipped_stats

    if max(data.shape) <= SINGLE_WINDOW_FACTOR * config.cutout:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, median, std = sigma_clipped_stats(data, mask=~np.isfinite(data), sigma=3.0, maxiters=10, stdfunc="mad_std")
        if not (std > 0 and math.isfinite(std)):
            raise RadiffError("robust rms is zero: more than half of the pixels share one value")
        return np.full(data.shape, median), np.full(data.shape, std), "sigma_clipped_stats(mad_std)"
    box = max(16, config.cutout // 2)
    bkg, rms = _background2d(data, box)
    if not np.all(rms > 0):
        raise RadiffError("robust rms is zero in part of the map (a constant region)")
    return bkg, rms, f"Background2D(box={box}, MedianBackground, MADStdBackgroundRMS)"
