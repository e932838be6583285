"""The stamp stage's work: cut the stamps of a batch of consecutive ranks, measure their
catalogue rows, and keep them in the stamp store.

A stamp is a pure function of its object's tile, mask, k and local sigma, so it is cut
once per object, here, and the chunk owners only paint it (cutting inside the chunk
owners redid the work for every chunk an object touches, and made every owner read
64 kB tiles and do per-object work while holding a 2048^2 chunk). The catalogue row is
measured from the same stamp, i.e. from exactly the pixels the map gets.

The store, ``work/stamps/<batch>.npz`` (uncompressed), holds in rank order within the batch:

* ``meta``: int64 (n, 6): object_id, class_id, row0, col0, rows, cols;
* ``data``: float32, every stamp's pixels concatenated row-major;
* ``mask``: bool, their masks, concatenated the same way.

A batch owns its output, then marks it done (the rule of every store of the map job):
its catalogue part is written first, then its stamp file, atomically; an existing stamp
file is the batch's done marker, so a batch recorded done always has its rows on disk.
Batches are whole tile batches (:func:`stamp_batch_size`), so a chunk owner reads a
handful of stamp files: ranks follow owner chunks.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from radiff_scale.atomic import replace_when_done
from radiff_scale.compose.catalogue import build_catalogue, measure
from radiff_scale.compose.given_stamps import Region, move_cut, shape_cut, target_covariance
from radiff_scale.compose.moments import beam_covariance
from radiff_scale.compose.placement import mask_bbox
from radiff_scale.compose.stamps import NORMAL, Brightness, CutStamp, Stamp, cut_stamp, linear_cut, scale_cut
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.data.stretch import Stretch
from radiff_scale.mapjob.plan import PlannedObject
from radiff_scale.mapjob.rundir import RunDir
from radiff_scale.mapjob.tiles import bank_tiles, batch_slice, read_range

#: Objects per stamp task (and stamp file), rounded up to whole tile batches: a task has a
#: fixed cost (scheduling, opening the store, writing two files) of ~15 ms, as much as
#: cutting 50 objects, so tasks of one 64-tile batch spent a fifth of the stage on it.
STAMP_BATCH_MIN = 256

_SUFFIX = ".npz"


def stamp_batch_size(tile_batch_size: int) -> int:
    """Ranks per stamp batch: whole tile batches (its tiles are whole tile-store chunks), >= STAMP_BATCH_MIN."""
    b = int(tile_batch_size)
    return b * max(1, -(-STAMP_BATCH_MIN // b))


@dataclass(frozen=True)
class StampBatchOutcome:
    """What the driver keeps of one stamp batch (small: it travels back through Ray)."""

    batch: int
    n_stamps: int
    odd_normalisation: tuple[int, ...]
    seconds: float
    #: Seconds by step: ``tiles`` (reading them), ``cut``, ``measure``, ``write`` (the
    #: catalogue part and the stamp file).
    step_seconds: dict[str, float]


@functools.lru_cache(maxsize=4)
def _map_wcs(geometry: MapGeometry) -> Any:
    """The map's WCS, built once per worker process and geometry (a header and WCSLIB parse,
    ~3 ms, per batch otherwise). Bounded: a worker serves one map, rarely a few."""
    return geometry.wcs()


def cut_stamp_batch(
    run_root: str | Path,
    batch: int,
    batch_size: int,
    objects: list[PlannedObject],
    geometry: MapGeometry,
    stretch: Stretch,
    bank: tuple[str, str] | None = None,
    flux_mode: str = "k",
) -> StampBatchOutcome:
    """Cut and measure the objects of stamp batch ``batch`` (ranks ``batch * batch_size`` on;
    ``objects``: their records, in rank order; ``stretch``: the model's, which decodes tiles).
    Tiles come from the run's tile store, or with ``bank`` = (path, sha256) from that tile bank.
    ``flux_mode`` (the spec's placement.flux_mode) says whether a requested flux is a peak."""
    started = time.perf_counter()
    run = RunDir(Path(run_root))
    expected = batch_slice(batch, batch * batch_size + len(objects), batch_size)
    ranks = [o.rank for o in objects]
    if ranks != list(range(expected.start, expected.stop)):
        raise ValueError(f"stamp batch {batch} got ranks {ranks[:3]}... instead of {expected.start}..{expected.stop - 1}")
    inverse = stretch.decode
    steps = dict.fromkeys(("tiles", "cut", "measure", "write"), 0.0)
    tiles = read_range(run.tiles, expected) if bank is None else bank_tiles(*bank, [o.bank_index for o in objects])
    steps["tiles"] = time.perf_counter() - started
    wcs = _map_wcs(geometry)
    beam_area = geometry.beam.area_pixels(geometry.pixel_scale_arcsec)
    beam_cov = beam_covariance(geometry.beam, geometry.pixel_scale_arcsec)
    stamps, rows, odd = [], [], []
    for obj, tile in zip(objects, tiles):
        t = time.perf_counter()
        placed = obj.placed()
        sigma_local = obj.sigma_local
        brightness = None
        if not np.isnan(obj.flux_req_jy):
            brightness = Brightness("peak" if flux_mode == "peak" else "integrated", obj.flux_req_jy, beam_area)
        if obj.given:
            stamp = cut_given_stamp(obj, tile, inverse, beam_cov, brightness)
        else:
            stamp = cut_stamp(placed, tile, obj.footprint.tile_mask(), sigma_local, inverse, monotonic=True,
                              brightness=brightness)
        stamps.append(stamp)
        if stamp.normalisation not in NORMAL:
            odd.append(placed.object_id)
        t1 = time.perf_counter()
        rows.append(measure(stamp, wcs, geometry.beam, geometry.pixel_scale_arcsec, sigma_local, placed.k, placed.seed,
                            obj.flux_req_jy))
        steps["cut"] += t1 - t
        steps["measure"] += time.perf_counter() - t1
    t = time.perf_counter()
    if rows:
        _write_part(run.catalogue_parts, batch, build_catalogue(rows))
    write_batch(run.stamps, batch, stamps)  # last: the batch's done marker
    steps["write"] = time.perf_counter() - t
    return StampBatchOutcome(
        batch=batch, n_stamps=len(stamps), odd_normalisation=tuple(odd), seconds=time.perf_counter() - started,
        step_seconds=steps,
    )


def cut_given_stamp(obj: PlannedObject, tile: np.ndarray, inverse: Any, beam_cov: np.ndarray,
                    brightness: Brightness | None) -> CutStamp:
    """A catalogue object's stamp: its flux centroid at the given pixel, its flux moments the
    given size (convolved with the beam) when there is one, inside its reserved region."""
    footprint = obj.footprint.tile_mask()
    cut, mask = linear_cut(obj.object_id, tile, footprint, mask_bbox(footprint), inverse, True)
    region = Region(obj.region, obj.fp_row0, obj.fp_col0)
    target = (obj.target_row, obj.target_col)
    shape = obj.shape_px
    if shape is None:
        moved = move_cut(cut, mask, target, region)
    else:
        moved = shape_cut(cut, mask, target, target_covariance(shape, beam_cov), region)
    if brightness is None:
        brightness = Brightness("peak", float(obj.k) * float(obj.sigma_local))
    data, norm = scale_cut(moved.data, moved.mask, brightness)
    return CutStamp(int(obj.object_id), int(obj.class_id), moved.row0, moved.col0, data, moved.mask, norm)


def _write_part(folder: Path, batch: int, table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    replace_when_done(folder / f"{batch}.parquet", lambda tmp: pq.write_table(table, tmp))


def read_catalogue_parts(folder: Path) -> pa.Table:
    """All parts, as one table sorted by id (the order of parts on disk does not matter)."""
    rows: list[dict[str, Any]] = []
    for part in sorted(folder.glob("*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return build_catalogue(rows)


# ---- the stamp store ------------------------------------------------------------------------


def batch_path(folder: Path, batch: int) -> Path:
    return Path(folder) / f"{int(batch)}{_SUFFIX}"


def write_batch(folder: Path, batch: int, stamps: Sequence[Stamp]) -> None:
    """Write one batch's stamps (in rank order). A rewrite holds the same stamps, though not the
    same file bytes (a zip member records its time)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = np.array(
        [(s.object_id, s.class_id, s.row0, s.col0, *s.data.shape) for s in stamps], dtype=np.int64
    ).reshape(len(stamps), 6)
    data = np.concatenate([np.asarray(s.data, np.float32).ravel() for s in stamps]) if stamps else np.zeros(0, np.float32)
    mask = np.concatenate([np.asarray(s.mask, bool).ravel() for s in stamps]) if stamps else np.zeros(0, bool)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: given a name, savez would append ".npz" to it
            np.savez(fh, meta=meta, data=data, mask=mask)

    replace_when_done(batch_path(folder, batch), write)


def read_batch(folder: Path, batch: int) -> list[Stamp]:
    """All stamps of one batch, in rank order."""
    with np.load(batch_path(folder, batch)) as npz:
        meta, data, mask = npz["meta"], npz["data"], npz["mask"]
    stamps, offset = [], 0
    for object_id, class_id, row0, col0, rows, cols in meta.tolist():
        end = offset + rows * cols
        stamps.append(Stamp(
            object_id, class_id, row0, col0, data[offset:end].reshape(rows, cols), mask[offset:end].reshape(rows, cols)
        ))
        offset = end
    return stamps


def read_ranks(folder: Path, ranks: Iterable[int], batch_size: int) -> list[Stamp]:
    """The stamps at ``ranks`` (in the order given), reading each batch file once."""
    ranks = [int(r) for r in ranks]
    wanted: dict[int, list[int]] = defaultdict(list)
    for rank in ranks:
        wanted[rank // batch_size].append(rank)
    found: dict[int, Stamp] = {}
    for batch, members in wanted.items():
        stamps = read_batch(folder, batch)
        for rank in members:
            found[rank] = stamps[rank - batch * batch_size]
    return [found[r] for r in ranks]


def done_batches(folder: Path) -> set[int]:
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    return {int(p.stem) for p in folder.glob(f"*{_SUFFIX}") if p.stem.isdigit()}
