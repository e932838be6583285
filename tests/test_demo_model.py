"""The shipped demo weights: they load, and they put sources where the masks say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from radiff_scale.classes import SourceClass
from radiff_scale.data.mask_bank import MaskBank
from radiff_scale.eval.mask_agreement import bright_pixels, iou, mask_iou_scores
from radiff_scale.models.io import RadiffModels

DEMO = Path(__file__).resolve().parents[1] / "radiff_scale" / "assets" / "demo"


@pytest.fixture(scope="module")
def demo_models() -> RadiffModels:
    torch.set_num_threads(1)
    return RadiffModels.load(DEMO)


def test_bundle_is_small_and_documents_how_it_was_made(demo_models: RadiffModels) -> None:
    size = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert size <= 25 * 2**20
    card = demo_models.card
    assert {"ae", "ldm", "mask"} <= set(card["stages"])
    for stage in card["stages"].values():
        assert stage["steps"] > 0 and np.isfinite(stage["final_loss"]) and stage["commit"]
    # Trained on real FIRST galaxies (held-out split excluded) with the asinh stretch, at FIRST's scale.
    assert card["stretch"]["kind"] == "asinh_sigma" and "preprocess_reference" not in card
    assert card["pixels_per_beam"] == pytest.approx(3.0, abs=0.05)
    assert any("first-train" in name for name in card["stages"]["ldm"]["cutouts"])
    assert "non-commercial" in card["licence"]
    assert json.loads((DEMO / "radiff_models.json").read_text())["card"] == card


def test_iou_metric_separates_right_from_wrong_masks() -> None:
    rows, cols = np.mgrid[0:128, 0:128]
    blob = np.exp(-((rows - 40) ** 2 + (cols - 50) ** 2) / (2 * 6.0**2))
    tile = 0.1 + 0.8 * blob + np.random.default_rng(0).normal(0, 0.01, (128, 128))
    # 3 robust sigma of the noise (0.01) above the median is 0.8 * blob > ~0.03.
    assert iou(bright_pixels(tile), blob > 0.04) > 0.8
    assert iou(bright_pixels(tile), np.roll(blob > 0.04, 40, axis=1)) < 0.1


@pytest.fixture(scope="module")
def extended_masks() -> np.ndarray:
    bank = MaskBank.default()
    return np.stack([bank.pick(int(SourceClass.EXTENDED), seed)[1] for seed in range(32)])


@pytest.fixture(scope="module")
def teacher_run(demo_models: RadiffModels, extended_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return mask_iou_scores(demo_models, extended_masks, seeds=range(32), steps=20, sampler="dpm++", guidance=(3.0, 1.0))


def test_generated_extended_sources_follow_their_masks(teacher_run, extended_masks: np.ndarray) -> None:
    scores, tiles = teacher_run
    assert tiles.shape == (32, 128, 128) and np.isfinite(tiles).all()
    assert scores.mean() > 0.5, f"mean IoU {scores.mean():.3f}: {np.round(scores, 2)}"
    # And the agreement is the model's doing: the same tiles against displaced masks score far lower.
    displaced = np.array([iou(bright_pixels(t), np.roll(m > 0, 48, axis=1)) for t, m in zip(tiles, extended_masks)])
    assert displaced.mean() < scores.mean() - 0.2


def test_the_shipped_student_draws_the_teachers_tiles_in_four_evaluations(
    demo_models: RadiffModels, teacher_run, extended_masks: np.ndarray
) -> None:
    """The demo's default sampler: same masks and seeds, 4 student evaluations against 60 teacher ones."""
    assert demo_models.student is not None and "distil" in demo_models.card["stages"]
    teacher_scores, teacher_tiles = teacher_run
    scores, tiles = mask_iou_scores(demo_models, extended_masks, seeds=range(32), steps=4, sampler="distilled", guidance=(3.0, 1.0))
    assert np.median(scores) >= np.median(teacher_scores) - 0.05, (np.median(scores), np.median(teacher_scores))
    assert np.abs(tiles - teacher_tiles).mean() < 0.03  # the same sources on the same noise, nearly
    # Guidance is an input the student really uses: without it its sources are fainter, like the teacher's.
    _, unguided = mask_iou_scores(demo_models, extended_masks[:8], seeds=range(8), steps=4, sampler="distilled", guidance=(1.0, 1.0))
    bright = lambda t, m: float(np.mean([x[k > 0].mean() for x, k in zip(t, m)]))  # noqa: E731
    assert bright(unguided, extended_masks[:8]) < bright(tiles[:8], extended_masks[:8])


def test_shipped_mask_prior_invents_masks_like_the_real_ones(demo_models: RadiffModels) -> None:
    """32 masks (DPM++ 10 steps): mostly background, real-sized objects, compact sources in most masks.

    Real bank: 98.5% background pixels, compact sources in 72% of masks, median compact
    object 43 px (benchmarks/mask_prior_stats.py has the full comparison).
    """
    from radiff_scale.diffusion.sampling import sample_masks
    from radiff_scale.models.mask_prior import mask_statistics

    stats = mask_statistics(sample_masks(demo_models.mask_prior.eval(), list(range(32)), 10, "dpm++"))
    assert 0.97 < stats.pixel_fraction["background"] < 0.997  # neither noise nor empty
    assert stats.presence["compact"] > 0.5
    assert stats.presence["extended"] > 0 and stats.presence["spurious"] > 0
    assert 10 <= np.median(stats.object_sizes["compact"]) <= 150
