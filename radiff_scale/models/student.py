"""The few-step student: the latent U-Net with the guidance scales as an input.

A teacher tile costs DPM-Solver++ 20 steps x 3 guided evaluations (mask, mask+background,
neither) = 60 U-Net evaluations. The student is the same U-Net with one extra input, the two
guidance scales (mask, background), embedded like a timestep and added to the timestep
embedding (diffusers' ``time_cond_proj_dim``, the guidance input of LCM and of Meng et al.'s
guided students). Distilled (``radiff-scale train --stage distil``,
radiff_scale/diffusion/distillation.py) to give the *guided* output in one evaluation, and
sampled by sampler ``distilled`` (DPM-Solver++, 4 steps by default), a tile costs 4
evaluations.

It starts as an exact copy of the teacher: the guidance projection is zero-initialised, so
before distillation the student is the teacher's unguided conditional model e(m, b).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from radiff_scale.models.unet import ConditionalLatentUNet, UNetConfig


@dataclass
class StudentConfig:
    """What the student was distilled for; recorded with its weights.

    ``unet`` is the teacher's architecture (filled in by :meth:`GuidedStudent.from_teacher`,
    so a job config's ``student:`` section does not repeat it).
    """

    unet: UNetConfig | None = None
    #: Sinusoidal features per guidance scale (two scales: mask, background).
    guidance_embedding_dim: int = 32
    #: Guidance scales drawn uniformly during distillation; sampling outside them extrapolates.
    guidance_mask_range: tuple[float, float] = (1.0, 5.0)
    guidance_background_range: tuple[float, float] = (1.0, 2.0)
    #: Share of distillation samples taught without a background (maps without a background
    #: condition, and the evaluation's mask-only variant).
    background_dropout: float = 0.2
    #: Solver steps of sampler ``distilled`` when a spec does not say otherwise.
    default_steps: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.unet, dict):
            self.unet = UNetConfig(**self.unet)
        self.guidance_mask_range = tuple(float(v) for v in self.guidance_mask_range)  # type: ignore[assignment]
        self.guidance_background_range = tuple(float(v) for v in self.guidance_background_range)  # type: ignore[assignment]
        for name in ("guidance_mask_range", "guidance_background_range"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not 0.0 <= lo_hi[0] <= lo_hi[1]:
                raise ValueError(f"{name} must be two scales 0 <= lo <= hi, got {lo_hi}")
        if self.guidance_embedding_dim < 2 or self.guidance_embedding_dim % 2:
            raise ValueError("guidance_embedding_dim must be an even number >= 2")
        if not 0.0 <= self.background_dropout < 1.0:
            raise ValueError("background_dropout must be in [0, 1)")
        if self.default_steps < 1:
            raise ValueError("default_steps must be at least 1")


def guidance_embedding(scales: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features (B, 2 * dim) of guidance scales (B, 2).

    LCM's ``w * 1000`` spreading: a scale's features vary as fast over [1, 5] as a timestep's
    over [0, 1000], so neighbouring scales are distinguishable to the network.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=scales.device) / max(half - 1, 1))
    angles = scales.float().unsqueeze(-1) * 1000.0 * freqs  # (B, 2, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(1)


class GuidedStudent(nn.Module):
    """The teacher's U-Net and background head, plus the guidance input."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        if config.unet is None:
            raise ValueError("StudentConfig.unet is not set (build the student with GuidedStudent.from_teacher)")
        self.config = config
        self.net = ConditionalLatentUNet(config.unet, time_cond_proj_dim=2 * config.guidance_embedding_dim)

    @classmethod
    def from_teacher(cls, teacher: ConditionalLatentUNet, config: StudentConfig) -> GuidedStudent:
        """A student equal to ``teacher``'s conditional model: its weights, a zero guidance projection."""
        config = StudentConfig(**{**config.__dict__, "unet": teacher.config})
        student = cls(config)
        missing, unexpected = student.net.load_state_dict(teacher.state_dict(), strict=False)
        projection = "unet.time_embedding.cond_proj.weight"
        if unexpected or missing != [projection]:
            raise ValueError(f"teacher and student do not match: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            student.net.unet.time_embedding.cond_proj.weight.zero_()
        return student.to(next(teacher.parameters()).device)

    def mask_condition(self, masks: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.mask_condition(masks, keep)

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        mask_cond: torch.Tensor,
        background_latents: torch.Tensor,
        background_keep: torch.Tensor,
        guidance: torch.Tensor,
    ) -> torch.Tensor:
        """The guided model output (v or eps, as the teacher's schedule says) in one evaluation;
        ``guidance`` is (B, 2): mask and background scales per sample."""
        features = guidance_embedding(guidance, self.config.guidance_embedding_dim)
        return self.net(noisy_latents, timesteps, mask_cond, background_latents, background_keep, timestep_cond=features)
