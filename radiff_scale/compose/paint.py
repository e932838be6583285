"""Adding stamps to a window of the map: fluxes add, labels follow object ids, bytes exact.

Kept apart from the mosaic store (radiff_scale.compose.mosaic) because it is pure array
work: a window in, the same window painted out, whatever stores it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from radiff_scale.classes import OBJECT_CLASSES
from radiff_scale.compose.stamps import Stamp

#: Largest object id: the instance map is int32 and 0 means "no object".
INSTANCE_MAX = np.iinfo(np.int32).max


def box_of(bounds: Any) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of a ChunkBounds or of a 4-sequence."""
    if hasattr(bounds, "row0"):
        return bounds.row0, bounds.row1, bounds.col0, bounds.col1
    row0, row1, col0, col1 = (int(v) for v in bounds)
    return row0, row1, col0, col1


def _check_stamp(stamp: Stamp) -> None:
    """Stamp contract violations are bugs upstream: fail loudly, not with a subtly wrong map."""
    if stamp.data.ndim != 2 or stamp.data.shape != stamp.mask.shape:
        raise ValueError(f"stamp {stamp.object_id}: data {stamp.data.shape} and mask {stamp.mask.shape} must be equal 2-D shapes")
    if not 1 <= int(stamp.object_id) <= INSTANCE_MAX:
        raise ValueError(f"stamp object id {stamp.object_id} must be in 1..{INSTANCE_MAX} (0 is 'no object' in the instance map)")
    if int(stamp.class_id) not in {int(c) for c in OBJECT_CLASSES}:
        raise ValueError(f"stamp {stamp.object_id}: class id {stamp.class_id} is not an object class")


def paint_stamps(
    bounds: Any,
    image: np.ndarray,
    classes: np.ndarray,
    instances: np.ndarray,
    stamps: Iterable[Stamp],
) -> list[int]:
    """Add stamps to an image window and paint their labels, in object-id order.

    ``image``, ``classes`` and ``instances`` cover ``bounds``. Only masked pixels are
    touched; where masks overlap the later (larger) object id wins the labels while both
    fluxes add. Returns the ids of stamps that touched.

    The result is defined as float64 accumulation in id order (background, then each
    stamp) rounded once to the image's dtype. A float32 ``image`` gets exactly those
    bytes without a float64 copy of the whole window: a pixel under one stamp is one
    float32 addition (a float32 sum rounded through float64 equals the float32 sum,
    since 53 >= 2 * 24 + 2 bits), and stamps whose masks share pixels are accumulated
    in float64 over their union box only.
    """
    row0, row1, col0, col1 = box_of(bounds)
    ordered = sorted(stamps, key=lambda s: int(s.object_id))
    cuts: list[tuple[Stamp, tuple[slice, slice], tuple[int, int, int, int], np.ndarray]] = []
    for prev, stamp in zip([None, *ordered], ordered):
        if prev is not None and int(prev.object_id) == int(stamp.object_id):
            raise ValueError(f"object id {stamp.object_id} appears twice among the stamps of one chunk")
        _check_stamp(stamp)
        if not stamp.overlaps(row0, row1, col0, col1):
            continue
        r0, r1 = max(row0, stamp.row0), min(row1, stamp.row1)
        c0, c1 = max(col0, stamp.col0), min(col1, stamp.col1)
        src = (slice(r0 - stamp.row0, r1 - stamp.row0), slice(c0 - stamp.col0, c1 - stamp.col0))
        mask = np.asarray(stamp.mask[src], dtype=bool)
        if not mask.any():
            continue
        cuts.append((stamp, src, (r0 - row0, r1 - row0, c0 - col0, c1 - col0), mask))
    wide = image.dtype != np.float32
    groups = _overlap_groups([box for _, _, box, _ in cuts], [m for _, _, _, m in cuts]) if not wide else [list(range(len(cuts)))]
    for group in groups:
        if wide or (len(group) == 1 and cuts[group[0]][0].data.dtype == np.float32):
            for k in group:
                stamp, src, (r0, r1, c0, c1), mask = cuts[k]
                window = image[r0:r1, c0:c1]
                window[mask] += np.asarray(stamp.data[src], dtype=image.dtype)[mask]
            continue
        u0 = min(cuts[k][2][0] for k in group)
        u1 = max(cuts[k][2][1] for k in group)
        v0 = min(cuts[k][2][2] for k in group)
        v1 = max(cuts[k][2][3] for k in group)
        acc = image[u0:u1, v0:v1].astype(np.float64)
        for k in group:
            stamp, src, (r0, r1, c0, c1), mask = cuts[k]
            window = acc[r0 - u0 : r1 - u0, c0 - v0 : c1 - v0]
            window[mask] += np.asarray(stamp.data[src], dtype=np.float64)[mask]
        image[u0:u1, v0:v1] = acc  # untouched pixels survive the float32 -> float64 -> float32 trip exactly
    for stamp, _, (r0, r1, c0, c1), mask in cuts:
        classes[r0:r1, c0:c1][mask] = int(stamp.class_id)
        instances[r0:r1, c0:c1][mask] = int(stamp.object_id)
    return [int(stamp.object_id) for stamp, _, _, _ in cuts]


def _overlap_groups(
    boxes: Sequence[tuple[int, int, int, int]], masks: Sequence[np.ndarray] | None = None
) -> list[list[int]]:
    """Indices of (row0, row1, col0, col1) boxes grouped by transitive overlap, each group
    ascending (so stamps keep their id order inside it). With ``masks`` (one per box, of
    the box's shape) two boxes only join if their masks share a pixel: neighbours whose
    boxes merely touch need no float64 accumulation."""
    parent = list(range(len(boxes)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    if len(boxes) > 1:
        # Sweep in row0 order: box k can only overlap the boxes that start above its row1.
        b = np.asarray(boxes, dtype=np.int64)
        order = np.argsort(b[:, 0], kind="stable")
        sb = b[order]
        ends = np.searchsorted(sb[:, 0], sb[:, 1], side="left")
        for k in range(len(sb) - 1):
            rest = sb[k + 1 : ends[k]]
            if not len(rest):
                continue
            hit = (rest[:, 2] < sb[k, 3]) & (sb[k, 2] < rest[:, 3]) & (rest[:, 1] > sb[k, 0])
            for other in order[k + 1 + np.nonzero(hit)[0]]:
                a, c = int(order[k]), int(other)
                if masks is not None and not _masks_meet(boxes[a], masks[a], boxes[c], masks[c]):
                    continue
                ra, rc = root(a), root(c)
                if ra != rc:
                    parent[max(ra, rc)] = min(ra, rc)
    groups: dict[int, list[int]] = defaultdict(list)
    for k in range(len(boxes)):
        groups[root(k)].append(k)
    return list(groups.values())


def _masks_meet(
    box_a: tuple[int, int, int, int], mask_a: np.ndarray, box_b: tuple[int, int, int, int], mask_b: np.ndarray
) -> bool:
    """Whether two masks, placed at their (row0, row1, col0, col1) boxes, share a pixel."""
    r0, r1 = max(box_a[0], box_b[0]), min(box_a[1], box_b[1])
    c0, c1 = max(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    if r0 >= r1 or c0 >= c1:
        return False
    a = mask_a[r0 - box_a[0] : r1 - box_a[0], c0 - box_a[2] : c1 - box_a[2]]
    b = mask_b[r0 - box_b[0] : r1 - box_b[0], c0 - box_b[2] : c1 - box_b[2]]
    return bool(np.logical_and(a, b).any())
