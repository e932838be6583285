"""The driver's planning stage: plan objects, give each a mask, place them, record it all.

Everything here is a function of the spec and the seed: the same spec gives the same
placement table byte for byte, whatever runs the later stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from radiff_scale.compose.planner import (
    ObjectPlan,
    Placement,
    PlacementConfig,
    mask_bbox,
    place_objects,
    plan_objects,
)
from radiff_scale.compose.sigma import SigmaMap
from radiff_scale.data.mask_bank import MaskBank
from radiff_scale.seeding import derive_seed


@dataclass
class PlannedMap:
    """The placement as columns (one row per placed object, in rank = id order) and masks."""

    table: pa.Table
    masks: np.ndarray  # uint8 (n_placed, 128, 128): each placed object's single-object class mask
    placement: Placement
    n_planned: int

    def records(self) -> list[dict]:
        return self.table.to_pylist()


def pick_masks(plans: list[ObjectPlan], bank: MaskBank, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One single-object mask per plan, from the bank, by (seed, object id) only."""
    masks = np.zeros((len(plans), 128, 128), dtype=np.uint8)
    indices = np.zeros(len(plans), dtype=np.int64)
    for i, plan in enumerate(plans):
        indices[i], masks[i] = bank.pick(plan.class_id, derive_seed(seed, plan.object_id, "mask"))
    return indices, masks


def plan_map(
    config: PlacementConfig,
    shape: tuple[int, int],
    pixel_scale_arcsec: float,
    seed: int,
    bank: MaskBank,
    sigma: SigmaMap,
) -> PlannedMap:
    plans = plan_objects(config, shape, seed, pixel_scale_arcsec)
    bank_index, masks = pick_masks(plans, bank, seed)
    footprints = [m > 0 for m in masks]
    placement = place_objects(plans, footprints, shape, config, seed)
    position = {p.object_id: i for i, p in enumerate(plans)}
    columns: dict[str, list] = {name: [] for name in (
        "object_id", "class_id", "k", "seed", "row0", "col0", "rank", "sigma_local",
        "fp_row0", "fp_row1", "fp_col0", "fp_col1", "bank_index",
    )}
    kept = []
    for rank, obj in enumerate(placement.placed):
        i = position[obj.object_id]
        r0, r1, c0, c1 = mask_bbox(footprints[i])
        fp = (obj.row0 + r0, obj.row0 + r1, obj.col0 + c0, obj.col0 + c1)
        centre_row, centre_col = (fp[0] + fp[1] - 1) / 2.0, (fp[2] + fp[3] - 1) / 2.0
        values = (
            obj.object_id, obj.class_id, obj.k, obj.seed, obj.row0, obj.col0, rank,
            float(sigma.at(centre_row, centre_col)), *fp, int(bank_index[i]),
        )
        for name, value in zip(columns, values):
            columns[name].append(value)
        kept.append(i)
    table = pa.table({
        name: pa.array(values, type=pa.float64() if name in ("k", "sigma_local") else pa.int64())
        for name, values in columns.items()
    })
    placed_masks = masks[kept] if kept else np.zeros((0, 128, 128), dtype=np.uint8)
    return PlannedMap(table=table, masks=placed_masks, placement=placement, n_planned=len(plans))
