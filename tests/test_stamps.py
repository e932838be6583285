"""Cutting an object out of its generated tile and scaling it to k * sigma."""

from __future__ import annotations

import numpy as np
import pytest

from radiff_scale.compose.planner import PlacedObject
from radiff_scale.compose.stamps import Stamp
from radiff_scale.compose.stamps import NORM_ABS, NORM_PEAK, NORM_ZERO, cut_stamp

SIZE = 128


def _tile_and_mask(seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    blob = np.exp(-(((rows - 50) / 6.0) ** 2 + ((cols - 80) / 10.0) ** 2) / 2)
    tile = 0.2 + 0.01 * rng.standard_normal((SIZE, SIZE)) + 0.6 * blob
    mask = blob > 0.1
    return np.clip(tile, 0, 1).astype(np.float32), mask


def test_stamp_is_zero_outside_mask_trimmed_and_peaks_at_k_sigma():
    tile, mask = _tile_and_mask()
    placed = PlacedObject(7, 3, k=4.5, seed=99, row0=1000, col0=2000)
    stamp = cut_stamp(placed, tile, mask, sigma_local=2e-4)
    assert isinstance(stamp, Stamp)
    assert stamp.data.dtype == np.float32
    assert stamp.normalisation == NORM_PEAK
    assert (stamp.object_id, stamp.class_id) == (7, 3)
    rr, cc = np.nonzero(mask)
    assert (stamp.row0, stamp.col0) == (1000 + rr.min(), 2000 + cc.min())
    assert stamp.data.shape == (rr.max() - rr.min() + 1, cc.max() - cc.min() + 1)
    assert np.array_equal(stamp.mask, mask[rr.min() : rr.max() + 1, cc.min() : cc.max() + 1])
    assert np.all(stamp.data[~stamp.mask] == 0)
    assert stamp.data.max() == pytest.approx(4.5 * 2e-4, rel=1e-6)
    # Placed at the same map pixel as the tile: mask pixels land where the tile had them.
    assert stamp.mask[rr[0] - rr.min(), cc[0] - cc.min()]


def test_inverse_is_applied_and_background_removed():
    tile, mask = _tile_and_mask(1)

    def inverse(y):
        return np.expm1(4.0 * y)  # strongly non-linear, so its use is visible in the shape

    stamp = cut_stamp(PlacedObject(0, 2, 2.0, 0, 0, 0), tile, mask, 1.0, inverse)
    flux = inverse(tile.astype(np.float64))
    expected = flux - np.median(flux[~mask])
    rr, cc = np.nonzero(mask)
    expected = expected[rr.min() : rr.max() + 1, cc.min() : cc.max() + 1]
    expected = np.where(stamp.mask, expected, 0.0)
    expected *= 2.0 / expected.max()
    np.testing.assert_allclose(stamp.data, expected, rtol=1e-5, atol=1e-6)
    # Without the inverse the profile differs (same peak, different shape).
    linear = cut_stamp(PlacedObject(0, 2, 2.0, 0, 0, 0), tile, mask, 1.0)
    assert np.max(np.abs(linear.data - stamp.data)) > 0.05


def test_dark_object_falls_back_to_absolute_peak_and_flags_it():
    tile, mask = _tile_and_mask(2)
    dark = np.where(mask, 0.05, 0.2).astype(np.float32)
    stamp = cut_stamp(PlacedObject(1, 1, 3.0, 0, 0, 0), dark, mask, 0.5)
    assert stamp.normalisation == NORM_ABS
    assert stamp.data.min() == pytest.approx(-1.5)
    flat = cut_stamp(PlacedObject(1, 1, 3.0, 0, 0, 0), np.full((SIZE, SIZE), 0.3, np.float32), mask, 0.5)
    assert flat.normalisation == NORM_ZERO
    assert not np.any(flat.data)


def test_mask_covering_the_whole_tile_uses_zero_background():
    tile = np.linspace(0.1, 0.9, SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    mask = np.ones((SIZE, SIZE), bool)
    stamp = cut_stamp(PlacedObject(0, 3, 1.0, 0, 0, 0), tile, mask, 1.0)
    np.testing.assert_allclose(stamp.data, tile / tile.max(), rtol=1e-6)


def test_non_finite_inverse_and_shape_mismatch_are_errors():
    tile, mask = _tile_and_mask(3)
    with pytest.raises(ValueError, match="non-finite"):
        cut_stamp(PlacedObject(0, 2, 1.0, 0, 0, 0), tile, mask, 1.0, lambda y: np.full_like(y, np.inf))
    with pytest.raises(ValueError, match="shape"):
        cut_stamp(PlacedObject(0, 2, 1.0, 0, 0, 0), tile[:64], mask, 1.0)


def _reference_params():
    from radiff_scale.data.preprocess import PreprocessParams

    return PreprocessParams(zmin=-3e-4, zmax=1e-2, clip_lo=-0.05, clip_hi=5.0, tmin=float(np.tanh(-0.05)),
                            tmax=float(np.tanh(5.0)))


def _monotonic_cases():
    """Tiles and footprints covering every branch of the shortcut: odd and even numbers of
    outside pixels, no outside pixel, dark and flat objects, saturated (clipped) pixels."""
    rng = np.random.default_rng(11)
    for seed in range(12):
        tile, mask = _tile_and_mask(seed)
        if seed % 2:
            mask = mask.copy()
            mask[0, 0] = not mask[0, 0]  # flips the parity of the outside count
        if seed % 3 == 0:
            tile = tile.copy()
            tile[rng.random(tile.shape) < 0.05] = 1.0  # clipped at the top: ties in f
            tile[rng.random(tile.shape) < 0.05] = 0.0
        yield tile, mask
    tile, mask = _tile_and_mask(20)
    yield np.where(mask, 0.05, 0.2).astype(np.float32), mask  # dark object
    yield np.full((SIZE, SIZE), 0.3, np.float32), mask  # flat
    yield tile, np.ones((SIZE, SIZE), bool)  # nothing outside


def test_monotonic_shortcut_gives_the_same_bytes():
    from radiff_scale.data.preprocess import inverse_preprocess

    params = _reference_params()

    def inverse(y):
        return inverse_preprocess(y, params)

    cases = list(_monotonic_cases())
    for i, (tile, mask) in enumerate(cases):
        placed = PlacedObject(i + 1, 2, 2.5, 0, 40, -3)
        plain = cut_stamp(placed, tile, mask, 3e-4, inverse)
        fast = cut_stamp(placed, tile, mask, 3e-4, inverse, monotonic=True)
        assert fast.data.tobytes() == plain.data.tobytes(), i
        assert fast.mask.tobytes() == plain.mask.tobytes()
        assert (fast.row0, fast.col0, fast.normalisation) == (plain.row0, plain.col0, plain.normalisation)
    assert {cut_stamp(PlacedObject(1, 2, 1.0, 0, 0, 0), t, m, 1.0, inverse).normalisation for t, m in cases} == {
        NORM_PEAK, NORM_ABS, NORM_ZERO}


def test_monotonic_shortcut_still_rejects_non_finite_values():
    tile, mask = _tile_and_mask(4)
    placed = PlacedObject(0, 2, 1.0, 0, 0, 0)
    far = np.argwhere(~mask)[0]  # a pixel outside the footprint (and its box)
    broken = tile.copy()
    broken[tuple(far)] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        cut_stamp(placed, broken, mask, 1.0, np.log1p, monotonic=True)

    rows, cols = np.nonzero(mask)
    assert not (rows.min() <= far[0] <= rows.max() and cols.min() <= far[1] <= cols.max())
    brightest = tile.copy()
    brightest[tuple(far)] = tile.max() + 0.01  # outside the box: only the extremes check sees it
    with pytest.raises(ValueError, match="non-finite"):
        cut_stamp(placed, brightest, mask, 1.0, lambda y: np.where(np.asarray(y) > tile.max(), np.inf, y), monotonic=True)
