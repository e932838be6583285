"""The ``annotate`` command: real FITS images -> a labelled Survey-Collection dataset."""

from __future__ import annotations

import argparse

from radiff_scale.cli.args import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="FITS files (.fits, .fits.gz, .fit) or folders of them")
    parser.add_argument("--out", required=True, help="dataset folder (new, empty, or written by an earlier annotate run)")
    parser.add_argument("--island-sigma", type=float, default=3.0, help="island threshold in robust rms (default 3)")
    parser.add_argument("--seed-sigma", type=float, default=5.0, help="an island needs one pixel above this many rms (default 5)")
    parser.add_argument("--cutout", type=positive_int, default=128, help="output image size in pixels (default 128)")
    parser.add_argument("--overlap", type=int, default=32, help="overlap in pixels of the tiles of large maps (default 32)")
    parser.add_argument("--group-gap", type=float, default=1.5, help="islands at most this many beam FWHM apart form one object (default 1.5)")
    parser.add_argument("--compact-beams", type=float, default=3.0, help="largest excess area, in beams, of a compact object (default 3)")
    parser.add_argument("--deblend", action="store_true", help="split islands with photutils deblend_sources (off: it splits lobes and jets)")
    parser.add_argument("--beam", default=None, metavar="BMAJ[,BMIN[,BPA]]", help="beam in arcsec/deg for files without BMAJ/BMIN")
    parser.add_argument("--pixel-scale", type=float, default=None, metavar="ARCSEC", help="pixel size for files without a celestial WCS or CDELT")
    parser.add_argument("--include-names", default=None, metavar="FILE", help="only inputs whose file names are listed (one per line, # comments)")
    parser.add_argument("--exclude-names", default=None, metavar="FILE", help="skip inputs whose file names are listed (e.g. configs/first-holdout.txt)")
    parser.add_argument("--spurious-names", default=None, metavar="FILE", help="inputs whose objects are all spurious")
    parser.add_argument("--seed", type=int, default=0, help="seed of the background images' noise (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_from_args(args: argparse.Namespace) -> int:
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
