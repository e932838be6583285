"""Reading Survey-Collection samples: ours, INAF's, and any path a JSON may name, safely.

Annotation files are user input: a path they name is resolved relative to the JSON's
folder first, then to the dataset root (INAF's tools write both), and must stay inside
the root (no ``..``, absolute paths or symlinks pointing out).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from radiff_scale.classes import OBJECT_CLASSES, class_from_name
from radiff_scale.data.sc_fits_read import header_to_dict, read_fits_image, read_mask
from radiff_scale.data.sc_sample import (
    ANNOTATIONS_DIR,
    KEY_BACKGROUND,
    KEY_CLASS,
    KEY_IMG,
    KEY_MASK,
    KEY_NX,
    KEY_NY,
    KEY_OBJS,
    OBJ_KEYS,
    TOP_KEYS,
    AnnotatedObject,
    Sample,
)
from radiff_scale.errors import RadiffError


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _resolve_ref(ref: Any, key: str, json_path: Path, root: Path) -> Path:
    """Resolve a path named in a JSON, relative to the JSON's folder first, then to the root.

    INAF's own tools write both conventions (``"../imgs/x.fits"`` next to the JSON, or paths
    joined to a root directory), so both are accepted; the result must be an existing file
    whose real path (symlinks followed) lies inside the dataset root.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise RadiffError(f"{json_path}: '{key}' must be a non-empty relative path, got {ref!r}")
    rel = Path(ref)
    if rel.is_absolute() or ref.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", ref):
        raise RadiffError(f"{json_path}: '{key}' path {ref!r} is absolute; paths must stay inside {root}")
    # Outside means: no reading of the path stays inside, or one that leaves reaches a real file
    # (a symlink or '..' pointing out). A file missing under one reading is just missing.
    n_outside = 0
    reaches_out = False
    for base in (json_path.parent, root):
        candidate = (base / rel).resolve()
        if not _is_within(candidate, root):
            n_outside += 1
            reaches_out = reaches_out or candidate.exists()
            continue
        if candidate.is_file():
            return candidate
    if n_outside == 2 or reaches_out:
        raise RadiffError(f"{json_path}: '{key}' path {ref!r} resolves outside the dataset root {root}")
    raise RadiffError(f"{json_path}: '{key}' file {ref!r} not found (relative to {json_path.parent} or {root})")



def _load_json(json_path: Path) -> dict[str, Any]:
    try:
        text = json_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RadiffError(f"{json_path}: annotation file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RadiffError(f"{json_path}: cannot read annotation ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RadiffError(f"{json_path}: malformed JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RadiffError(f"{json_path}: top level must be a JSON object, got {type(data).__name__}")
    for key in (KEY_IMG, KEY_OBJS):
        if key not in data:
            raise RadiffError(f"{json_path}: missing key '{key}'")
    if not isinstance(data[KEY_OBJS], list):
        raise RadiffError(f"{json_path}: '{KEY_OBJS}' must be a list")
    return data


def read_sample(json_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Sample:
    """Read one annotated cutout; every path it names must stay inside ``root``.

    ``root`` defaults to the JSON's grandparent folder, which is the dataset root in both
    our layout (``ROOT/annotations/x.json``) and INAF's (``ROOT/<sample>/masks/x.json``).
    """
    json_path = Path(json_path).absolute()
    root_path = (Path(root) if root is not None else json_path.parent.parent).resolve()
    if not _is_within(json_path.resolve(), root_path):
        raise RadiffError(f"{json_path}: annotation lies outside the dataset root {root_path}")
    data = _load_json(json_path)

    image_path = _resolve_ref(data[KEY_IMG], KEY_IMG, json_path, root_path)
    image, fits_header = read_fits_image(image_path)
    shape = image.shape
    for key, axis in ((KEY_NX, 1), (KEY_NY, 0)):
        if key in data and data[key] != shape[axis]:
            raise RadiffError(f"{json_path}: '{key}' = {data[key]!r} but image {image_path.name} has shape {shape}")

    objects: list[AnnotatedObject] = []
    for k, obj in enumerate(data[KEY_OBJS]):
        if not isinstance(obj, dict):
            raise RadiffError(f"{json_path}: objs[{k}] must be a JSON object")
        for key in (KEY_CLASS, KEY_MASK):
            if key not in obj:
                raise RadiffError(f"{json_path}: objs[{k}] is missing key '{key}'")
        try:
            class_id = class_from_name(obj[KEY_CLASS])
        except RadiffError as exc:
            raise RadiffError(f"{json_path}: objs[{k}]: {exc}") from None
        if class_id not in OBJECT_CLASSES:
            raise RadiffError(f"{json_path}: objs[{k}]: class {obj[KEY_CLASS]!r} is not an object class")
        mask_path = _resolve_ref(obj[KEY_MASK], f"objs[{k}].mask", json_path, root_path)
        mask = read_mask(mask_path, shape)
        meta = {key: value for key, value in obj.items() if key not in OBJ_KEYS}
        objects.append(AnnotatedObject(class_id=class_id, mask=mask, meta=meta))

    background = None
    if data.get(KEY_BACKGROUND) is not None:
        bg_path = _resolve_ref(data[KEY_BACKGROUND], KEY_BACKGROUND, json_path, root_path)
        background, _ = read_fits_image(bg_path)
        if background.shape != shape:
            raise RadiffError(f"{bg_path}: background shape {background.shape} differs from image shape {shape}")

    meta = {key: value for key, value in data.items() if key not in TOP_KEYS}
    return Sample(
        name=json_path.stem,
        image=image,
        objects=objects,
        header=header_to_dict(fits_header),
        background=background,
        meta=meta,
    )


def list_samples(root: str | os.PathLike[str]) -> list[Path]:
    """Annotation JSONs of a dataset, sorted by path relative to ``root``.

    ``ROOT/annotations/*.json`` when that folder exists (our layout); otherwise every
    ``*.json`` below ``root`` (INAF keeps one folder per sample).
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise RadiffError(f"{root_path}: dataset root is not a folder")
    ann = root_path / ANNOTATIONS_DIR
    found = sorted(ann.glob("*.json")) if ann.is_dir() else list(root_path.rglob("*.json"))
    found = sorted((p for p in found if p.is_file()), key=lambda p: p.relative_to(root_path).as_posix())
    if not found:
        raise RadiffError(f"{root_path}: empty dataset (no annotation *.json found)")
    return found
