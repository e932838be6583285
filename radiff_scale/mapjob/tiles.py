"""The tile stage's work: one tile per placed object, stored by rank, one Zarr chunk per batch.

The tiles come from the sampler actors (actors/sampling_stage.py samples the batches
that :class:`PlannedBatches` builds here). A map made from a tile bank has no tile store:
its stamp tasks read their tiles from the bank file itself (:func:`bank_tiles`), so the
bank's tiles are not copied to disk a second time (64 kB an object).

Batches are consecutive ranks of a fixed size, so batch ``b`` owns chunk ``b`` of the
store: sampler results can be written in any order, by any worker, twice after a
retry, and the store ends the same. A batch is recorded done by a marker file written
after its chunk, which is what ``--resume`` reads.

Float stores (generated tiles) are written uncompressed: model output compresses by only
~20% with zstd, and the stamp stage reads every batch whole. Integer stores (masks,
mostly zeros) keep zstd: they shrink ~200x.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import zarr

from radiff_scale.atomic import write_bytes_atomic, write_json_atomic
from radiff_scale.compose.background import BackgroundSource
from radiff_scale.compose.conditioning import background_patches
from radiff_scale.compose.tile_bank import TileBank, decode, dihedral
from radiff_scale.constants import TILE
from radiff_scale.data.stretch import Stretch
from radiff_scale.errors import RadiffError
from radiff_scale.mapjob.plan import FootprintStack, PlannedObject

_DONE = "_done"


def create_store(path: Path, n: int, batch_size: int, dtype: str) -> zarr.Array:
    """Create (or reopen, when it already has the same shape) an (n, 128, 128) store.

    A reopened store keeps whatever codecs it was made with (readers do not care), so a
    run started by an older version resumes into its own store.
    """
    if path.exists():
        array = zarr.open_array(str(path), mode="r+")
        if array.shape == (n, TILE, TILE) and array.chunks[0] == batch_size and str(array.dtype) == dtype:
            return array
        raise ValueError(f"{path} holds a store of another shape {array.shape}; refusing to mix runs")
    codecs = {"compressors": None} if np.dtype(dtype).kind == "f" else {}
    return zarr.create_array(
        store=str(path), shape=(n, TILE, TILE), chunks=(max(batch_size, 1), TILE, TILE), dtype=dtype, fill_value=0,
        **codecs,
    )


def n_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def batch_slice(batch: int, n: int, batch_size: int) -> slice:
    return slice(batch * batch_size, min((batch + 1) * batch_size, n))


def write_batch(path: Path, batch: int, batch_size: int, data: np.ndarray) -> None:
    """Write one batch's chunk, then its done marker (idempotent: same bytes every time)."""
    array = zarr.open_array(str(path), mode="r+")
    sl = batch_slice(batch, array.shape[0], batch_size)
    if data.shape != (sl.stop - sl.start, TILE, TILE):
        raise ValueError(f"batch {batch}: expected {(sl.stop - sl.start, TILE, TILE)}, got {data.shape}")
    array[sl] = data.astype(array.dtype, copy=False)
    marker = path / _DONE / str(batch)
    marker.parent.mkdir(exist_ok=True)
    write_bytes_atomic(marker, b"done\n")


def done_batches(path: Path) -> set[int]:
    folder = path / _DONE
    if not folder.is_dir():
        return set()
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}


def read_range(path: Path, ranks: slice) -> np.ndarray:
    """Tiles at consecutive ranks (a batch is one store chunk: one read, no selection)."""
    return zarr.open_array(str(path), mode="r")[ranks]


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
        return n_batches(self.n_items, self.batch_size)

    def __getitem__(self, index: int) -> TileBatch:
        if not 0 <= index < len(self):
            raise IndexError(index)
        sl = batch_slice(index, self.n_items, self.batch_size)
        ids = tuple(int(i) for i in self.object_ids[sl]) if self.object_ids is not None else ()
        return TileBatch(
            index, np.asarray(self.masks[sl], dtype=np.uint8),
            None if self.backgrounds is None else np.asarray(self.backgrounds[sl], dtype=np.float32),
            tuple(int(s) for s in self.seeds[sl]), ids,
        )


class PlannedBatches:
    """The placed objects as tile batches, built when submitted: a batch's background
    patches are read from the map's background only then, so the driver holds the
    patches of the batches in flight, not of the whole map."""

    def __init__(self, objects: list[PlannedObject], masks: FootprintStack, source: BackgroundSource,
                 batch_size: int, stretch: Stretch) -> None:
        self.objects, self.masks, self.source, self.stretch = objects, masks, source, stretch
        self.n_items, self.batch_size = len(objects), batch_size

    def __len__(self) -> int:
        return n_batches(self.n_items, self.batch_size)

    def __getitem__(self, index: int) -> TileBatch:
        sl = batch_slice(index, self.n_items, self.batch_size)
        chunk = self.objects[sl]
        patches = background_patches(self.source, [(o.row0, o.col0) for o in chunk], self.stretch)
        return TileBatch(index, self.masks[sl], patches, tuple(o.seed for o in chunk), tuple(o.object_id for o in chunk))


def check_bank_run(bank: TileBank, objects: Sequence[PlannedObject], masks: FootprintStack, record: Path) -> None:
    """A banked run reads its tiles straight from the bank (no tile store): check that every
    planned mask is its bank entry's (a cheap guard against a planner/bank mismatch), and that
    a resumed run sees the bank it started with, recorded in ``record`` on the first run --
    the same path with other content would mix the tiles of two banks."""
    recorded = json.loads(record.read_text())["sha256"] if record.exists() else None
    if recorded is not None and recorded != bank.fingerprint:
        raise RadiffError(f"{bank.source} is not the tile bank this run started with (its content changed); "
                          "rerun with --overwrite")
    for obj in objects:
        entry, transform = decode(obj.bank_index)
        if not np.array_equal(dihedral(np.asarray(bank.masks[entry]), transform), masks[obj.rank]):
            raise RadiffError(f"{bank.source}: entry {decode(obj.bank_index)[0]} does not match the planned mask "
                              f"of rank {obj.rank}")
    if recorded is None:
        write_json_atomic(record, {"path": str(bank.source), "sha256": bank.fingerprint})


def bank_tiles(path: str, fingerprint: str, codes: Sequence[int]) -> np.ndarray:
    """The (transformed) tiles of ``codes``, read in a worker from the bank file (memory-mapped,
    opened once per worker process and bank content)."""
    return _worker_bank(path, fingerprint).tiles_for(codes)


@functools.lru_cache(maxsize=2)
def _worker_bank(path: str, fingerprint: str) -> TileBank:
    bank = TileBank.load(path)
    if bank.fingerprint != fingerprint:
        raise RuntimeError(f"{path} changed while the map was being made")
    return bank
