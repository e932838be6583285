"""Mask actors: the mask prior sampled on the tile pool's actors (its own module: its own Ray,
so no other test's actors hold the CPUs these need)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from radiff_scale.seeding import derive_seed

REPO = Path(__file__).resolve().parents[1]


def _read(store: Path) -> np.ndarray:
    return zarr.open_array(str(store), mode="r")[:]


def test_mask_prior_on_actors_gives_the_same_masks_whatever_the_split(ray_local, tmp_path: Path) -> None:
    from actors.sampling_stage import sample_masks_to_store
    from radiff_scale.diffusion.sampling import sample_masks
    from radiff_scale.models import RadiffModels, load_models_config

    models = RadiffModels.from_config(load_models_config(REPO / "configs" / "demo.yaml"), seed=3)
    bundle = models.save(tmp_path / "with-prior")
    seeds = [derive_seed(9, i, "mask-prior") for i in range(6)]
    direct = sample_masks(models.mask_prior, seeds, 3, "dpm++")
    one = sample_masks_to_store(bundle, seeds, tmp_path / "one.zarr", 4, 3, "dpm++", n_actors=1)
    two = sample_masks_to_store(bundle, seeds, tmp_path / "two.zarr", 2, 3, "dpm++", n_actors=2)
    assert (one.batches_total, one.actors, two.batches_total, two.actors) == (2, 1, 3, 2)
    for store in ("one.zarr", "two.zarr"):
        masks = _read(tmp_path / store)
        assert masks.dtype == np.uint8 and masks.shape == direct.shape
        assert np.array_equal(masks, direct)
    again = sample_masks_to_store(bundle, seeds, tmp_path / "two.zarr", 2, 3, "dpm++", n_actors=2)
    assert (again.batches_sampled, again.actors) == (0, 0)  # resumed: nothing left to do

