"""``radiff-scale sample``: real masks -> generated images, written as a Survey-Collection dataset.

Only the arguments live here; the driver is :func:`radiff_scale.pipelines.sample_job.run_sample`,
imported when the command runs so that ``--help`` does not wait for torch and Ray.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from radiff_scale.cli.args import positive_int
from radiff_scale.compose.sample_backgrounds import DEFAULT_RMS_JY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of docs/sample.md, defaults included."""
    parser.add_argument("--masks", required=True, metavar="DATASET_OR_NPZ",
                        help="Survey-Collection dataset folder, or an .npz with 'masks' (N, 128, 128) uint8 class ids")
    parser.add_argument("--out", required=True, help="output dataset folder (new, or empty)")
    parser.add_argument("--model", default="demo", help="'demo' (the shipped model, default) or a model bundle folder")
    parser.add_argument("--seed", type=int, default=0, help="run seed: tile i's noise comes from (seed, i) alone")
    parser.add_argument("--workers", type=positive_int, default=2, help="sampler actors (output is the same for any number)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N", help="use only the first N masks")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="sampler.KEY=VALUE",
        help="sampler setting, e.g. --set sampler.steps=10 (name, steps, guidance_mask, guidance_background, eta, "
             "batch_size, gpu_precision; repeatable)",
    )
    parser.add_argument("--rms", type=float, default=DEFAULT_RMS_JY, metavar="JY",
                        help=f"noise rms (Jy/beam) of the images without a background (default {DEFAULT_RMS_JY:g}, FIRST's)")
    parser.add_argument(
        "--background", default="auto", metavar="dataset|none|MAP.fits",
        help="'dataset': each sample's own background; a FITS map: a 128x128 window per mask (seeded); 'none': the "
             "model's null background (default: dataset when every masks sample has a background, else none)",
    )
    parser.add_argument("--gpu", action="store_true", help="one GPU per sampler actor (clusters)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def describe(summary: dict[str, Any], out: Path) -> str:
    """The one line a finished run prints: what was written, where, and where the details are."""
    from radiff_scale.pipelines.sample_job import SUMMARY

    return (f"{summary['n_samples']} images ({summary['n_objects']} objects) written to {out}/ in "
            f"{summary['seconds']['total']:.0f} s (background: {summary['background']}); summary in {out / SUMMARY}")


def run_from_args(args: argparse.Namespace) -> int:
    from radiff_scale.pipelines.sample_job import run_sample

    summary = run_sample(
        args.masks, args.out, model=args.model, seed=args.seed, workers=args.workers, sampler_overrides=args.overrides,
        rms_jy=args.rms, background=args.background, limit=args.limit, progress=not args.quiet, use_gpu=args.gpu,
    )
    print(describe(summary, Path(args.out)))
    return 0
