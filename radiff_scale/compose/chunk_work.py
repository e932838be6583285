"""What one chunk owner does: cut the stamps that touch its chunk, measure the objects it
owns, and write its chunk of the mosaic once.

An object may touch several chunks; each of them cuts the same stamp from the same
stored tile (cutting is a pure function, so the copies agree to the bit). The object is
*owned*, for the catalogue, by the one chunk that holds the top-left pixel of its
footprint box, so every object gets exactly one catalogue row however the map is split.
The catalogue part is written before the chunk's done marker: a chunk recorded done
always has its rows on disk.

Tiles are read a batch of objects at a time (one orthogonal selection per store, not
one read per object); the batch cap keeps a worker's memory bounded on chunks crowded
with objects. Objects are ranked by owner chunk (see
:class:`radiff_scale.compose.placement_stage.PlannedMap`), so a batch falls in a few
consecutive store chunks. Masks come with the objects, as the planner's footprint crops
(a few hundred bytes each), rather than from the mask store: reading and decompressing
whole store chunks of masks cost a chunk owner as much as reading its tiles. Tiles go
back to flux inside the cutter, only where the stamp needs it (the inverse
preprocessing is monotonic: see :mod:`radiff_scale.compose.stamps`).
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from radiff_scale.compose import tile_store
from radiff_scale.compose.background import BackgroundSource
from radiff_scale.compose.catalogue import build_catalogue, measure
from radiff_scale.compose.mosaic import open_mosaic, render_chunk
from radiff_scale.compose.planner import PlacedObject
from radiff_scale.compose.rundir import RunDir
from radiff_scale.compose.stamps import NORM_PEAK, cut_stamp
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.data.preprocess import PreprocessParams, inverse_preprocess

#: Objects whose tiles a chunk owner holds at once (float32 tile + mask: 80 kB each, so
#: ~20 MB); a typical 2048^2 chunk has ~100 and takes one batch.
TILE_BATCH = 256

#: Columns of the placement table (one row per placed object) the chunk owners get their share of.
OBJECT_COLUMNS = (
    "object_id", "class_id", "k", "seed", "row0", "col0", "rank", "sigma_local",
    "fp_row0", "fp_row1", "fp_col0", "fp_col1", "bank_index",
)

#: Key of a chunk owner's object record that holds its mask: (row0, col0, crop), the
#: boolean crop of the object's single-object mask and its offset inside the tile.
FOOTPRINT = "footprint"


def tile_mask(footprint: tuple[int, int, np.ndarray], size: int = tile_store.TILE) -> np.ndarray:
    """The boolean mask on the tile grid from a record's (row0, col0, crop)."""
    row0, col0, crop = footprint
    crop = np.asarray(crop, dtype=bool)
    mask = np.zeros((size, size), dtype=bool)
    mask[row0 : row0 + crop.shape[0], col0 : col0 + crop.shape[1]] = crop
    return mask


@dataclass(frozen=True)
class ChunkOutcome:
    """What the driver keeps of one chunk (small: it travels back through Ray)."""

    index: tuple[int, int]
    n_stamps: int
    n_owned: int
    odd_normalisation: tuple[int, ...]
    seconds: float
    #: Seconds by step: ``tiles`` (reading them), ``cut``, ``measure`` (catalogue rows and
    #: their part file), then render_chunk's ``background``, ``paint`` and ``write``.
    step_seconds: dict[str, float]


@functools.lru_cache(maxsize=4)
def _map_wcs(geometry: MapGeometry) -> Any:
    """The map's WCS, built once per worker process and geometry (a header and WCSLIB parse,
    ~3 ms, per chunk otherwise). Bounded: a worker serves one map, rarely a few; the WCS
    is only read (pixel to world) by the catalogue."""
    return geometry.wcs()


def chunks_touched(fp: tuple[int, int, int, int], chunk: int) -> list[tuple[int, int]]:
    """Chunk indices a footprint box (row0, row1, col0, col1) touches."""
    r0, r1, c0, c1 = fp
    return [
        (i, j)
        for i in range(r0 // chunk, (r1 - 1) // chunk + 1)
        for j in range(c0 // chunk, (c1 - 1) // chunk + 1)
    ]


def owner_chunk(fp: tuple[int, int, int, int], chunk: int) -> tuple[int, int]:
    return fp[0] // chunk, fp[2] // chunk


def compose_chunk(
    run_root: str | Path,
    index: tuple[int, int],
    objects: list[dict[str, Any]],
    background: BackgroundSource,
    geometry: MapGeometry,
    preprocess_reference: dict[str, float],
) -> ChunkOutcome:
    """Render chunk ``index`` of ``run_root``'s mosaic from the objects touching it."""
    started = time.perf_counter()
    run = RunDir(Path(run_root))
    mosaic = open_mosaic(run.mosaic)
    chunk = mosaic.chunk_bounds(index)
    chunk_side = mosaic.chunk
    objects = sorted(objects, key=lambda o: int(o["object_id"]))
    params = PreprocessParams.from_dict(preprocess_reference)

    def inverse(y: np.ndarray) -> np.ndarray:
        return inverse_preprocess(y, params)

    stamps, rows, odd = [], [], []
    steps = dict.fromkeys(("tiles", "cut", "measure"), 0.0)
    wcs = None
    for first in range(0, len(objects), TILE_BATCH):
        batch = objects[first : first + TILE_BATCH]
        ranks = [int(o["rank"]) for o in batch]
        t = time.perf_counter()
        tiles = tile_store.read_ranks(run.tiles, ranks)
        steps["tiles"] += time.perf_counter() - t
        for obj, tile in zip(batch, tiles):
            t = time.perf_counter()
            placed = PlacedObject(
                int(obj["object_id"]), int(obj["class_id"]), float(obj["k"]), int(obj["seed"]),
                int(obj["row0"]), int(obj["col0"]),
            )
            mask = tile_mask(obj[FOOTPRINT])
            stamp = cut_stamp(placed, tile, mask, float(obj["sigma_local"]), inverse, monotonic=True)
            stamps.append(stamp)
            if stamp.normalisation != NORM_PEAK:
                odd.append(placed.object_id)
            t1 = time.perf_counter()
            steps["cut"] += t1 - t
            fp = (int(obj["fp_row0"]), int(obj["fp_row1"]), int(obj["fp_col0"]), int(obj["fp_col1"]))
            if owner_chunk(fp, chunk_side) == tuple(index):
                wcs = _map_wcs(geometry) if wcs is None else wcs
                rows.append(measure(
                    stamp, wcs, geometry.beam, geometry.pixel_scale_arcsec, float(obj["sigma_local"]), placed.k,
                    placed.seed,
                ))
                steps["measure"] += time.perf_counter() - t1
        del tiles
    t = time.perf_counter()
    if rows:
        _write_part(run.catalogue_parts, index, build_catalogue(rows))
    steps["measure"] += time.perf_counter() - t
    report = render_chunk(mosaic, chunk.index, background, stamps)
    steps.update(report.step_seconds)
    return ChunkOutcome(
        index=tuple(index), n_stamps=report.n_stamps, n_owned=len(rows), odd_normalisation=tuple(odd),
        seconds=time.perf_counter() - started, step_seconds=steps,
    )


def _write_part(folder: Path, index: tuple[int, int], table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{index[0]}_{index[1]}.parquet"
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, final)


def read_catalogue_parts(folder: Path) -> pa.Table:
    """All parts, as one table sorted by id (the order of parts on disk does not matter)."""
    rows: list[dict[str, Any]] = []
    for part in sorted(folder.glob("*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return build_catalogue(rows)
