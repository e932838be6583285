"""Tiles are sampled at the model's pixels per beam and pasted at the map's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiff_scale.beam import Beam
from radiff_scale.compose.resample import (
    images_to_model,
    masks_to_model,
    pixels_per_beam,
    tiles_to_map,
    zoom_factor,
)
from radiff_scale.errors import RadiffError


def _disc(radius: float, size: int = 128) -> np.ndarray:
    rr, cc = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    return (rr**2 + cc**2 <= radius**2).astype(np.uint8)


def _fwhm_px(image: np.ndarray) -> float:
    """FWHM of a centred round Gaussian from its second moment (<r^2> = 2 sigma^2)."""
    rr, cc = np.mgrid[0 : image.shape[0], 0 : image.shape[1]] - (image.shape[0] - 1) / 2.0
    return 2.3548 * np.sqrt(np.sum((rr**2 + cc**2) * image) / np.sum(image) / 2.0)


def test_zoom_is_map_over_model_pixels_per_beam() -> None:
    assert pixels_per_beam(Beam(5.4, 5.4), 1.8) == pytest.approx(3.0)
    assert pixels_per_beam(Beam(9.8, 5.8), 1.5) == pytest.approx(np.sqrt(9.8 * 5.8) / 1.5)
    assert zoom_factor(5.0, 3.0) == pytest.approx(5.0 / 3.0)
    assert zoom_factor(3.03, 3.0) == 1.0  # within tolerance: left alone
    assert zoom_factor(5.0, None) == 1.0  # bundles that do not record theirs
    with pytest.raises(RadiffError, match="pixels_per_beam"):
        zoom_factor(5.0, -1.0)


def test_a_beam_sized_model_source_becomes_a_map_beam_sized_stamp() -> None:
    """A compact source generated at FIRST's 3 px per beam is 5 px wide on a 5 px-per-beam map."""
    rr, cc = np.mgrid[0:128, 0:128] - 63.5
    sigma = 3.0 / 2.3548
    tile = np.exp(-(rr**2 + cc**2) / (2 * sigma**2))[None].astype(np.float32)
    zoom = zoom_factor(5.0, 3.0)
    assert _fwhm_px(tile[0]) == pytest.approx(3.0, abs=0.4)
    assert _fwhm_px(tiles_to_map(tile, zoom)[0]) == pytest.approx(5.0, abs=0.4)


def test_a_mask_goes_to_the_model_and_its_tile_comes_back_on_the_same_pixels() -> None:
    mask = _disc(30.0)[None]
    zoom = 5.0 / 3.0
    model_mask = masks_to_model(mask, zoom)
    assert model_mask.dtype == np.uint8 and set(np.unique(model_mask)) <= {0, 1}
    assert model_mask.sum() == pytest.approx(mask.sum() / zoom**2, rel=0.05)
    back = tiles_to_map(model_mask.astype(np.float32), zoom)[0] > 0.5
    inter, union = np.sum(back & (mask[0] > 0)), np.sum(back | (mask[0] > 0))
    assert inter / union > 0.95
    # Class ids survive nearest-neighbour resampling.
    classes = np.zeros((1, 128, 128), np.uint8)
    classes[0, 40:60, 40:60], classes[0, 70:90, 70:90] = 3, 2
    assert set(np.unique(masks_to_model(classes, zoom))) == {0, 2, 3}


def test_resampling_is_deterministic_and_identity_at_zoom_one() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((3, 128, 128), dtype=np.float32)
    assert images_to_model(images, 1.0) is not None
    np.testing.assert_array_equal(tiles_to_map(images, 1.0), images)
    a, b = images_to_model(images, 1.7), images_to_model(images.copy(), 1.7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(tiles_to_map(images[1:2], 0.8)[0], tiles_to_map(images, 0.8)[1])  # per tile


def test_the_sampler_actor_resamples_around_the_model(tiny_bundle: Path) -> None:
    """Same masks, zoom 1 vs 5/3: the zoomed tile is a map-scale tile, the same alone or in a batch."""
    from actors.tile_sampler import TileSampler
    from radiff_scale.diffusion.settings import SamplerSpec

    sampler = TileSampler(str(tiny_bundle), SamplerSpec("ddim", 2, 1.0, 1.0, 0.0))
    masks = np.stack([_disc(12.0), _disc(20.0)]) * 3
    plain = sampler.sample(0, masks, None, [1, 2])[1]
    zoomed = sampler.sample(0, masks, None, [1, 2], zoom=5.0 / 3.0)[1]
    assert zoomed.shape == plain.shape == (2, 128, 128) and np.isfinite(zoomed).all()
    assert not np.allclose(zoomed, plain)
    alone = sampler.sample(0, masks[1:], None, [2], zoom=5.0 / 3.0)[1]
    np.testing.assert_allclose(alone[0], zoomed[1], atol=1e-5)
