"""``radiff-scale make-tile-bank``: N pre-sampled (mask, tile) pairs for maps made with ``--tiles bank:PATH``.

The bank is built in-process (no Ray) by :func:`radiff_scale.compose.tile_bank.build_tile_bank`;
see docs/tile-bank.md for when a bank is the right tool and what it costs in realism.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from radiff_scale.diffusion.settings import SAMPLERS, SamplerSpec
from radiff_scale.errors import RadiffError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sampler options are SamplerSpec's fields one by one (a bank has no spec file to --set)."""
    defaults = SamplerSpec()
    parser.add_argument("--model", default="demo", help="'demo' (the shipped model) or a model bundle folder")
    parser.add_argument("--n", type=int, required=True, help="number of (mask, tile) pairs")
    parser.add_argument("--out", required=True, help="output .npz (refused if it exists, unless --overwrite)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask picks and the tile noise")
    parser.add_argument("--sampler", choices=SAMPLERS, default=defaults.name, help="diffusion solver")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="solver steps")
    parser.add_argument("--guidance-mask", type=float, default=defaults.guidance_mask, help="mask guidance scale")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="tiles per forward batch")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (1: reproducible bytes, and fastest for the small demo model on a shared machine)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace, out: Path) -> None:
    """Every mistake in the arguments, before the model is loaded (seconds) or a tile sampled."""
    if out.suffix != ".npz":
        raise RadiffError(f"--out {out}: a tile bank is an .npz file")
    if args.n < 1:
        raise RadiffError(f"--n must be >= 1, got {args.n}")
    if out.exists() and not args.overwrite:
        raise RadiffError(f"--out {out} already exists (use --overwrite to replace it)")
    if args.steps < 1:
        raise RadiffError(f"--steps must be >= 1, got {args.steps}")
    if args.batch_size < 1:
        raise RadiffError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads < 1:
        raise RadiffError(f"--threads must be >= 1, got {args.threads}")
    if args.seed < 0:
        raise RadiffError(f"--seed must be >= 0, got {args.seed}")


def run_from_args(args: argparse.Namespace) -> int:
    # Imported here: the bank builder imports torch, which --help must not wait for.
    from radiff_scale.compose.tile_bank import build_tile_bank
    from radiff_scale.models.bundle import resolve_model_dir
    from radiff_scale.progress import progress_bar

    out = Path(args.out)
    _check(args, out)
    model_dir = resolve_model_dir(args.model)
    sampler = SamplerSpec(name=args.sampler, steps=args.steps, guidance_mask=args.guidance_mask, batch_size=args.batch_size)
    with progress_bar(not args.quiet, args.n, "tile bank", "tile") as bar:
        bank = build_tile_bank(
            model_dir, args.n, out, seed=args.seed, sampler=sampler, progress=bar.update, threads=args.threads
        )
    counts = ", ".join(f"{k} {v}" for k, v in bank.class_counts().items())
    print(f"tile bank written to {out}: {len(bank)} tiles ({counts}); use it with --tiles bank:{out}")
    return 0
