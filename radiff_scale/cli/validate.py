"""The ``validate-dataset`` command: read every sample of a dataset, stop at the first bad file."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="dataset folder")


def run_from_args(args: argparse.Namespace) -> int:
    import json

    from radiff_scale.data.sc_format import validate_dataset

    print(json.dumps(validate_dataset(args.root), indent=2, sort_keys=True))
    return 0
