"""Grouping islands into objects: the islands of one radio galaxy (lobes, jets, core) are one object.

An FR-II's faint middle often splits it into two or three islands above the threshold;
labelling them separately would teach the model that lobes are compact sources.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from radiff_scale.data.annotate_config import AnnotateConfig
from radiff_scale.data.annotate_image import InputImage
from radiff_scale.data.annotate_segment import disk


def group_islands(islands: np.ndarray, image: InputImage, config: AnnotateConfig) -> np.ndarray:
    """Object id per island (index = island label): islands within ``group_gap`` FWHM share one id.

    Each island is dilated by half the gap, so two islands touch once their gap is at most
    the full gap; the dilated map is relabelled and each island takes the label under it.
    The object's mask stays the union of its islands, not the dilated area. With
    ``--deblend`` no grouping is done (it would undo the deblending).
    """
    n = int(islands.max())
    if n == 0 or config.deblend or config.group_gap == 0:
        return np.arange(n + 1)
    radius = 0.5 * config.group_gap * image.fwhm_px
    grown = ndimage.binary_dilation(islands > 0, structure=disk(radius))
    groups, _ = ndimage.label(grown, structure=np.ones((3, 3)))
    mapping = np.zeros(n + 1, dtype=np.int64)
    idx = np.arange(1, n + 1)
    # Every pixel of one island lies in one dilated component, so any pixel gives its group.
    first = ndimage.minimum(groups, islands, index=idx)
    mapping[1:] = np.asarray(first, dtype=np.int64)
    return mapping
