"""Training losses of the two diffusion models: noise a clean sample, predict it back.

The latent model regresses the noise (MSE, as in RADiff); the mask prior classifies
each pixel's clean class (cross-entropy).

Every random draw (timesteps, noise, condition dropout) comes from the optional
``generator`` -- one for the batch, or a list with one per sample so that a sample's
draws do not depend on how the global batch is split over workers -- so a training
step is reproducible from its seeds. Timesteps are
uniform over the training schedule; the target is eps (or v when the schedule says
``v_prediction``). The MSE is computed in float32 so bf16 autocast is safe.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.nn import functional as F

from radiff_scale.ddp import unwrap_ddp
from radiff_scale.diffusion.schedule import ScheduleConfig, alphas_cumprod


#: One generator for the whole batch, or one per sample (then each sample's draws depend
#: only on its own generator, so a batch split over N workers gives the same draws).
Generators = torch.Generator | Sequence[torch.Generator] | None


def _per_sample(generator: Generators, n: int) -> bool:
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise ValueError(f"got {len(generator)} generators for a batch of {n}")
        return True
    return False


def _draw(fn, shape: tuple[int, ...], generator: Generators, device: torch.device, **kwargs) -> torch.Tensor:
    """``fn(shape, generator=..., device=gen_device)`` batch-wise or one row per generator, moved to ``device``."""
    if _per_sample(generator, shape[0]):
        rows = [fn((1, *shape[1:]), generator=g, device=g.device, **kwargs) for g in generator]
        return torch.cat(rows).to(device)
    gen_device = generator.device if generator is not None else device
    return fn(shape, generator=generator, device=gen_device, **kwargs).to(device)


def uniform_draws(n: int, generator: Generators, device: torch.device) -> torch.Tensor:
    """``n`` uniform [0, 1) draws, one per sample's generator when there are several."""
    return _draw(torch.rand, (n,), generator, device)


def _noise_like(x: torch.Tensor, generator: Generators) -> torch.Tensor:
    return _draw(torch.randn, tuple(x.shape), generator, x.device, dtype=torch.float32)


def _timesteps(n: int, schedule: ScheduleConfig, generator: Generators, device: torch.device) -> torch.Tensor:
    def randint(shape, **kw):
        return torch.randint(0, schedule.num_train_timesteps, shape, **kw)

    return _draw(randint, (n,), generator, device)


def noise_and_target(
    x0: torch.Tensor, schedule: ScheduleConfig, generator: Generators = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy x_t, timesteps t, regression target) for clean samples ``x0`` under ``schedule``."""
    x0 = x0.float()
    t = _timesteps(x0.shape[0], schedule, generator, x0.device)
    noise = _noise_like(x0, generator)
    abar = alphas_cumprod(schedule).to(x0.device)[t].view(-1, 1, 1, 1)
    noisy = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    if schedule.prediction_type == "epsilon":
        target = noise
    elif schedule.prediction_type == "sample":
        target = x0
    else:  # v_prediction
        target = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    return noisy, t, target


def background_from_image(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """A training "background" for a cutout: object pixels replaced by the median of its background pixels.

    Used when a batch carries no separate background patches. Blanking the objects
    keeps the background condition from leaking the target objects (the reference
    code feeds the target cutout itself); using the median rather than zero avoids
    teaching the model that "0 in the background" marks an object.
    """
    images = images.reshape(masks.shape).float()
    out = images.clone()
    objects = masks > 0
    for i in range(len(images)):
        bg = images[i][~objects[i]]
        fill = bg.median() if bg.numel() else images[i].median()
        out[i][objects[i]] = fill
    return out


def ldm_loss(models: Any, batch: dict[str, torch.Tensor], generator: Generators = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Conditional latent-diffusion loss of one batch; returns (loss, logs).

    ``models``: a :class:`~radiff_scale.models.io.RadiffModels` (its ``unet`` may be
    DDP-wrapped; the autoencoder is frozen and only encodes, without gradients).
    ``batch`` keys (tensors on the models' device):

    * ``images`` (B, 128, 128) or (B, 1, 128, 128), preprocessed, in [0, 1];
      or ``latents`` (B, C, h, w) already encoded (a trainer-side cache);
    * ``masks`` (B, 128, 128) integer class ids;
    * ``backgrounds`` (B, 128, 128) in [0, 1] (optional; default
      :func:`background_from_image`), or ``background_latents`` (B, C, h, w).

    Condition dropout: each sample independently loses its mask with probability
    ``unet.config.mask_dropout`` and its background with ``background_dropout``.
    """
    unet_cfg = unwrap_ddp(models.unet).config
    autoencoder = unwrap_ddp(models.autoencoder)
    masks = batch["masks"]
    device = masks.device
    with torch.no_grad():
        if "latents" in batch:
            latents = batch["latents"]
        else:
            latents = autoencoder.encode(batch["images"])
        if "background_latents" in batch:
            bg_latents = batch["background_latents"]
        else:
            backgrounds = batch.get("backgrounds")
            if backgrounds is None:
                backgrounds = background_from_image(batch["images"], masks)
            bg_latents = autoencoder.encode(backgrounds)
    n = latents.shape[0]
    keep_mask = uniform_draws(n, generator, device) >= unet_cfg.mask_dropout
    keep_bg = uniform_draws(n, generator, device) >= unet_cfg.background_dropout
    noisy, t, target = noise_and_target(latents, models.schedule, generator)
    mask_cond = unwrap_ddp(models.unet).mask_condition(masks, keep_mask)
    pred = models.unet(noisy, t, mask_cond, bg_latents, keep_bg)
    loss = F.mse_loss(pred.float(), target)
    logs = {
        "loss": float(loss.detach()),
        "mask_kept": float(keep_mask.float().mean()),
        "background_kept": float(keep_bg.float().mean()),
    }
    return loss, logs


def mask_prior_loss(prior: Any, masks: torch.Tensor, generator: Generators = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Categorical denoising loss of the mask prior on integer masks (B, 128, 128); returns (loss, logs).

    The mask prior predicts, for every pixel of the noisy one-hot mask, the class
    probabilities of the clean mask; its loss is the cross-entropy with the true
    classes (see :mod:`radiff_scale.models.mask_prior` for why not eps-MSE).
    ``prior`` is a :class:`~radiff_scale.models.mask_prior.MaskPrior`, possibly
    DDP-wrapped; its own config carries the (pixel-space) schedule.
    """
    inner = unwrap_ddp(prior)
    classes = inner.model_space_classes(masks)
    x0 = inner.one_hot(classes)
    noisy, t, _ = noise_and_target(x0, inner.config.schedule, generator)
    logits = prior(noisy.to(x0.dtype), t, return_logits=True)
    loss = F.cross_entropy(logits.float(), classes)
    accuracy = (logits.detach().argmax(dim=1) == classes).float().mean()
    return loss, {"loss": float(loss.detach()), "pixel_accuracy": float(accuracy)}
