"""How fast is the tile stage, and what do fewer solver steps cost in fidelity?

Run: ``python benchmarks/sampling.py [--model DIR] [--n 32] [--actors 1,2]
[--samplers ddpm:1000,ddim:50,dpm++:10,dpm++:20]``. Prints a table and writes JSON
(default ``benchmarks/results/sampling.json``).

For every solver setting and every pool size it times the map job's tile stage
(``actors.sampling_stage.sample_to_store``: the same actors, one torch thread each on
CPU, the same batches and tile store) on N objects with real masks (shipped mask bank,
the map's default class mix) and background patches of a synthetic noise map. Model
loading is excluded (the pool is started and warmed up once). Fidelity: the mean
per-tile |difference| (preprocessed [0, 1] units, whole tile and inside the object's
mask) of each setting against the first one (the reference, DDPM-1000 by default) on
the same objects and noise seeds; and quality as the mask agreement of the tiles
(mean IoU of bright pixels vs the object's mask, radiff_scale.eval.mask_agreement),
with its ratio to the reference's. The tiles are also checked to be bit-identical
across pool sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python benchmarks/sampling.py` from anywhere: actors/ and jobs/ live at the top

from actors.sampling_stage import ArrayBatches, sample_to_store  # noqa: E402
from actors.tile_sampler import make_sampler_pool  # noqa: E402
from radiff_scale.models.bundle import DEMO_MODEL, INDEX  # noqa: E402
from radiff_scale.diffusion.settings import SamplerSpec  # noqa: E402
from radiff_scale.eval.mask_agreement import bright_pixels, iou  # noqa: E402


def parse_samplers(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split(","):
        name, _, steps = item.strip().partition(":")
        if not steps.isdigit():
            raise SystemExit(f"--samplers: {item!r} must look like name:steps (e.g. dpm++:20)")
        out.append((name, int(steps)))
    return out


def make_objects(n: int, seed: int, stretch) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Masks, encoded background patches and noise seeds of n objects, as the map job makes them."""
    from radiff_scale.beam import Beam
    from radiff_scale.compose.background import SyntheticBackground
    from radiff_scale.compose.conditioning import background_patches
    from radiff_scale.compose.tile_bank import class_allocation
    from radiff_scale.compose.wcs import MapGeometry
    from radiff_scale.data.mask_bank import MaskBank
    from radiff_scale.seeding import derive_rng, derive_seed

    bank = MaskBank.default()
    classes = class_allocation(n)
    masks = np.stack([bank.pick(c, derive_seed(seed, i, "mask"))[1] for i, c in enumerate(classes)])
    side = 1024
    geometry = MapGeometry((side, side), 1.5, 0.0, -30.0, Beam(9.8, 5.8, 0.0), 1.4e9)
    rng = derive_rng(seed, 0, "bench-origins")
    origins = [(int(r), int(c)) for r, c in rng.integers(0, side - 128, (n, 2))]
    patches = background_patches(SyntheticBackground(geometry, 1e-4, seed), origins, stretch)
    return masks, patches, [derive_seed(seed, i, "tile") for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=f"model bundle folder (default: the shipped demo model {DEMO_MODEL})")
    parser.add_argument("--n", type=int, default=32, help="objects (tiles) per timed run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--actors", default="1,2", help="pool sizes to time, comma-separated")
    parser.add_argument("--samplers", default="ddpm:1000,ddim:50,dpm++:10,dpm++:20",
                        help="name:steps,...; the first is the fidelity reference")
    parser.add_argument("--reference-actors", default="max",
                        help="pool sizes for the (slow) reference: 'max' (default: the largest pool only) or 'all'")
    parser.add_argument("--guidance-mask", type=float, default=SamplerSpec.guidance_mask, help="default: the map's")
    parser.add_argument("--guidance-background", type=float, default=SamplerSpec.guidance_background)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu", action="store_true", help="one GPU per actor")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sampling.json")
    args = parser.parse_args()

    model = Path(args.model) if args.model else DEMO_MODEL
    if not (model / INDEX).is_file():
        raise SystemExit(f"no model bundle at {model}" + ("" if args.model else " (the demo model is not shipped yet): pass --model DIR"))
    samplers = parse_samplers(args.samplers)
    pool_sizes = sorted({int(a) for a in args.actors.split(",")})
    from radiff_scale.data.stretch import stretch_for_card
    from radiff_scale.models.io import RadiffModels

    masks, patches, seeds = make_objects(args.n, args.seed, stretch_for_card(RadiffModels.load(model).card))
    batches = ArrayBatches(masks, patches, seeds, args.batch_size)

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    n_pool = max(pool_sizes)
    ray.init(num_cpus=n_pool, num_gpus=n_pool if args.gpu else 0, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    workdir = Path(tempfile.mkdtemp(prefix="sampling_bench_"))
    rows, tiles_of, same_across_pools = [], {}, True
    try:
        def settings(name: str, steps: int) -> SamplerSpec:
            return SamplerSpec(name=name, steps=steps, guidance_mask=args.guidance_mask,
                               guidance_background=args.guidance_background)

        pool = make_sampler_pool(n_pool, str(model), settings(*samplers[0]), args.gpu, None if args.gpu else 1)
        warm = ArrayBatches(masks[:1], patches[:1], seeds[:1], 1)
        for i, actor in enumerate(pool):  # load the models and run every kernel once, untimed
            sample_to_store(model, settings("ddim", 2), warm, workdir / f"warm{i}.zarr", pool=[actor])
        import zarr

        for i, (name, steps) in enumerate(samplers):
            for k in (pool_sizes if i or args.reference_actors == "all" else pool_sizes[-1:]):
                store = workdir / f"{name}-{steps}-{k}.zarr"
                started = time.perf_counter()
                sample_to_store(model, settings(name, steps), batches, store, pool=pool[:k])
                seconds = time.perf_counter() - started
                tiles = zarr.open_array(str(store), mode="r")[:]
                key = f"{name}:{steps}"
                if key in tiles_of:
                    same_across_pools &= bool(np.array_equal(tiles_of[key], tiles))
                tiles_of.setdefault(key, tiles)
                rows.append({"sampler": name, "steps": steps, "actors": k, "tiles": args.n,
                             "seconds": round(seconds, 3), "tiles_per_s": round(args.n / seconds, 3)})
                print(f"  {key:<10} {k} actor(s): {args.n / seconds:8.3f} tiles/s", file=sys.stderr)
    finally:
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    ref_key = f"{samplers[0][0]}:{samplers[0][1]}"
    inside = masks > 0
    for row in rows:
        diff = np.abs(tiles_of[f"{row['sampler']}:{row['steps']}"].astype(np.float64) - tiles_of[ref_key])
        row["mean_abs_diff_vs_reference"] = round(float(diff.mean(axis=(1, 2)).mean()), 5)
        per_tile_inside = [d[m].mean() for d, m in zip(diff, inside)]
        row["mean_abs_diff_in_mask_vs_reference"] = round(float(np.mean(per_tile_inside)), 5)
        tiles = tiles_of[f"{row['sampler']}:{row['steps']}"]
        row["mask_iou"] = round(float(np.mean([iou(bright_pixels(t), m) for t, m in zip(tiles, inside)])), 4)
    ref_iou = next(r["mask_iou"] for r in rows if f"{r['sampler']}:{r['steps']}" == ref_key)
    for row in rows:
        row["iou_vs_reference"] = round(row["mask_iou"] / ref_iou, 4) if ref_iou else None

    header = f"{'sampler':<10}{'steps':>6}{'actors':>7}{'tiles/s':>10}{'|d| tile':>10}{'|d| mask':>10}{'IoU':>8}{'IoU/ref':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['sampler']:<10}{r['steps']:>6}{r['actors']:>7}{r['tiles_per_s']:>10.3f}"
              f"{r['mean_abs_diff_vs_reference']:>10.4f}{r['mean_abs_diff_in_mask_vs_reference']:>10.4f}"
              f"{r['mask_iou']:>8.3f}{r['iou_vs_reference']:>9.3f}")
    print(f"reference: {ref_key}; tiles identical across pool sizes: {same_across_pools}")
    import torch

    result = {
        "benchmark": "sampling",
        "model": str(model),
        "reference": ref_key,
        "batch_size": args.batch_size,
        "guidance": [args.guidance_mask, args.guidance_background],
        "device": "gpu" if args.gpu else "cpu (1 torch thread per actor)",
        "tiles_identical_across_pool_sizes": same_across_pools,
        "rows": rows,
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__,
                        "cpu_count": os.cpu_count(), "machine": platform.machine(),
                        "gpu": torch.cuda.get_device_name(0) if args.gpu and torch.cuda.is_available() else None},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
