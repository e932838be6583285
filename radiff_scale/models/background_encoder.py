"""Background condition: a background patch -> a few context tokens for cross-attention.

The frozen autoencoder's encoder turns a preprocessed 128x128 background patch into
its diffusion latent (done by the caller, so latents can be cached); this small
trainable head turns that latent into ``token_grid**2`` tokens of ``context_dim``.
Tokens (rather than the reference's single 512-d vector) keep coarse spatial
structure of the background, e.g. a gradient or an artefact in one corner.

A learned *null* token set stands for "no background". Training drops the background
with some probability (see :class:`~radiff_scale.models.unet.UNetConfig`), so the
null tokens learn the unconditional background and classifier-free guidance on the
background works at sampling time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class BackgroundEncoderConfig:
    """Size of the trainable head on top of the frozen encoder."""

    hidden_channels: int = 128
    #: Tokens form a token_grid x token_grid grid over the patch (4 -> 16 tokens).
    token_grid: int = 4

    def __post_init__(self) -> None:
        if self.hidden_channels < 1 or self.token_grid < 1:
            raise ValueError("hidden_channels and token_grid must be positive")

    @property
    def num_tokens(self) -> int:
        return self.token_grid * self.token_grid


class BackgroundEncoder(nn.Module):
    """Latent (B, C, h, w) -> tokens (B, num_tokens, context_dim); dropped rows get the null tokens."""

    def __init__(self, config: BackgroundEncoderConfig, latent_channels: int, context_dim: int) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_channels
        self.convs = nn.Sequential(
            nn.Conv2d(latent_channels, hidden, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, stride=2, padding=1),
            nn.SiLU(),
        )
        self.proj = nn.Linear(hidden, context_dim)
        self.position = nn.Parameter(torch.randn(config.num_tokens, context_dim) * 0.02)
        self.null_tokens = nn.Parameter(torch.randn(config.num_tokens, context_dim) * 0.02)
        self.norm = nn.LayerNorm(context_dim)

    def forward(self, latents: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Tokens for each row; rows where ``keep`` is False get the null tokens (their latents are ignored)."""
        g = self.config.token_grid
        h = self.convs(latents.to(self.proj.weight.dtype))
        h = F.adaptive_avg_pool2d(h, (g, g)).flatten(2).transpose(1, 2)  # (B, g*g, hidden)
        tokens = self.norm(self.proj(h) + self.position)
        null = self.null_tokens.to(tokens.dtype).expand_as(tokens)
        return torch.where(keep.view(-1, 1, 1).to(tokens.device), tokens, null)
