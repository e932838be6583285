"""The ``simulate-dataset`` command: labelled cutouts from the simulator."""

from __future__ import annotations

import argparse

from radiff_scale.cli.args import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=positive_int, required=True, help="number of cutouts")
    parser.add_argument("--out", required=True, help="output folder (must not exist, or be empty)")
    parser.add_argument("--seed", type=int, default=0, help="run seed; the same seed gives byte-identical files")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes (output is the same for any number)")
    parser.add_argument("--config", default=None, help="YAML file with simulator settings (see configs/simulate.yaml)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one simulator setting, e.g. --set mask_nsigma=5 (repeatable)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    from radiff_scale.config import load_config, parse_override
    from radiff_scale.data.simulate import SimConfig, simulate_dataset

    overrides = dict(parse_override(o) for o in args.overrides)
    config = load_config(SimConfig, args.config, overrides)
    summary = simulate_dataset(args.n, args.out, seed=args.seed, config=config, progress=True, workers=args.workers)
    print(summary.describe())
    return 0
