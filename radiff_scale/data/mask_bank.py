"""A bank of real semantic masks, and single objects drawn from it for the map job.

The map job puts one object on each generated tile, so it needs real masks that
hold exactly one object of a given class, recentred on the tile. The bank that
ships with the package (``radiff_scale/assets/masks/mask_bank.npz``, see the
README.md next to it) holds the 7,354 development masks of the radio-tiramisu
archive, centre-cropped from 132x132 to 128x128; a user's clone has no shared
data folder, so the bank has to travel with the code.

What counts as one object (see :func:`object_masks`):

* extended: all class-3 pixels of a mask together. A radio galaxy is often two
  or three islands (core and lobes: 1,523 of the 2,618 shipped extended masks
  have more than one island) that a per-island split would tear apart. The
  semantic masks carry no instance ids, so two unrelated galaxies in one mask
  also stay one object; they cannot be told from a wide double-lobed galaxy
  (111 masks have two comparable islands more than 30 pixels apart, an upper
  bound on such cases), and the archive's cutouts are centred on one galaxy.
* compact: each 8-connected component of class 2 (compact sources are single
  islands and often several share a cutout).
* spurious: all class-1 pixels together (a sidelobe pattern is one artefact
  around one bright source, however many islands it breaks into).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from radiff_scale.classes import NUM_CLASSES, OBJECT_CLASSES, SourceClass, class_from_id
from radiff_scale.errors import RadiffError
from radiff_scale.seeding import derive_rng

#: Side of the tiles the models work on, and of every mask the bank hands out.
BANK_SIZE = 128

#: Largest size difference handled by a centre crop (or pad) instead of a resize:
#: a few pixels of border hold almost nothing, a resize would change the pixel scale.
MAX_CROP = 8

#: Objects smaller than this many pixels are annotation crumbs (a beam covers ~10
#: pixels in the source survey) and are not picked while bigger ones exist.
MIN_OBJECT_PIXELS = 4

#: Purpose string of the seed stream behind :meth:`MaskBank.pick`.
PICK_PURPOSE = "mask-bank-pick"

_SHIPPED = ("assets", "masks", "mask_bank.npz")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_INDEX_BLOCK = 256  # masks labelled per call while indexing (bounds the label array to ~16 MB)


def _check_ids(mask: np.ndarray, where: str) -> None:
    if not np.issubdtype(mask.dtype, np.integer) and not np.issubdtype(mask.dtype, np.bool_):
        raise RadiffError(f"{where}: masks must hold integer class ids, got dtype {mask.dtype}")
    if mask.size and (int(mask.min()) < 0 or int(mask.max()) >= NUM_CLASSES):
        found = f"{int(mask.min())}..{int(mask.max())}"
        raise RadiffError(f"{where}: class ids must be in 0..{NUM_CLASSES - 1}, found {found}")


def _axis_index(n_in: int, size: int, max_crop: int) -> tuple[np.ndarray, int]:
    """Source index for each output position along one axis (-1 = padding) and the pad offset."""
    diff = n_in - size
    if 0 <= diff <= max_crop:  # centre crop (or identity)
        return np.arange(size) + diff // 2, 0
    if -max_crop <= diff < 0:  # centre pad
        idx = np.full(size, -1)
        start = (-diff) // 2
        idx[start : start + n_in] = np.arange(n_in)
        return idx, start
    # nearest neighbour: output pixel centre -> input pixel containing it
    idx = np.floor((np.arange(size) + 0.5) * n_in / size).astype(np.int64)
    return np.minimum(idx, n_in - 1), 0


def crop_or_resize(mask: np.ndarray, size: int = BANK_SIZE, max_crop: int = MAX_CROP) -> np.ndarray:
    """A ``size`` x ``size`` uint8 copy of a class-id mask (or of each mask of an (N, H, W) stack).

    Per axis: a centre crop when the mask is larger by at most ``max_crop`` pixels,
    a centred zero pad (background) when it is smaller by at most that, and a
    nearest-neighbour resize otherwise. Every output pixel is a copy of an input
    pixel or background, so class ids are never interpolated (a resize may still
    drop objects thinner than the step).
    """
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3) or 0 in mask.shape:
        raise RadiffError(f"a mask must be a non-empty 2-D array (or a stack of them), got shape {mask.shape}")
    _check_ids(mask, "mask")
    rows, _ = _axis_index(mask.shape[-2], size, max_crop)
    cols, _ = _axis_index(mask.shape[-1], size, max_crop)
    out = mask[..., np.clip(rows, 0, None)[:, None], np.clip(cols, 0, None)[None, :]].astype(np.uint8)
    out[..., rows < 0, :] = 0
    out[..., :, cols < 0] = 0
    return out


def object_masks(mask: np.ndarray) -> list[tuple[SourceClass, np.ndarray]]:
    """The single objects of a class-id mask, in a fixed order.

    Order: spurious (one object), compact components in raster order of their
    first pixel, extended (one object). Each entry is the object's class and a
    boolean mask of its pixels; see the module docstring for the grouping rules.
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    objects: list[tuple[SourceClass, np.ndarray]] = []
    spurious = mask == SourceClass.SPURIOUS
    if spurious.any():
        objects.append((SourceClass.SPURIOUS, spurious))
    labels, count = ndimage.label(mask == SourceClass.COMPACT, structure=_EIGHT_CONNECTED)
    objects.extend((SourceClass.COMPACT, labels == k) for k in range(1, count + 1))
    extended = mask == SourceClass.EXTENDED
    if extended.any():
        objects.append((SourceClass.EXTENDED, extended))
    return objects


def recentre(pixels: np.ndarray, class_id: int) -> np.ndarray:
    """A uint8 mask holding only ``pixels`` (labelled ``class_id``), moved so the
    centre of its bounding box sits on the tile centre.

    The bounding box, not the centroid, is centred: a lopsided galaxy keeps all
    its pixels on the tile. For even sides the box centre lands within half a pixel
    of ``(side - 1) / 2``.
    """
    pixels = np.asarray(pixels, dtype=bool)
    rows, cols = np.nonzero(pixels)
    if rows.size == 0:
        raise ValueError("cannot recentre an empty object")
    out = np.zeros(pixels.shape, dtype=np.uint8)
    shift_r = ((pixels.shape[0] - 1) - int(rows.min() + rows.max())) // 2
    shift_c = ((pixels.shape[1] - 1) - int(cols.min() + cols.max())) // 2
    out[rows + shift_r, cols + shift_c] = int(class_id)
    return out


@dataclass(frozen=True)
class _ObjectIndex:
    """Every object of one class in the bank: where it is and whether it is pickable."""

    bank_index: np.ndarray  # int64: which mask
    component: np.ndarray  # int64: compact: label of the component in that mask (1..); others 0
    pixels: np.ndarray  # int64: object size
    touches_edge: np.ndarray  # bool: cut by the tile border (truncated)
    box: np.ndarray  # int64 (n, 4): row0, row1, col0, col1 of the object's pixels in its mask


class MaskBank:
    """Real class-id masks, served as ``BANK_SIZE`` x ``BANK_SIZE`` uint8 arrays."""

    def __init__(
        self, masks: np.ndarray, names: Sequence[str] | None = None, *, source: str = "mask bank"
    ) -> None:
        masks = np.asarray(masks)
        if masks.ndim != 3 or 0 in masks.shape:
            raise RadiffError(f"{source}: masks must be a non-empty (N, H, W) array, got shape {masks.shape}")
        _check_ids(masks, source)
        if names is None:
            names = [f"mask{i:05d}" for i in range(len(masks))]
        names = [str(n) for n in names]
        if len(names) != len(masks):
            raise RadiffError(f"{source}: {len(names)} names for {len(masks)} masks")
        # stored at tile size once, so that serving a mask is a copy
        if masks.shape[1:] != (BANK_SIZE, BANK_SIZE):
            masks = crop_or_resize(masks, BANK_SIZE)
        self._masks = masks.astype(np.uint8, copy=False)
        self._names = names
        self.source = source
        self._index: dict[SourceClass, _ObjectIndex] | None = None
        self._candidates: dict[tuple[SourceClass, int], np.ndarray] = {}

    @classmethod
    def from_npz(cls, path: str | Path) -> MaskBank:
        """Load an ``.npz`` with ``masks`` (N, H, W) and optionally ``names`` (no pickles)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "masks" not in data.files:
                    found = ", ".join(data.files) or "none"
                    raise RadiffError(f"mask bank {path} has no 'masks' array (found: {found})")
                masks = data["masks"]
                names = data["names"].tolist() if "names" in data.files else None
        except (OSError, ValueError) as exc:
            raise RadiffError(f"cannot read mask bank {path}: {exc}") from None
        if masks.dtype == np.bool_:  # True would silently mean class 1 (spurious) everywhere
            raise RadiffError(f"{path}: masks must hold integer class ids 0..{NUM_CLASSES - 1}, got dtype bool")
        return cls(masks, names, source=str(path))

    @classmethod
    def default(cls) -> MaskBank:
        """The bank shipped with the package (real radio-tiramisu masks)."""
        resource = resources.files("radiff_scale").joinpath(*_SHIPPED)
        if not resource.is_file():
            raise RadiffError(f"the shipped mask bank {'/'.join(_SHIPPED)} is missing from this installation")
        with resources.as_file(resource) as path:
            return cls.from_npz(path)

    def __len__(self) -> int:
        return len(self._masks)

    @property
    def names(self) -> list[str]:
        """Original file name of each mask (provenance for manifests and catalogues)."""
        return list(self._names)

    def mask(self, i: int) -> np.ndarray:
        """Mask ``i`` as uint8 (BANK_SIZE, BANK_SIZE), class ids as stored."""
        if not 0 <= int(i) < len(self):
            raise IndexError(f"mask index {i} outside 0..{len(self) - 1}")
        return self._masks[int(i)].copy()

    def _objects(self) -> dict[SourceClass, _ObjectIndex]:
        """Build (once per instance) the table of every object in the bank.

        Vectorised over blocks of masks: compact components are labelled in one
        3-D call whose structure never connects neighbouring masks, which numbers
        them in the same raster order as the per-mask labelling in
        :func:`object_masks`.
        """
        if self._index is None:
            from scipy import ndimage

            parts: dict[SourceClass, list[np.ndarray]] = {c: [] for c in OBJECT_CLASSES}
            in_plane = np.zeros((3, 3, 3), dtype=bool)
            in_plane[1] = _EIGHT_CONNECTED
            for start in range(0, len(self), _INDEX_BLOCK):
                block = self._masks[start : start + _INDEX_BLOCK]
                border = np.ones(block.shape[1:], dtype=bool)
                border[1:-1, 1:-1] = False
                for cls in (SourceClass.SPURIOUS, SourceClass.EXTENDED):
                    hit = block == cls
                    pixels = hit.sum(axis=(1, 2))
                    where = np.flatnonzero(pixels)
                    edge = hit[:, border].any(axis=1)
                    rows_hit, cols_hit = hit[where].any(axis=2), hit[where].any(axis=1)
                    box = [rows_hit.argmax(axis=1), rows_hit.shape[1] - rows_hit[:, ::-1].argmax(axis=1),
                           cols_hit.argmax(axis=1), cols_hit.shape[1] - cols_hit[:, ::-1].argmax(axis=1)]
                    parts[cls].append(
                        np.stack([where + start, np.zeros_like(where), pixels[where], edge[where], *box], axis=1)
                    )
                labels, count = ndimage.label(block == SourceClass.COMPACT, structure=in_plane)
                if count:
                    pixels = np.bincount(labels.ravel(), minlength=count + 1)[1:]
                    slices = ndimage.find_objects(labels)
                    owner = np.array([s[0].start for s in slices])
                    box = np.array([(s[1].start, s[1].stop, s[2].start, s[2].stop) for s in slices]).T
                    # labels run in scan order, so each mask's components are consecutive
                    assert np.all(np.diff(owner) >= 0)
                    first_label = np.zeros(len(block), dtype=np.int64)
                    seen = np.r_[True, owner[1:] != owner[:-1]]
                    first_label[owner[seen]] = np.flatnonzero(seen)
                    component = np.arange(count) - first_label[owner] + 1
                    edge = np.zeros(count + 1, dtype=bool)
                    edge[np.unique(labels[:, border])] = True
                    parts[SourceClass.COMPACT].append(
                        np.stack([owner + start, component, pixels, edge[1:], *box], axis=1)
                    )
            index = {}
            for cls, chunks in parts.items():
                table = np.concatenate(chunks).astype(np.int64) if chunks else np.zeros((0, 8), np.int64)
                index[cls] = _ObjectIndex(table[:, 0], table[:, 1], table[:, 2], table[:, 3].astype(bool), table[:, 4:8])
            self._index = index
        return self._index

    def entries_with(self, class_id: int) -> np.ndarray:
        """Sorted indices of the masks that hold at least one object of ``class_id``."""
        return np.unique(self._objects()[_object_class(class_id)].bank_index)

    def pick(self, class_id: int, seed: int, *, min_pixels: int = MIN_OBJECT_PIXELS) -> tuple[int, np.ndarray]:
        """One real object of ``class_id``, chosen by ``seed`` alone.

        Returns the bank index it came from and a uint8 mask holding only that
        object (its class id on its pixels, 0 elsewhere), recentred on the tile.
        Each real object is equally likely, among those not cut by the tile border
        and of at least ``min_pixels`` pixels (all of the class if none qualify).
        The draw uses the ``PICK_PURPOSE`` stream of ``seed``, a per-object seed
        from :mod:`radiff_scale.seeding`, so it never depends on call order.
        """
        cls = _object_class(class_id)
        table = self._objects()[cls]
        if table.bank_index.size == 0:
            raise RadiffError(f"{self.source} holds no {cls.label} object to pick")
        candidates = self._candidates.get((cls, min_pixels))
        if candidates is None:
            good = np.flatnonzero(~table.touches_edge & (table.pixels >= min_pixels))
            candidates = self._candidates[(cls, min_pixels)] = good if good.size else np.arange(table.bank_index.size)
        rng = derive_rng(int(seed), int(cls), PICK_PURPOSE)
        row = int(candidates[rng.integers(candidates.size)])
        bank_index = int(table.bank_index[row])
        return bank_index, self._recentred(bank_index, cls, table.box[row])

    def _recentred(self, bank_index: int, cls: SourceClass, box: np.ndarray) -> np.ndarray:
        """``recentre`` of the object in ``box`` (as :func:`object_masks` finds it), from the box only.

        A planner picks tens of thousands of objects; labelling and scanning the whole
        128x128 mask for each took ~0.4 ms of the ~0.6 ms a pick cost. Inside its box a
        compact component is the one label whose extent is the whole box: a second one
        would need a top-to-bottom and a left-to-right path too, and two such 8-connected
        paths cannot avoid touching, so they would be one component.
        """
        r0, r1, c0, c1 = (int(v) for v in box)
        pixels = self._masks[bank_index, r0:r1, c0:c1] == cls
        if cls == SourceClass.COMPACT:
            from scipy import ndimage

            labels, count = ndimage.label(pixels, structure=_EIGHT_CONNECTED)
            if count > 1:
                whole = (slice(0, r1 - r0), slice(0, c1 - c0))
                (label,) = [k + 1 for k, s in enumerate(ndimage.find_objects(labels)) if s == whole]
                pixels = labels == label
        side_r, side_c = self._masks.shape[1:]
        dr = ((side_r - 1) - (r0 + r1 - 1)) // 2  # as recentre: the box centre onto the tile centre
        dc = ((side_c - 1) - (c0 + c1 - 1)) // 2
        out = np.zeros((side_r, side_c), dtype=np.uint8)
        out[r0 + dr : r1 + dr, c0 + dc : c1 + dc][pixels] = int(cls)
        return out


def _object_class(class_id: int) -> SourceClass:
    cls = class_from_id(class_id)
    if cls not in OBJECT_CLASSES:
        known = ", ".join(f"{c.label} ({int(c)})" for c in OBJECT_CLASSES)
        raise RadiffError(f"class {cls.label} ({int(cls)}) is not an object class; pick one of {known}")
    return cls


def build_shipped_bank(src: str | Path, dst: str | Path, size: int = BANK_SIZE) -> Path:
    """Write the bank that ships with the package from the shared mask archive.

    ``src`` is ``tiramisu_masks_train.npz`` (uint8 (N, 132, 132) ``masks`` plus
    ``names``; see radiff_scale/assets/masks/README.md for its origin); every mask
    is centre-cropped to ``size`` and saved with ``np.savez_compressed`` (about
    0.65 MB for 7,354 masks).
    """
    src, dst = Path(src), Path(dst)
    try:
        with np.load(src, allow_pickle=False) as data:
            masks, names = data["masks"], data["names"]
    except (OSError, ValueError, KeyError) as exc:
        raise RadiffError(f"cannot read mask archive {src}: {exc}") from None
    masks = crop_or_resize(masks, size)
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dst, masks=masks, names=np.asarray(names, dtype=str))
    return dst
