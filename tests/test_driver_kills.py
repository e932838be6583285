"""The driver SIGKILLed in the tile stage and in the FITS export, then ``--resume``: the same bytes.

(The chunk stage's kill is tested in tests/test_make_map.py.) The killed driver is a real
``python -m jobs.make_map`` process with its own local Ray, killed with its whole process
group the moment the run folder shows the stage under way; the resume runs here. The
map is 1024^2 in 128^2 chunks so that the export (64 chunk tasks) lasts long enough to be
caught in the middle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.make_map import main as make_map_main
from radiff_scale.compose.planner import PlacementConfig
from radiff_scale.compose.spec import MapSpec
from radiff_scale.diffusion.settings import SamplerSpec
from radiff_scale.pipelines.map_job import run_make_map

REPO = Path(__file__).resolve().parents[1]
SIZE, CHUNK, N_OBJECTS, BATCH = 1024, 128, 14, 4
PRODUCTS = ("map.fits", "labels.fits", "catalogue.parquet", "catalogue.fits", "catalogue.csv", "regions.reg",
            "quicklook.png")

pytestmark = pytest.mark.slow


def _args(bundle: Path, out: Path) -> list[str]:
    return ["--out", str(out), "--size", str(SIZE), "--seed", "3", "--workers", "1", "--quiet",
            "--set", f"chunk={CHUNK}", "--set", f"model={bundle}", "--set", f"placement.n_objects={N_OBJECTS}",
            "--set", "placement.margin_px=16", "--set", "sampler.name=ddim", "--set", "sampler.steps=2",
            "--set", f"sampler.batch_size={BATCH}"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path, ray_local) -> Path:
    """The same map, undisturbed, on two workers (bytes do not depend on the worker count)."""
    out = tmp_path_factory.mktemp("undisturbed") / "map"
    spec = MapSpec(size=SIZE, chunk=CHUNK, workers=2, model=str(tiny_bundle), seed=3,
                   placement=PlacementConfig(n_objects=N_OBJECTS, margin_px=16),
                   sampler=SamplerSpec(name="ddim", steps=2, batch_size=BATCH))
    run_make_map(spec, out, progress=False)
    return out


def _kill_when(args: list[str], ready: Callable[[], bool], timeout_s: float = 300.0) -> None:
    """Start the job in its own process group and SIGKILL the group as soon as ``ready()``."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "jobs.make_map", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while not ready():
            assert proc.poll() is None, "the job ended before the stage under test was reached"
            assert time.monotonic() < deadline, "the stage under test was not reached in time"
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()


def _settled(count: Callable[[], int]) -> int:
    """``count()`` once it has not changed for 3 s (a task already running may still finish)."""
    last, same = -1, 0
    while same < 3:
        time.sleep(1.0)
        now = count()
        same = same + 1 if now == last else 0
        last = now
    return last


def _assert_same_products(out: Path, reference: Path) -> None:
    changed = [name for name in PRODUCTS if (out / name).read_bytes() != (reference / name).read_bytes()]
    assert not changed, f"differ from the undisturbed run: {changed}"


def test_driver_killed_while_sampling_resumes_to_the_same_bytes(reference: Path, tiny_bundle: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "killed"
    done = out / "work" / "tiles.zarr" / "_done"

    def batches() -> int:
        return len([p for p in done.iterdir() if p.name.isdigit()]) if done.is_dir() else 0

    _kill_when(_args(tiny_bundle, out), lambda: batches() >= 1)
    before = _settled(batches)
    total = -(-N_OBJECTS // BATCH)
    assert 1 <= before < total, f"killed with {before} of {total} tile batches: not in the middle of sampling"
    assert not (out / "manifest.json").exists() and not (out / "map.fits").exists()
    assert make_map_main([*_args(tiny_bundle, out), "--resume"]) == 0
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["tile_batches_sampled"] == total - before  # only what the killed run had not stored
    _assert_same_products(out, reference)


def test_driver_killed_in_the_fits_export_resumes_to_the_same_bytes(reference: Path, tiny_bundle: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "killed"
    partial = out / "map.fits.partial"
    _kill_when(_args(tiny_bundle, out), partial.exists)
    assert not (out / "manifest.json").exists() and not (out / "map.fits").exists(), "killed run looks complete"
    assert make_map_main([*_args(tiny_bundle, out), "--resume"]) == 0
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    # Everything before the export was finished and recorded: the resume only exports.
    assert counts["tile_batches_sampled"] == 0 and counts["stamp_batches_cut"] == 0
    assert counts["chunks_written"] == 0
    assert not list(out.glob("*.partial"))
    _assert_same_products(out, reference)
