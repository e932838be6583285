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


def connect_ray(local_cpus: int, **local_options: object) -> None:
    """Join the cluster a job was submitted to, or start a local Ray of ``local_cpus`` CPUs.

    ``ray job submit`` sets RAY_ADDRESS; then the cluster's resources are used as they are.
    ``local_options`` only apply to a local start (jobs differ in dashboard and log needs).
    An already initialised Ray (a test's, a notebook's) is reused.
    """
    import os

    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level="WARNING")
        return
    ray.init(num_cpus=local_cpus, logging_level="WARNING", **local_options)
