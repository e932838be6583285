"""The planning stage, on the driver: plan objects, give each a mask, place them, record it all.

Everything here is a function of the spec and the seed (and, for catalogue-aware maps,
of the given objects): the same inputs give the same placement table byte for byte,
whatever runs the later stages. Random maps and catalogue maps share this one stage;
they differ only in where the plans come from (the seed, or :class:`GivenObjects`) and
in how footprints are placed (at random, or at the given pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from radiff_scale.compose.given import GivenObjects
from radiff_scale.compose.placement import mask_bbox, place_at, place_objects
from radiff_scale.compose.planner import (
    ObjectPlan,
    PlacedObject,
    Placement,
    PlacementConfig,
    plan_given,
    plan_objects,
)
from radiff_scale.compose.sigma import SigmaMap
from radiff_scale.constants import TILE
from radiff_scale.data.mask_bank import MaskBank
from radiff_scale.seeding import derive_seeds


#: Columns of the placement table (one row per placed object, in rank order).
OBJECT_COLUMNS = (
    "object_id", "class_id", "k", "seed", "row0", "col0", "rank", "sigma_local",
    "fp_row0", "fp_row1", "fp_col0", "fp_col1", "bank_index",
)


@dataclass(frozen=True)
class Footprint:
    """One object's single-object mask, kept as its bounding-box crop (a few hundred bytes,
    not 16 kB): 60,000 full 128x128 masks would hold a gigabyte on the driver."""

    crop: np.ndarray  # bool (h, w)
    row0: int  # offset of the crop inside the 128x128 tile
    col0: int
    class_id: int

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> Footprint:
        box = mask_bbox(mask > 0)
        if box is None:
            return cls(np.zeros((0, 0), dtype=bool), 0, 0, 0)
        r0, r1, c0, c1 = box
        values = mask[r0:r1, c0:c1]
        classes = np.unique(values[values > 0])
        if len(classes) != 1:
            raise ValueError(f"a single-object mask must hold one class, found {classes.tolist()}")
        return cls(np.ascontiguousarray(values > 0), r0, c0, int(classes[0]))

    def full(self, size: int = TILE) -> np.ndarray:
        """The uint8 class mask on the tile grid (exactly the picked mask)."""
        out = np.zeros((size, size), dtype=np.uint8)
        h, w = self.crop.shape
        out[self.row0 : self.row0 + h, self.col0 : self.col0 + w][self.crop] = self.class_id
        return out

    def tile_mask(self, size: int = TILE) -> np.ndarray:
        """The boolean mask on the tile grid."""
        mask = np.zeros((size, size), dtype=bool)
        h, w = self.crop.shape
        mask[self.row0 : self.row0 + h, self.col0 : self.col0 + w] = self.crop
        return mask


@dataclass(frozen=True)
class PlannedObject:
    """One placed object as every later stage sees it: a row of the placement table and its mask.

    ``row0, col0`` is where its 128x128 tile's pixel (0, 0) lands on the map; ``fp_*``
    the half-open box of its footprint on the map; ``rank`` its place in the tile and
    stamp stores; ``sigma_local`` the map's noise at the footprint box centre, which
    with ``k`` sets its peak; ``bank_index`` the mask (or tile-bank entry) it was given.
    """

    object_id: int
    class_id: int
    k: float
    seed: int
    row0: int
    col0: int
    rank: int
    sigma_local: float
    fp_row0: int
    fp_row1: int
    fp_col0: int
    fp_col1: int
    bank_index: int
    footprint: Footprint

    @property
    def footprint_box(self) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) of the footprint on the map, half-open."""
        return self.fp_row0, self.fp_row1, self.fp_col0, self.fp_col1

    def placed(self) -> PlacedObject:
        return PlacedObject(self.object_id, self.class_id, self.k, self.seed, self.row0, self.col0)


class FootprintStack:
    """Full masks on demand: ``stack[i]`` or ``stack[a:b]`` gives uint8 (…, 128, 128)."""

    def __init__(self, footprints: list[Footprint]) -> None:
        self.footprints = footprints

    def __len__(self) -> int:
        return len(self.footprints)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            chosen = self.footprints[index]
            if not chosen:
                return np.zeros((0, TILE, TILE), dtype=np.uint8)
            return np.stack([f.full() for f in chosen])
        return self.footprints[index].full()


@dataclass
class PlannedMap:
    """The placement as columns (one row per placed object, in rank order) and masks.

    Rank is the object's place in the tile store. Objects are ranked by the chunk that
    owns them (row-major), then by id, so a chunk owner finds its tiles in a few
    consecutive store chunks instead of one or two tiles in almost every store chunk
    (a 2048^2 chunk of an SDC-like map holds ~240 objects of 60,000). Without a chunk
    size, rank is id order.
    """

    table: pa.Table
    masks: FootprintStack  # each placed object's single-object class mask, by rank
    placement: Placement
    n_planned: int

    def objects(self) -> list[PlannedObject]:
        """Every placed object, in rank order, with its footprint."""
        return [
            PlannedObject(**{k: (float(v) if k in ("k", "sigma_local") else int(v)) for k, v in row.items()},
                          footprint=footprint)
            for row, footprint in zip(self.table.to_pylist(), self.masks.footprints)
        ]


def pick_footprints(plans: list[ObjectPlan], bank: MaskBank, seed: int) -> tuple[np.ndarray, list[Footprint]]:
    """One single-object mask per plan, from the bank, by (seed, object id) only."""
    indices = np.zeros(len(plans), dtype=np.int64)
    footprints = []
    mask_seeds = derive_seeds(seed, np.asarray([p.object_id for p in plans], dtype=np.uint64), "mask").tolist()
    for i, (plan, mask_seed) in enumerate(zip(plans, mask_seeds)):
        indices[i], mask = bank.pick(plan.class_id, mask_seed)
        footprints.append(Footprint.from_mask(mask))
    return indices, footprints


def plan_map(
    config: PlacementConfig,
    shape: tuple[int, int],
    pixel_scale_arcsec: float,
    seed: int,
    bank: MaskBank,
    sigma: SigmaMap,
    given: GivenObjects | None = None,
    chunk: int | None = None,
) -> PlannedMap:
    """Plan, pick masks and place: at random from the seed, or at the ``given`` pixels.

    With ``given``, ``config.n_objects``/``density_per_deg2`` are ignored (the objects
    are the given ones) while the class fractions, k law, overlap fraction and margin
    still apply; objects that cannot go where asked are in ``placement.unplaced``.
    ``chunk``: the mosaic's chunk side, which sets the rank order (see :class:`PlannedMap`).
    """
    if given is None:
        plans = plan_objects(config, shape, seed, pixel_scale_arcsec)
    else:
        plans = plan_given(config, seed, given.class_ids, given.k)
    bank_index, footprints = pick_footprints(plans, bank, seed)
    # The planner places the crops; the tile origin is the crop origin minus its offset.
    crops = [f.crop for f in footprints]
    if given is None:
        placement = place_objects(plans, crops, shape, config, seed)
    else:
        placement = place_at(plans, crops, np.column_stack([given.rows, given.cols]), shape, config)
    position = {p.object_id: i for i, p in enumerate(plans)}
    ranked = _rank_order(placement.placed, chunk)
    sigma_local = _local_sigma(ranked, [footprints[position[o.object_id]] for o in ranked], sigma)
    columns: dict[str, list] = {name: [] for name in OBJECT_COLUMNS}
    kept: list[Footprint] = []
    for rank, obj in enumerate(ranked):
        i = position[obj.object_id]
        f = footprints[i]
        h, w = f.crop.shape
        fp = (obj.row0, obj.row0 + h, obj.col0, obj.col0 + w)
        tile_row0, tile_col0 = obj.row0 - f.row0, obj.col0 - f.col0
        values = (
            obj.object_id, obj.class_id, obj.k, obj.seed, tile_row0, tile_col0, rank,
            sigma_local[rank], *fp, int(bank_index[i]),
        )
        for name, value in zip(columns, values):
            columns[name].append(value)
        kept.append(f)
    placed = sorted(
        (PlacedObject(o.object_id, o.class_id, o.k, o.seed, row0, col0)
         for o, row0, col0 in zip(ranked, columns["row0"], columns["col0"])),
        key=lambda o: o.object_id,
    )
    placement = Placement(placed=placed, unplaced=placement.unplaced)
    table = pa.table({
        name: pa.array(values, type=pa.float64() if name in ("k", "sigma_local") else pa.int64())
        for name, values in columns.items()
    })
    return PlannedMap(table=table, masks=FootprintStack(kept), placement=placement, n_planned=len(plans))


def _local_sigma(ranked: list[PlacedObject], footprints: list[Footprint], sigma: SigmaMap) -> list[float]:
    """Sigma at each object's footprint-box centre, one vectorised lookup for all of them."""
    rows = np.asarray([o.row0 + (f.crop.shape[0] - 1) / 2.0 for o, f in zip(ranked, footprints)], dtype=np.float64)
    cols = np.asarray([o.col0 + (f.crop.shape[1] - 1) / 2.0 for o, f in zip(ranked, footprints)], dtype=np.float64)
    return sigma.at(rows, cols).tolist() if len(ranked) else []


def _rank_order(placed: list[PlacedObject], chunk: int | None) -> list[PlacedObject]:
    """``placed`` (placed crops, id order) sorted by owner chunk, then id. The owner is the
    chunk holding the top-left pixel of the object's footprint box (here the crop origin)."""
    if chunk is None:
        return list(placed)
    return sorted(placed, key=lambda o: (o.row0 // chunk, o.col0 // chunk, o.object_id))
