"""The driver's planning stage: plan objects, give each a mask, place them, record it all.

Everything here is a function of the spec and the seed (and, for catalogue-aware maps,
of the given objects): the same inputs give the same placement table byte for byte,
whatever runs the later stages. Random maps and catalogue maps share this one stage;
they differ only in where the plans come from (the seed, or :class:`GivenObjects`) and
in how footprints are placed (at random, or at the given pixels).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from radiff_scale.compose.planner import (
    ObjectPlan,
    PlacedObject,
    Placement,
    PlacementConfig,
    mask_bbox,
    place_at,
    place_objects,
    plan_given,
    plan_objects,
)
from radiff_scale.compose.sigma import SigmaMap
from radiff_scale.data.mask_bank import MaskBank
from radiff_scale.seeding import derive_seeds

TILE = 128


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


@dataclass(frozen=True)
class GivenObjects:
    """Objects whose positions the user gives, in pixels of the map, id = index + 1.

    ``rows``/``cols`` are 0-based pixel coordinates (y, x) where each object's footprint
    centroid goes; ``class_ids`` < 0 and NaN ``k`` mean "draw it as a random map would".
    Sky coordinates and file formats are resolved before this (radiff_scale.api), so the
    planner only ever sees pixels.
    """

    rows: np.ndarray
    cols: np.ndarray
    class_ids: np.ndarray
    k: np.ndarray

    def __post_init__(self) -> None:
        arrays = {
            "rows": np.asarray(self.rows, dtype=np.float64), "cols": np.asarray(self.cols, dtype=np.float64),
            "class_ids": np.asarray(self.class_ids, dtype=np.int64), "k": np.asarray(self.k, dtype=np.float64),
        }
        lengths = {name: a.shape for name, a in arrays.items()}
        if len(set(lengths.values())) != 1 or arrays["rows"].ndim != 1:
            raise ValueError(f"given objects need 1-D arrays of one length, got {lengths}")
        for name, value in arrays.items():
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def fingerprint(self) -> str:
        """sha256 of exactly what the plan depends on: a resumed run must be given the same objects."""
        digest = hashlib.sha256(b"radiff-given-objects-v1")
        for name in ("rows", "cols", "class_ids", "k"):
            digest.update(np.ascontiguousarray(getattr(self, name)).astype("<f8" if name != "class_ids" else "<i8").tobytes())
        return digest.hexdigest()


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

    def records(self) -> list[dict]:
        return self.table.to_pylist()


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
