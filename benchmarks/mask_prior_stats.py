"""Does the mask prior invent masks like the real ones? Class frequencies and object sizes.

Run: ``python benchmarks/mask_prior_stats.py [--model DIR] [--n 256] [--steps 20]
[--sampler dpm++]``. Prints a table and writes JSON (default
``benchmarks/results/mask_prior_stats.json``).

Samples ``n`` masks from the bundle's mask prior (seeds 0..n-1) and compares them with
the masks it was trained on (the shipped real mask bank, every 4th mask, so ~1,840)
through :func:`radiff_scale.models.mask_prior.mask_statistics`: share of pixels per
class, share of masks holding each class, objects per mask and object-size quantiles
(8-connected components per class, in pixels of the 128x128 mask).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from radiff_scale.models.bundle import DEMO_MODEL  # noqa: E402
from radiff_scale.classes import OBJECT_CLASSES, SourceClass  # noqa: E402


def _row(name: str, stats: dict) -> list[str]:
    cells = [name]
    cells += [f"{100 * stats['pixel_fraction'][c.label]:.2f}" for c in SourceClass]
    cells += [f"{stats['presence'][c.label]:.2f}" for c in OBJECT_CLASSES]
    cells += [f"{stats['objects_per_mask'][c.label]:.2f}" for c in OBJECT_CLASSES]
    sizes = stats["object_sizes"]
    cells += ["-" if sizes[c.label]["q50"] is None else f"{sizes[c.label]['q50']:.0f}" for c in OBJECT_CLASSES]
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEMO_MODEL, help="model bundle with a mask prior")
    parser.add_argument("--n", type=int, default=256, help="masks to sample")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="dpm++")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "mask_prior_stats.json")
    args = parser.parse_args()

    import torch

    from radiff_scale.data.mask_bank import MaskBank
    from radiff_scale.diffusion.sampling import sample_masks
    from radiff_scale.models.io import RadiffModels
    from radiff_scale.models.mask_prior import mask_statistics

    models = RadiffModels.load(args.model)
    if models.mask_prior is None:
        raise SystemExit(f"{args.model} has no mask prior")
    prior = models.mask_prior.eval()
    started = time.perf_counter()
    sampled = np.concatenate([
        sample_masks(prior, list(range(i, min(i + args.batch_size, args.n))), args.steps, args.sampler)
        for i in range(0, args.n, args.batch_size)
    ])
    seconds = time.perf_counter() - started
    bank = MaskBank.default()
    real = np.stack([bank.mask(i) for i in range(0, len(bank), 4)])
    stats = {"real (bank)": mask_statistics(real).to_dict(), "mask prior": mask_statistics(sampled).to_dict()}

    labels = [c.label[:4] for c in SourceClass]
    objs = [c.label[:4] for c in OBJECT_CLASSES]
    header = (["masks"] + [f"%{x}" for x in labels] + [f"has {x}" for x in objs] + [f"n {x}" for x in objs]
              + [f"med {x}" for x in objs])
    rows = [header] + [_row(name, s) for name, s in stats.items()]
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(header))]
    for r in rows:
        print("".join(cell.rjust(w) for cell, w in zip(r, widths)))
    print(f"{args.n} masks sampled in {seconds:.1f} s ({args.sampler}, {args.steps} steps; "
          f"{torch.get_num_threads()} torch threads); columns: % pixels per class, share of masks holding the class, "
          "objects per mask, median object size (px)")
    result = {
        "benchmark": "mask_prior_stats", "model": str(args.model), "n": args.n, "sampler": args.sampler,
        "steps": args.steps, "seconds": round(seconds, 2), "statistics": stats,
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
