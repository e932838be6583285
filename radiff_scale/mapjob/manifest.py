"""manifest.json: what a finished run was made from, how long each stage took, what it counted.

Written last: its presence is what says a run is complete (radiff_scale.mapjob.rundir).
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from radiff_scale.version import __version__
from radiff_scale.compose.planner import UnplacedObject
from radiff_scale.compose.spec import MapSpec
from radiff_scale.compose.wcs import MapGeometry


@dataclass
class StageLog:
    """Timings and counts that end up in manifest.json."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    #: Workers' seconds by stage and step, summed over the tasks this run did (worker time,
    #: not wall time: with W workers a stage's steps add up to about W times its wall time).
    worker_steps: dict[str, dict[str, float]] = field(default_factory=dict)
    #: CPU seconds of the driver process (all its threads, Ray's included) per stage: what
    #: the driver takes from the workers on a small machine.
    driver_cpu_seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def start() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def timed(self, name: str, started: tuple[float, float]) -> None:
        wall, cpu = started
        self.seconds[name] = round(time.perf_counter() - wall, 3)
        self.driver_cpu_seconds[name] = round(time.process_time() - cpu, 3)

    def add_steps(self, stage: str, step_seconds: dict[str, float]) -> None:
        """Add one task's seconds by step to the stage's totals."""
        totals = self.worker_steps.setdefault(stage, {})
        for step, seconds in step_seconds.items():
            totals[step] = totals.get(step, 0.0) + seconds


def versions() -> dict[str, str]:
    """Versions from package metadata: importing torch on the driver just to read its
    version would cost ~300 MB of RSS."""
    found = {"radiff_scale": __version__, "python": platform.python_version()}
    for name in ("numpy", "torch", "ray", "zarr", "astropy", "diffusers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def refusal_counts(unplaced: list[UnplacedObject]) -> dict[str, int]:
    """How many objects were refused for each kind of reason (the full list is in work/unplaced.json)."""
    return dict(sorted(Counter(u.kind.value for u in unplaced).items()))


def build_manifest(
    spec: MapSpec, geometry: MapGeometry, model: dict[str, Any], tiles: dict[str, Any], resumed: bool,
    log: StageLog, outputs: dict[str, str], unplaced_path: str,
) -> dict[str, Any]:
    """The manifest of a finished run (``positions`` are added by the driver for catalogue maps)."""
    return {
        "spec": spec.to_dict(),
        "geometry": {"shape": list(geometry.shape), "pixel_scale_arcsec": geometry.pixel_scale_arcsec,
                     "centre_ra_deg": geometry.centre_ra_deg, "centre_dec_deg": geometry.centre_dec_deg,
                     "freq_hz": geometry.freq_hz, "beam_arcsec_deg": [geometry.beam.bmaj_arcsec,
                     geometry.beam.bmin_arcsec, geometry.beam.bpa_deg]},
        "model": model,
        "tiles": tiles,
        "resumed": bool(resumed),
        "versions": versions(),
        "seconds": log.seconds,
        "driver_cpu_seconds": log.driver_cpu_seconds,
        "worker_seconds": {
            stage: {k: round(v, 3) for k, v in steps.items()} for stage, steps in log.worker_steps.items()
        },
        "counts": log.counts,
        "outputs": outputs,
        "unplaced": unplaced_path,
    }
