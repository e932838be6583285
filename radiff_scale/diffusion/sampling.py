"""Sampling tiles (latent diffusion + decoding) and masks (mask prior), deterministic per object.

Per-object determinism: each tile owns a CPU ``torch.Generator`` seeded with its seed
alone. Its initial noise and every stochastic step's noise (DDPM, DDIM with eta > 0)
are drawn from that generator with the shape of one tile, so a tile's result does not
depend on which other tiles share its batch, on batch position, or on batch size
(up to float rounding of batched kernels, ~1e-6 on CPU).

Classifier-free guidance with separate scales for the mask (s_m) and the background
(s_b), nested so that the background term is measured *given* the mask::

    eps = e(0, 0) + s_m * (e(m, 0) - e(0, 0)) + s_b * (e(m, b) - e(m, 0))

where 0 is the dropped condition. With s_m = s_b = 1 this is exactly e(m, b) (one
network evaluation). Without backgrounds the last term vanishes (two evaluations).
The evaluations of a step run as one batched forward.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from radiff_scale.classes import NUM_CLASSES
from radiff_scale.diffusion.schedule import make_scheduler
from radiff_scale.diffusion.settings import PRECISIONS, STUDENT_SAMPLERS, TEACHER_SAMPLERS
from radiff_scale.errors import RadiffError


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    gens = []
    for seed in seeds:
        seed = int(seed)
        if not 0 <= seed < 2**64:
            raise RadiffError(f"seed {seed} out of range (0 <= seed < 2**64)")
        gens.append(torch.Generator(device="cpu").manual_seed(seed))
    return gens


def _per_item_randn(shape: tuple[int, ...], generators: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """One (1, *shape[1:]) draw per generator, stacked (diffusers' randn_tensor with a list of
    generators): an item's noise is independent of the batch it is sampled in."""
    return randn_tensor(tuple(shape), generator=list(generators), device=device, dtype=torch.float32)


def _guidance_scales(guidance: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(guidance, (int, float)):
        return float(guidance), float(guidance)
    scales = tuple(float(g) for g in guidance)
    if len(scales) != 2:
        raise RadiffError(f"guidance must be one scale or two (mask, background), got {guidance!r}")
    return scales  # type: ignore[return-value]


def guided_eps(
    unet: Any,
    x: torch.Tensor,
    t: torch.Tensor,
    mask_cond: torch.Tensor,
    background_latents: torch.Tensor,
    has_background: bool,
    scales: tuple[float, float],
) -> torch.Tensor:
    """The guided model output for latents ``x`` (B, C, h, w) at timestep ``t`` (formula in the module doc).

    Evaluations are stacked along the batch as [e(m, b), e(m, 0), e(0, 0)] (only those
    needed) and run in one forward.
    """
    s_mask, s_bg = scales
    n = x.shape[0]
    yes = torch.ones(n, dtype=torch.bool, device=x.device)
    no = torch.zeros_like(yes)
    no_mask = torch.zeros_like(mask_cond)
    if s_mask == 1.0 and (s_bg == 1.0 or not has_background):
        conds = [(mask_cond, yes if has_background else no)]
    elif not has_background:
        conds = [(mask_cond, no), (no_mask, no)]
    else:
        conds = [(mask_cond, yes), (mask_cond, no), (no_mask, no)]
    k = len(conds)
    timesteps = t.reshape(-1).expand(n).repeat(k) if t.numel() == 1 else t.repeat(k)
    out = unet(
        torch.cat([x] * k),
        timesteps,
        torch.cat([c[0] for c in conds]),
        torch.cat([background_latents] * k),
        torch.cat([c[1] for c in conds]),
    ).float().chunk(k)
    if k == 1:
        return out[0]
    if k == 2:
        e_m, e_0 = out
        return e_0 + s_mask * (e_m - e_0)
    e_mb, e_m, e_0 = out
    return e_0 + s_mask * (e_m - e_0) + s_bg * (e_mb - e_m)


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast of the networks' convolutions and matmuls; the solver's arithmetic and the
    outputs stay fp32. On an H200 the paper-size models sample ~6.7x faster than in fp32 (whose
    attention takes the slow, memory-hungry path); on a CPU bf16 is ~20x slower (benchmarks)."""
    if precision not in PRECISIONS:
        raise RadiffError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _denoise(
    predict,
    shape: tuple[int, ...],
    generators: list[torch.Generator],
    steps: int,
    sampler: str,
    eta: float,
    schedule,
    device: torch.device,
) -> torch.Tensor:
    """Run the reverse process from per-item noise; ``predict(x_t, t)`` returns the model output."""
    if steps < 1:
        raise RadiffError(f"steps must be at least 1, got {steps}")
    if eta < 0:
        raise RadiffError(f"eta must be >= 0, got {eta}")
    scheduler = make_scheduler(sampler, schedule)
    scheduler.set_timesteps(steps, device=device)
    x = _per_item_randn(shape, generators, device) * scheduler.init_noise_sigma
    name = type(scheduler).__name__
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        out = predict(model_in, t).float()
        if name == "DDIMScheduler":
            noise = _per_item_randn(shape, generators, device) if eta > 0 else None
            x = scheduler.step(out, t, x, eta=eta, variance_noise=noise).prev_sample
        elif name == "DDPMScheduler":
            # DDPM draws its own noise; a list of CPU generators gives one draw per item.
            x = scheduler.step(out, t, x, generator=generators if len(generators) > 1 else generators[0]).prev_sample
        else:
            x = scheduler.step(out, t, x).prev_sample
    return x


@torch.no_grad()
def sample_tiles(
    models: Any,
    masks: np.ndarray,
    backgrounds: np.ndarray | None,
    seeds: Sequence[int],
    steps: int,
    guidance: float | Sequence[float],
    sampler: str,
    eta: float = 0.0,
    precision: str = "fp32",
) -> np.ndarray:
    """Generate one 128x128 tile per (mask, background, seed); float32 (N, 128, 128) clamped to [0, 1].

    ``models``: a RadiffModels (autoencoder + unet + schedule; runs on its device).
    ``masks``: uint8 (N, 128, 128) class ids. ``backgrounds``: float32 (N, 128, 128)
    preprocessed background patches, or None for the null background. ``guidance``:
    one scale for both conditions or (mask, background). ``sampler``: "ddpm", "ddim",
    "dpm++" or "unipc" (the guided teacher), or "distilled" (DPM-Solver++ on the bundle's
    guidance-distilled student: one evaluation per step, guidance an input); ``eta`` only matters for DDIM. ``precision``: "fp32" or "bf16"
    (autocast of the network evaluations; see :func:`_autocast`).
    """
    autoencoder, unet = models.autoencoder, models.unet
    size = autoencoder.config.image_size
    masks = np.asarray(masks)
    n = len(seeds)
    if masks.shape != (n, size, size):
        raise RadiffError(f"masks must have shape ({n}, {size}, {size}) for {n} seeds, got {masks.shape}")
    if backgrounds is not None and np.asarray(backgrounds).shape != (n, size, size):
        raise RadiffError(f"backgrounds must have shape ({n}, {size}, {size}), got {np.asarray(backgrounds).shape}")
    if n == 0:
        return np.zeros((0, size, size), dtype=np.float32)
    if masks.min() < 0 or masks.max() >= NUM_CLASSES:
        raise RadiffError(f"mask values must be class ids 0..{NUM_CLASSES - 1}, got {masks.min()}..{masks.max()}")
    s_mask, s_bg = _guidance_scales(guidance)
    device = next(unet.parameters()).device
    generators = _generators(seeds)
    with _autocast(device, precision):
        return _sample_latent_tiles(models, masks, backgrounds, generators, steps, (s_mask, s_bg), sampler, eta, device)


def _sample_latent_tiles(
    models: Any,
    masks: np.ndarray,
    backgrounds: np.ndarray | None,
    generators: list[torch.Generator],
    steps: int,
    scales: tuple[float, float],
    sampler: str,
    eta: float,
    device: torch.device,
) -> np.ndarray:
    autoencoder, unet = models.autoencoder, models.unet
    n = len(generators)

    mask_t = torch.from_numpy(masks.astype(np.int64)).to(device)
    cond_mask = unet.mask_condition(mask_t)
    latent_shape = (n, unet.config.latent_channels, unet.config.latent_size, unet.config.latent_size)
    if backgrounds is not None:
        bg = torch.from_numpy(np.asarray(backgrounds, dtype=np.float32)).to(device)
        bg_latents = autoencoder.encode(bg.unsqueeze(1))
    else:
        bg_latents = torch.zeros(latent_shape, device=device)

    if sampler in STUDENT_SAMPLERS:
        student = models.student
        if student is None:
            raise RadiffError(f"sampler {sampler!r} needs a bundle with a distilled student (radiff-scale train --stage distil)")
        keep = torch.full((n,), backgrounds is not None, dtype=torch.bool, device=device)
        guidance = torch.tensor([scales], dtype=torch.float32, device=device).expand(n, 2)

        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return student(x, t.reshape(-1).expand(n), cond_mask, bg_latents, keep, guidance)
    else:
        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return guided_eps(unet, x, t, cond_mask, bg_latents, backgrounds is not None, scales)

    latents = _denoise(predict, latent_shape, generators, steps, sampler, eta, models.schedule, device)
    images = autoencoder.decode(latents).float().clamp(0.0, 1.0)
    return images[:, 0].cpu().numpy().astype(np.float32)


@torch.no_grad()
def sample_masks(prior: Any, seeds: Sequence[int], steps: int, sampler: str, eta: float = 0.0) -> np.ndarray:
    """Invent one integer class mask per seed with the mask prior: uint8 (N, mask_size, mask_size)."""
    if sampler in STUDENT_SAMPLERS:
        raise RadiffError(f"the mask prior has no distilled student: sample masks with {', '.join(TEACHER_SAMPLERS)}")
    cfg = prior.config
    n = len(seeds)
    if n == 0:
        return np.zeros((0, cfg.mask_size, cfg.mask_size), dtype=np.uint8)
    device = next(prior.parameters()).device
    shape = (n, NUM_CLASSES, cfg.model_size, cfg.model_size)

    def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        timesteps = t.reshape(1).expand(n)
        return prior(x.to(prior.unet.dtype), timesteps)

    x = _denoise(predict, shape, _generators(seeds), steps, sampler, eta, cfg.schedule, device)
    return prior.from_model_space(x).cpu().numpy()
