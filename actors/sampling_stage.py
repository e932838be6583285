"""The sampling stages on their own: batches of (mask, background, seed) in, a filled tile store out
(and the same for masks invented by the mask prior: seeds in, a filled mask store out).

The map job hands this stage every placed object as consecutive batches of a fixed
size; batch ``b`` owns chunk ``b`` of the tile store (radiff_scale.compose.tile_store).
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
from typing import Any, Protocol

import numpy as np

from actors.tile_sampler import SamplerSettings
from radiff_scale.compose import tile_store


@dataclass(frozen=True)
class TileBatch:
    """One batch: tile-store chunk ``index``, the masks, background patches and seeds of its objects.

    ``object_ids`` are carried for error messages and logs; the store is indexed by rank
    (``index * batch_size + position``).
    """

    index: int
    masks: np.ndarray  # uint8 (n, 128, 128)
    backgrounds: np.ndarray | None  # float32 (n, 128, 128) preprocessed patches, or None (null background)
    seeds: tuple[int, ...]
    object_ids: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.seeds)


class BatchSource(Protocol):
    """What the stage samples: ``len(self)`` batches over ``n_items`` ranks, built on demand."""

    n_items: int
    batch_size: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> TileBatch: ...


@dataclass(frozen=True)
class ArrayBatches:
    """A :class:`BatchSource` over arrays already in memory (tests, benchmarks, small runs)."""

    masks: np.ndarray
    backgrounds: np.ndarray | None
    seeds: Sequence[int]
    batch_size: int
    object_ids: Sequence[int] | None = None

    @property
    def n_items(self) -> int:
        return len(self.seeds)

    def __len__(self) -> int:
        return tile_store.n_batches(self.n_items, self.batch_size)

    def __getitem__(self, index: int) -> TileBatch:
        if not 0 <= index < len(self):
            raise IndexError(index)
        sl = tile_store.batch_slice(index, self.n_items, self.batch_size)
        ids = tuple(int(i) for i in self.object_ids[sl]) if self.object_ids is not None else ()
        return TileBatch(
            index, np.asarray(self.masks[sl], dtype=np.uint8),
            None if self.backgrounds is None else np.asarray(self.backgrounds[sl], dtype=np.float32),
            tuple(int(s) for s in self.seeds[sl]), ids,
        )


@dataclass
class SamplingCounts:
    """What the stage did (for the manifest): batches in all, already done before, sampled now."""

    batches_total: int
    batches_already_done: int
    batches_sampled: int = 0
    tiles_sampled: int = 0
    resubmitted: int = 0
    actors_lost: int = 0
    actors: int = 0


def sample_to_store(
    model_dir: str | Path,
    settings: SamplerSettings,
    batches: BatchSource,
    store: str | Path,
    n_actors: int = 1,
    *,
    use_gpu: bool = False,
    in_flight: int = 2,
    pool: list[Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    max_restarts: int = 3,
) -> SamplingCounts:
    """Sample every batch of ``batches`` not yet done in the tile store ``store``; returns counts.

    ``n_actors`` sampler actors are started (one torch thread each on CPU, one GPU each
    with ``use_gpu``) and killed at the end, unless ``pool`` hands in running actors
    (from :func:`actors.tile_sampler.make_sampler_pool`; they are left running, and
    ``settings`` travels with every call, so one pool can serve several settings). At most
    ``in_flight`` batches are queued per actor. ``on_batch(batch, n_tiles)`` runs on the
    driver after each batch is stored (progress bars). Needs a running Ray.
    """
    n, b = int(batches.n_items), int(batches.batch_size)
    if len(batches) != tile_store.n_batches(n, b):
        raise ValueError(f"{len(batches)} batches for {n} items in batches of {b} (expected {tile_store.n_batches(n, b)})")

    def call(actor: Any, index: int) -> Any:
        batch = batches[index]
        expected = tile_store.batch_slice(index, n, b)
        if batch.index != index or len(batch) != expected.stop - expected.start or len(batch.masks) != len(batch):
            raise ValueError(f"batch {index}: got batch {batch.index} with {len(batch)} items, expected {expected}")
        return actor.sample.remote(index, batch.masks, batch.backgrounds, list(batch.seeds), settings)

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
    seeds = [int(s) for s in seeds]
    n, b = len(seeds), int(batch_size)
    settings = SamplerSettings(sampler, int(steps), 1.0, 1.0, 0.0)

    def call(actor: Any, index: int) -> Any:
        return actor.sample_masks.remote(index, seeds[tile_store.batch_slice(index, n, b)], settings)

    return fill_store(
        model_dir, settings, call, Path(store), n, b, "uint8", n_actors, use_gpu=use_gpu, pool=pool, on_batch=on_batch
    )


def fill_store(
    model_dir: str | Path,
    settings: SamplerSettings,
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

    from actors.pool import run_on_actors
    from actors.tile_sampler import make_sampler_pool

    b = int(batch_size)
    tile_store.create_store(store, n, b, dtype)
    total = tile_store.n_batches(n, b)
    todo = sorted(set(range(total)) - tile_store.done_batches(store))
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
        tile_store.write_batch(store, index, b, data)
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
    counts.resubmitted, counts.actors_lost = stats.resubmitted, stats.actors_lost
    missing = set(range(total)) - tile_store.done_batches(store)
    if missing:
        raise RuntimeError(f"batches {sorted(missing)[:10]} of {store} are not done after the stage")
    return counts
