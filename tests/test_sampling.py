"""Tile and mask sampling: guidance, per-object determinism, output contract (toy sizes; CPU)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from radiff_scale.classes import NUM_CLASSES, SourceClass  # noqa: E402
from radiff_scale.diffusion.sampling import guided_eps, sample_masks, sample_tiles  # noqa: E402
from radiff_scale.diffusion.settings import TEACHER_SAMPLERS  # noqa: E402
from radiff_scale.errors import RadiffError  # noqa: E402
from radiff_scale.models import RadiffModels, tiny_models_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS = 4


@pytest.fixture(scope="module")
def models() -> RadiffModels:
    m = RadiffModels.from_config(tiny_models_config(), seed=0).eval()
    # Random weights give near-identical outputs for every condition; make the conditions matter.
    with torch.no_grad():
        m.unet.background.null_tokens.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
    return m


def _masks(n: int) -> np.ndarray:
    masks = np.zeros((n, 32, 32), dtype=np.uint8)
    for i in range(n):
        masks[i, 4 + i : 12 + i, 6:14] = SourceClass.EXTENDED
        masks[i, 20:23, 20 + i : 23 + i] = SourceClass.COMPACT
    return masks


def _backgrounds(n: int) -> np.ndarray:
    return np.random.default_rng(3).random((n, 32, 32), dtype=np.float32)


def _conditions(models, n=2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    mask_cond = models.unet.mask_condition(torch.from_numpy(_masks(n).astype(np.int64)))
    bg = torch.randn(n, 3, 8, 8, generator=g)
    return x, torch.tensor(500), mask_cond, bg


@torch.no_grad()
def test_guidance_scale_one_is_the_plain_conditional_prediction(models):
    x, t, mask_cond, bg = _conditions(models)
    yes = torch.ones(2, dtype=torch.bool)
    plain = models.unet(x, t.expand(2), mask_cond, bg, yes)
    assert torch.allclose(guided_eps(models.unet, x, t, mask_cond, bg, True, (1.0, 1.0)), plain, atol=1e-6)
    no = torch.zeros(2, dtype=torch.bool)
    plain_no_bg = models.unet(x, t.expand(2), mask_cond, bg, no)
    assert torch.allclose(guided_eps(models.unet, x, t, mask_cond, bg, False, (1.0, 1.0)), plain_no_bg, atol=1e-6)


@torch.no_grad()
def test_guidance_follows_the_documented_formula(models):
    x, t, mask_cond, bg = _conditions(models)
    yes, no = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    tt = t.expand(2)
    e_mb = models.unet(x, tt, mask_cond, bg, yes)
    e_m = models.unet(x, tt, mask_cond, bg, no)
    e_0 = models.unet(x, tt, torch.zeros_like(mask_cond), bg, no)
    s_m, s_b = 3.0, 2.0
    guided = guided_eps(models.unet, x, t, mask_cond, bg, True, (s_m, s_b))
    assert torch.allclose(guided, e_0 + s_m * (e_m - e_0) + s_b * (e_mb - e_m), atol=1e-5)
    assert not torch.allclose(guided, e_mb, atol=1e-4)
    mask_only = guided_eps(models.unet, x, t, mask_cond, bg, False, (s_m, 1.0))
    assert torch.allclose(mask_only, e_0 + s_m * (e_m - e_0), atol=1e-5)


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0), ("dpm++", 0.0), ("unipc", 0.0)])
def test_a_tile_does_not_depend_on_its_batch(models, sampler, eta):
    masks, backgrounds = _masks(4), _backgrounds(4)
    seeds = [11, 2**62 + 5, 7, 123456789]
    batch = sample_tiles(models, masks, backgrounds, seeds, STEPS, (2.0, 1.5), sampler, eta=eta)
    assert batch.shape == (4, 32, 32) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    alone = sample_tiles(models, masks[2:3], backgrounds[2:3], seeds[2:3], STEPS, (2.0, 1.5), sampler, eta=eta)
    assert np.abs(alone[0] - batch[2]).max() < 1e-5
    # The same tile at another batch position, next to other tiles: still the same.
    moved = sample_tiles(models, masks[[2, 0]], backgrounds[[2, 0]], [seeds[2], seeds[0]], STEPS, (2.0, 1.5), sampler, eta=eta)
    assert np.abs(moved[0] - batch[2]).max() < 1e-5 and np.abs(moved[1] - batch[0]).max() < 1e-5


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_seeds_and_guidance_change_the_tile(models, sampler):
    masks = _masks(1).repeat(2, axis=0)
    out = sample_tiles(models, masks, None, [1, 2], STEPS, 1.0, sampler)
    assert np.abs(out[0] - out[1]).max() > 1e-3  # same mask, different seeds
    again = sample_tiles(models, masks, None, [1, 2], STEPS, 1.0, sampler)
    assert np.array_equal(again, out)  # same call, same bytes
    guided = sample_tiles(models, masks[:1], None, [1], STEPS, 4.0, sampler)
    assert np.abs(guided[0] - out[0]).max() > 1e-4


def test_stochastic_ddim_differs_from_deterministic_ddim(models):
    masks = _masks(1)
    a = sample_tiles(models, masks, None, [5], STEPS, 1.0, "ddim", eta=0.0)
    b = sample_tiles(models, masks, None, [5], STEPS, 1.0, "ddim", eta=1.0)
    assert np.abs(a - b).max() > 1e-4


def test_bad_inputs_are_user_errors(models):
    masks = _masks(2)
    with pytest.raises(RadiffError, match="masks must have shape"):
        sample_tiles(models, masks, None, [1], STEPS, 1.0, "ddim")
    with pytest.raises(RadiffError, match="class ids"):
        sample_tiles(models, masks + NUM_CLASSES, None, [1, 2], STEPS, 1.0, "ddim")
    with pytest.raises(RadiffError, match="unknown sampler"):
        sample_tiles(models, masks, None, [1, 2], STEPS, 1.0, "heun")
    with pytest.raises(RadiffError, match="guidance"):
        sample_tiles(models, masks, None, [1, 2], STEPS, (1.0, 2.0, 3.0), "ddim")
    assert sample_tiles(models, masks[:0], None, [], STEPS, 1.0, "ddim").shape == (0, 32, 32)


def test_bf16_autocast_moves_tiles_a_little_and_other_precisions_are_refused(models):
    masks, backgrounds, seeds = _masks(2), _backgrounds(2), [3, 4]
    exact = sample_tiles(models, masks, backgrounds, seeds, STEPS, (3.0, 1.0), "dpm++")
    bf16 = sample_tiles(models, masks, backgrounds, seeds, STEPS, (3.0, 1.0), "dpm++", precision="bf16")
    assert bf16.dtype == np.float32 and bf16.shape == exact.shape
    assert 0 < np.abs(bf16 - exact).mean() < 0.05  # the networks really ran in bf16, and stayed close
    with pytest.raises(RadiffError, match="precision 'fp16'"):
        sample_tiles(models, masks, backgrounds, seeds, STEPS, 1.0, "ddim", precision="fp16")


@pytest.mark.parametrize("sampler", TEACHER_SAMPLERS)
def test_mask_prior_samples_are_integer_class_masks(models, sampler):
    seeds = [4, 9, 16]
    masks = sample_masks(models.mask_prior, seeds, STEPS, sampler)
    assert masks.shape == (3, 32, 32) and masks.dtype == np.uint8
    assert masks.min() >= 0 and masks.max() < NUM_CLASSES
    # nearest upsampling from the 16x16 model grid: constant 2x2 blocks
    assert np.array_equal(masks, masks[:, ::2, ::2].repeat(2, axis=1).repeat(2, axis=2))
    alone = sample_masks(models.mask_prior, seeds[1:2], STEPS, sampler)
    assert np.array_equal(alone[0], masks[1])
