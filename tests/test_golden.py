"""Refactors keep the bytes: a small map's products hash to what they hashed to before the move.

The hashes in tests/golden/small_map.json were recorded (``python tests/test_golden.py``)
before the map job was moved from jobs/make_map.py into the library (issue 14). They are
only meaningful in the environment they were recorded in -- torch draws the tiny model's
weights and its noise, pyarrow writes its version into Parquet, astropy its own into
FITS -- so a different version of any of those skips the test with the reason, rather
than failing a refactor that changed nothing. Re-record only for a change that means to
change the bytes, and say so in its commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden" / "small_map.json"
PRODUCTS = ("map.fits", "labels.fits", "catalogue.parquet", "catalogue.fits", "catalogue.csv", "regions.reg",
            "quicklook.png")
PACKAGES = ("numpy", "torch", "astropy", "pyarrow", "zarr", "numcodecs", "scipy")


def environment() -> dict[str, str]:
    return {name: version(name) for name in PACKAGES}


def make_small_map(bundle: Path, out: Path) -> dict[str, str]:
    """The map of test_make_map.small_spec (768^2, 14 objects, 2 workers, DDIM 2 steps); its products' sha256."""
    from radiff_scale.api import make_map
    from radiff_scale.compose.planner import PlacementConfig
    from radiff_scale.compose.spec import MapSpec
    from radiff_scale.diffusion.settings import SamplerSpec

    spec = MapSpec(
        size=768, chunk=256, workers=2, model=str(bundle), seed=3, placement=PlacementConfig(n_objects=14, margin_px=16),
        sampler=SamplerSpec(name="ddim", steps=2, batch_size=4),
    )
    make_map(spec, out, progress=False)
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in PRODUCTS}


def test_small_map_products_are_byte_identical_to_the_recorded_ones(tiny_bundle: Path, tmp_path: Path, ray_local) -> None:
    golden = json.loads(GOLDEN.read_text())
    if golden["environment"] != environment():
        pytest.skip(f"hashes recorded with {golden['environment']}, this is {environment()}")
    got = make_small_map(tiny_bundle, tmp_path / "map")
    changed = sorted(name for name in PRODUCTS if got[name] != golden["sha256"][name])
    assert not changed, f"bytes changed: {changed}"


if __name__ == "__main__":  # record: python tests/test_golden.py
    import tempfile

    import ray

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import REPO_ROOT  # noqa: F401  (the same tiny bundle as the fixture)

    from radiff_scale.data.stretch import AsinhStretch
    from radiff_scale.models.config import load_models_config
    from radiff_scale.models.io import RadiffModels

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        models = RadiffModels.from_config(load_models_config(REPO_ROOT / "configs" / "demo.yaml"), seed=0,
                                          with_mask_prior=False)
        models.card = {"stretch": AsinhStretch().to_card(), "note": "random weights"}
        bundle = models.save(Path(tmp) / "bundle" / "tiny")
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        hashes = make_small_map(bundle, Path(tmp) / "map")
        ray.shutdown()
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"environment": environment(), "sha256": hashes}, indent=1) + "\n")
    print(json.dumps(hashes, indent=1))
