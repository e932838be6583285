"""What one stamp task does: cut the stamps of a batch of consecutive ranks and measure their catalogue rows.

A stamp is a pure function of its object's tile, mask, k and local sigma, so it is cut
once per object, here, and the chunk owners only paint it (cutting inside the chunk
owners redid the work for every chunk an object touches, and made every owner read
64 kB tiles and do per-object work while holding a 2048^2 chunk). The catalogue row is
measured from the same stamp, i.e. from exactly the pixels the map gets.

The batch's catalogue part is written before its stamp file, and the stamp file is the
batch's done marker: a batch recorded done always has its rows on disk.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from radiff_scale.compose import stamp_store, tile_store
from radiff_scale.compose.catalogue import build_catalogue, measure
from radiff_scale.compose.planner import PlacedObject
from radiff_scale.compose.rundir import RunDir, replace_when_done
from radiff_scale.compose.stamps import NORM_PEAK, cut_stamp
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.data.stretch import Stretch

#: Key of a stamp task's object record that holds its mask: (row0, col0, crop), the
#: boolean crop of the object's single-object mask and its offset inside the tile. Masks
#: travel with the records (a few hundred bytes each) rather than through the mask store.
FOOTPRINT = "footprint"


@dataclass(frozen=True)
class BatchOutcome:
    """What the driver keeps of one stamp batch (small: it travels back through Ray)."""

    batch: int
    n_stamps: int
    odd_normalisation: tuple[int, ...]
    seconds: float
    #: Seconds by step: ``tiles`` (reading them), ``cut``, ``measure``, ``write`` (the
    #: catalogue part and the stamp file).
    step_seconds: dict[str, float]


def tile_mask(footprint: tuple[int, int, np.ndarray], size: int = tile_store.TILE) -> np.ndarray:
    """The boolean mask on the tile grid from a record's (row0, col0, crop)."""
    row0, col0, crop = footprint
    crop = np.asarray(crop, dtype=bool)
    mask = np.zeros((size, size), dtype=bool)
    mask[row0 : row0 + crop.shape[0], col0 : col0 + crop.shape[1]] = crop
    return mask


@functools.lru_cache(maxsize=4)
def _map_wcs(geometry: MapGeometry) -> Any:
    """The map's WCS, built once per worker process and geometry (a header and WCSLIB parse,
    ~3 ms, per batch otherwise). Bounded: a worker serves one map, rarely a few."""
    return geometry.wcs()


def cut_batch(
    run_root: str | Path,
    batch: int,
    batch_size: int,
    objects: list[dict[str, Any]],
    geometry: MapGeometry,
    stretch: Stretch,
) -> BatchOutcome:
    """Cut and measure the objects of stamp batch ``batch`` (ranks ``batch * batch_size`` on;
    ``objects``: their records, in rank order; ``stretch``: the model's, which decodes tiles)."""
    started = time.perf_counter()
    run = RunDir(Path(run_root))
    expected = tile_store.batch_slice(batch, batch * batch_size + len(objects), batch_size)
    ranks = [int(o["rank"]) for o in objects]
    if ranks != list(range(expected.start, expected.stop)):
        raise ValueError(f"stamp batch {batch} got ranks {ranks[:3]}... instead of {expected.start}..{expected.stop - 1}")
    inverse = stretch.decode
    steps = dict.fromkeys(("tiles", "cut", "measure", "write"), 0.0)
    tiles = tile_store.read_range(run.tiles, expected)
    steps["tiles"] = time.perf_counter() - started
    wcs = _map_wcs(geometry)
    stamps, rows, odd = [], [], []
    for obj, tile in zip(objects, tiles):
        t = time.perf_counter()
        placed = PlacedObject(
            int(obj["object_id"]), int(obj["class_id"]), float(obj["k"]), int(obj["seed"]),
            int(obj["row0"]), int(obj["col0"]),
        )
        sigma_local = float(obj["sigma_local"])
        stamp = cut_stamp(placed, tile, tile_mask(obj[FOOTPRINT]), sigma_local, inverse, monotonic=True)
        stamps.append(stamp)
        if stamp.normalisation != NORM_PEAK:
            odd.append(placed.object_id)
        t1 = time.perf_counter()
        rows.append(measure(stamp, wcs, geometry.beam, geometry.pixel_scale_arcsec, sigma_local, placed.k, placed.seed))
        steps["cut"] += t1 - t
        steps["measure"] += time.perf_counter() - t1
    t = time.perf_counter()
    if rows:
        _write_part(run.catalogue_parts, batch, build_catalogue(rows))
    stamp_store.write_batch(run.stamps, batch, stamps)  # last: the batch's done marker
    steps["write"] = time.perf_counter() - t
    return BatchOutcome(
        batch=batch, n_stamps=len(stamps), odd_normalisation=tuple(odd), seconds=time.perf_counter() - started,
        step_seconds=steps,
    )


def _write_part(folder: Path, batch: int, table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    replace_when_done(folder / f"{batch}.parquet", lambda tmp: pq.write_table(table, tmp))


def read_catalogue_parts(folder: Path) -> pa.Table:
    """All parts, as one table sorted by id (the order of parts on disk does not matter)."""
    rows: list[dict[str, Any]] = []
    for part in sorted(folder.glob("*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return build_catalogue(rows)
