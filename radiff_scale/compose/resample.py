"""Tiles at the model's pixels per beam, stamps at the map's.

A model learns sources and noise at the pixels per beam of its training images (FIRST:
a 5.4" beam on 1.8" pixels, 3 pixels per beam FWHM). On a map with another beam the
same galaxy must span another number of pixels, and a compact source must be the map's
beam, not FIRST's. So the sampler sees everything at the model's scale and the map gets
everything at its own: masks and background windows cut in map pixels are resampled by
``1 / zoom`` about the tile centre before sampling, and the generated tile by ``zoom``
after, with ``zoom = map pixels per beam / model pixels per beam``. The object's
footprint, its catalogue row and its stamp stay in map pixels throughout.

With ``zoom > 1`` (finer map pixels) the map window's content fits inside the model tile.
With ``zoom < 1`` the model tile covers only the centre of the map window: mask pixels
farther than ``64 * zoom`` map pixels from the centre get no generated flux (the stamp is
zero there), which the map job reports.

Resampling is an affine map about the tile centre with scipy.ndimage (nearest neighbour
for class masks, so ids stay ids; linear for images, which cannot overshoot the way a
spline would); it depends on nothing but its inputs, so tiles stay bit-identical at any
worker count.
"""

from __future__ import annotations

import math

import numpy as np

from radiff_scale.beam import Beam
from radiff_scale.errors import RadiffError

#: Factors this close to 1 leave the tiles as they are (resampling would only blur them).
ZOOM_TOLERANCE = 0.02


def pixels_per_beam(beam: Beam, pixel_scale_arcsec: float) -> float:
    """Beam FWHM in pixels, the geometric mean of the two axes."""
    return math.sqrt(beam.bmaj_arcsec * beam.bmin_arcsec) / pixel_scale_arcsec


def zoom_factor(map_pixels_per_beam: float, model_pixels_per_beam: float | None) -> float:
    """``map / model`` pixels per beam; 1 when the model does not say (bundles before this)
    or when the two agree within :data:`ZOOM_TOLERANCE`."""
    if model_pixels_per_beam is None:
        return 1.0
    if not (model_pixels_per_beam > 0 and math.isfinite(model_pixels_per_beam)):
        raise RadiffError(f"model card: pixels_per_beam must be a positive number, got {model_pixels_per_beam!r}")
    factor = float(map_pixels_per_beam) / float(model_pixels_per_beam)
    return 1.0 if abs(factor - 1.0) <= ZOOM_TOLERANCE else factor


def _affine(images: np.ndarray, zoom: float, order: int, mode: str) -> np.ndarray:
    """Magnify each (H, W) image by ``zoom`` about its centre, keeping the shape."""
    from scipy.ndimage import affine_transform

    images = np.asarray(images)
    if zoom == 1.0:
        return images
    rows, cols = images.shape[-2:]
    centre = np.array([(rows - 1) / 2.0, (cols - 1) / 2.0])
    # output pixel o samples the input at centre + (o - centre) / zoom
    matrix = np.full(2, 1.0 / zoom)
    offset = centre - matrix * centre
    out = np.empty_like(images)
    for i in range(images.shape[0]):
        out[i] = affine_transform(images[i], matrix, offset=offset, order=order, mode=mode, cval=0.0)
    return out


def masks_to_model(masks: np.ndarray, zoom: float) -> np.ndarray:
    """Class masks cut in map pixels, seen at the model's scale (nearest neighbour, 0 outside)."""
    return _affine(np.asarray(masks, dtype=np.uint8), 1.0 / zoom, order=0, mode="constant")


def images_to_model(images: np.ndarray, zoom: float) -> np.ndarray:
    """Encoded background windows in map pixels, at the model's scale (edges continued)."""
    return _affine(np.asarray(images, dtype=np.float32), 1.0 / zoom, order=1, mode="nearest")


def tiles_to_map(tiles: np.ndarray, zoom: float) -> np.ndarray:
    """Generated tiles at the model's scale, in map pixels (edges continued)."""
    return _affine(np.asarray(tiles, dtype=np.float32), zoom, order=1, mode="nearest")
