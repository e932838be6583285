"""Generated tiles (and their masks) stored by placed-object rank, one Zarr chunk per batch.

Batches are consecutive ranks of a fixed size, so batch ``b`` owns chunk ``b`` of the
store: sampler results can be written in any order, by any worker, twice after a
retry, and the store ends the same. A batch is recorded done by a marker file written
after its chunk, which is what ``--resume`` reads.

Float stores (generated tiles) are written uncompressed: model output compresses by only
~20% with zstd, and the stamp stage reads every batch whole. Integer stores (masks,
mostly zeros) keep zstd: they shrink ~200x.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import zarr

TILE = 128
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
    tmp = marker.with_name(f".{batch}.{uuid.uuid4().hex}.tmp")
    tmp.write_text("done\n")
    os.replace(tmp, marker)


def done_batches(path: Path) -> set[int]:
    folder = path / _DONE
    if not folder.is_dir():
        return set()
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}


def read_range(path: Path, ranks: slice) -> np.ndarray:
    """Tiles at consecutive ranks (a batch is one store chunk: one read, no selection)."""
    return zarr.open_array(str(path), mode="r")[ranks]
