"""The noise schedule and the diffusers scheduler for each sampler name.

Training and every sampler share one :class:`ScheduleConfig`, so a model is always
sampled with the betas it was trained on. The default is the RADiff/LDM schedule:
1000 steps, "linear in sqrt(beta)" from 0.0015 to 0.0155 (LDM calls it "linear",
diffusers "scaled_linear"), epsilon prediction.

Two choices differ from the reference code on purpose:

* ``timestep_spacing="trailing"``: with few sampling steps the first step starts at
  t=999, where the model was trained on (almost) pure noise; "leading" spacing starts
  lower and leaves visible noise/contrast errors with 10-25 DDIM steps.
* ``clip_sample=False`` for latents (they are unit-variance, not bounded to [-1, 1]);
  the pixel-space mask prior turns it on because its data live in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch

from radiff_scale.diffusion.settings import SAMPLERS
from radiff_scale.errors import RadiffError



@dataclass(frozen=True)
class ScheduleConfig:
    """The forward-noising schedule a model is trained with (and sampled with)."""

    num_train_timesteps: int = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "scaled_linear"
    beta_start: float = 0.0015
    beta_end: float = 0.0155
    #: What the network predicts: the noise, v, or the clean sample x0 ("sample"; the mask
    #: prior's categorical parametrisation, see radiff_scale.models.mask_prior).
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "epsilon"
    timestep_spacing: Literal["leading", "trailing", "linspace"] = "trailing"
    clip_sample: bool = False

    def __post_init__(self) -> None:
        if self.num_train_timesteps < 2:
            raise ValueError("num_train_timesteps must be at least 2")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError("need 0 < beta_start < beta_end < 1")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {self.prediction_type!r}")


def make_scheduler(name: str, config: ScheduleConfig | None = None):
    """A fresh diffusers scheduler for sampler ``name`` built on ``config``.

    Multistep solvers keep per-run state, so call this once per sampling run.
    "ddpm" is ancestral (stochastic), "ddim" is deterministic at eta=0, "dpm++" is
    DPM-Solver++(2M) and "unipc" UniPC-bh2, both deterministic few-step solvers.
    "distilled" is DPM-Solver++(2M) too, run on a bundle's guidance-distilled student.
    """
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    config = config or ScheduleConfig()
    common = dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        prediction_type=config.prediction_type,
        timestep_spacing=config.timestep_spacing,
    )
    key = str(name).strip().lower()
    if key == "ddpm":
        return DDPMScheduler(**common, clip_sample=config.clip_sample, variance_type="fixed_small")
    if key == "ddim":
        return DDIMScheduler(**common, clip_sample=config.clip_sample, set_alpha_to_one=True)
    if key in ("dpm++", "dpmpp", "dpm", "distilled"):
        return DPMSolverMultistepScheduler(
            **common, algorithm_type="dpmsolver++", solver_order=2, thresholding=False
        )
    if key == "unipc":
        return UniPCMultistepScheduler(**common, solver_order=2)
    raise RadiffError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")


@lru_cache(maxsize=8)
def _alphas_cumprod(config: ScheduleConfig) -> torch.Tensor:
    return make_scheduler("ddpm", config).alphas_cumprod.clone()


def alphas_cumprod(config: ScheduleConfig) -> torch.Tensor:
    """float32 (T,) cumulative products of (1 - beta) for ``config`` (cached; CPU)."""
    return _alphas_cumprod(config)
