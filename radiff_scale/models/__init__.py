"""The three RADiff models: autoencoder, conditional latent U-Net (+ background encoder), mask prior.

Typical use::

    from radiff_scale.models import RadiffModels, load_models_config
    models = RadiffModels.from_config(load_models_config("configs/demo.yaml"), seed=0)
    ...train (radiff_scale.models.ae_loss, radiff_scale.diffusion.ldm_loss / mask_prior_loss)...
    models.save("runs/models");  models = RadiffModels.load("runs/models", device="cuda")

Importing this package imports torch; diffusers is imported when a model is built.
"""

from radiff_scale.models.autoencoder import AutoencoderConfig, RadioAutoencoder, ae_loss, measure_latent_stats
from radiff_scale.models.background_encoder import BackgroundEncoder, BackgroundEncoderConfig
from radiff_scale.models.config import ModelsConfig, load_models_config, models_config_from_dict, tiny_models_config
from radiff_scale.models.io import RadiffModels, load_module, save_module
from radiff_scale.models.mask_prior import (
    MaskPrior,
    MaskPriorConfig,
    MaskStatistics,
    downsample_masks,
    mask_statistics,
    upsample_masks,
)
from radiff_scale.models.unet import ConditionalLatentUNet, UNetConfig, pool_one_hot

__all__ = [
    "AutoencoderConfig",
    "BackgroundEncoder",
    "BackgroundEncoderConfig",
    "ConditionalLatentUNet",
    "MaskPrior",
    "MaskPriorConfig",
    "MaskStatistics",
    "ModelsConfig",
    "RadiffModels",
    "RadioAutoencoder",
    "UNetConfig",
    "ae_loss",
    "downsample_masks",
    "load_models_config",
    "load_module",
    "mask_statistics",
    "measure_latent_stats",
    "models_config_from_dict",
    "pool_one_hot",
    "save_module",
    "tiny_models_config",
    "upsample_masks",
]
