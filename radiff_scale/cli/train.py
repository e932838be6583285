"""``radiff-scale train``: fit one model stage with Ray Train.

Only the arguments live here; the driver is :func:`radiff_scale.pipelines.train_job.run_stage`,
imported when the command runs so that ``--help`` does not wait for torch and Ray.
"""

from __future__ import annotations

import argparse

from radiff_scale.config import parse_override
from radiff_scale.training.config import STAGE_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the training job (jobs/train.py's docstring shows a run)."""
    parser.add_argument("--config", default=None, help="job YAML with model sections and a train: section")
    parser.add_argument("--stage", required=True, choices=STAGE_NAMES, help="which model to fit (ae first)")
    # Not positive_int: a bad count is reported like every other refused input (exit code 2, one line).
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (DDP ranks)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker, bf16 autocast")
    parser.add_argument("--out", default="runs/model", help="run folder: bundle/, checkpoints/, ray/")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.ae.steps=2 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run_from_args(args: argparse.Namespace) -> int:
    from radiff_scale.pipelines.train_job import run_stage

    overrides = dict(parse_override(o) for o in args.overrides)
    run_stage(args.stage, args.config, overrides, args.out, args.workers, args.gpu, progress=not args.quiet)
    return 0
