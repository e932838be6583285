"""Writing Survey-Collection samples: canonical bytes, whole files, the JSON last.

The same :class:`~.sc_sample.Sample` always gives byte-identical files (sorted keys,
Python's shortest round-trip float repr, see :mod:`.sc_fits_write`). Each file is
written to a temporary name and renamed, and the JSON is written last: a JSON that
exists names complete FITS, so a killed run never leaves a sample that reads wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from radiff_scale.atomic import write_bytes_atomic
from radiff_scale.classes import OBJECT_CLASSES, SourceClass
from radiff_scale.data.sc_fits_write import check_header, fits_bytes, keyword_cards
from radiff_scale.data.sc_sample import (
    ANNOTATIONS_DIR,
    BACKGROUNDS_DIR,
    IMAGES_DIR,
    KEY_BACKGROUND,
    KEY_CLASS,
    KEY_IMG,
    KEY_MASK,
    KEY_NX,
    KEY_NY,
    KEY_OBJS,
    MASK_FILE,
    MASKS_DIR,
    OBJ_KEYS,
    TOP_KEYS,
    Sample,
)
from radiff_scale.errors import RadiffError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def _plain(value: Any, where: str) -> Any:
    """A JSON-safe copy of a meta value (numpy scalars/arrays to Python); NaN/inf are refused."""
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: non-finite value {value!r} cannot be written to JSON")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where}: value {value!r} of type {type(value).__name__} cannot be written to JSON")


def _canonical_json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write whole or not at all (radiff_scale.atomic), creating the folder only for its first file."""
    try:
        write_bytes_atomic(path, payload)
    except FileNotFoundError:  # first file of its folder: create it only then, not per file
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, payload)


def write_sample(root: str | os.PathLike[str], sample: Sample) -> Path:
    """Write a sample in our layout under ``root`` and return its JSON path.

    Files: ``images/<name>.fits`` (float32, BUNIT JY/BEAM, ``sample.header`` keywords),
    ``masks/<name>_obj<k>.fits`` (uint8 0/1, k = index in ``objects``),
    ``backgrounds/<name>.fits`` when the sample has a background, and
    ``annotations/<name>.json`` last. Mask files of a previous, longer version of the same
    sample and a stale background are removed so the folder matches the JSON.
    """
    root_path = Path(root)
    name = sample.name
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise RadiffError(f"sample name {name!r}: use letters, digits, '.', '_' or '-' (no path separators)")
    image = np.asarray(sample.image)
    if image.ndim != 2:
        raise ValueError(f"sample {name!r}: image must be 2-D, got shape {image.shape}")
    # Validate everything before touching the disk, so a bad sample leaves no partial files.
    check_header(sample.header)
    cards = keyword_cards(sample.header)  # raises on a card astropy would refuse; image and background share it
    classes: list[SourceClass] = []
    for k, obj in enumerate(sample.objects):
        mask = np.asarray(obj.mask)
        if mask.shape != image.shape:
            raise ValueError(f"sample {name!r}: objects[{k}] mask shape {mask.shape} differs from image {image.shape}")
        cls = SourceClass(int(obj.class_id))
        if cls not in OBJECT_CLASSES:
            raise ValueError(f"sample {name!r}: objects[{k}] has class {cls.label}, not an object class")
        clash = OBJ_KEYS.intersection(obj.meta)
        if clash:
            raise ValueError(f"sample {name!r}: objects[{k}] meta uses reserved keys {sorted(clash)}")
        classes.append(cls)
    clash = TOP_KEYS.intersection(sample.meta)
    if clash:
        raise ValueError(f"sample {name!r}: meta uses reserved keys {sorted(clash)}")
    background = None if sample.background is None else np.asarray(sample.background)
    if background is not None and background.shape != image.shape:
        raise ValueError(f"sample {name!r}: background shape {background.shape} differs from image {image.shape}")
    doc = _plain(sample.meta, f"sample {name!r} meta")
    metas = [_plain(obj.meta, f"sample {name!r} objects[{k}] meta") for k, obj in enumerate(sample.objects)]

    json_path = root_path / ANNOTATIONS_DIR / f"{name}.json"

    def rel(path: Path) -> str:
        """The path as the JSON names it: relative to ``annotations/``, which is a sibling."""
        return f"../{path.parent.name}/{path.name}"

    image_path = root_path / IMAGES_DIR / f"{name}.fits"
    _atomic_write(image_path, fits_bytes(image.astype(np.float32), cards))
    objs: list[dict[str, Any]] = []
    for k, (obj, cls, entry) in enumerate(zip(sample.objects, classes, metas)):
        mask_path = root_path / MASKS_DIR / MASK_FILE.format(name=name, k=k)
        _atomic_write(mask_path, fits_bytes(np.asarray(obj.mask).astype(bool).astype(np.uint8)))
        entry[KEY_CLASS] = cls.label
        entry[KEY_MASK] = rel(mask_path)
        objs.append(entry)
    doc.update({KEY_IMG: rel(image_path), KEY_OBJS: objs, KEY_NX: int(image.shape[1]), KEY_NY: int(image.shape[0])})
    bg_path = root_path / BACKGROUNDS_DIR / f"{name}.fits"
    if background is not None:
        _atomic_write(bg_path, fits_bytes(background.astype(np.float32), cards))
        doc[KEY_BACKGROUND] = rel(bg_path)
    _atomic_write(json_path, _canonical_json(doc))

    # Only now drop files an earlier version of this sample left behind. Our writer numbers
    # masks 0..n-1 without gaps, so probing upwards from the new count finds them all;
    # listing the folder instead would make writing a dataset quadratic in its size.
    if background is None:
        bg_path.unlink(missing_ok=True)
    k = len(sample.objects)
    while True:
        try:
            (root_path / MASKS_DIR / MASK_FILE.format(name=name, k=k)).unlink()
        except FileNotFoundError:
            break
        k += 1
    return json_path
