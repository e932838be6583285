"""Guidance distillation: teach the student, in one evaluation, what the guided teacher says in three.

The teacher's tile costs DPM-Solver++ 20 steps x 3 evaluations (classifier-free guidance
over the mask and the background, radiff_scale/diffusion/sampling.py) = 60 U-Net
evaluations. Two thirds of that is guidance, and most of the rest is steps the solver does
not need: on the shipped model, DPM-Solver++ at 4 steps gives the 20-step tiles to a mean
absolute difference of 0.013 (in [0, 1] units) with the same mask IoU (docs/models.md).

So the student (radiff_scale/models/student.py) takes the guidance scales as an input and
learns the guided output itself (Meng et al. 2023, "On distillation of guided diffusion
models", stage one), and is sampled with the same deterministic few-step solver: 4 steps,
one evaluation each. The loss, per sample:

    w = (w_m, w_b) drawn from the student's ranges; the background dropped with
    probability ``background_dropout``; x_t the training latent noised at a uniform t;
    target = e(0,0) + w_m (e(m,0) - e(0,0)) + w_b (e(m,b) - e(m,0))   (the frozen teacher)
    loss   = || student(x_t, t, m, b, w) - target ||^2   (in the schedule's output units, v here)

Every target is exact (three teacher evaluations, no solver in the loop), so the student
needs no propagation through time and converges in a few hundred steps; a training step
costs about twice one of the latent-diffusion stage.

Consistency distillation (LCM) was tried first and dropped: after 100 steps of batch 16 on
the 2-core machine its 4-step tiles were still source-free noise (mask IoU 0.00 against the
teacher's 0.77), since its targets must carry the boundary condition up through 50 intervals.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from radiff_scale.ddp import unwrap_ddp
from radiff_scale.diffusion.loss import Generators, noise_and_target, uniform_draws


def guided_teacher_output(
    teacher: Any, x: torch.Tensor, t: torch.Tensor, mask_cond: torch.Tensor, bg_latents: torch.Tensor,
    keep_bg: torch.Tensor, scales: torch.Tensor,
) -> torch.Tensor:
    """The teacher's guided output with one (w_m, w_b) per sample (radiff_scale.diffusion.sampling's
    formula, as one batched forward); samples without a background lose the background term."""
    n = x.shape[0]
    no = torch.zeros(n, dtype=torch.bool, device=x.device)
    e_mb, e_m, e_0 = teacher(
        torch.cat([x] * 3), t.repeat(3), torch.cat([mask_cond, mask_cond, torch.zeros_like(mask_cond)]),
        torch.cat([bg_latents] * 3), torch.cat([keep_bg, no, no]),
    ).float().chunk(3)
    w_m = scales[:, 0].view(-1, 1, 1, 1)
    w_b = (scales[:, 1] * keep_bg.float()).view(-1, 1, 1, 1)
    return e_0 + w_m * (e_m - e_0) + w_b * (e_mb - e_m)


def guidance_scales(
    n: int, ranges: tuple[tuple[float, float], tuple[float, float]], generator: Generators, device: torch.device
) -> torch.Tensor:
    """(n, 2) scales, each column uniform in its (lo, hi) range."""
    columns = [lo + (hi - lo) * uniform_draws(n, generator, device) for lo, hi in ranges]
    return torch.stack(columns, dim=1)


def guidance_distillation_loss(
    models: Any, student: Any, batch: dict[str, torch.Tensor], generator: Generators = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """One distillation batch (module docstring); returns (loss, logs).

    ``models``: RadiffModels with the frozen autoencoder and teacher ``unet``; ``student`` is the
    (maybe DDP-wrapped) :class:`~radiff_scale.models.student.GuidedStudent` being trained.
    ``batch``: ``images``, ``masks`` and ``backgrounds`` as for :func:`~radiff_scale.diffusion.loss.ldm_loss`.
    """
    inner = unwrap_ddp(student)
    cfg = inner.config
    masks = batch["masks"]
    device = masks.device
    with torch.no_grad():
        latents = models.autoencoder.encode(batch["images"]).float()
        bg_latents = models.autoencoder.encode(batch["backgrounds"]).float()
    n = latents.shape[0]
    keep_bg = uniform_draws(n, generator, device) >= cfg.background_dropout
    scales = guidance_scales(n, (cfg.guidance_mask_range, cfg.guidance_background_range), generator, device)
    noisy, t, _ = noise_and_target(latents, models.schedule, generator)
    mask_cond = inner.mask_condition(masks)
    with torch.no_grad():
        target = guided_teacher_output(models.unet, noisy, t, mask_cond, bg_latents, keep_bg, scales)
    prediction = student(noisy, t, mask_cond, bg_latents, keep_bg, scales).float()
    loss = F.mse_loss(prediction, target)
    return loss, {"loss": float(loss.detach()), "background_kept": float(keep_bg.float().mean())}
