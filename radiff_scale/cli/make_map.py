"""The ``make-map`` and ``demo`` commands: a MapSpec from a YAML file, flags and ``--set``, then the map job."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from radiff_scale.compose.positions import positions_from_catalogue
from radiff_scale.compose.spec import MapSpec
from radiff_scale.config import load_config, parse_override
from radiff_scale.errors import RadiffError

#: The demo samples with the shipped bundle's distilled student: 4 evaluations a tile instead of
#: the teacher's 60 (docs/models.md, "Few-step student"). Dotted keys, as --set takes them.
DEMO_OVERRIDES: dict[str, Any] = {"sampler.name": "distilled", "sampler.steps": 4}


def add_arguments(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    parser.add_argument("--out", required=True, help="output folder (new, or a previous run of the same spec with --resume)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override any MapSpec field, e.g. --set placement.n_objects=2000 (repeatable)"
        + ("; --set sampler.name=dpm++ --set sampler.steps=20 samples with the teacher" if demo else ""),
    )
    if not demo:
        parser.add_argument("--config", default=None, help="MapSpec YAML (e.g. configs/sdc-like.yaml)")
        parser.add_argument("--size", type=int, default=None, help="map side in pixels (synthetic background)")
        parser.add_argument("--background", default=None, help="real background map (2-D FITS with celestial WCS)")
        parser.add_argument("--seed", type=int, default=None, help="run seed")
        parser.add_argument(
            "--tiles", default=None, metavar="model|bank:PATH",
            help="tile source: sample with the model (default) or reuse a tile bank .npz (radiff-scale make-tile-bank)",
        )
        parser.add_argument(
            "--masks", default=None, metavar="bank|bank:PATH|prior",
            help="mask source: the shipped real mask bank (default), an .npz bank, or the model's mask prior",
        )
        parser.add_argument(
            "--positions", default=None, metavar="CATALOGUE",
            help="put object i at row i of this FITS/CSV/Parquet/text catalogue (RA/Dec or x/y columns; "
                 "class names, k, flux and BMAJ/BMIN/PA read when present) instead of placing n_objects at random",
        )
        parser.add_argument(
            "--positions-format", choices=("table", "sdc1"), default="table",
            help="sdc1: --positions is an SDC1 truth/submission catalogue, read in its own conventions "
                 "(size codes, PA from the RA axis, AGN/SFG classes; docs/api.md)",
        )
    parser.add_argument("--workers", type=int, default=None, help="sampler actors and parallel chunk owners")
    parser.add_argument("--resume", action="store_true", help="finish a previous run of the same spec in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    parser.add_argument("--gpu", action="store_true", help="one GPU per sampler actor (clusters)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def spec_from_args(args: argparse.Namespace, demo: bool = False) -> MapSpec:
    overrides: dict[str, Any] = dict(DEMO_OVERRIDES) if demo else {}
    if not demo and args.size is not None and args.background is not None:
        raise RadiffError("--size and --background exclude each other: a background map sets the map's size")
    overrides.update(dict(parse_override(o) for o in args.overrides))
    if not demo:
        for name in ("size", "background", "seed", "tiles", "masks"):
            if getattr(args, name) is not None:
                overrides[name] = getattr(args, name)
    if args.workers is not None:
        overrides["workers"] = args.workers
    return load_config(MapSpec, None if demo else args.config, overrides)


def describe(manifest: dict[str, Any], out: Path) -> str:
    counts, seconds = manifest["counts"], manifest["seconds"]
    lines = [
        f"map written to {out}/ in {seconds['total']:.0f} s "
        f"({counts['objects_placed']} objects placed, {counts['objects_unplaced']} could not be placed)",
    ]
    for key, name in manifest["outputs"].items():
        lines.append(f"  {key:<18} {out / name}")
    lines.append(f"  {'manifest':<18} {out / 'manifest.json'}")
    return "\n".join(lines)


def run_from_args(args: argparse.Namespace, demo: bool = False) -> int:
    spec = spec_from_args(args, demo=demo)
    positions = None
    if not demo and args.positions is not None:
        if args.positions_format == "sdc1":
            from radiff_scale.compose.sdc1_positions import positions_from_sdc1

            positions = positions_from_sdc1(args.positions)
        else:
            positions = positions_from_catalogue(args.positions)
    elif not demo and args.positions_format != "table":
        raise RadiffError("--positions-format needs --positions")
    from radiff_scale.pipelines.map_job import run_make_map  # Ray and torch: only when a map is made

    manifest = run_make_map(
        spec, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet, use_gpu=args.gpu,
        positions=positions,
    )
    print(describe(manifest, Path(args.out)))
    return 0
