"""``ModelsConfig``: the model sections of a job config (autoencoder, unet, mask_prior, schedule, student).

Job configs (train, make_map, ...) carry other top-level sections too; the loader
here reads only these and ignores the rest, so one YAML file serves every job.
Within a section, loading stays strict (unknown keys are errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiff_scale.config import from_dict, merge_overrides, read_yaml
from radiff_scale.diffusion.schedule import ScheduleConfig
from radiff_scale.errors import RadiffError
from radiff_scale.models.autoencoder import AutoencoderConfig
from radiff_scale.models.mask_prior import MaskPriorConfig
from radiff_scale.models.background_encoder import BackgroundEncoderConfig
from radiff_scale.models.student import StudentConfig
from radiff_scale.models.unet import UNetConfig

SECTIONS = ("autoencoder", "unet", "mask_prior", "schedule", "student")


@dataclass
class ModelsConfig:
    """Architecture of all three models plus the latent-diffusion schedule."""

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    #: None: no mask prior (masks come from a bank or are given).
    mask_prior: MaskPriorConfig | None = field(default_factory=MaskPriorConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    #: The few-step student's distillation settings (``train --stage distil``); None: no student.
    student: StudentConfig | None = None

    def __post_init__(self) -> None:
        ae, un = self.autoencoder, self.unet
        if self.student is not None and self.student.unet is not None and self.student.unet != un:
            raise ValueError("the student's U-Net architecture differs from the unet section (it is distilled from it)")
        if un.latent_channels != ae.latent_channels or un.latent_size != ae.latent_size:
            raise ValueError(
                f"unet latent {un.latent_channels}x{un.latent_size}x{un.latent_size} does not match the "
                f"autoencoder's {ae.latent_channels}x{ae.latent_size}x{ae.latent_size}"
            )
        if self.mask_prior is not None and self.mask_prior.mask_size != ae.image_size:
            raise ValueError(f"mask_prior.mask_size {self.mask_prior.mask_size} != autoencoder.image_size {ae.image_size}")


def models_config_from_dict(data: dict[str, Any], where: str = "config") -> ModelsConfig:
    """Build a ModelsConfig from a job-config mapping, taking only the model sections.

    A missing section takes its defaults; ``mask_prior: null`` means "no mask prior".
    """
    sections = {key: data[key] for key in SECTIONS if key in data and (data[key] is not None or key == "mask_prior")}
    return from_dict(ModelsConfig, sections, where=where)


def load_models_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ModelsConfig:
    """Load the model sections of a YAML job config, with dotted overrides (``unet.base_channels=64``)."""
    data = read_yaml(path) if path is not None else {}
    data = merge_overrides(data, overrides or {})
    for key in SECTIONS:
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            raise RadiffError(f"{path or 'config'}: section {key!r} must be a mapping")
    return models_config_from_dict(data, where=str(path) if path is not None else "config")


def tiny_models_config() -> ModelsConfig:
    """Toy-size models on 32x32 images (latent 3x8x8, masks 32x32) for unit tests and job smoke runs.

    Seconds to build, train a step and sample on one CPU core; useless for science.
    """
    return ModelsConfig(
        autoencoder=AutoencoderConfig(
            image_size=32, base_channels=8, channel_mult=(1, 2, 2), layers_per_block=1,
            norm_num_groups=4, mid_block_attention=False,
        ),
        unet=UNetConfig(
            latent_size=8, base_channels=16, channel_mult=(1, 2), layers_per_block=1, attention_head_dim=8,
            attention_levels=(1,), norm_num_groups=4, context_dim=16,
            background=BackgroundEncoderConfig(hidden_channels=8, token_grid=2),
        ),
        mask_prior=MaskPriorConfig(
            mask_size=32, model_size=16, base_channels=8, channel_mult=(1, 2), layers_per_block=1,
            attention_levels=(1,), attention_head_dim=8, norm_num_groups=4,
        ),
    )
