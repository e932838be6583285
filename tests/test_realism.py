"""Behaviour of the realism measures (radiff_scale.eval.realism) on images whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from radiff_scale.eval import realism


def white(n: int, seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, size, size))


def smoothed(n: int, seed: int, sigma_px: float = 1.3, size: int = 64) -> np.ndarray:
    """Beam-correlated noise (FIRST-like beam: FWHM ~3 px), rescaled to unit rms."""
    out = np.stack([ndimage.gaussian_filter(im, sigma_px, mode="wrap") for im in white(n, seed, size)])
    return out / out.std(axis=(1, 2), keepdims=True)


def test_radial_spectrum_of_white_noise_is_flat_and_at_its_variance():
    freqs, power = realism.radial_power_spectrum(white(8, 0) * 2.0, n_bins=16)
    assert freqs.shape == (16,) and power.shape == (8, 16)
    assert freqs[0] > 0 and freqs[-1] < 0.5
    mean = power.mean(axis=0)
    assert np.allclose(mean, 4.0, rtol=0.25), mean  # variance 4 at every frequency


def test_radial_spectrum_ignores_nans_and_the_mean():
    img = white(1, 1)[0] + 100.0
    img[:5, :5] = np.nan
    _, power = realism.radial_power_spectrum(img, n_bins=8)
    assert np.all(np.isfinite(power)) and power.max() < 10  # no offset leaks in as power


def test_white_noise_high_frequency_share_is_the_area_beyond_the_cutoff():
    share = realism.high_frequency_share(white(8, 2, size=128), cutoff=0.2)
    expected = 1.0 - math.pi * 0.2**2  # area of the unit frequency square outside |f| = 0.2
    assert share.mean() == pytest.approx(expected, abs=0.01)
    smooth = realism.high_frequency_share(smoothed(8, 2, size=128), cutoff=0.2)
    assert smooth.mean() < 0.1 * expected


def test_a_blurred_copy_keeps_less_high_frequency_power():
    real = smoothed(6, 3, sigma_px=0.8)
    blurred = np.stack([ndimage.gaussian_filter(im, 1.5) for im in real])
    assert realism.hf_power_kept(real, real) == pytest.approx(1.0)
    kept = realism.hf_power_kept(real, blurred)
    assert 0.0 < kept < 0.3


def test_tile_features_are_finite_and_scale_free():
    imgs = smoothed(3, 4)
    imgs[0, 10:14, 10:14] += 40.0
    f = realism.tile_features(imgs)
    assert f.shape == (3, realism.FEATURE_BINS + len(realism.FEATURE_QUANTILES) + 3)
    assert np.all(np.isfinite(f))
    assert np.allclose(realism.tile_features(imgs * 1e-4 + 0.3), f, atol=1e-6)  # flux units do not matter


def test_two_sample_test_is_chance_on_one_distribution_and_perfect_on_two():
    same = realism.classifier_two_sample_test(smoothed(60, 5), smoothed(60, 6), seed=0)
    assert same["n_per_set"] == 60 and same["folds"] == 5
    assert 0.3 <= same["accuracy_mean"] <= 0.7, same
    apart = realism.classifier_two_sample_test(white(60, 7), smoothed(70, 8), seed=0)
    assert apart["n_per_set"] == 60  # balanced to the smaller set
    assert apart["accuracy_mean"] > 0.95, apart


def test_two_sample_test_is_reproducible():
    a, b = smoothed(20, 9), smoothed(25, 10, sigma_px=1.0)
    assert realism.classifier_two_sample_test(a, b, seed=3) == realism.classifier_two_sample_test(a, b, seed=3)


def test_peak_snr_of_an_injected_50_sigma_gaussian_is_50():
    rng = np.random.default_rng(11)
    size = 128
    yy, xx = np.mgrid[:size, :size]
    source = 50.0 * np.exp(-((yy - 64.0) ** 2 + (xx - 60.0) ** 2) / (2 * 3.0**2))
    images = rng.standard_normal((4, size, size)) * 2.0 + 7.0 + 2.0 * source  # rms 2, offset 7
    masks = np.broadcast_to(source > 1.0, images.shape)
    snr = realism.peak_snr(images, masks)
    assert np.allclose(snr, 50.0, atol=4.0), snr  # + at most a few sigma of noise on the peak
    assert np.isnan(realism.peak_snr(images[0], np.zeros((size, size), bool))[0])


def test_ks_distance_separates_shifted_samples():
    rng = np.random.default_rng(12)
    same = realism.ks_distance(rng.normal(size=300), rng.normal(size=300))
    apart = realism.ks_distance(rng.normal(size=300), rng.normal(2.0, size=300))
    assert same["pvalue"] > 0.01 and apart["pvalue"] < 1e-6
    assert apart["statistic"] > same["statistic"]


def test_noise_spectrum_distances_order_correctly():
    """Tiles with a source masked out match the background they were made of, not a coarser one."""
    fine_bg, coarse_bg = smoothed(8, 13, sigma_px=1.3), smoothed(8, 14, sigma_px=1.8)
    tiles = smoothed(8, 15, sigma_px=1.3)
    yy, xx = np.mgrid[:64, :64]
    blob = np.exp(-((yy - 32.0) ** 2 + (xx - 32.0) ** 2) / (2 * 4.0**2))
    tiles = tiles + 200.0 * blob
    masks = np.broadcast_to(200.0 * blob > 3.0, tiles.shape)  # down to 3 sigma, like an annotation
    _, p_tiles = realism.noise_spectrum(tiles, masks)
    _, p_fine = realism.noise_spectrum(fine_bg, masks)
    _, p_coarse = realism.noise_spectrum(coarse_bg, masks)
    _, p_unmasked = realism.noise_spectrum(tiles, None)
    mean = lambda p: p.mean(axis=0)  # noqa: E731
    d_fine = realism.spectrum_distance(mean(p_tiles), mean(p_fine))
    d_coarse = realism.spectrum_distance(mean(p_tiles), mean(p_coarse))
    d_unmasked = realism.spectrum_distance(mean(p_unmasked), mean(p_fine))
    assert d_fine < 0.1 < d_coarse
    assert d_unmasked > d_fine  # the source, left in, swamps the noise spectrum
    assert realism.spectrum_distance(mean(p_fine), mean(p_fine)) == 0.0
    assert realism.spectrum_distance(p_tiles, p_fine).shape == (8,)
