"""Where the planned objects go: their mask footprints placed on the map, greedily in id order.

Placement works on each object's *actual* mask footprint, not on its 128x128 tile box,
so compact objects pack as densely as their masks allow. Occupancy is kept in lazily
allocated, bit-packed 128x128 cells: memory grows with the occupied area (at most
``H*W/8`` bytes, 128 MiB for a 32768^2 map), never with a full-map array, and a
candidate is only checked against the few cells its footprint box touches.

Two ways in: :func:`place_objects` draws positions from the seed (a random map);
:func:`place_at` puts objects where a catalogue says and refuses, rather than moves,
those that do not fit. Both report every refusal in the
:class:`~radiff_scale.compose.planner.Placement` they return.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from radiff_scale.compose.planner import (
    ObjectPlan,
    PlacedObject,
    Placement,
    PlacementConfig,
    Refusal,
    UnplacedObject,
)
from radiff_scale.errors import RadiffError
from radiff_scale.seeding import derive_seeds

#: Side of an occupancy cell in pixels (one packed-bit block per cell).
CELL = 128


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Half-open bounding box (row0, row1, col0, col1) of a mask's true pixels; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class _Occupancy:
    """Occupied pixels of the map, as bit-packed CELLxCELL blocks allocated on first write."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], np.ndarray] = {}

    def _pieces(self, r0: int, c0: int, h: int, w: int) -> Iterator[tuple[tuple[int, int], slice, slice, slice, slice]]:
        """Yield (cell key, cell-row slice, cell-col slice, box-row slice, box-col slice)."""
        for cr in range(r0 // CELL, (r0 + h - 1) // CELL + 1):
            ra, rb = max(r0, cr * CELL), min(r0 + h, (cr + 1) * CELL)
            for cc in range(c0 // CELL, (c0 + w - 1) // CELL + 1):
                ca, cb = max(c0, cc * CELL), min(c0 + w, (cc + 1) * CELL)
                yield (
                    (cr, cc),
                    slice(ra - cr * CELL, rb - cr * CELL),
                    slice(ca - cc * CELL, cb - cc * CELL),
                    slice(ra - r0, rb - r0),
                    slice(ca - c0, cb - c0),
                )

    def count(self, mask: np.ndarray, r0: int, c0: int) -> int:
        """Number of true pixels of ``mask`` (placed with [0,0] at r0, c0) already occupied."""
        total = 0
        for key, cr, cc, br, bc in self._pieces(r0, c0, *mask.shape):
            cell = self.cells.get(key)
            if cell is None:
                continue
            occ = np.unpackbits(cell[cr], axis=1, count=CELL)[:, cc].view(bool)
            total += int(np.count_nonzero(occ & mask[br, bc]))
        return total

    def add(self, mask: np.ndarray, r0: int, c0: int) -> None:
        """Mark the true pixels of ``mask`` (placed with [0,0] at r0, c0) occupied; cells appear on first write."""
        for key, cr, cc, br, bc in self._pieces(r0, c0, *mask.shape):
            piece = mask[br, bc]
            if not piece.any():
                continue
            cell = self.cells.get(key)
            block = np.zeros((CELL, CELL), dtype=bool) if cell is None else np.unpackbits(cell, axis=1).view(bool)
            block[cr, cc] |= piece
            self.cells[key] = np.packbits(block, axis=1)


@dataclass(frozen=True)
class _Shape:
    """A footprint cropped to its bounding box, with the box's offset inside the tile."""

    crop: np.ndarray
    dr: int
    dc: int
    n_pixels: int


def _shape(footprint: np.ndarray) -> _Shape | None:
    """The footprint cropped to its box, so occupancy tests touch only the cells it can hit; None if empty."""
    fp = np.asarray(footprint).astype(bool, copy=False)
    if fp.ndim != 2:
        raise ValueError(f"footprint must be 2-D, got shape {fp.shape}")
    box = mask_bbox(fp)
    if box is None:
        return None
    r0, r1, c0, c1 = box
    crop = np.ascontiguousarray(fp[r0:r1, c0:c1])
    return _Shape(crop, r0, c0, int(np.count_nonzero(crop)))


def _ordered(
    plans: Sequence[ObjectPlan], footprints: Sequence[np.ndarray], extra: Sequence | None = None
) -> list[tuple[ObjectPlan, np.ndarray, object]]:
    """(plan, footprint, extra) in object-id order: greedy placement is only reproducible in one fixed order."""
    if len(footprints) != len(plans):
        raise ValueError(f"{len(plans)} plans but {len(footprints)} footprints")
    ids = [p.object_id for p in plans]
    if len(set(ids)) != len(ids):
        raise ValueError("object ids in plans are not unique")
    order = sorted(range(len(plans)), key=lambda j: plans[j].object_id)
    return [(plans[j], footprints[j], None if extra is None else extra[j]) for j in order]


def _inside_range(length: int, margin: int, offset: int, extent: int) -> tuple[int, int]:
    """Inclusive range of tile origins keeping [origin+offset, origin+offset+extent) in [margin, length-margin)."""
    return margin - offset, length - margin - extent - offset


def _accept(occupancy: _Occupancy, shape: _Shape, row0: int, col0: int, limit: float) -> tuple[bool, float]:
    """Whether the overlap with earlier footprints is within ``limit``, and the overlap fraction (for the refusal)."""
    hits = occupancy.count(shape.crop, row0 + shape.dr, col0 + shape.dc)
    frac = hits / shape.n_pixels
    return frac <= limit, frac


def _placed(plan: ObjectPlan, row0: int, col0: int) -> PlacedObject:
    return PlacedObject(plan.object_id, plan.class_id, plan.k, plan.seed, int(row0), int(col0))


def place_objects(
    plans: Sequence[ObjectPlan],
    footprints: Sequence[np.ndarray],
    map_shape: tuple[int, int],
    config: PlacementConfig,
    seed: int,
) -> Placement:
    """Place objects at random, greedily in id order, without overlapping earlier footprints.

    ``footprints[j]`` is the boolean mask of ``plans[j]`` (its tile, usually 128x128).
    Candidate origins for object i come from the stream (seed, i, "place"), drawn
    uniformly among the origins that keep the footprint inside the map minus
    ``margin_px``. An object is accepted when at most ``overlap_fraction`` of its
    footprint pixels fall on already occupied pixels; after ``max_tries`` refused
    candidates it is reported in ``Placement.unplaced``.
    """
    height, width = int(map_shape[0]), int(map_shape[1])
    occupancy = _Occupancy()
    result = Placement()
    margin = int(config.margin_px)
    ids = np.asarray([p.object_id for p in plans], dtype=np.uint64)
    place_seeds = dict(zip(ids.tolist(), derive_seeds(seed, ids, "place").tolist()))  # = derive_rng(seed, id, "place")
    for plan, footprint, _ in _ordered(plans, footprints):
        shape = _shape(footprint)
        if shape is None:
            result.unplaced.append(UnplacedObject(plan.object_id, Refusal.EMPTY, "empty footprint"))
            continue
        h, w = shape.crop.shape
        rlo, rhi = _inside_range(height, margin, shape.dr, h)
        clo, chi = _inside_range(width, margin, shape.dc, w)
        if rhi < rlo or chi < clo:
            result.unplaced.append(
                UnplacedObject(plan.object_id, Refusal.MARGIN, f"footprint {h}x{w} px does not fit in the map minus {margin} px margin")
            )
            continue
        rng = np.random.default_rng(place_seeds[plan.object_id])
        best = 1.0
        for _ in range(config.max_tries):
            row0 = int(rng.integers(rlo, rhi + 1))
            col0 = int(rng.integers(clo, chi + 1))
            ok, frac = _accept(occupancy, shape, row0, col0, config.overlap_fraction)
            if ok:
                occupancy.add(shape.crop, row0 + shape.dr, col0 + shape.dc)
                result.placed.append(_placed(plan, row0, col0))
                break
            best = min(best, frac)
        else:
            result.unplaced.append(
                UnplacedObject(
                    plan.object_id, Refusal.OVERLAP,
                    f"no free position in {config.max_tries} tries "
                    f"(least overlap {best:.3f} > allowed {config.overlap_fraction})",
                )
            )
    return result


def place_at(
    plans: Sequence[ObjectPlan],
    footprints: Sequence[np.ndarray],
    positions_rc: np.ndarray | Sequence[Sequence[float]],
    map_shape: tuple[int, int],
    config: PlacementConfig,
) -> Placement:
    """Put each object's footprint centroid at a given (row, col) map pixel (catalogue-aware path).

    The centroid is the unweighted mean pixel of the footprint; the tile origin is rounded
    to whole pixels, so the centroid lands within half a pixel of the requested position.
    Objects are taken in id order and refused (reported, not moved) when their position
    is not finite or outside the map (pixel centres are whole numbers, so the map covers
    [-0.5, side - 0.5) on each axis), or when they would break the overlap rule or leave
    the map minus ``margin_px``. Moving an object would make the catalogue lie about
    where the user asked for it; refusing it keeps the truth exact.
    """
    positions = np.asarray(positions_rc, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 2 or positions.shape[0] != len(plans):
        raise RadiffError(f"positions must be {len(plans)} (row, col) pairs, got shape {positions.shape}")
    height, width = int(map_shape[0]), int(map_shape[1])
    margin = int(config.margin_px)
    occupancy = _Occupancy()
    result = Placement()
    for plan, footprint, (prow, pcol) in _ordered(plans, footprints, positions):
        shape = _shape(footprint)
        if shape is None:
            result.unplaced.append(UnplacedObject(plan.object_id, Refusal.EMPTY, "empty footprint"))
            continue
        if not (math.isfinite(prow) and math.isfinite(pcol)):
            result.unplaced.append(UnplacedObject(plan.object_id, Refusal.PROJECTION, "position is not finite (not on the map's projection?)"))
            continue
        if not (-0.5 <= prow < height - 0.5 and -0.5 <= pcol < width - 0.5):
            result.unplaced.append(
                UnplacedObject(plan.object_id, Refusal.OUTSIDE, f"position (x={pcol:g}, y={prow:g}) is outside the {width}x{height} map")
            )
            continue
        rr, cc = np.nonzero(shape.crop)
        row0 = int(math.floor(prow - (rr.mean() + shape.dr) + 0.5))
        col0 = int(math.floor(pcol - (cc.mean() + shape.dc) + 0.5))
        h, w = shape.crop.shape
        rlo, rhi = _inside_range(height, margin, shape.dr, h)
        clo, chi = _inside_range(width, margin, shape.dc, w)
        if not (rlo <= row0 <= rhi and clo <= col0 <= chi):
            result.unplaced.append(
                UnplacedObject(plan.object_id, Refusal.MARGIN, f"footprint at (x={pcol:g}, y={prow:g}) leaves the map minus {margin} px margin")
            )
            continue
        ok, frac = _accept(occupancy, shape, row0, col0, config.overlap_fraction)
        if not ok:
            result.unplaced.append(
                UnplacedObject(
                    plan.object_id, Refusal.OVERLAP,
                    f"overlap {frac:.3f} at (x={pcol:g}, y={prow:g}) > allowed {config.overlap_fraction}",
                )
            )
            continue
        occupancy.add(shape.crop, row0 + shape.dr, col0 + shape.dc)
        result.placed.append(_placed(plan, row0, col0))
    return result
