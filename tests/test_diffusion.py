"""Schedule, scheduler factory and training losses (toy sizes; CPU)."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from radiff_scale.classes import SourceClass  # noqa: E402
from radiff_scale.diffusion.loss import (  # noqa: E402
    background_from_image,
    ldm_loss,
    mask_prior_loss,
    noise_and_target,
)
from radiff_scale.diffusion.schedule import SAMPLERS, ScheduleConfig, alphas_cumprod, make_scheduler  # noqa: E402
from radiff_scale.errors import RadiffError  # noqa: E402
from radiff_scale.models import RadiffModels, tiny_models_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def models() -> RadiffModels:
    return RadiffModels.from_config(tiny_models_config(), seed=0)


def _batch(n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 32, 32, dtype=torch.long)
    masks[:, 10:16, 12:20] = SourceClass.EXTENDED
    masks[:, 24:26, 4:6] = SourceClass.COMPACT
    images = torch.rand(n, 32, 32, generator=g) * 0.2 + 0.4 * (masks > 0)
    return {"images": images, "masks": masks}


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_uses_the_training_schedule(name):
    scheduler = make_scheduler(name)
    betas = scheduler.betas
    assert len(betas) == 1000 and scheduler.config.prediction_type == "epsilon"
    assert betas[0].item() == pytest.approx(0.0015) and betas[-1].item() == pytest.approx(0.0155)
    # "scaled_linear": sqrt(beta) is linear in t, beta itself is not
    root = betas.sqrt()
    assert torch.allclose(root[1:] - root[:-1], (root[1] - root[0]).expand(999), atol=1e-6)
    assert not torch.allclose(betas[1:] - betas[:-1], (betas[1] - betas[0]).expand(999), atol=1e-8)
    assert torch.allclose(scheduler.alphas_cumprod, alphas_cumprod(ScheduleConfig()))
    scheduler.set_timesteps(10)
    assert int(scheduler.timesteps[0]) == 999  # trailing spacing starts from pure noise


def test_unknown_sampler_and_bad_schedule_are_user_errors():
    with pytest.raises(RadiffError, match="unknown sampler 'euler'"):
        make_scheduler("euler")
    with pytest.raises(ValueError):
        ScheduleConfig(beta_start=0.02, beta_end=0.01)


def test_noising_matches_diffusers_add_noise():
    schedule = ScheduleConfig()
    x0 = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    noisy, t, eps = noise_and_target(x0, schedule, torch.Generator().manual_seed(1))
    assert t.min() >= 0 and t.max() < 1000 and t.unique().numel() > 1
    expected = make_scheduler("ddpm", schedule).add_noise(x0, eps, t)
    assert torch.allclose(noisy, expected, atol=1e-6)
    # v-prediction target: v = sqrt(abar) eps - sqrt(1 - abar) x0 (diffusers' get_velocity)
    v_schedule = dataclasses.replace(schedule, prediction_type="v_prediction")
    _, t2, v = noise_and_target(x0, v_schedule, torch.Generator().manual_seed(1))
    assert torch.equal(t, t2)
    assert torch.allclose(v, make_scheduler("ddpm", v_schedule).get_velocity(x0, eps, t), atol=1e-6)


def test_ldm_loss_is_reproducible_and_trains_only_the_unet(models):
    batch = _batch()
    loss_a, logs = ldm_loss(models, batch, torch.Generator().manual_seed(7))
    loss_b, _ = ldm_loss(models, batch, torch.Generator().manual_seed(7))
    loss_c, _ = ldm_loss(models, batch, torch.Generator().manual_seed(8))
    assert loss_a.item() == loss_b.item() != loss_c.item()
    assert loss_a.ndim == 0 and torch.isfinite(loss_a)
    assert {"loss", "mask_kept", "background_kept"} <= set(logs)
    models.unet.zero_grad()
    models.autoencoder.zero_grad()
    loss_a.backward()
    assert models.unet.unet.conv_in.weight.grad is not None
    assert models.unet.background.convs[0].weight.grad is not None
    assert all(p.grad is None for p in models.autoencoder.parameters())


def test_condition_dropout_follows_the_config(models):
    batch = _batch(n=64)
    latents = torch.zeros(64, 3, 8, 8)
    batch = {"latents": latents, "background_latents": latents, "masks": batch["masks"]}
    _, logs = ldm_loss(models, batch, torch.Generator().manual_seed(0))
    assert 0.7 < logs["mask_kept"] < 1.0 and 0.7 < logs["background_kept"] < 1.0  # p = 0.1
    unet_cfg = dataclasses.replace(models.unet.config, mask_dropout=0.0, background_dropout=0.0)
    saved, models.unet.config = models.unet.config, unet_cfg
    try:
        _, logs = ldm_loss(models, batch, torch.Generator().manual_seed(0))
    finally:
        models.unet.config = saved
    assert logs["mask_kept"] == 1.0 and logs["background_kept"] == 1.0


def test_background_from_image_hides_the_objects():
    batch = _batch(n=2)
    bg = background_from_image(batch["images"], batch["masks"])
    objects = batch["masks"] > 0
    for i in range(2):
        median = batch["images"][i][~objects[i]].median()
        assert torch.all(bg[i][objects[i]] == median)
        assert torch.equal(bg[i][~objects[i]], batch["images"][i][~objects[i]])


def test_mask_prior_loss_trains_the_prior(models):
    masks = _batch()["masks"]
    loss, logs = mask_prior_loss(models.mask_prior, masks, torch.Generator().manual_seed(0))
    again, _ = mask_prior_loss(models.mask_prior, masks, torch.Generator().manual_seed(0))
    assert loss.item() == again.item() == logs["loss"]
    models.mask_prior.zero_grad()
    loss.backward()
    grads = [p.grad for p in models.mask_prior.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_mask_prior_predicts_bounded_class_probabilities(models):
    prior = models.mask_prior
    x = torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * 5
    with torch.no_grad():
        x0 = prior(x, torch.tensor([999, 500, 3]))
    # 2 p - 1 per channel: inside [-1, 1] and the probabilities sum to one at every pixel.
    assert x0.min() >= -1 and x0.max() <= 1
    assert torch.allclose(((x0 + 1) / 2).sum(dim=1), torch.ones(3, 16, 16), atol=1e-5)


def test_a_briefly_trained_mask_prior_samples_masks_like_its_data():
    """A few dozen cross-entropy steps already give samples with the data's class frequencies.

    (The eps-MSE prior this replaced sampled ~25% of every class at this stage.)
    """
    from radiff_scale.diffusion.sampling import sample_masks

    prior = RadiffModels.from_config(tiny_models_config(), seed=0).mask_prior
    masks = _batch(8)["masks"]  # background 90%, one extended and one compact object
    data_fraction = (masks == 0).float().mean().item()
    opt = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        loss, _ = mask_prior_loss(prior, masks, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    prior.eval()
    samples = torch.from_numpy(sample_masks(prior, list(range(8)), 10, "dpm++"))
    background = (samples == 0).float().mean().item()
    assert abs(background - data_fraction) < 0.05, (background, data_fraction)
    assert (samples == SourceClass.EXTENDED).any()


def test_per_sample_generators_make_draws_independent_of_the_batch_split(models):
    def gens(indices):
        return [torch.Generator().manual_seed(100 + i) for i in indices]

    x0 = torch.zeros(4, 3, 8, 8)
    _, t_full, eps_full = noise_and_target(x0, ScheduleConfig(), gens(range(4)))
    _, t_half, eps_half = noise_and_target(x0[2:], ScheduleConfig(), gens(range(2, 4)))
    assert torch.equal(t_full[2:], t_half) and torch.equal(eps_full[2:], eps_half)
    assert not torch.equal(eps_full[0], eps_full[1])
    batch = _batch(n=4)
    full, _ = ldm_loss(models, batch, gens(range(4)))
    halves = [
        ldm_loss(models, {k: v[s] for k, v in batch.items()}, gens(range(4))[s])[0].item()
        for s in (slice(0, 2), slice(2, 4))
    ]
    assert full.item() == pytest.approx(sum(halves) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="generators for a batch of 4"):
        ldm_loss(models, batch, gens(range(3)))
