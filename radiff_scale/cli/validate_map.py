"""The ``validate`` command: PyBDSF on a finished map run, scored against its truth (docs/validation.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="folder of a finished make-map run (map.fits, catalogue.parquet, manifest.json)")
    parser.add_argument("--out-json", default=None, help="report path (default OUT/validation.json; the plot and "
                        "matched detections are written beside it)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel PyBDSF regions (Ray tasks), or PyBDSF's cores on a one-region map (default: all CPUs)")
    parser.add_argument("--region-size", type=int, default=4096, help="core size of a PyBDSF region in pixels (default 4096)")
    parser.add_argument("--margin", type=int, default=None,
                        help="region overlap in pixels (default max(128, 8 beams))")
    parser.add_argument("--thresh-isl", type=float, default=3.0, help="PyBDSF island threshold in rms (default 3)")
    parser.add_argument("--thresh-pix", type=float, default=5.0, help="PyBDSF peak threshold in rms (default 5)")
    parser.add_argument("--bdsf", dest="bdsf_options", action="append", default=[], metavar="KEY=VALUE",
                        help="any other bdsf.process_image option, value read as YAML, e.g. --bdsf rms_box=[60,20] "
                             "or --bdsf flag_maxsnr=3 (repeatable; recorded in the report)")
    parser.add_argument("--match-radius", type=float, default=1.0, help="match radius in beam FWHM (default 1)")
    parser.add_argument("--snr-min", type=float, default=10.0,
                        help="truth S/N above which the compact-object headline is computed (default 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def run_from_args(args: argparse.Namespace) -> int:
    from radiff_scale.errors import RadiffError

    for name in ("region_size", "thresh_isl", "thresh_pix", "match_radius"):
        if not getattr(args, name) > 0:
            raise RadiffError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.margin is not None and args.margin < 0:
        raise RadiffError(f"--margin must be >= 0, got {args.margin}")
    from radiff_scale.config import parse_override

    options = dict(parse_override(o) for o in args.bdsf_options)
    from radiff_scale.pipelines.validate_job import run_validate
    from radiff_scale.validation.finder import FinderParams
    from radiff_scale.validation.metrics import Targets
    from radiff_scale.validation.report import summary_lines

    report = run_validate(
        args.out, out_json=args.out_json, workers=args.workers, progress=not args.quiet,
        params=FinderParams(thresh_isl=args.thresh_isl, thresh_pix=args.thresh_pix, options=options),
        region_size=args.region_size, margin_px=args.margin, match_radius_beams=args.match_radius,
        targets=Targets(snr_min=args.snr_min), command=sys.argv,
    )
    if not args.quiet:
        print("\n".join(summary_lines(report)))
        target = Path(args.out_json) if args.out_json is not None else Path(args.out) / "validation.json"
        print(f"report written to {target} (plot: {target.with_suffix('.png').name})")
    return 0
