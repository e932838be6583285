"""The planning stage, on the driver: plan objects, give each a mask, place them, record it all.

Everything here is a function of the spec and the seed (and, for catalogue-aware maps,
of the given objects): the same inputs give the same placement table byte for byte,
whatever runs the later stages. Random maps and catalogue maps share this one stage;
they differ only in where the plans come from (the seed, or :class:`GivenObjects`) and
in how footprints are placed (at random, or at the given pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from radiff_scale.beam import Beam
from radiff_scale.compose.given import GivenObjects
from radiff_scale.compose.given_stamps import reserve_region, target_covariance
from radiff_scale.compose.moments import beam_covariance
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
    "flux_req_jy", "target_row", "target_col", "shape_major_px", "shape_minor_px", "shape_pa_deg",
)
#: The float columns (the others are int64); NaN where a value does not apply.
FLOAT_COLUMNS = frozenset(("k", "sigma_local", "flux_req_jy", "target_row", "target_col",
                           "shape_major_px", "shape_minor_px", "shape_pa_deg"))


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
    flux_req_jy: float = math.nan
    target_row: float = math.nan
    target_col: float = math.nan
    shape_major_px: float = math.nan
    shape_minor_px: float = math.nan
    shape_pa_deg: float = math.nan
    region: np.ndarray | None = None

    @property
    def given(self) -> bool:
        """Whether a catalogue says where (and maybe how large) this object is."""
        return not np.isnan(self.target_row)

    @property
    def shape_px(self) -> tuple[float, float, float] | None:
        return None if np.isnan(self.shape_major_px) else (self.shape_major_px, self.shape_minor_px, self.shape_pa_deg)

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
    regions: list[np.ndarray | None] = field(default_factory=list)  # by rank; None for random objects

    def objects(self) -> list[PlannedObject]:
        """Every placed object, in rank order, with its footprint (and region)."""
        regions = self.regions or [None] * self.table.num_rows
        return [
            PlannedObject(**{k: (float(v) if k in FLOAT_COLUMNS else int(v)) for k, v in row.items()},
                          footprint=footprint, region=region)
            for row, footprint, region in zip(self.table.to_pylist(), self.masks.footprints, regions)
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
    beam: Beam | None = None,
) -> PlannedMap:
    """Plan, pick masks and place: at random from the seed, or at the ``given`` pixels.

    With ``given``, ``config.n_objects``/``density_per_deg2`` are ignored (the objects
    are the given ones) while the class fractions, k law, overlap fraction and margin
    still apply; objects that cannot go where asked are in ``placement.unplaced``.
    ``chunk``: the mosaic's chunk side, which sets the rank order (see :class:`PlannedMap`).
    ``beam``: the map's, which a given size is convolved with (needed when ``given`` has sizes).

    A given object is placed by the *region* reserved for it
    (:func:`~radiff_scale.compose.given_stamps.reserve_region`: its mask grown, and
    stretched to the given size), centred on the given pixel; its stamp later puts its
    flux centroid there and stays inside the region.
    """
    if given is None:
        plans = plan_objects(config, shape, seed, pixel_scale_arcsec)
    else:
        plans = plan_given(config, seed, given.class_ids, given.k, given.flux_jy)
    bank_index, footprints = pick_footprints(plans, bank, seed)
    # The planner places the crops; the tile origin is the crop origin minus its offset.
    if given is None:
        crops = [f.crop for f in footprints]
        placement = place_objects(plans, crops, shape, config, seed)
    else:
        crops = _given_regions(given, footprints, beam, pixel_scale_arcsec)
        placement = place_at(plans, crops, np.column_stack([given.rows, given.cols]), shape, config)
    position = {p.object_id: i for i, p in enumerate(plans)}
    ranked = _rank_order(placement.placed, chunk)
    sigma_local = _local_sigma(ranked, [crops[position[o.object_id]].shape for o in ranked], sigma)
    columns: dict[str, list] = {name: [] for name in OBJECT_COLUMNS}
    kept: list[Footprint] = []
    regions: list[np.ndarray | None] = []
    nan = math.nan
    for rank, obj in enumerate(ranked):
        i = position[obj.object_id]
        f = footprints[i]
        h, w = crops[i].shape
        fp = (obj.row0, obj.row0 + h, obj.col0, obj.col0 + w)
        if given is None:
            tile_row0, tile_col0 = obj.row0 - f.row0, obj.col0 - f.col0
            extra = (plans[i].flux_jy, nan, nan, nan, nan, nan)  # the flux is NaN in k mode
        else:  # the tile's background patch is centred on the region
            tile_row0, tile_col0 = obj.row0 + h // 2 - TILE // 2, obj.col0 + w // 2 - TILE // 2
            extra = (plans[i].flux_jy, float(given.rows[i]), float(given.cols[i]), float(given.major_px[i]),
                     float(given.minor_px[i]), float(given.pa_deg[i]))
        values = (
            obj.object_id, obj.class_id, obj.k, obj.seed, tile_row0, tile_col0, rank,
            sigma_local[rank], *fp, int(bank_index[i]), *extra,
        )
        for name, value in zip(columns, values):
            columns[name].append(value)
        kept.append(f)
        regions.append(None if given is None else crops[i])
    placed = sorted(
        (PlacedObject(o.object_id, o.class_id, o.k, o.seed, row0, col0)
         for o, row0, col0 in zip(ranked, columns["row0"], columns["col0"])),
        key=lambda o: o.object_id,
    )
    placement = Placement(placed=placed, unplaced=placement.unplaced)
    table = pa.table({
        name: pa.array(values, type=pa.float64() if name in FLOAT_COLUMNS else pa.int64())
        for name, values in columns.items()
    })
    return PlannedMap(table=table, masks=FootprintStack(kept), placement=placement, n_planned=len(plans),
                      regions=regions)


def _given_regions(given: GivenObjects, footprints: list[Footprint], beam: Beam | None,
                   pixel_scale_arcsec: float) -> list[np.ndarray]:
    """The region each given object reserves (its mask grown, or stretched to its given size)."""
    beam_cov = None
    if np.isfinite(given.major_px).any():
        if beam is None:
            raise ValueError("given sizes need the map's beam")
        beam_cov = beam_covariance(beam, pixel_scale_arcsec)
    regions = []
    for i, f in enumerate(footprints):
        target = None
        if given.has_shape(i) and f.crop.size:
            target = target_covariance((given.major_px[i], given.minor_px[i], given.pa_deg[i]), beam_cov)
        regions.append(reserve_region(f.crop, target) if f.crop.size else f.crop)
    return regions


def _local_sigma(ranked: list[PlacedObject], shapes: list[tuple[int, int]], sigma: SigmaMap) -> list[float]:
    """Sigma at each object's footprint-box centre, one vectorised lookup for all of them."""
    rows = np.asarray([o.row0 + (s[0] - 1) / 2.0 for o, s in zip(ranked, shapes)], dtype=np.float64)
    cols = np.asarray([o.col0 + (s[1] - 1) / 2.0 for o, s in zip(ranked, shapes)], dtype=np.float64)
    return sigma.at(rows, cols).tolist() if len(ranked) else []


def _rank_order(placed: list[PlacedObject], chunk: int | None) -> list[PlacedObject]:
    """``placed`` (placed crops, id order) sorted by owner chunk, then id. The owner is the
    chunk holding the top-left pixel of the object's footprint box (here the crop origin)."""
    if chunk is None:
        return list(placed)
    return sorted(placed, key=lambda o: (o.row0 // chunk, o.col0 // chunk, o.object_id))
