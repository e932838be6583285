"""The tile stage on a pool of actors: same tiles whatever the pool or batch size, and
no tile lost or duplicated when an actor dies half way."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from actors.scheduler import run_on_actors
from actors.sampling_stage import ArrayBatches, sample_to_store
from actors.tile_sampler import make_sampler_pool
from radiff_scale.diffusion.settings import SamplerSpec
from radiff_scale.classes import OBJECT_CLASSES
from radiff_scale.mapjob import tiles as tile_store
from radiff_scale.data.mask_bank import MaskBank
from radiff_scale.seeding import derive_rng, derive_seed

#: Two DDIM steps with mask guidance (three network evaluations per step with backgrounds).
SETTINGS = SamplerSpec("ddim", 2, 1.5, 1.0, 0.0)
#: The same without guidance (one evaluation per step), for the long run.
FAST = SamplerSpec("ddim", 2, 1.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def objects() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """64 real single-object masks of mixed classes, background patches and per-object seeds."""
    bank = MaskBank.default()
    n = 64
    masks = np.stack([bank.pick(int(OBJECT_CLASSES[i % 3]), derive_seed(5, i, "mask"))[1] for i in range(n)])
    backgrounds = derive_rng(5, 0, "backgrounds").random((n, 128, 128), dtype=np.float32)
    seeds = [derive_seed(5, i, "tile") for i in range(n)]
    return masks, backgrounds, seeds


@pytest.fixture(scope="module")
def pool(ray_local, tiny_bundle: Path) -> list:
    actors = make_sampler_pool(2, str(tiny_bundle), SETTINGS, use_gpu=False, threads=1)
    yield actors
    for actor in actors:
        ray_local.kill(actor)


def _tiles(store: Path) -> np.ndarray:
    return zarr.open_array(str(store), mode="r")[:]


def test_cpu_actors_sample_with_one_torch_thread(ray_local, pool: list) -> None:
    info = ray_local.get([a.describe.remote() for a in pool])
    assert [i["threads"] for i in info] == [1, 1]
    assert info[0]["pid"] != info[1]["pid"]


def test_same_tiles_for_any_actor_count_and_batch_size(objects, pool: list, tiny_bundle: Path, tmp_path: Path) -> None:
    masks, backgrounds, seeds = (x[:16] for x in objects)
    runs = {}
    for name, actors, batch_size in (("1x8", pool[:1], 8), ("2x8", pool, 8), ("2x1", pool, 1)):
        store = tmp_path / f"{name}.zarr"
        counts = sample_to_store(
            tiny_bundle, SETTINGS, ArrayBatches(masks, backgrounds, seeds, batch_size), store, pool=actors
        )
        assert counts.batches_sampled == counts.batches_total == 16 // batch_size
        assert tile_store.done_batches(store) == set(range(16 // batch_size))
        runs[name] = _tiles(store)
    assert runs["1x8"].shape == (16, 128, 128) and np.ptp(runs["1x8"]) > 0
    assert np.array_equal(runs["1x8"], runs["2x8"])  # bit-identical at equal batch size
    assert np.abs(runs["2x1"] - runs["2x8"]).max() <= 1e-5  # batched kernels round slightly differently
    assert not np.array_equal(runs["2x8"][0], runs["2x8"][1])  # objects do get different tiles


def test_killed_actor_loses_and_duplicates_nothing(objects, pool: list, tiny_bundle: Path, tmp_path: Path, ray_local) -> None:
    masks, _, seeds = objects  # null background and no guidance keep 64 objects quick
    batches = ArrayBatches(masks, None, seeds, 8)
    reference = tmp_path / "undisturbed.zarr"
    sample_to_store(tiny_bundle, FAST, batches, reference, pool=pool)

    killed_at: list[int] = []

    def kill_once(batch: int, n_tiles: int) -> None:
        if not killed_at and len(tile_store.done_batches(store)) >= 2:
            killed_at.append(len(tile_store.done_batches(store)))
            ray_local.kill(pool[0], no_restart=False)  # Ray restarts it and retries its calls

    store = tmp_path / "disturbed.zarr"
    pid_before = ray_local.get(pool[0].describe.remote())["pid"]
    counts = sample_to_store(tiny_bundle, FAST, batches, store, pool=pool, on_batch=kill_once)
    assert killed_at and killed_at[0] < 8, "the actor must die while batches are still to do"
    assert counts.batches_sampled == 8 and counts.tiles_sampled == 64
    assert tile_store.done_batches(store) == set(range(8))  # every batch, so every rank, is done
    tiles = _tiles(store)
    assert np.all(tiles.reshape(64, -1).max(axis=1) > 0)  # no rank left at the store's fill value
    assert np.array_equal(tiles, _tiles(reference))
    assert ray_local.get(pool[0].describe.remote())["pid"] != pid_before  # it really died and came back

    # A resumed stage redoes only what is missing, and ends with the same bytes.
    resumed = tmp_path / "resumed.zarr"
    shutil.copytree(reference, resumed)
    zarr.open_array(str(resumed), mode="r+")[24:32] = 0
    (resumed / "_done" / "3").unlink()
    counts = sample_to_store(tiny_bundle, FAST, batches, resumed, pool=pool)
    assert (counts.batches_already_done, counts.batches_sampled) == (7, 1)
    assert np.array_equal(_tiles(resumed), _tiles(reference))
    counts = sample_to_store(tiny_bundle, FAST, batches, resumed, pool=pool)
    assert (counts.batches_already_done, counts.batches_sampled, counts.actors) == (8, 0, 0)


def test_pool_resubmits_the_calls_of_an_actor_that_is_gone_for_good(ray_local) -> None:
    class Doubler:  # a cheap stand-in actor (local, so Ray ships it by value): the pool does not care what the work is
        def work(self, key: int) -> int:
            time.sleep(0.05)
            return 2 * key

        def ping(self) -> bool:
            return True

    remote = ray_local.remote(Doubler).options(num_cpus=0, max_restarts=0)
    actors = [remote.remote(), remote.remote()]
    ray_local.get([a.ping.remote() for a in actors])
    results: dict[int, list[int]] = {}

    def on_result(key: int, value: int) -> None:
        results.setdefault(key, []).append(value)
        if len(results) == 3:
            ray_local.kill(actors[0], no_restart=True)

    stats = run_on_actors(actors, range(30), lambda actor, key: actor.work.remote(key), on_result, in_flight=3)
    assert results == {k: [2 * k] for k in range(30)}  # each key exactly once
    assert stats.actors_lost == 1 and stats.resubmitted >= 1 and stats.completed == 30
    ray_local.kill(actors[1])


def test_pool_larger_than_the_cluster_finishes_on_the_actors_that_start(ray_local) -> None:
    class Doubler:
        def work(self, key: int) -> int:
            return 2 * key

        def ping(self) -> bool:
            return True

    # The third actor asks for a resource this cluster does not have: it never starts.
    remote = ray_local.remote(Doubler)
    actors = [remote.options(num_cpus=0, max_restarts=0).remote() for _ in range(2)]
    actors.append(remote.options(num_cpus=0, resources={"absent": 1}).remote())
    results: dict[int, int] = {}
    try:
        stats = run_on_actors(actors, range(12), lambda actor, key: actor.work.remote(key), results.__setitem__)
        assert results == {k: 2 * k for k in range(12)} and stats.completed == 12
        with pytest.raises(RuntimeError, match="no actor started"):
            run_on_actors(actors[2:], range(2), lambda actor, key: actor.work.remote(key), results.__setitem__,
                          start_timeout_s=1.0)
    finally:
        for actor in actors:
            ray_local.kill(actor)


def test_a_cpu_sampler_ignores_the_gpu_precision(objects, tiny_bundle: Path) -> None:
    """bf16 only applies on a GPU: a CPU actor asked for it samples the exact fp32 tiles."""
    from actors.tile_sampler import TileSampler
    from radiff_scale.diffusion.sampling import sample_tiles

    masks, backgrounds, seeds = (part[:2] for part in objects)
    sampler = TileSampler(str(tiny_bundle), SamplerSpec("ddim", 2, 1.5, 1.0, 0.0, gpu_precision="bf16"), threads=1)
    assert sampler.describe()["precision"] == "fp32"
    _, tiles = sampler.sample(0, masks, backgrounds, seeds)
    exact = sample_tiles(sampler.models, masks, backgrounds, seeds, 2, (1.5, 1.0), "ddim")
    assert np.array_equal(tiles, exact)
