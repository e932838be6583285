"""Starting or joining Ray: the one place a job's driver gets a cluster."""

from __future__ import annotations

import os

import ray


def connect_ray(local_cpus: int, **local_options: object) -> None:
    """Join the cluster a job was submitted to, or start a local Ray of ``local_cpus`` CPUs.

    ``ray job submit`` sets RAY_ADDRESS; then the cluster's resources are used as they are.
    ``local_options`` only apply to a local start (jobs differ in dashboard and log needs).
    An already initialised Ray (a test's, a notebook's) is reused.
    """
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level="WARNING")
        return
    ray.init(num_cpus=local_cpus, logging_level="WARNING", **local_options)
