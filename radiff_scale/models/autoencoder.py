"""KL-regularised autoencoder for 1x128x128 cutouts (the "first stage" of the LDM).

Ranges: callers give preprocessed images in [0, 1]; the network works in [-1, 1]
(symmetric around zero suits GroupNorm/SiLU stacks and matches the LDM recipe), so
the wrapper maps ``x -> 2x - 1`` on the way in and ``y -> (y + 1) / 2`` on the way
out. Nothing outside this module ever sees the [-1, 1] range.

Latents: :meth:`RadioAutoencoder.encode` returns *diffusion latents*
``(z - shift_factor) * scaling_factor`` and :meth:`decode` takes them back. The
factors are measured per latent channel on training data after the autoencoder is
trained (:func:`measure_latent_stats`) and stored in the config, so the U-Net sees
zero-mean, unit-variance latents in every channel whatever the autoencoder learned.
Per channel, not one number for all: an autoencoder that carries real noise texture
puts each channel at its own offset (raw means -3.3 to 3.8 against a spread of 0.34-0.73
within a channel), and one global scale left the texture at a fifth of the diffusion
noise, so sampled tiles came out with 4-8x the real noise. Until measured they are 0
and 1; bundles of the first demo model hold single numbers, which still work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from radiff_scale.constants import MAX_CUTOUT
from radiff_scale.ddp import unwrap_ddp


@dataclass
class AutoencoderConfig:
    """Architecture of the KL autoencoder (paper: ch 128, mult (1,2,4), 2 blocks, 3 latent channels)."""

    image_size: int = 128
    in_channels: int = 1
    base_channels: int = 128
    #: One entry per resolution level; len - 1 downsamplings (3 levels -> 128/4 = 32).
    channel_mult: tuple[int, ...] = (1, 2, 4)
    layers_per_block: int = 2
    latent_channels: int = 3
    norm_num_groups: int = 32
    #: Self-attention in the encoder/decoder middle block (as in LDM). Costly at large latents.
    mid_block_attention: bool = True
    kl_weight: float = 1e-6
    #: Diffusion latents are (z - shift_factor) * scaling_factor, per latent channel (or one
    #: number for all, as in older bundles); set by measure_latent_stats.
    shift_factor: float | tuple[float, ...] = 0.0
    scaling_factor: float | tuple[float, ...] = 1.0

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if not self.channel_mult:
            raise ValueError("channel_mult needs at least one level")
        for ch in self.block_out_channels:
            if ch % self.norm_num_groups:
                raise ValueError(f"channels {ch} not divisible by norm_num_groups {self.norm_num_groups}")
        if not 8 <= self.image_size <= MAX_CUTOUT:
            raise ValueError(f"image_size must be in 8..{MAX_CUTOUT} pixels, got {self.image_size}")
        if self.image_size % self.downsample_factor:
            raise ValueError(f"image_size {self.image_size} not divisible by {self.downsample_factor}")
        for name in ("shift_factor", "scaling_factor"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                if len(value) != self.latent_channels:
                    raise ValueError(f"{name} has {len(value)} values for {self.latent_channels} latent channels")
                setattr(self, name, tuple(float(v) for v in value))
        scales = self.scaling_factor if isinstance(self.scaling_factor, tuple) else (self.scaling_factor,)
        if not all(v > 0 for v in scales):
            raise ValueError("scaling_factor must be positive")

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        return tuple(self.base_channels * m for m in self.channel_mult)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample_factor


class RadioAutoencoder(nn.Module):
    """diffusers ``AutoencoderKL`` behind a [0, 1]-in / [0, 1]-out, scaled-latent interface."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        self.config = config
        levels = len(config.channel_mult)
        self.vae = AutoencoderKL(
            in_channels=config.in_channels,
            out_channels=config.in_channels,
            down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels,
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            latent_channels=config.latent_channels,
            norm_num_groups=config.norm_num_groups,
            sample_size=config.image_size,
            mid_block_add_attention=config.mid_block_attention,
            # Our own factors live in AutoencoderConfig; keep diffusers' one neutral.
            scaling_factor=1.0,
            force_upcast=False,
        )

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if images.ndim == 3:
            images = images.unsqueeze(1)
        if images.ndim != 4 or images.shape[1] != self.config.in_channels or images.shape[-2:] != (size, size):
            raise ValueError(f"expected images (B, {self.config.in_channels}, {size}, {size}), got {tuple(images.shape)}")
        return images

    def posterior(self, images: torch.Tensor):
        """The diagonal-Gaussian posterior q(z|x) of [0, 1] images (B,1,H,W) or (B,H,W)."""
        x = self._check(images).to(self.vae.dtype) * 2 - 1
        return self.vae.encode(x).latent_dist

    def forward(self, images: torch.Tensor, generator: Any = None) -> tuple[torch.Tensor, Any]:
        """Reconstruct [0, 1] images through a posterior *sample* (training path): (recon, posterior).

        ``generator``: a torch.Generator, a list with one per image, or None.
        """
        post = self.posterior(images)
        recon = self.vae.decode(post.sample(generator=generator)).sample
        return (recon + 1) / 2, post

    def encode(self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Diffusion latents (B, latent_channels, h, w): posterior mean (default) or a sample, shifted and scaled."""
        post = self.posterior(images)
        z = post.sample(generator=generator) if sample else post.mean
        shift, scale = self._factors(z)
        return (z - shift) * scale

    def _factors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shift and scale as tensors that broadcast over (B, C, h, w)."""
        def as_tensor(value: float | tuple[float, ...]) -> torch.Tensor:
            return torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)

        return as_tensor(self.config.shift_factor), as_tensor(self.config.scaling_factor)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, H, W) in about [0, 1] (not clamped) from diffusion latents."""
        latents = latents.to(self.vae.dtype)
        shift, scale = self._factors(latents)
        z = latents / scale + shift
        return (self.vae.decode(z).sample + 1) / 2


def ae_loss(model: nn.Module, images: torch.Tensor, generator: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 reconstruction + kl_weight * KL, as in the paper (eqs. 2-3); returns (loss, logs).

    Both terms are per-pixel averages of the LDM loss (sum over pixels per image, mean
    over the batch, divided by H*W), so ``kl_weight`` keeps the reference meaning
    (1e-6 against a *summed* L1) while the logged numbers stay readable. ``model`` may
    be wrapped (DDP): only its forward is used, so gradients synchronise. ``generator``
    (one, or a list with one per image) draws the posterior sample.
    """
    inner = unwrap_ddp(model)
    x = inner._check(images)
    recon, post = model(x, generator=generator)
    n_pixels = x.shape[-1] * x.shape[-2] * x.shape[-3]
    # The network's L1 is in [-1, 1] units (twice the [0, 1] difference), as in LDM.
    l1 = (2 * (recon.float() - x.float())).abs().mean()
    kl = post.kl().float().mean()  # summed over latent elements, mean over batch
    loss = l1 + inner.config.kl_weight * kl / n_pixels
    return loss, {"loss": float(loss.detach()), "l1": float(l1.detach()) / 2, "kl": float(kl.detach())}


@torch.no_grad()
def measure_latent_stats(model: RadioAutoencoder, images: torch.Tensor, batch_size: int = 64) -> AutoencoderConfig:
    """The config with ``shift_factor``/``scaling_factor`` set from the posterior means of ``images``.

    Call once after training the autoencoder on a few hundred training images and
    assign the result to ``model.config``: the diffusion then sees unit-variance latents.
    """
    neutral = replace(model.config, shift_factor=0.0, scaling_factor=1.0)
    saved, model.config = model.config, neutral
    try:
        chunks = [model.encode(images[i : i + batch_size]).float() for i in range(0, len(images), batch_size)]
    finally:
        model.config = saved
    z = torch.cat(chunks).transpose(0, 1).reshape(model.config.latent_channels, -1)
    mean = z.mean(dim=1)
    std = z.std(dim=1)
    if not bool((std > 0).all()):
        raise ValueError("a latent channel has zero spread; is the autoencoder trained?")
    return replace(model.config, shift_factor=tuple(float(v) for v in mean),
                   scaling_factor=tuple(float(1.0 / v) for v in std))
