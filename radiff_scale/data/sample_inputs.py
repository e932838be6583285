"""The masks ``radiff-scale sample`` turns into images: read from a dataset or an ``.npz``, checked up front.

Everything a user can get wrong about ``--masks`` is found here, before an output folder
is made or a sampler actor started, so that a bad input costs one line and exit code 2,
not a half-written dataset. The masks keep their objects (not just the class image)
because the output annotations are exactly these objects. See docs/sample.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radiff_scale.constants import TILE
from radiff_scale.errors import RadiffError

#: Header keywords carried from the masks dataset sample (or a background FITS) when present.
CARRIED_KEYS = ("BMAJ", "BMIN", "BPA", "CDELT1", "CDELT2")


@dataclass
class MaskItem:
    """One given mask: its objects (class, boolean 128x128 mask) and where it came from."""

    source: dict[str, Any]
    objects: list[tuple[Any, np.ndarray]]
    header: dict[str, Any] = field(default_factory=dict)
    background: np.ndarray | None = None  # the dataset sample's own background (Jy/beam), cropped

    def class_mask(self) -> np.ndarray:
        """Class ids; later objects win where they overlap (as Sample.class_mask)."""
        out = np.zeros((TILE, TILE), dtype=np.uint8)
        for cls, mask in self.objects:
            out[mask] = int(cls)
        return out


def carried_header(header: dict[str, Any]) -> dict[str, Any]:
    """The :data:`CARRIED_KEYS` of ``header`` that hold a finite number, as floats.

    A missing or non-numeric beam or pixel keyword is dropped rather than refused: the
    output header then falls back to FIRST's defaults for it (docs/sample.md).
    """
    out = {}
    for key in CARRIED_KEYS:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            out[key] = float(value)
    return out


def _centre_crop(array: np.ndarray, where: str) -> np.ndarray:
    # Imported here: radiff_scale.data.dataset imports torch, which --help must not wait for.
    from radiff_scale.data.dataset import centre_crop

    return np.ascontiguousarray(centre_crop(array, TILE, where))


def masks_from_dataset(root: Path, limit: int | None) -> list[MaskItem]:
    """The first ``limit`` samples of a Survey-Collection dataset, centre-cropped to 128x128."""
    from radiff_scale.data.sc_format import list_samples, read_sample

    paths = list_samples(root)
    if limit is not None:
        paths = paths[:limit]
    items = []
    for path in paths:
        sample = read_sample(path, root)
        where = f"{path}"
        objects = [(obj.class_id, _centre_crop(np.asarray(obj.mask, dtype=bool), where)) for obj in sample.objects]
        _centre_crop(sample.image, where)  # the image itself must be at least a tile
        background = None if sample.background is None else _centre_crop(sample.background, where)
        items.append(MaskItem(
            {"kind": "dataset", "root": str(root), "sample": sample.name, "annotation": path.relative_to(root).as_posix()},
            objects, carried_header(sample.header), background,
        ))
    return items


def _read_npz(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """The ``masks`` array and optional ``names`` of an ``.npz``; any unreadable file is the user's."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "masks" not in data.files:
                raise RadiffError(f"--masks {path}: no 'masks' array (found: {', '.join(data.files) or 'none'})")
            masks = data["masks"]
            names = [str(n) for n in data["names"].tolist()] if "names" in data.files else None
    except RadiffError:
        raise
    except Exception as exc:  # not an npz, a pickled array, a truncated file...
        raise RadiffError(f"--masks {path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    return masks, names


def masks_from_npz(path: Path, limit: int | None) -> list[MaskItem]:
    """Class-id masks of an ``.npz`` (``masks`` (N, 128, 128) uint8); objects as the mask bank finds them."""
    from radiff_scale.classes import NUM_CLASSES
    from radiff_scale.data.mask_bank import object_masks

    masks, names = _read_npz(path)
    if masks.ndim != 3 or masks.shape[1:] != (TILE, TILE):
        raise RadiffError(f"--masks {path}: 'masks' must have shape (N, {TILE}, {TILE}), got {masks.shape}")
    if masks.dtype != np.uint8:
        raise RadiffError(f"--masks {path}: 'masks' must be uint8 class ids, got dtype {masks.dtype}")
    if masks.size and int(masks.max()) >= NUM_CLASSES:
        raise RadiffError(f"--masks {path}: class ids must be in 0..{NUM_CLASSES - 1}, found {int(masks.max())}")
    if names is not None and len(names) != len(masks):
        names = None  # provenance only: a mismatched list is ignored rather than misattributed
    n = len(masks) if limit is None else min(limit, len(masks))
    items = []
    for i in range(n):
        source: dict[str, Any] = {"kind": "npz", "path": str(path), "index": i}
        if names is not None:
            source["name"] = names[i]
        items.append(MaskItem(source, [(cls, np.asarray(m, dtype=bool)) for cls, m in object_masks(masks[i])]))
    return items


def load_masks(spec: str, limit: int | None) -> list[MaskItem]:
    """The masks named by ``--masks``: a dataset folder or an ``.npz``; never an empty list."""
    path = Path(spec)
    if path.is_dir():
        items = masks_from_dataset(path, limit)
    elif path.is_file() and path.suffix == ".npz":
        items = masks_from_npz(path, limit)
    elif path.exists():
        raise RadiffError(f"--masks {spec}: expected a Survey-Collection dataset folder or an .npz of masks")
    else:
        raise RadiffError(f"--masks {spec}: no such file or folder")
    if not items:
        raise RadiffError(f"--masks {spec}: no masks in it")
    return items
