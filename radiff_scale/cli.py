"""The ``radiff-scale`` command line.

Each subcommand parses its options here and calls one library or job function,
imported lazily so that ``--help`` stays fast (torch and Ray take seconds to import).
A :class:`~radiff_scale.errors.RadiffError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from radiff_scale import __version__
from radiff_scale.errors import RadiffError

Handler = Callable[[argparse.Namespace], int]


def positive_int(text: str) -> int:
    """argparse type of counts (workers, sizes, limits): a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _add_simulate_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate-dataset",
        help="write a labelled cutout dataset (Survey-Collection layout) from the simulator",
        description=(
            "Simulate N labelled 128x128 cutouts (beam-correlated noise, compact, extended and spurious "
            "sources with exact masks) and write them in the Survey-Collection layout, plus summary.json."
        ),
    )
    p.add_argument("--n", type=positive_int, required=True, help="number of cutouts")
    p.add_argument("--out", required=True, help="output folder (must not exist, or be empty)")
    p.add_argument("--seed", type=int, default=0, help="run seed; the same seed gives byte-identical files")
    p.add_argument("--workers", type=positive_int, default=1, help="processes (output is the same for any number)")
    p.add_argument("--config", default=None, help="YAML file with simulator settings (see configs/simulate.yaml)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one simulator setting, e.g. --set mask_nsigma=5 (repeatable)",
    )
    p.set_defaults(handler=_run_simulate_dataset)


def _run_simulate_dataset(args: argparse.Namespace) -> int:
    from radiff_scale.config import load_config, parse_override
    from radiff_scale.data.simulate import SimConfig, simulate_dataset

    overrides = dict(parse_override(o) for o in args.overrides)
    config = load_config(SimConfig, args.config, overrides)
    summary = simulate_dataset(args.n, args.out, seed=args.seed, config=config, progress=True, workers=args.workers)
    print(summary.describe())
    return 0


def _add_validate_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate-dataset",
        help="read every sample of a Survey-Collection dataset and count what it holds",
        description=(
            "Read every FITS, JSON and mask of a dataset in the Survey-Collection layout (docs/data-format.md), "
            "stop at the first bad file with a one-line error naming it, and print counts per class."
        ),
    )
    p.add_argument("root", help="dataset folder")
    p.set_defaults(handler=_run_validate_dataset)


def _run_validate_dataset(args: argparse.Namespace) -> int:
    import json

    from radiff_scale.data.sc_format import validate_dataset

    print(json.dumps(validate_dataset(args.root), indent=2, sort_keys=True))
    return 0


def _add_annotate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="segment real FITS radio images into a labelled Survey-Collection dataset",
        description=(
            "Find the objects of real radio images (islands above --island-sigma x rms holding a pixel above "
            "--seed-sigma x rms, nearby islands grouped into one object), label them compact or extended by a "
            "documented rule, and write cutouts with one mask per object and a background image "
            "(docs/annotate.md). Large maps are tiled; cutouts of about --cutout pixels give one cutout."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="FITS files (.fits, .fits.gz, .fit) or folders of them")
    p.add_argument("--out", required=True, help="dataset folder (new, empty, or written by an earlier annotate run)")
    p.add_argument("--island-sigma", type=float, default=3.0, help="island threshold in robust rms (default 3)")
    p.add_argument("--seed-sigma", type=float, default=5.0, help="an island needs one pixel above this many rms (default 5)")
    p.add_argument("--cutout", type=positive_int, default=128, help="output image size in pixels (default 128)")
    p.add_argument("--overlap", type=int, default=32, help="overlap in pixels of the tiles of large maps (default 32)")
    p.add_argument("--group-gap", type=float, default=1.5, help="islands at most this many beam FWHM apart form one object (default 1.5)")
    p.add_argument("--compact-beams", type=float, default=3.0, help="largest excess area, in beams, of a compact object (default 3)")
    p.add_argument("--deblend", action="store_true", help="split islands with photutils deblend_sources (off: it splits lobes and jets)")
    p.add_argument("--beam", default=None, metavar="BMAJ[,BMIN[,BPA]]", help="beam in arcsec/deg for files without BMAJ/BMIN")
    p.add_argument("--pixel-scale", type=float, default=None, metavar="ARCSEC", help="pixel size for files without a celestial WCS or CDELT")
    p.add_argument("--include-names", default=None, metavar="FILE", help="only inputs whose file names are listed (one per line, # comments)")
    p.add_argument("--exclude-names", default=None, metavar="FILE", help="skip inputs whose file names are listed (e.g. configs/first-holdout.txt)")
    p.add_argument("--spurious-names", default=None, metavar="FILE", help="inputs whose objects are all spurious")
    p.add_argument("--seed", type=int, default=0, help="seed of the background images' noise (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_annotate)


def _run_annotate(args: argparse.Namespace) -> int:
    from radiff_scale.data.annotate import AnnotateConfig, annotate, parse_beam

    config = AnnotateConfig(
        island_sigma=args.island_sigma, seed_sigma=args.seed_sigma, cutout=args.cutout, overlap=args.overlap,
        group_gap=args.group_gap, deblend=args.deblend, compact_beams=args.compact_beams,
        beam=parse_beam(args.beam) if args.beam else None, pixel_scale=args.pixel_scale,
        include_names=args.include_names, exclude_names=args.exclude_names, spurious_names=args.spurious_names,
        seed=args.seed,
    )
    print(annotate(args.inputs, args.out, config, quiet=args.quiet).describe())
    return 0


@dataclass(frozen=True)
class JobCommand:
    """A subcommand backed by a module of jobs/ with ``add_arguments`` and ``run_from_args``;
    ``demo`` is passed to both when set (the demo is make-map with a fixed spec)."""

    name: str
    module: str
    help: str
    description: str
    demo: bool = False

    def add(self, sub: argparse._SubParsersAction) -> None:
        job = importlib.import_module(self.module)
        p = sub.add_parser(self.name, help=self.help, description=self.description)
        job.add_arguments(p, **self._extra())
        p.set_defaults(handler=self.run)

    def run(self, args: argparse.Namespace) -> int:
        return importlib.import_module(self.module).run_from_args(args, **self._extra())

    def _extra(self) -> dict[str, bool]:
        return {"demo": True} if self.demo else {}


JOB_COMMANDS = (
    JobCommand(
        "train", "jobs.train",
        "fit the autoencoder, latent diffusion U-Net or mask prior with Ray Train",
        "Fit one model stage (ae, then ldm and mask) with Ray Train's TorchTrainer: DDP over --workers "
        "CPU or GPU workers, periodic checkpoints, and automatic resume from the latest checkpoint "
        "when the same command is run again. Weights are written as safetensors into OUT/bundle.",
    ),
    JobCommand(
        "make-map", "jobs.make_map",
        "make a synthetic radio map with its truth catalogue, labels and quick-look",
        "Plan and place objects, sample one tile per object with the diffusion model on a pool of Ray "
        "actors, compose them into a chunked Zarr mosaic and export map.fits, labels.fits, the truth "
        "catalogue (Parquet/FITS/CSV), DS9 regions, a quick-look PNG and manifest.json.",
    ),
    JobCommand(
        "make-tile-bank", "jobs.make_tile_bank",
        "pre-sample (mask, tile) pairs for very large or CPU-only maps (--tiles bank:PATH)",
        "Sample N tiles from real single-object masks with a model bundle and store them with their masks "
        "in one .npz; make-map --tiles bank:PATH then reuses them with deterministic flips and rotations "
        "instead of sampling a tile per object (see docs/tile-bank.md for the trade-off).",
    ),
    JobCommand(
        "sample", "jobs.sample",
        "real masks -> synthetic images: one generated image per given mask, written as a dataset",
        "Generate one image per class mask of a Survey-Collection dataset or an .npz with the diffusion model "
        "(on the map job's pool of sampler actors), conditioned on each sample's own background, windows of a "
        "FITS map or the null background, and write them as a Survey-Collection dataset whose annotations are "
        "the given masks, plus sample.json (see docs/sample.md).",
    ),
    JobCommand(
        "demo", "jobs.make_map",
        "make a 4096x4096 demo map with the shipped model (2 CPUs, a few minutes)",
        "Make a 4096x4096 map of synthetic beam-correlated noise populated by objects generated with the "
        "shipped demo model and real masks, with its full truth. Needs no data, no GPU and no network.",
        demo=True,
    ),
)


_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_simulate_dataset,
    _add_validate_dataset,
    _add_annotate,
    *(command.add for command in JOB_COMMANDS),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radiff-scale",
        description="Train controllable diffusion models on radio cutouts and make large synthetic radio maps with exact truth.",
    )
    parser.add_argument("--version", action="version", version=f"radiff-scale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except RadiffError as exc:
        print(f"radiff-scale: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("radiff-scale: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
