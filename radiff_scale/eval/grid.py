"""A picture of what the model does: masks (coloured by class) above the tiles generated from them.

    python -m radiff_scale.eval.grid --model radiff_scale/assets/demo --out docs/img/models-grid.png

Masks are real single-object masks picked from the shipped bank (a few of each class),
tiles are generated with the given sampler; the IoU of each tile's bright pixels with its
mask (see :mod:`radiff_scale.eval.mask_agreement`) is printed per column.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from radiff_scale.classes import CLASS_COLOURS, OBJECT_CLASSES, SourceClass


def colour_masks(masks: np.ndarray) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) with each class in its colour."""
    out = np.zeros((*masks.shape, 3), dtype=np.uint8)
    for cls in SourceClass:
        out[masks == int(cls)] = CLASS_COLOURS[cls]
    return out


def grey(tiles: np.ndarray) -> np.ndarray:
    """Per-tile asinh stretch to uint8 RGB, so faint and bright tiles are both visible."""
    out = np.empty((*tiles.shape, 3), dtype=np.uint8)
    for i, t in enumerate(tiles):
        lo, hi = np.percentile(t, [1, 99.9])
        x = np.clip((t - lo) / max(hi - lo, 1e-12), 0, 1)
        x = np.arcsinh(10 * x) / np.arcsinh(10)
        out[i] = (x * 255).astype(np.uint8)[..., None]
    return out


def montage(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack rows of (N, H, W, 3) images into one picture with white gaps."""
    n, h, w, _ = rows[0].shape
    canvas = np.full((len(rows) * (h + gap) + gap, n * (w + gap) + gap, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = gap + r * (h + gap), gap + c * (w + gap)
            canvas[y : y + h, x : x + w] = img
    return canvas


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    from radiff_scale.data.mask_bank import MaskBank
    from radiff_scale.eval.mask_agreement import mask_iou_scores
    from radiff_scale.models.io import RadiffModels

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="dpm++")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    models = RadiffModels.load(args.model)
    bank = MaskBank.default()
    masks = np.stack([
        bank.pick(int(cls), args.seed * 1000 + i)[1] for cls in OBJECT_CLASSES[::-1] for i in range(args.per_class)
    ])
    seeds = [args.seed * 1000 + i for i in range(len(masks))]
    scores, tiles = mask_iou_scores(models, masks, seeds, steps=args.steps, sampler=args.sampler)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(montage([colour_masks(masks), grey(tiles)])).save(args.out)
    print("IoU per tile:", " ".join(f"{s:.2f}" for s in scores), f"mean {scores.mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
