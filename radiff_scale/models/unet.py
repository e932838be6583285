"""The conditional latent U-Net: eps(z_t, t | mask, background).

Mask condition: the class-id mask (B, 128, 128) is one-hot encoded over
``NUM_CLASSES`` and average-pooled to the latent size, giving per latent pixel the
*fraction* of each class (channels sum to 1). Those channels are concatenated to the
noisy latent. Unlike the reference code (mask pushed through the image autoencoder),
this keeps class ids exactly and costs nothing. "No mask" is all-zero channels, which
a real mask never produces, so the same network learns both p(x|m) and p(x).

Background condition: tokens from :class:`BackgroundEncoder`, used through the
cross-attention of every U-Net level; the head's null tokens mean "no background".

Both conditions are dropped at random during training (``mask_dropout``,
``background_dropout``) so that classifier-free guidance works at sampling time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from radiff_scale.classes import NUM_CLASSES
from radiff_scale.models.background_encoder import BackgroundEncoder, BackgroundEncoderConfig


@dataclass
class UNetConfig:
    """Architecture and conditioning of the latent U-Net (paper: 256 ch, mult (1,2,4), 2 blocks, ctx 512)."""

    latent_channels: int = 3
    latent_size: int = 32
    base_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 2, 4)
    layers_per_block: int = 2
    #: Channels per attention head (the reference's num_head_channels).
    attention_head_dim: int = 32
    #: Levels (0 = full latent resolution) with self+cross attention; the middle block always has it.
    #: The paper has all three (32, 16, 8).
    attention_levels: tuple[int, ...] = (0, 1, 2)
    norm_num_groups: int = 32
    context_dim: int = 512
    dropout: float = 0.0
    #: Probability, per training sample, of replacing the mask by the "no mask" condition.
    mask_dropout: float = 0.1
    #: Probability, per training sample, of replacing the background by the null tokens.
    background_dropout: float = 0.1
    background: BackgroundEncoderConfig = field(default_factory=BackgroundEncoderConfig)

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attention_levels = tuple(sorted({int(i) for i in self.attention_levels}))
        if any(not 0 <= i < len(self.channel_mult) for i in self.attention_levels):
            raise ValueError(f"attention_levels must be level indices 0..{len(self.channel_mult) - 1}")
        if isinstance(self.background, dict):  # convenience for direct construction
            self.background = BackgroundEncoderConfig(**self.background)
        for p, name in ((self.mask_dropout, "mask_dropout"), (self.background_dropout, "background_dropout")):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")
        for ch in self.block_out_channels:
            if ch % self.norm_num_groups or ch % self.attention_head_dim:
                raise ValueError(
                    f"channels {ch} must be divisible by norm_num_groups {self.norm_num_groups} "
                    f"and attention_head_dim {self.attention_head_dim}"
                )
        if self.latent_size % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(f"latent_size {self.latent_size} not divisible by 2**{len(self.channel_mult) - 1}")

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        return tuple(self.base_channels * m for m in self.channel_mult)


def pool_one_hot(masks: torch.Tensor, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Class fractions (B, NUM_CLASSES, size, size) of integer masks (B, H, W) by average pooling.

    H and W must be multiples of ``size``. Each output pixel's channels sum to 1 and
    give the share of every class in its H/size x W/size block, so no class id is lost.
    """
    if masks.ndim != 3:
        raise ValueError(f"expected masks (B, H, W), got {tuple(masks.shape)}")
    h, w = masks.shape[-2:]
    if h % size or w % size:
        raise ValueError(f"mask size {h}x{w} is not a multiple of {size}")
    ids = masks.long()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= NUM_CLASSES):
        raise ValueError(f"mask values must be class ids 0..{NUM_CLASSES - 1}")
    one_hot = F.one_hot(ids, NUM_CLASSES).permute(0, 3, 1, 2).to(dtype)
    return F.avg_pool2d(one_hot, kernel_size=(h // size, w // size))


class ConditionalLatentUNet(nn.Module):
    """diffusers ``UNet2DConditionModel`` + the background head, with one forward for training and CFG.

    Everything trainable is reached from :meth:`forward`, so the module can be wrapped
    by DDP (Ray Train's ``prepare_model``) as a whole.
    """

    def __init__(self, config: UNetConfig, time_cond_proj_dim: int | None = None) -> None:
        """``time_cond_proj_dim``: width of an extra condition added to the timestep embedding
        (diffusers' LCM-style guidance input; the distilled student uses it, the teacher not)."""
        super().__init__()
        from diffusers import UNet2DConditionModel

        self.config = config
        levels = range(len(config.channel_mult))
        attn = config.attention_levels
        down = tuple("CrossAttnDownBlock2D" if i in attn else "DownBlock2D" for i in levels)
        up = tuple("CrossAttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(levels))
        self.unet = UNet2DConditionModel(
            sample_size=config.latent_size,
            in_channels=config.latent_channels + NUM_CLASSES,
            out_channels=config.latent_channels,
            down_block_types=down,
            up_block_types=up,
            mid_block_type="UNetMidBlock2DCrossAttn",
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
            cross_attention_dim=config.context_dim,
            # diffusers' historical naming: for this class "attention_head_dim" is the number of heads.
            attention_head_dim=tuple(ch // config.attention_head_dim for ch in config.block_out_channels),
            dropout=config.dropout,
            time_cond_proj_dim=time_cond_proj_dim,
        )
        self.background = BackgroundEncoder(config.background, config.latent_channels, config.context_dim)

    def mask_condition(self, masks: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Mask channels for integer masks (B, H, W); rows where ``keep`` is False become "no mask" (zeros)."""
        cond = pool_one_hot(masks, self.config.latent_size, dtype=self.unet.dtype)
        if keep is not None:
            cond = cond * keep.view(-1, 1, 1, 1).to(cond)
        return cond

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        mask_cond: torch.Tensor,
        background_latents: torch.Tensor,
        background_keep: torch.Tensor,
        timestep_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted noise (or v) for (B, C, h, w) latents.

        ``mask_cond`` is :meth:`mask_condition`'s output (zeros = no mask);
        ``background_latents`` are diffusion latents of the background patches (any
        values where ``background_keep`` is False; zeros are fine).
        """
        context = self.background(background_latents, background_keep)
        x = torch.cat([noisy_latents.to(context.dtype), mask_cond.to(context.dtype)], dim=1)
        return self.unet(x, timesteps, encoder_hidden_states=context, timestep_cond=timestep_cond).sample
