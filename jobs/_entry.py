"""The ``python -m jobs.X`` entry point every job shares: parse, run, one-line user errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from radiff_scale.errors import RadiffError


def job_main(
    name: str,
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run_from_args: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Run job ``name`` (``jobs.<name>``) as ``ray job submit -- python -m jobs.<name>`` does."""
    description = (doc or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog=f"python -m jobs.{name}", description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except RadiffError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
