"""A BYOL self-supervised encoder of radio cutouts: the feature extractor of the domain FID.

Why it is here: the paper (section 5.1.1) computes its FID on 512-d features of a BYOL
(Grill et al. 2020) ResNet-18 trained on its own cutouts, because Inception-v3's ImageNet
features describe objects and scenes, not noise, beams and radio sources. This module
trains such an encoder on any stack of [0, 1] cutouts and embeds images with it;
:mod:`radiff_scale.eval.fid` does the statistics.

BYOL in brief: an *online* network (backbone -> projector -> predictor) learns to predict a
*target* network's projection (backbone -> projector) of another augmented view of the same
image; the target is an exponential moving average of the online weights, with the rate
``tau`` rising from ``tau_base`` to 1 along a cosine. The loss per pair is
``2 - 2 cos(prediction, target projection)``, symmetrised over the two views. Only the
online backbone is kept: its global-average-pooled output is the feature vector.

The backbone is a ResNet of :class:`BasicBlock` stages written here (torchvision is not a
dependency: on this project's machines its wheels need another torch), with
``ByolConfig.paper()`` the ResNet-18 shape (stem 7x7/2 + max-pool, blocks 2-2-2-2, widths
64-128-256-512, so 512-d features) and ``ByolConfig.cpu()`` a narrow 4-stage one that
trains in minutes on two cores (docs/evaluation.md gives the timings).

Augmentations suit radio cutouts: no colour operations (one channel), but random
flips and 90-degree rotations (the sky has no preferred orientation), square crops of
``crop_min_area``..1 of the image resized back (source sizes vary), additive Gaussian
noise (depth varies) and a gain/offset jitter of the stretched intensity. All random
draws come from generators seeded by ``seed``, so training on the CPU is deterministic.

Images must be stretched the same way for every set that is compared (real and generated
alike); the encoder sees them resized to ``input_size`` with an antialiased bilinear filter,
then centred and scaled by the pixel mean and standard deviation of its training images
(stored with the weights), because a bias-free ReLU network is homogeneous in its input
and the images' overall level would otherwise dominate every feature.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radiff_scale.atomic import replace_dir_when_done
from radiff_scale.config import from_dict, to_dict
from radiff_scale.errors import RadiffError

ENCODER_FORMAT = "radiff-byol-encoder/1"
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ByolConfig:
    """Backbone, heads, optimisation and augmentation of one BYOL run (defaults: the CPU config).

    Backbone: ``input_size`` (images are resized to it), ``widths`` and ``blocks`` per stage
    (the feature dimension is ``widths[-1]``), the stem's ``stem_kernel`` / ``stem_stride``
    and ``stem_pool`` (a 3x3/2 max-pool). Heads: ``proj_hidden`` and ``proj_dim`` of the
    projector and predictor MLPs. Optimisation: AdamW with ``lr`` (linear warm-up over
    ``warmup_steps``, then cosine to 0), ``weight_decay``, ``steps`` of ``batch_size``
    images, target EMA from ``tau_base``. Augmentation: ``crop_min_area``, ``noise_max``
    (Gaussian noise std drawn in [0, noise_max], applied with probability ``noise_prob``),
    ``gain_jitter`` and ``offset_jitter`` (y -> g y + o, g in 1 +- gain_jitter, o in +-
    offset_jitter).
    """

    input_size: int = 64
    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    stem_kernel: int = 3
    stem_stride: int = 2
    stem_pool: bool = False
    proj_hidden: int = 512
    proj_dim: int = 128
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 20
    weight_decay: float = 1e-5
    tau_base: float = 0.99
    crop_min_area: float = 0.5
    noise_max: float = 0.03
    noise_prob: float = 0.5
    gain_jitter: float = 0.15
    offset_jitter: float = 0.05

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise RadiffError(f"byol config: widths {self.widths} and blocks {self.blocks} need one entry per stage")
        if min(self.widths) < 1 or min(self.blocks) < 1:
            raise RadiffError("byol config: widths and blocks must be >= 1")
        if self.input_size < 16 or self.steps < 0 or self.batch_size < 2:
            raise RadiffError("byol config: input_size must be >= 16, steps >= 0 and batch_size >= 2")
        if not (0.0 < self.crop_min_area <= 1.0 and 0.0 <= self.tau_base <= 1.0 and 0.0 <= self.noise_prob <= 1.0):
            raise RadiffError("byol config: crop_min_area must be in (0, 1], tau_base and noise_prob in [0, 1]")

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]

    @classmethod
    def cpu(cls, **overrides: Any) -> ByolConfig:
        """Narrow 4-stage ResNet, 64x64 inputs, 128-d features: minutes on two CPU cores."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> ByolConfig:
        """ResNet-18 (ImageNet stem, 2-2-2-2 blocks, 64..512 channels), 128x128 inputs, 512-d features.

        Heads as in Grill et al. (4096 hidden, 256 out) and tau 0.996; the paper gives no
        optimiser, batch or length, so those are this project's choice (an accelerator's work).
        """
        base: dict[str, Any] = dict(
            input_size=128, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), stem_kernel=7, stem_stride=2,
            stem_pool=True, proj_hidden=4096, proj_dim=256, steps=20000, batch_size=256, lr=1e-3,
            warmup_steps=500, weight_decay=1e-6, tau_base=0.996,
        )
        base.update(overrides)
        return cls(**base)


class BasicBlock(nn.Module):
    """ResNet's two-3x3-convolution residual block, with a 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetBackbone(nn.Module):
    """A one-channel ResNet of BasicBlock stages ending in global average pooling: (B, 1, S, S) -> (B, d)."""

    def __init__(self, config: ByolConfig) -> None:
        super().__init__()
        c0 = config.widths[0]
        stem: list[nn.Module] = [
            nn.Conv2d(1, c0, config.stem_kernel, config.stem_stride, config.stem_kernel // 2, bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU(inplace=True),
        ]
        if config.stem_pool:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        layers: list[nn.Module] = []
        c_in = c0
        for i, (width, n) in enumerate(zip(config.widths, config.blocks)):
            for j in range(n):
                layers.append(BasicBlock(c_in, width, 2 if (i > 0 and j == 0) else 1))
                c_in = width
        self.stages = nn.Sequential(*layers)
        # Pixel statistics of the training images: a bias-free ReLU network is homogeneous in
        # its input, so without centring, the images' mean level would dominate every feature.
        self.register_buffer("pixel_mean", torch.zeros(()))
        self.register_buffer("pixel_std", torch.ones(()))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def set_pixel_stats(self, x: torch.Tensor) -> None:
        """Centre and scale inputs by the mean and standard deviation of the pixels of ``x``."""
        self.pixel_mean.fill_(float(x.mean()))
        self.pixel_std.fill_(max(float(x.std()), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.pixel_mean) / self.pixel_std
        return self.stages(self.stem(x)).mean(dim=(2, 3))


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """BYOL's projector / predictor: Linear -> BatchNorm -> ReLU -> Linear."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


class ByolEncoder(nn.Module):
    """The kept online backbone, its config and a record of its training (``info``)."""

    def __init__(self, config: ByolConfig, backbone: ResNetBackbone | None = None, info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else ResNetBackbone(config)
        self.info: dict[str, Any] = dict(info or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def fit_pixel_stats(self, images: Any) -> ByolEncoder:
        """Centre inputs by the pixel mean and std of ``images``, as :func:`train_byol` does first.

        Only needed for an untrained encoder (random features as a baseline); returns self.
        """
        with torch.no_grad():
            self.backbone.set_pixel_stats(prepare_images(images, self.config.input_size))
        return self


def prepare_images(images: Any, size: int) -> torch.Tensor:
    """(N, H, W) [0, 1] images -> float32 tensor (N, 1, size, size), antialiased bilinear resize."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"expected images of shape (N, H, W), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("images contain NaN or inf (stretch them to [0, 1] first)")
    x = torch.from_numpy(np.ascontiguousarray(arr))[:, None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def augment(x: torch.Tensor, config: ByolConfig, generator: torch.Generator) -> torch.Tensor:
    """One random view per image of ``x`` (B, 1, S, S): crop+resize, flip, 90-degree turn, gain, noise.

    Crop, flip and turn are one affine resampling (``grid_sample``, bilinear, reflected at
    the border), exact when the crop is the whole image.
    """
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator)

    side = uniform(config.crop_min_area, 1.0).sqrt()
    tx, ty = uniform(-1.0, 1.0) * (1.0 - side), uniform(-1.0, 1.0) * (1.0 - side)
    turn = torch.randint(0, 4, (b,), generator=generator)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    cos = torch.tensor([1.0, 0.0, -1.0, 0.0])[turn]
    sin = torch.tensor([0.0, 1.0, 0.0, -1.0])[turn]
    theta = torch.stack([
        torch.stack([side * cos * flip, -side * sin, tx], dim=1),
        torch.stack([side * sin * flip, side * cos, ty], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gain = uniform(1.0 - config.gain_jitter, 1.0 + config.gain_jitter)
    offset = uniform(-config.offset_jitter, config.offset_jitter)
    noisy = (torch.rand(b, generator=generator) < config.noise_prob).float()
    std = uniform(0.0, config.noise_max) * noisy
    noise = torch.randn(out.shape, generator=generator)
    return out * gain[:, None, None, None] + offset[:, None, None, None] + noise * std[:, None, None, None]


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of 2 - 2 cos(prediction, target) over the batch (0 when aligned, 4 when opposite)."""
    return (2.0 - 2.0 * F.cosine_similarity(prediction, target.detach(), dim=-1)).mean()


def _lr_at(step: int, config: ByolConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * (step - config.warmup_steps) / span))


def train_byol(
    images: Any,
    config: ByolConfig = ByolConfig(),
    seed: int = 0,
    log: Callable[[int, float], None] | None = None,
    log_every: int = 50,
) -> ByolEncoder:
    """Train BYOL on ``images`` (N, H, W) float32 in [0, 1]; return the online backbone in eval mode.

    Deterministic on the CPU for a seed (weights, batches and views are drawn from
    generators seeded by it; the global torch RNG is left as it was). ``encoder.info``
    records the seed, steps, per-step losses and the wall time; ``log(step, loss)`` is
    called every ``log_every`` steps.
    """
    x = prepare_images(images, config.input_size)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"BYOL needs at least 2 images, got {n}")
    batch = min(config.batch_size, n)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = ResNetBackbone(config)
        backbone.set_pixel_stats(x)
        projector = mlp(config.feature_dim, config.proj_hidden, config.proj_dim)
        predictor = mlp(config.proj_dim, config.proj_hidden, config.proj_dim)
    target_backbone, target_projector = copy.deepcopy(backbone), copy.deepcopy(projector)
    online = list(backbone.parameters()) + list(projector.parameters())
    target = list(target_backbone.parameters()) + list(target_projector.parameters())
    for p in target:
        p.requires_grad_(False)
    optimiser = torch.optim.AdamW(online + list(predictor.parameters()), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for module in (backbone, projector, predictor, target_backbone, target_projector):
        module.train()
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr_at(step, config)
        tau = 1.0 - (1.0 - config.tau_base) * 0.5 * (1.0 + math.cos(math.pi * step / max(config.steps, 1)))
        xb = x[torch.randperm(n, generator=generator)[:batch]]
        v1, v2 = augment(xb, config, generator), augment(xb, config, generator)
        p1, p2 = predictor(projector(backbone(v1))), predictor(projector(backbone(v2)))
        with torch.no_grad():
            z1, z2 = target_projector(target_backbone(v1)), target_projector(target_backbone(v2))
        loss = byol_loss(p1, z2) + byol_loss(p2, z1)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            for po, pt in zip(online, target):
                pt.mul_(tau).add_(po.detach(), alpha=1.0 - tau)
        losses.append(float(loss.detach()))
        if log is not None and (step % max(log_every, 1) == 0 or step == config.steps - 1):
            log(step, losses[-1])
    info = {"seed": int(seed), "steps": int(config.steps), "n_images": int(n), "losses": losses,
            "train_seconds": round(time.perf_counter() - start, 3)}
    return ByolEncoder(config, backbone, info).eval()


@torch.no_grad()
def embed(encoder: ByolEncoder, images: Any, batch_size: int = 256) -> np.ndarray:
    """Features (N, d) float32 of ``images`` (N, H, W) in [0, 1]; the same array for the same inputs."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encoder.eval()
    x = prepare_images(images, encoder.config.input_size)
    out = [encoder(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy().astype(np.float32)


def save_weights(module: nn.Module, path: str | Path, header: dict[str, Any]) -> Path:
    """Write ``path/`` whole: ``weights.safetensors`` (the state dict) and ``config.json`` (``header``)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return replace_dir_when_done(out, write)


def read_weights(path: str | Path, expected_format: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, header) of a folder written by :func:`save_weights`; a user error if it is not one."""
    from safetensors.torch import load_file

    folder = Path(path)
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise RadiffError(f"{folder}: not a saved model folder (needs {WEIGHTS_FILE} and {CONFIG_FILE})")
    header = json.loads((folder / CONFIG_FILE).read_text())
    if header.get("format") != expected_format:
        raise RadiffError(f"{folder}: format {header.get('format')!r}, expected {expected_format!r}")
    return load_file(str(folder / WEIGHTS_FILE)), header


def save_encoder(encoder: ByolEncoder, path: str | Path) -> Path:
    """Save the encoder as ``path/weights.safetensors`` + ``path/config.json`` (config and training record)."""
    info = {k: v for k, v in encoder.info.items() if k != "losses"}
    if "losses" in encoder.info and encoder.info["losses"]:
        info["final_loss"] = encoder.info["losses"][-1]
    return save_weights(encoder, path, {"format": ENCODER_FORMAT, "config": to_dict(encoder.config), "info": info})


def load_encoder(path: str | Path) -> ByolEncoder:
    """The encoder saved by :func:`save_encoder`, in eval mode."""
    state, header = read_weights(path, ENCODER_FORMAT)
    encoder = ByolEncoder(from_dict(ByolConfig, header["config"], where="byol config"), info=header.get("info"))
    encoder.load_state_dict(state)
    return encoder.eval()
