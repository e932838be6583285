"""The ``radiff-scale`` command line: one module per command under radiff_scale/cli/.

Each command module has ``add_arguments(parser)`` and ``run_from_args(args) -> int``
and calls one pipeline or library function; it is imported only when its command is
built, so that ``--help`` stays fast (torch and Ray take seconds to import). The same
modules serve ``python -m jobs.<name>`` (:func:`job_main`), which is what
``ray job submit`` runs. A :class:`~radiff_scale.errors.RadiffError` -- the user's
mistake -- becomes one line on stderr and exit code 2, here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from radiff_scale.version import __version__
from radiff_scale.errors import RadiffError

Handler = Callable[[argparse.Namespace], int]


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose refusals are one line, like every other user mistake.

    argparse prints its usage block (several lines) before the error; the options are one
    ``--help`` away, so the refusal says where to look instead, with the same exit code 2.
    Subcommand parsers are of the same class (``add_subparsers`` uses the parent's type).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Command:
    """A subcommand backed by a module with ``add_arguments`` and ``run_from_args``;
    ``demo`` is passed to both when set (the demo is make-map with a fixed spec)."""

    name: str
    module: str
    help: str
    description: str
    demo: bool = False

    def add_to(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        importlib.import_module(self.module).add_arguments(parser, **self._extra())
        parser.set_defaults(handler=self.run)
        return parser

    def run(self, args: argparse.Namespace) -> int:
        return importlib.import_module(self.module).run_from_args(args, **self._extra())

    def _extra(self) -> dict[str, bool]:
        return {"demo": True} if self.demo else {}


COMMANDS = (
    Command(
        "simulate-dataset", "radiff_scale.cli.simulate",
        "write a labelled cutout dataset (Survey-Collection layout) from the simulator",
        (
            "Simulate N labelled 128x128 cutouts (beam-correlated noise, compact, extended and spurious "
            "sources with exact masks) and write them in the Survey-Collection layout, plus summary.json."
        ),
    ),
    Command(
        "validate-dataset", "radiff_scale.cli.validate",
        "read every sample of a Survey-Collection dataset and count what it holds",
        (
            "Read every FITS, JSON and mask of a dataset in the Survey-Collection layout (docs/data-format.md), "
            "stop at the first bad file with a one-line error naming it, and print counts per class."
        ),
    ),
    Command(
        "annotate", "radiff_scale.cli.annotate",
        "segment real FITS radio images into a labelled Survey-Collection dataset",
        (
            "Find the objects of real radio images (islands above --island-sigma x rms holding a pixel above "
            "--seed-sigma x rms, nearby islands grouped into one object), label them compact or extended by a "
            "documented rule, and write cutouts with one mask per object and a background image "
            "(docs/annotate.md). Large maps are tiled; cutouts of about --cutout pixels give one cutout."
        ),
    ),
    Command(
        "train", "radiff_scale.cli.train",
        "fit the autoencoder, latent diffusion U-Net or mask prior with Ray Train",
        "Fit one model stage (ae, then ldm and mask) with Ray Train's TorchTrainer: DDP over --workers "
        "CPU or GPU workers, periodic checkpoints, and automatic resume from the latest checkpoint "
        "when the same command is run again. Weights are written as safetensors into OUT/bundle.",
    ),
    Command(
        "make-map", "radiff_scale.cli.make_map",
        "make a synthetic radio map with its truth catalogue, labels and quick-look",
        "Plan and place objects, sample one tile per object with the diffusion model on a pool of Ray "
        "actors, compose them into a chunked Zarr mosaic and export map.fits, labels.fits, the truth "
        "catalogue (Parquet/FITS/CSV), DS9 regions, a quick-look PNG and manifest.json.",
    ),
    Command(
        "make-tile-bank", "radiff_scale.cli.tile_bank",
        "pre-sample (mask, tile) pairs for very large or CPU-only maps (--tiles bank:PATH)",
        "Sample N tiles from real single-object masks with a model bundle and store them with their masks "
        "in one .npz; make-map --tiles bank:PATH then reuses them with deterministic flips and rotations "
        "instead of sampling a tile per object (see docs/tile-bank.md for the trade-off).",
    ),
    Command(
        "sample", "radiff_scale.cli.sample",
        "real masks -> synthetic images: one generated image per given mask, written as a dataset",
        "Generate one image per class mask of a Survey-Collection dataset or an .npz with the diffusion model "
        "(on the map job's pool of sampler actors), conditioned on each sample's own background, windows of a "
        "FITS map or the null background, and write them as a Survey-Collection dataset whose annotations are "
        "the given masks, plus sample.json (see docs/sample.md).",
    ),
    Command(
        "validate", "radiff_scale.cli.validate_map",
        "run PyBDSF on a finished map and score it against the truth (completeness, fluxes, SDC1 score)",
        "Run the PyBDSF source finder on OUT/map.fits (in overlapping regions on Ray for big maps), match its "
        "sources one-to-one with OUT/catalogue.parquet, and write completeness and reliability vs S/N, flux "
        "ratios and offsets per class, and the SKA SDC1 score, to OUT/validation.json and validation.png "
        "(docs/validation.md). Needs the validate extra: pip install -e \".[validate]\".",
    ),
    Command(
        "demo", "radiff_scale.cli.make_map",
        "make a 4096x4096 demo map with the shipped model (2 CPUs, a few minutes)",
        "Make a 4096x4096 map of synthetic beam-correlated noise populated by objects generated with the "
        "shipped demo model and real masks, with its full truth. Needs no data, no GPU and no network.",
        demo=True,
    ),
)



def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="radiff-scale",
        description="Train controllable diffusion models on radio cutouts and make large synthetic radio maps with exact truth.",
    )
    parser.add_argument("--version", action="version", version=f"radiff-scale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(sub.add_parser(command.name, help=command.help, description=command.description))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return run_handler("radiff-scale", handler, args)


def run_handler(prog: str, handler: Handler, args: argparse.Namespace) -> int:
    """Run a parsed command: the user's mistake is one line and exit code 2, never a traceback."""
    try:
        return handler(args)
    except RadiffError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def job_main(name: str, job: str, argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.<job>`` (what ``ray job submit`` runs): command ``name`` on its own."""
    command = next(c for c in COMMANDS if c.name == name)
    parser = command.add_to(OneLineParser(prog=f"python -m jobs.{job}", description=command.help))
    args = parser.parse_args(argv)
    return run_handler(job, args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
