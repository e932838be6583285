"""Does a generated tile put its source where the mask says? IoU of bright pixels vs mask.

A tile's "bright pixels" are those above its own background by ``nsigma`` robust standard
deviations (median and 1.4826 * MAD of the whole tile, which is mostly background), the
same kind of rule that defines the training masks (model above n * rms). It needs no
trained segmenter, so it can run in the test suite on the shipped demo model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from radiff_scale.robust import median_and_sigma


def bright_pixels(tile: np.ndarray, nsigma: float = 3.0) -> np.ndarray:
    """Pixels brighter than median + nsigma * robust sigma of the tile."""
    tile = np.asarray(tile, dtype=np.float64)
    median, sigma = median_and_sigma(tile)
    if sigma <= 0:
        sigma = float(tile.std()) or 1.0
    return tile > median + nsigma * sigma


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def mask_iou_scores(
    models: Any,
    masks: np.ndarray,
    seeds: Sequence[int],
    steps: int = 20,
    sampler: str = "dpm++",
    guidance: float | tuple[float, float] = (3.0, 1.0),
    nsigma: float = 3.0,
    backgrounds: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(IoU per tile, tiles) for tiles generated from ``masks`` (uint8 class ids)."""
    from radiff_scale.diffusion.sampling import sample_tiles

    tiles = sample_tiles(models, masks, backgrounds, list(seeds), steps=steps, guidance=guidance, sampler=sampler)
    scores = np.array([iou(bright_pixels(t, nsigma), m > 0) for t, m in zip(tiles, masks)])
    return scores, tiles
