"""The sampling stages on their own: batches of (mask, background, seed) in, a filled tile store out
(and the same for masks invented by the mask prior: seeds in, a filled mask store out).

The map job hands this stage every placed object as consecutive batches of a fixed
size; batch ``b`` owns chunk ``b`` of the tile store (radiff_scale.mapjob.tiles).
Because of that ownership, and because a tile depends only on its object's (mask,
background, seed), the stage can run on any number of actors, lose an actor half way,
retry a batch on another one, or be resumed after a crash, and the store ends with the
same bytes: each batch is written whole and then marked done, by whoever finished it.

Batches are produced on demand (``BatchSource.__getitem__``), at submission time, so
the driver holds only the batches in flight, not the background patches of a whole
map (a 32768^2 map has ~10^5 objects: 8 GB of patches and masks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radiff_scale.mapjob import tiles
from radiff_scale.mapjob.tiles import ArrayBatches, BatchSource, TileBatch  # noqa: F401  (what callers hand in)
from radiff_scale.diffusion.settings import SamplerSpec


@dataclass
class SamplingCounts:
    """What the stage did (for the manifest): batches in all, already done before, sampled now."""

    batches_total: int
    batches_already_done: int
    batches_sampled: int = 0
    tiles_sampled: int = 0
    resubmitted: int = 0
    actors_lost: int = 0
    actors_back: int = 0
    actors: int = 0


def sample_to_store(
    model_dir: str | Path,
    settings: SamplerSpec,
    batches: BatchSource,
    store: str | Path,
    n_actors: int = 1,
    *,
    use_gpu: bool = False,
    in_flight: int = 2,
    pool: list[Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    max_restarts: int = 3,
    zoom: float = 1.0,
) -> SamplingCounts:
    """Sample every batch of ``batches`` not yet done in the tile store ``store``; returns counts.

    ``n_actors`` sampler actors are started (one torch thread each on CPU, one GPU each
    with ``use_gpu``) and killed at the end, unless ``pool`` hands in running actors
    (from :func:`actors.tile_sampler.make_sampler_pool`; they are left running, and
    ``settings`` travels with every call, so one pool can serve several settings). At most
    ``in_flight`` batches are queued per actor. ``on_batch(batch, n_tiles)`` runs on the
    driver after each batch is stored (progress bars). ``zoom``: see TileSampler.sample.
    Needs a running Ray.
    """
    from actors.scheduler import no_retry  # like Ray itself, only once the stage runs

    n, b = int(batches.n_items), int(batches.batch_size)
    if len(batches) != tiles.n_batches(n, b):
        raise ValueError(f"{len(batches)} batches for {n} items in batches of {b} (expected {tiles.n_batches(n, b)})")

    def call(actor: Any, index: int) -> Any:
        batch = batches[index]
        expected = tiles.batch_slice(index, n, b)
        if batch.index != index or len(batch) != expected.stop - expected.start or len(batch.masks) != len(batch):
            raise ValueError(f"batch {index}: got batch {batch.index} with {len(batch)} items, expected {expected}")
        return no_retry(actor.sample).remote(index, batch.masks, batch.backgrounds, list(batch.seeds), settings, zoom)

    return fill_store(
        model_dir, settings, call, Path(store), n, b, "float32", n_actors, use_gpu=use_gpu, in_flight=in_flight,
        pool=pool, on_batch=on_batch, max_restarts=max_restarts,
    )


def sample_masks_to_store(
    model_dir: str | Path,
    seeds: Sequence[int],
    store: str | Path,
    batch_size: int,
    steps: int,
    sampler: str,
    n_actors: int = 1,
    *,
    use_gpu: bool = False,
    pool: list[Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> SamplingCounts:
    """Invent one class mask per seed with the bundle's mask prior, into the uint8 store ``store``.

    The same actors, pool, ownership (batch ``b`` owns store chunk ``b``) and resume rules
    as :func:`sample_to_store`; mask ``i`` depends on ``seeds[i]`` only.
    """
    from actors.scheduler import no_retry

    seeds = [int(s) for s in seeds]
    n, b = len(seeds), int(batch_size)
    settings = SamplerSpec(name=sampler, steps=int(steps), guidance_mask=1.0)

    def call(actor: Any, index: int) -> Any:
        return no_retry(actor.sample_masks).remote(index, seeds[tiles.batch_slice(index, n, b)], settings)

    return fill_store(
        model_dir, settings, call, Path(store), n, b, "uint8", n_actors, use_gpu=use_gpu, pool=pool, on_batch=on_batch
    )


def fill_store(
    model_dir: str | Path,
    settings: SamplerSpec,
    call: Callable[[Any, int], Any],
    store: Path,
    n: int,
    batch_size: int,
    dtype: str,
    n_actors: int,
    *,
    use_gpu: bool = False,
    in_flight: int = 2,
    pool: list[Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    max_restarts: int = 3,
) -> SamplingCounts:
    """Run ``call(actor, batch)`` for every batch not yet done in ``store`` and write each answer whole.

    ``call`` returns a ref to ``(batch, array)``. The store is created if missing; batches
    already marked done are skipped, so a resumed stage only does what is missing.
    """
    import ray

    from actors.scheduler import run_on_actors
    from actors.tile_sampler import make_sampler_pool

    b = int(batch_size)
    tiles.create_store(store, n, b, dtype)
    total = tiles.n_batches(n, b)
    todo = sorted(set(range(total)) - tiles.done_batches(store))
    counts = SamplingCounts(batches_total=total, batches_already_done=total - len(todo))
    if not todo:
        return counts
    own = pool is None
    if own and n_actors < 1:
        raise ValueError(f"n_actors must be >= 1, got {n_actors}")
    if own:
        threads = None if use_gpu else 1
        pool = make_sampler_pool(min(n_actors, len(todo)), str(model_dir), settings, use_gpu, threads, max_restarts)
    counts.actors = len(pool)

    def done(index: int, result: tuple[int, np.ndarray]) -> None:
        got, data = result
        if got != index:
            raise RuntimeError(f"asked for batch {index}, an actor answered batch {got}")
        tiles.write_batch(store, index, b, data)
        counts.batches_sampled += 1
        counts.tiles_sampled += len(data)
        if on_batch is not None:
            on_batch(index, len(data))

    try:
        stats = run_on_actors(pool, todo, call, done, in_flight=in_flight)
    finally:
        if own:
            for actor in pool:  # free their CPUs/GPUs for the next stage
                ray.kill(actor)
    counts.resubmitted, counts.actors_lost, counts.actors_back = stats.resubmitted, stats.actors_lost, stats.actors_back
    missing = set(range(total)) - tiles.done_batches(store)
    if missing:
        raise RuntimeError(f"batches {sorted(missing)[:10]} of {store} are not done after the stage")
    return counts
