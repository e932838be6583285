"""Is the few-step student as good as its teacher, and how much faster? (issue 18)

Run::

    python benchmarks/distillation.py --holdout data/first-holdout [--bundle radiff_scale/assets/demo] \\
        [--n 128] [--steps 1 2 4] [--threads 2] [--out benchmarks/results/distillation.json] \\
        [--png docs/img/distillation-grid.png]

``--holdout``: a Survey-Collection dataset of real cutouts kept out of training (docs/models.md:
``radiff-scale annotate ../shared/data/first --include-names configs/first-holdout.txt``). On the
same ``--n`` real masks, each conditioned on its own real background, with the same seed per tile:

* the teacher: DPM-Solver++ 20 steps, guidance 3 (mask) / 1 (background): 60 U-Net evaluations;
* the teacher with DPM-Solver++ at 4 steps (12 evaluations), to separate what the solver's
  steps cost from what guidance costs;
* the student (sampler ``distilled``: DPM-Solver++ on the guidance-distilled U-Net) at each of
  ``--steps``: one evaluation per step.

Measured for each: network evaluations per tile, tiles/s on this machine, mask IoU (median; the
bar is the student within 0.05 of the teacher), a classifier two-sample test of student vs
teacher tiles (bar: <= 0.65), the mean absolute difference from the teacher's tile of the same
mask and seed ([0, 1] units), and the realism measures of benchmarks/realism.py against the real
images (two-sample test real vs generated, peak S/N of extended sources). Prints a table, writes
the JSON and a PNG (real row with mask outlines, then teacher and student rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_env import machine_info  # noqa: E402
from benchmarks.realism import Options, encode_stretch, generate, generation_measures, load_holdout, render_grid  # noqa: E402
from radiff_scale.diffusion.settings import SamplerSpec  # noqa: E402
from radiff_scale.eval import realism  # noqa: E402
from radiff_scale.seeding import derive_seed  # noqa: E402

TEACHER = SamplerSpec(name="dpm++", steps=20, guidance_mask=3.0, guidance_background=1.0)
GRID_COLUMNS = 8


def evaluations_per_tile(spec: SamplerSpec) -> int:
    """Network evaluations a tile costs with a background condition: 3 per teacher step when
    the mask scale is not 1 (radiff_scale.diffusion.sampling.guided_eps), 1 per student step."""
    if spec.name == "distilled":
        return spec.steps
    return spec.steps * (1 if spec.guidance_mask == 1.0 and spec.guidance_background == 1.0 else 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from radiff_scale.data.stretch import stretch_for_card
    from radiff_scale.models.io import RadiffModels

    torch.set_num_threads(args.threads)
    models = RadiffModels.load(args.bundle)
    if models.student is None:
        raise SystemExit(f"{args.bundle}: no distilled student (radiff-scale train --stage distil)")
    stretch = stretch_for_card(models.card)
    data = load_holdout(args.holdout, args.n, args.seed)
    y_real = encode_stretch(stretch, data.images)
    y_bg = encode_stretch(stretch, data.backgrounds)
    seeds = [derive_seed(args.seed, i, "distillation-benchmark") for i in range(len(data.names))]

    specs = {"dpm++20": TEACHER, "dpm++4": SamplerSpec(name="dpm++", steps=4, guidance_mask=3.0, guidance_background=1.0)}
    for steps in args.steps:
        specs[f"student-{steps}"] = SamplerSpec(name="distilled", steps=steps, guidance_mask=3.0, guidance_background=1.0)
    tiles: dict[str, np.ndarray] = {}
    results: dict[str, Any] = {}
    for name, spec in specs.items():
        opts = Options(holdout=args.holdout, bundles={}, n=args.n, batch_size=args.batch_size, sampler=spec)
        tic = time.perf_counter()
        tiles[name] = generate(models, data.masks, y_bg, seeds, opts)
        seconds = time.perf_counter() - tic
        measures = generation_measures(data, tiles[name], stretch, y_real, args.seed)
        results[name] = {
            "sampler": {"name": spec.name, "steps": spec.steps, "guidance": [spec.guidance_mask, spec.guidance_background]},
            "evaluations_per_tile": evaluations_per_tile(spec),
            "seconds": round(seconds, 2),
            "tiles_per_s": len(seeds) / seconds,
            **measures,
        }
        print(f"{name}: {len(seeds)} tiles in {seconds:.1f} s", file=sys.stderr)
    teacher_name = next(iter(specs))
    teacher_rms = stretch.decode(tiles[teacher_name])
    for name in specs:
        if name == teacher_name:
            continue
        results[name]["vs_teacher"] = {
            "two_sample": realism.classifier_two_sample_test(teacher_rms, stretch.decode(tiles[name]), seed=args.seed),
            "mean_abs_diff": float(np.abs(tiles[name] - tiles[teacher_name]).mean()),
            "iou_median_minus_teacher": results[name]["iou_median"] - results[teacher_name]["iou_median"],
        }
    doc = {
        "benchmark": "distillation", "bundle": str(args.bundle), "holdout": str(args.holdout),
        "n": len(seeds), "seed": args.seed, "threads": args.threads, "machine": machine_info(),
        "student": {k: v for k, v in vars(models.student.config).items() if k != "unet"},
        "card_stage": (models.card.get("stages") or {}).get("distil"),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    if args.png is not None:
        k = GRID_COLUMNS
        render_grid(
            stretch.decode(y_real[:k]), data.masks[:k], {n: stretch.decode(t[:k]) for n, t in tiles.items()}, args.png
        )
    print_table(results)
    return doc


def print_table(results: dict[str, Any]) -> None:
    rows = [
        ("evaluations / tile", lambda r: f"{r['evaluations_per_tile']}"),
        ("tiles/s", lambda r: f"{r['tiles_per_s']:.2f}"),
        ("mask IoU median", lambda r: f"{r['iou_median']:.3f}"),
        ("IoU - teacher's", lambda r: f"{r['vs_teacher']['iou_median_minus_teacher']:+.3f}" if "vs_teacher" in r else "-"),
        ("2-sample acc. vs teacher", lambda r: f"{r['vs_teacher']['two_sample']['accuracy_mean']:.3f}" if "vs_teacher" in r else "-"),
        ("mean |tile - teacher's|", lambda r: f"{r['vs_teacher']['mean_abs_diff']:.4f}" if "vs_teacher" in r else "-"),
        ("2-sample acc. vs real", lambda r: f"{r['two_sample']['accuracy_mean']:.3f}"),
        ("ext. peak S/N p50 (real)", lambda r: f"{r['peak_snr_extended_generated']['p50']:.0f} ({r['peak_snr_extended_real']['p50']:.0f})"),
        ("ext. peak S/N KS vs real", lambda r: f"{r['peak_snr_ks']['statistic']:.2f}"),
    ]
    names = list(results)
    width = max(len(r[0]) for r in rows)
    cols = [max(len(n), 11) for n in names]
    print(f"{'':<{width}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, cols)))
    for label, fn in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{fn(results[n]):>{w}}" for n, w in zip(names, cols)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--holdout", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, default=REPO / "radiff_scale" / "assets" / "demo")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "distillation.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "img" / "distillation-grid.png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
