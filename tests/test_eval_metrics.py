"""The paper's metrics (issue 13): domain FID with a bootstrap interval, SSIM, BYOL features, the
segmentation score and the U-Net segmenter. Small sizes throughout (64x64 simulated cutouts,
tiny networks, tens of steps): these check the definitions and the plumbing, not quality."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from radiff_scale.data.sim_config import SimConfig
from radiff_scale.data.sim_cutout import simulate_cutout
from radiff_scale.data.stretch import AsinhStretch
from radiff_scale.eval.features import ByolConfig, ByolEncoder, augment, embed, load_encoder, save_encoder, train_byol
from radiff_scale.eval.fid import fid_with_ci, frechet_distance, frechet_from_stats
from radiff_scale.eval.segmenter import (
    SegmenterConfig,
    load_segmenter,
    predict,
    save_segmenter,
    segmentation_score,
    train_segmenter,
)
from radiff_scale.eval.ssim import SSIMConfig, mean_ssim, ssim, ssim_per_image

TINY_BYOL = ByolConfig.cpu(
    input_size=32, widths=(8, 16, 32, 32), proj_hidden=64, proj_dim=32, steps=20, batch_size=16, warmup_steps=1, lr=3e-3
)
TINY_UNET = SegmenterConfig.cpu(base_channels=8, depth=2, steps=60, batch_size=8, lr=1e-2)


@pytest.fixture(scope="module")
def cutouts() -> tuple[np.ndarray, np.ndarray]:
    """256 simulated 64x64 cutouts, stretched to [0, 1], and their class masks."""
    stretch = AsinhStretch()
    config = SimConfig(size=64)
    cuts = [simulate_cutout(config, seed) for seed in range(256)]
    return np.stack([stretch.encode(c.image) for c in cuts]), np.stack([c.class_mask() for c in cuts])


def _pixel_shuffled(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each image's pixels in a random order: the same values, no spatial structure."""
    rng = np.random.default_rng(seed)
    flat = images.reshape(len(images), -1)
    return np.stack([row[rng.permutation(row.size)] for row in flat]).reshape(images.shape)


# ---------------------------------------------------------------- FID


def test_frechet_of_known_gaussians() -> None:
    # 1-D: (3 - 0)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 10; 2-D diagonal: per-axis sums add up.
    assert frechet_from_stats(np.array([0.0]), np.array([[1.0]]), np.array([3.0]), np.array([[4.0]])) == pytest.approx(10.0)
    two = frechet_from_stats(np.zeros(2), np.diag([1.0, 9.0]), np.array([1.0, 1.0]), np.diag([4.0, 1.0]))
    assert two == pytest.approx(2.0 + (1 + 4 - 4) + (9 + 1 - 6))


def test_frechet_of_a_set_with_itself_is_zero_and_refuses_bad_shapes() -> None:
    a = np.random.default_rng(0).standard_normal((300, 16))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(a, a[:, :8])
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((4, 2), np.nan), a[:, :2])


def test_fid_on_encoder_features_separates_real_from_pixel_shuffled(cutouts) -> None:
    images, _ = cutouts
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = ByolEncoder(TINY_BYOL).eval()  # freshly initialised: no training needed for this
    encoder.fit_pixel_stats(images)
    real = embed(encoder, images)
    shuffled = embed(encoder, _pixel_shuffled(images))
    assert real.shape == (256, TINY_BYOL.feature_dim)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    between_halves = frechet_distance(real[:128], real[128:])
    against_shuffled = frechet_distance(real[:128], shuffled[128:])
    assert against_shuffled > 5 * between_halves


def test_bootstrap_interval_contains_the_value_and_follows_the_seed(cutouts) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((120, 6))
    b = rng.standard_normal((100, 6)) * 1.5 + 1.0
    result = fid_with_ci(a, b, n_boot=60, seed=7)
    assert result.low <= result.value <= result.high
    assert result.value == pytest.approx(frechet_distance(a, b))
    assert (result.n_a, result.n_b, result.dim, result.level) == (120, 100, 6, 0.95)
    assert fid_with_ci(a, b, n_boot=60, seed=7) == result
    other = fid_with_ci(a, b, n_boot=60, seed=8)
    assert (other.low, other.high) != (result.low, result.high)
    assert set(result.to_dict()) >= {"value", "low", "high", "n_boot", "seed"}


# ---------------------------------------------------------------- SSIM


def test_ssim_is_one_for_identical_images_and_falls_with_noise(cutouts) -> None:
    images, _ = cutouts
    x = images[0].astype(np.float64)
    rng = np.random.default_rng(0)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    scores = [ssim(x, x + s * rng.standard_normal(x.shape)) for s in (0.01, 0.05, 0.2)]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    y = x + 0.05 * rng.standard_normal(x.shape)
    assert ssim(x, y) == pytest.approx(ssim(y, x))
    stack = images[:4]
    assert mean_ssim(stack, stack) == pytest.approx(1.0)
    assert ssim_per_image(stack, stack[::-1]).shape == (4,)


def test_ssim_uses_the_papers_constants_and_matches_a_direct_sum() -> None:
    config = SSIMConfig()
    assert (config.window, config.sigma, config.k1, config.k2, config.data_range) == (11, 1.5, 0.01, 0.03, 1.0)
    assert config.kernel().sum() == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    x = rng.random((13, 12))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    w = np.outer(config.kernel(), config.kernel())
    values = []
    for i in range(3):
        for j in range(2):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb, cov = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum(), (w * (a - ma) * (b - mb)).sum()
            c1, c2 = 0.01**2, 0.03**2
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert ssim(x, y) == pytest.approx(np.mean(values), rel=1e-12)


# ---------------------------------------------------------------- segmentation score


def test_segmentation_score_of_masks_against_themselves_shifted_and_empty(cutouts) -> None:
    _, masks = cutouts
    self_score = segmentation_score(masks, masks)
    assert self_score["mean"] == pytest.approx(1.0)
    assert set(self_score["per_class"]) == {"spurious", "compact", "extended"}
    assert all(v == pytest.approx(1.0) for v in self_score["per_class"].values())
    shifted = segmentation_score(np.roll(masks, 2, axis=2), masks)
    assert 0.0 < shifted["mean"] < 1.0
    assert segmentation_score(np.zeros_like(masks), masks)["mean"] == 0.0
    with_background = segmentation_score(masks, masks, classes=(0, 1, 2, 3))
    assert set(with_background["per_class"]) == {"background", "spurious", "compact", "extended"}


def test_segmentation_score_rule_per_image_then_mean_absent_classes_skipped() -> None:
    true = np.zeros((3, 4, 4), dtype=np.uint8)
    pred = np.zeros_like(true)
    true[0, :2, :2] = 2  # compact, 4 px; predicted on 2 of them plus 2 more: IoU 2/6
    pred[0, :2, 1:3] = 2
    true[0, 3, 3] = 3  # extended, missed: IoU 0
    true[1, 0, :] = 1  # spurious, found exactly: IoU 1 (compact and extended absent: skipped)
    pred[1, 0, :] = 1
    # image 2: nothing in either mask -> skipped
    score = segmentation_score(pred, true)
    assert score["n_images"] == 2 and score["n_skipped"] == 1
    assert score["per_image"][0] == pytest.approx((2 / 6 + 0.0) / 2)
    assert score["per_image"][1] == pytest.approx(1.0)
    assert np.isnan(score["per_image"][2])
    assert score["mean"] == pytest.approx(((2 / 6) / 2 + 1.0) / 2)
    assert score["per_class"] == pytest.approx({"spurious": 1.0, "compact": 2 / 6, "extended": 0.0})


# ---------------------------------------------------------------- segmenter


@pytest.fixture(scope="module")
def segmenter(cutouts):
    images, masks = cutouts
    return train_segmenter(images[:64], masks[:64], TINY_UNET, seed=0)


def test_tiny_segmenter_beats_an_all_background_prediction(cutouts, segmenter) -> None:
    images, masks = cutouts
    pred = predict(segmenter, images[64:96])
    assert pred.shape == masks[64:96].shape and pred.dtype == np.uint8
    trained = segmentation_score(pred, masks[64:96])["mean"]
    background = segmentation_score(np.zeros_like(masks[64:96]), masks[64:96])["mean"]
    assert trained > background + 0.1
    assert predict(segmenter, images[64]).shape == images[64].shape


def test_segmenter_round_trips_through_safetensors(cutouts, segmenter, tmp_path) -> None:
    images, _ = cutouts
    folder = save_segmenter(segmenter, tmp_path / "seg")
    assert (folder / "weights.safetensors").is_file() and (folder / "config.json").is_file()
    loaded = load_segmenter(folder)
    assert loaded.config == segmenter.config
    np.testing.assert_array_equal(predict(loaded, images[64:72]), predict(segmenter, images[64:72]))


# ---------------------------------------------------------------- BYOL


def test_augment_without_crop_noise_or_jitter_is_a_flip_or_turn() -> None:
    config = ByolConfig.cpu(crop_min_area=1.0, noise_max=0.0, gain_jitter=0.0, offset_jitter=0.0)
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    views = augment(x, config, torch.Generator().manual_seed(1))
    for xi, vi in zip(x[:, 0], views[:, 0]):
        candidates = [torch.rot90(f, k) for f in (xi, xi.flip(-1)) for k in range(4)]
        assert any(torch.allclose(vi, c, atol=1e-5) for c in candidates)


def test_byol_loss_falls_embed_is_deterministic_and_weights_round_trip(cutouts, tmp_path) -> None:
    images, _ = cutouts
    encoder = train_byol(images[:128], TINY_BYOL, seed=0)
    losses = encoder.info["losses"]
    assert len(losses) == TINY_BYOL.steps
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    first = embed(encoder, images, batch_size=32)
    np.testing.assert_array_equal(first, embed(encoder, images, batch_size=32))
    short = dataclasses.replace(TINY_BYOL, steps=3)
    a, b = train_byol(images[:32], short, seed=5), train_byol(images[:32], short, seed=5)
    assert a.info["losses"] == b.info["losses"]
    np.testing.assert_array_equal(embed(a, images[:8]), embed(b, images[:8]))
    loaded = load_encoder(save_encoder(encoder, tmp_path / "byol"))
    assert loaded.config == encoder.config and loaded.info["seed"] == 0
    np.testing.assert_array_equal(embed(loaded, images, batch_size=32), first)
