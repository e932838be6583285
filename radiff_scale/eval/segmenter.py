"""A small U-Net segmenter of radio cutouts and the paper's segmentation score.

Why it is here: the paper (section 5.1.2, Eqs. 10-14) asks whether a generated image holds
the objects its conditioning mask asks for by segmenting the image with a trained network
and comparing the prediction with the mask (60.96% for RADiff, 68.67% for real images,
the ceiling); section 5.2 trains the same kind of network on real plus synthetic pairs.
The paper's network is Tiramisu (FC-DenseNet); this module trains a plain U-Net
(Ronneberger et al. 2015) instead, small enough for a CPU (docs/evaluation.md).

Classes are :class:`radiff_scale.classes.SourceClass`: 0 background, 1 spurious,
2 compact, 3 extended. Training minimises pixel cross-entropy (optionally class-weighted)
plus ``dice_weight`` times a soft Dice loss over the object classes, which keeps a
background-dominated cutout from teaching "all background"; views are random flips and
90-degree turns applied to image and mask alike.

The score (:func:`segmentation_score`) is the paper's: per image, the mean over classes of
IoU_k = |pred == k AND true == k| / |pred == k OR true == k|, then the mean over images.
The paper writes the class mean as 1/K over all k; read literally a class absent from
both masks would be 0/0, so here a class absent from both masks of an image is skipped
for that image (it is neither right nor wrong there), and an image with no scored class
at all is skipped. ``classes`` defaults to the object classes (1, 2, 3); pass
(0, 1, 2, 3) to include the background, which raises every score (it is mostly right).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radiff_scale.classes import NUM_CLASSES, OBJECT_CLASSES, SourceClass
from radiff_scale.config import from_dict, to_dict
from radiff_scale.errors import RadiffError
from radiff_scale.eval.features import read_weights, save_weights

SEGMENTER_FORMAT = "radiff-unet-segmenter/1"


@dataclass(frozen=True)
class SegmenterConfig:
    """U-Net shape, optimisation and loss (defaults: the CPU config).

    ``base_channels`` at full resolution, doubled at each of ``depth`` down-steps (images
    are reflect-padded to a multiple of 2**depth and the output cropped back). AdamW with
    ``lr`` (cosine to 0 over ``steps``), ``weight_decay``, ``batch_size`` pairs per step.
    Loss: cross-entropy with ``class_weights`` (None: equal) + ``dice_weight`` * soft Dice
    over the object classes. ``augment``: random flips and 90-degree turns.
    """

    base_channels: int = 16
    depth: int = 3
    steps: int = 300
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dice_weight: float = 1.0
    class_weights: tuple[float, ...] | None = None
    augment: bool = True

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.depth < 1 or self.steps < 0 or self.batch_size < 1:
            raise RadiffError("segmenter config: base_channels, depth and batch_size must be >= 1, steps >= 0")
        if self.class_weights is not None and len(self.class_weights) != NUM_CLASSES:
            raise RadiffError(f"segmenter config: class_weights needs {NUM_CLASSES} values (one per class id)")
        if self.dice_weight < 0:
            raise RadiffError("segmenter config: dice_weight must be >= 0")

    @classmethod
    def cpu(cls, **overrides: Any) -> SegmenterConfig:
        """16 channels, 3 levels (~0.5 M parameters): minutes on two CPU cores."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> SegmenterConfig:
        """The classic U-Net size (64 channels, 4 levels, ~31 M parameters): an accelerator's work."""
        base: dict[str, Any] = dict(base_channels=64, depth=4, steps=20000, batch_size=32, lr=1e-3)
        base.update(overrides)
        return cls(**base)


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """(B, 1, H, W) [0, 1] images -> (B, NUM_CLASSES, H, W) logits."""

    def __init__(self, config: SegmenterConfig) -> None:
        super().__init__()
        chans = [config.base_channels * 2**i for i in range(config.depth + 1)]
        self.depth = config.depth
        self.down = nn.ModuleList([_double_conv(1 if i == 0 else chans[i - 1], chans[i]) for i in range(config.depth)])
        self.bottom = _double_conv(chans[-2], chans[-1])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(config.depth))])
        self.merge = nn.ModuleList([_double_conv(2 * chans[i], chans[i]) for i in reversed(range(config.depth))])
        self.head = nn.Conv2d(chans[0], NUM_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., :h, :w]


class Segmenter(nn.Module):
    """The trained U-Net, its config and a record of its training (``info``)."""

    def __init__(self, config: SegmenterConfig, net: UNet | None = None, info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = config
        self.net = net if net is not None else UNet(config)
        self.info: dict[str, Any] = dict(info or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _pairs(images: Any, masks: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) float32 images and (N, H, W) int64 class ids, checked."""
    x = np.asarray(images, dtype=np.float32)
    y = np.asarray(masks)
    if x.ndim != 3 or y.shape != x.shape:
        raise ValueError(f"expected images and masks of one shape (N, H, W), got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError("images contain NaN or inf (stretch them to [0, 1] first)")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise ValueError(f"mask values must be class ids 0..{NUM_CLASSES - 1}")
    return torch.from_numpy(np.ascontiguousarray(x))[:, None], torch.from_numpy(y.astype(np.int64))


def _augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random flip and 90-degree turn for each image and its mask (exact, no resampling)."""
    turns = torch.randint(0, 4, (x.shape[0],), generator=generator).tolist()
    flips = (torch.rand(x.shape[0], generator=generator) < 0.5).tolist()
    xs, ys = [], []
    for xi, yi, k, f in zip(x, y, turns, flips):
        if f:
            xi, yi = xi.flip(-1), yi.flip(-1)
        xs.append(torch.rot90(xi, k, (-2, -1)))
        ys.append(torch.rot90(yi, k, (-2, -1)))
    return torch.stack(xs), torch.stack(ys)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, config: SegmenterConfig) -> torch.Tensor:
    """Cross-entropy + ``dice_weight`` * (1 - soft Dice), the Dice averaged over the object classes."""
    weight = torch.tensor(config.class_weights, dtype=logits.dtype) if config.class_weights is not None else None
    loss = F.cross_entropy(logits, target, weight=weight)
    if config.dice_weight > 0:
        prob = logits.softmax(dim=1)
        onehot = F.one_hot(target, NUM_CLASSES).permute(0, 3, 1, 2).to(prob.dtype)
        k = [int(c) for c in OBJECT_CLASSES]
        inter = (prob[:, k] * onehot[:, k]).sum(dim=(0, 2, 3))
        total = prob[:, k].sum(dim=(0, 2, 3)) + onehot[:, k].sum(dim=(0, 2, 3))
        dice = (2.0 * inter + 1.0) / (total + 1.0)
        loss = loss + config.dice_weight * (1.0 - dice.mean())
    return loss


def train_segmenter(
    images: Any,
    masks: Any,
    config: SegmenterConfig = SegmenterConfig(),
    seed: int = 0,
    log: Callable[[int, float], None] | None = None,
    log_every: int = 50,
) -> Segmenter:
    """Train the U-Net on (image, mask) pairs: images (N, H, W) in [0, 1], masks (N, H, W) class ids.

    Deterministic on the CPU for a seed; the global torch RNG is left as it was.
    ``model.info`` records the seed, steps, per-step losses and the wall time.
    """
    x, y = _pairs(images, masks)
    n = x.shape[0]
    if n == 0:
        raise ValueError("no training pairs")
    batch = min(config.batch_size, n)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = UNet(config)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(config.steps, 1)))
        idx = torch.randperm(n, generator=generator)[:batch]
        xb, yb = x[idx], y[idx]
        if config.augment:
            xb, yb = _augment(xb, yb, generator)
        loss = segmentation_loss(net(xb), yb, config)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if log is not None and (step % max(log_every, 1) == 0 or step == config.steps - 1):
            log(step, losses[-1])
    info = {"seed": int(seed), "steps": int(config.steps), "n_pairs": int(n), "losses": losses,
            "train_seconds": round(time.perf_counter() - start, 3)}
    return Segmenter(config, net, info).eval()


@torch.no_grad()
def predict(model: Segmenter, images: Any, batch_size: int = 16) -> np.ndarray:
    """Predicted class ids (N, H, W) uint8 for images (N, H, W) in [0, 1] (or one image (H, W))."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    arr = np.asarray(images, dtype=np.float32)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    x, _ = _pairs(arr, np.zeros(arr.shape, dtype=np.int64))
    model.eval()
    out = [model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, x.shape[0], batch_size)]
    pred = torch.cat(out).numpy().astype(np.uint8)
    return pred[0] if single else pred


def iou_per_image(pred_masks: Any, true_masks: Any, classes: tuple[int, ...] = tuple(int(c) for c in OBJECT_CLASSES)) -> np.ndarray:
    """(N, len(classes)) IoU of each class in each image; NaN where the class is in neither mask."""
    p, t = np.asarray(pred_masks), np.asarray(true_masks)
    if p.ndim == 2 and t.ndim == 2:
        p, t = p[None], t[None]
    if p.ndim != 3 or p.shape != t.shape:
        raise ValueError(f"expected predicted and true masks of one shape (N, H, W), got {p.shape} and {t.shape}")
    out = np.full((p.shape[0], len(classes)), np.nan)
    for j, k in enumerate(classes):
        pk, tk = p == k, t == k
        inter = np.count_nonzero(pk & tk, axis=(1, 2))
        union = np.count_nonzero(pk | tk, axis=(1, 2))
        present = union > 0
        out[present, j] = inter[present] / union[present]
    return out


def segmentation_score(
    pred_masks: Any, true_masks: Any, classes: tuple[int, ...] = tuple(int(c) for c in OBJECT_CLASSES)
) -> dict[str, Any]:
    """The paper's segmentation score (a fraction; the paper prints it in %).

    Returns ``mean`` (mean over scored images of each image's mean IoU over its scored
    classes), ``per_class`` (class label -> mean IoU over the images where that class is
    in either mask; NaN if in none), ``per_image`` (N,) with NaN for skipped images,
    ``n_images`` scored and ``n_skipped``.
    """
    table = iou_per_image(pred_masks, true_masks, classes)
    scored = ~np.isnan(table).all(axis=1)
    per_image = np.full(table.shape[0], np.nan)
    if scored.any():
        per_image[scored] = np.nanmean(table[scored], axis=1)
    per_class = {}
    for j, k in enumerate(classes):
        col = table[:, j]
        per_class[SourceClass(k).label] = float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")
    return {
        "mean": float(per_image[scored].mean()) if scored.any() else float("nan"),
        "per_class": per_class,
        "per_image": per_image,
        "n_images": int(scored.sum()),
        "n_skipped": int((~scored).sum()),
    }


def save_segmenter(model: Segmenter, path: str | Path) -> Path:
    """Save as ``path/weights.safetensors`` + ``path/config.json`` (config and training record)."""
    info = {k: v for k, v in model.info.items() if k != "losses"}
    if model.info.get("losses"):
        info["final_loss"] = model.info["losses"][-1]
    return save_weights(model, path, {"format": SEGMENTER_FORMAT, "config": to_dict(model.config), "info": info})


def load_segmenter(path: str | Path) -> Segmenter:
    """The segmenter saved by :func:`save_segmenter`, in eval mode."""
    state, header = read_weights(path, SEGMENTER_FORMAT)
    model = Segmenter(from_dict(SegmenterConfig, header["config"], where="segmenter config"), info=header.get("info"))
    model.load_state_dict(state)
    return model.eval()
