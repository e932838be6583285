"""Survey-Collection format: one FITS image plus one JSON of per-object mask FITS per cutout.

The layout and every key are specified in ``docs/data-format.md``; this module is its
only reader and writer. Two properties drive the design:

* **Reading is tolerant but never unsafe.** Real cutouts and INAF annotation files come
  with quirks (NaNs, a float image with an integer ``BLANK``, the unit stored in
  ``CTYPE1``, degenerate FREQ/STOKES axes, paths relative to the JSON *or* to the dataset
  root), so the reader accepts them quietly. It refuses, with a one-line
  :class:`~radiff_scale.errors.RadiffError` naming the file, anything it cannot read
  faithfully, and any path that would leave the dataset root (``..``, absolute paths,
  symlinks pointing out): annotation files are user input.
* **Writing is canonical.** The same :class:`Sample` always gives byte-identical files
  (no DATE or checksum keywords, sorted keys, Python's shortest round-trip float repr),
  so a regenerated dataset can be checked by hash. Each file is written to a temporary
  name and renamed, and the JSON is written last: a JSON that exists names complete FITS.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from radiff_scale.classes import OBJECT_CLASSES, SourceClass, class_from_name
from radiff_scale.errors import RadiffError

#: Sub-folders of a dataset root written by :func:`write_sample`.
IMAGES_DIR = "images"
ANNOTATIONS_DIR = "annotations"
MASKS_DIR = "masks"
BACKGROUNDS_DIR = "backgrounds"

#: Unit written into every image and background FITS (the project's FITS contract).
IMAGE_BUNIT = "JY/BEAM"

# JSON keys with a meaning to this module; any other key is carried as ``meta``.
_KEY_IMG = "img"
_KEY_OBJS = "objs"
_KEY_BACKGROUND = "background"
_KEY_NX = "nx"
_KEY_NY = "ny"
_KEY_CLASS = "class"
_KEY_MASK = "mask"
_TOP_KEYS = frozenset({_KEY_IMG, _KEY_OBJS, _KEY_BACKGROUND, _KEY_NX, _KEY_NY})
_OBJ_KEYS = frozenset({_KEY_CLASS, _KEY_MASK})

# FITS keywords that describe the array layout, not the data: never carried in ``Sample.header``.
_STRUCTURAL = re.compile(
    r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|BSCALE|BZERO|BLANK|PCOUNT|GCOUNT|END|COMMENT|HISTORY|)$"
)
_FITS_KEY = re.compile(r"^[A-Z0-9_-]{1,8}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_MASK_FILE = "{name}_obj{k}.fits"


@dataclass
class AnnotatedObject:
    """One labelled object of a cutout: its class, its own boolean mask, and any extra keys.

    ``meta`` carries the per-object keys other tools put in the JSON (INAF writes ``name``,
    ``nislands``, ``sidelobe-mixed``, bounding boxes, ...) so a read-write cycle loses nothing.
    """

    class_id: SourceClass
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """One cutout with its objects, as held in memory between the reader, the simulator and the writer.

    ``image`` is float32 Jy/beam, NaNs allowed. ``header`` holds FITS keywords of the image
    other than the layout ones (BMAJ, BMIN, BPA in degrees, CDELT1/2 in degrees, BUNIT, RMS...).
    ``meta`` holds top-level JSON keys this module does not interpret (INAF's ``telescope``,
    ``rms``, ``bkg``, ...), so they survive a read-write cycle.
    """

    name: str
    image: np.ndarray
    objects: list[AnnotatedObject]
    header: dict[str, Any] = field(default_factory=dict)
    background: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def class_mask(self) -> np.ndarray:
        """Per-pixel class ids (uint8). Where objects overlap, the later object in ``objects`` wins.

        Later-wins matches how the compositor paints objects in id order, so a cutout and
        the map it ends up in label shared pixels the same way.
        """
        out = np.zeros(self.image.shape, dtype=np.uint8)
        for obj in self.objects:
            out[np.asarray(obj.mask, dtype=bool)] = int(obj.class_id)
        return out

    def instance_mask(self) -> np.ndarray:
        """Per-pixel instance ids (int32): ``i + 1`` for ``objects[i]``, 0 for background; later wins."""
        out = np.zeros(self.image.shape, dtype=np.int32)
        for i, obj in enumerate(self.objects):
            out[np.asarray(obj.mask, dtype=bool)] = i + 1
        return out


# ---------------------------------------------------------------------------------------------
# FITS reading
# ---------------------------------------------------------------------------------------------


def _read_fits_array(path: Path) -> tuple[np.ndarray, fits.Header]:
    """The first image HDU's data (native byte order, degenerate axes squeezed) and a header copy.

    Every astropy warning is silenced: real files trip VerifyWarnings (a BLANK keyword on
    float data, non-standard cards) that say nothing the user can act on, and the data are
    read correctly regardless.
    """
    path = Path(path)
    if not path.is_file():
        raise RadiffError(f"{path}: FITS file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(path, memmap=False) as hdul:
                for hdu in hdul:
                    if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and hdu.data is not None:
                        data = np.array(hdu.data)
                        header = hdu.header.copy()
                        break
                else:
                    raise RadiffError(f"{path}: no image data in any HDU")
    except RadiffError:
        raise
    except Exception as exc:  # any failure to parse a user's file is the file's fault
        raise RadiffError(f"{path}: cannot read FITS ({type(exc).__name__}: {exc})") from None
    squeezed = np.squeeze(data)
    if squeezed.ndim != 2:
        raise RadiffError(f"{path}: image is not 2-D (shape {data.shape} after squeezing length-1 axes)")
    return squeezed.astype(squeezed.dtype.newbyteorder("=")), header


def _repair_header(header: fits.Header, data_is_float: bool) -> fits.Header:
    """Fix the header quirks seen in real cutouts so callers can trust BUNIT and ignore BLANK."""
    if data_is_float and "BLANK" in header:
        del header["BLANK"]  # only meaningful for integer data; astropy ignores it too
    if "BUNIT" not in header:
        for axis in range(1, int(header.get("NAXIS", 0) or 0) + 3):
            key = f"CTYPE{axis}"
            value = header.get(key)
            if isinstance(value, str) and "JY" in value.upper():
                header["BUNIT"] = value.strip()
                del header[key]
                break
    return header


def read_fits_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, fits.Header]:
    """Read a 2-D float32 image tolerantly: squeeze length-1 axes, keep NaNs, repair known header quirks.

    The returned header is a copy: ``BLANK`` is dropped for float data, and a unit found in a
    ``CTYPEn`` keyword (e.g. ``CTYPE1 = 'Jy/beam'``) is moved to ``BUNIT`` when BUNIT is absent.
    WCS keywords of squeezed axes are left as they are (build a WCS with ``naxis=2``).
    """
    data, header = _read_fits_array(Path(path))
    if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
        raise RadiffError(f"{path}: image data type {data.dtype} is not numeric")
    was_float = np.issubdtype(data.dtype, np.floating)
    return np.ascontiguousarray(data, dtype=np.float32), _repair_header(header, was_float)


def _read_mask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A mask FITS as bool: any finite non-zero pixel is inside (INAF masks are 0/1 float or int)."""
    data, _ = _read_fits_array(path)
    if data.shape != shape:
        raise RadiffError(f"{path}: mask shape {data.shape} differs from image shape {shape}")
    if np.issubdtype(data.dtype, np.floating):
        return np.isfinite(data) & (data != 0)
    return data != 0


def _header_to_dict(header: fits.Header) -> dict[str, Any]:
    """Keywords that describe the data (not its layout) as plain Python values."""
    out: dict[str, Any] = {}
    for card in header.cards:
        key = card.keyword
        if _STRUCTURAL.match(key):
            continue
        value = card.value
        out[key] = None if isinstance(value, fits.card.Undefined) else value
    return out


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Reading samples
# ---------------------------------------------------------------------------------------------


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
    for key in (_KEY_IMG, _KEY_OBJS):
        if key not in data:
            raise RadiffError(f"{json_path}: missing key '{key}'")
    if not isinstance(data[_KEY_OBJS], list):
        raise RadiffError(f"{json_path}: '{_KEY_OBJS}' must be a list")
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

    image_path = _resolve_ref(data[_KEY_IMG], _KEY_IMG, json_path, root_path)
    image, fits_header = read_fits_image(image_path)
    shape = image.shape
    for key, axis in ((_KEY_NX, 1), (_KEY_NY, 0)):
        if key in data and data[key] != shape[axis]:
            raise RadiffError(f"{json_path}: '{key}' = {data[key]!r} but image {image_path.name} has shape {shape}")

    objects: list[AnnotatedObject] = []
    for k, obj in enumerate(data[_KEY_OBJS]):
        if not isinstance(obj, dict):
            raise RadiffError(f"{json_path}: objs[{k}] must be a JSON object")
        for key in (_KEY_CLASS, _KEY_MASK):
            if key not in obj:
                raise RadiffError(f"{json_path}: objs[{k}] is missing key '{key}'")
        try:
            class_id = class_from_name(obj[_KEY_CLASS])
        except RadiffError as exc:
            raise RadiffError(f"{json_path}: objs[{k}]: {exc}") from None
        if class_id not in OBJECT_CLASSES:
            raise RadiffError(f"{json_path}: objs[{k}]: class {obj[_KEY_CLASS]!r} is not an object class")
        mask_path = _resolve_ref(obj[_KEY_MASK], f"objs[{k}].mask", json_path, root_path)
        mask = _read_mask(mask_path, shape)
        meta = {key: value for key, value in obj.items() if key not in _OBJ_KEYS}
        objects.append(AnnotatedObject(class_id=class_id, mask=mask, meta=meta))

    background = None
    if data.get(_KEY_BACKGROUND) is not None:
        bg_path = _resolve_ref(data[_KEY_BACKGROUND], _KEY_BACKGROUND, json_path, root_path)
        background, _ = read_fits_image(bg_path)
        if background.shape != shape:
            raise RadiffError(f"{bg_path}: background shape {background.shape} differs from image shape {shape}")

    meta = {key: value for key, value in data.items() if key not in _TOP_KEYS}
    return Sample(
        name=json_path.stem,
        image=image,
        objects=objects,
        header=_header_to_dict(fits_header),
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


def validate_dataset(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Read every sample of a dataset (raising on the first bad one) and count what it holds.

    Returns ``n_samples``, ``n_objects``, ``objects_per_class`` and ``pixels_per_class``
    (keyed by class label, background included for pixels), ``shapes`` (``"HxW"`` -> count),
    ``n_with_background`` and ``n_empty_masks`` (objects whose mask has no pixel).
    """
    root_path = Path(root)
    objects: Counter[str] = Counter({c.label: 0 for c in OBJECT_CLASSES})
    pixels: Counter[str] = Counter({c.label: 0 for c in SourceClass})
    shapes: Counter[str] = Counter()
    n_samples = n_objects = n_background = n_empty = 0
    for json_path in list_samples(root_path):
        sample = read_sample(json_path, root_path)
        n_samples += 1
        n_objects += len(sample.objects)
        n_background += sample.background is not None
        shapes[f"{sample.image.shape[0]}x{sample.image.shape[1]}"] += 1
        for obj in sample.objects:
            objects[obj.class_id.label] += 1
            n_empty += not obj.mask.any()
        counts = np.bincount(sample.class_mask().ravel(), minlength=len(SourceClass))
        for cls in SourceClass:
            pixels[cls.label] += int(counts[int(cls)])
    return {
        "n_samples": n_samples,
        "n_objects": n_objects,
        "objects_per_class": dict(objects),
        "pixels_per_class": dict(pixels),
        "shapes": dict(sorted(shapes.items())),
        "n_with_background": n_background,
        "n_empty_masks": n_empty,
    }


# ---------------------------------------------------------------------------------------------
# Writing samples
# ---------------------------------------------------------------------------------------------


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


#: FITS files are sequences of 2880-byte blocks of 80-character header cards, then data.
_FITS_BLOCK = 2880
_END_CARD = b"END" + b" " * 77
#: BITPIX of each dtype the writer emits, and the big-endian layout FITS stores it in.
_BITPIX = {np.dtype(np.float32): (-32, np.dtype(">f4")), np.dtype(np.uint8): (8, np.dtype("u1"))}


@functools.lru_cache(maxsize=64)
def _layout_cards(bitpix: int, ny: int, nx: int) -> bytes:
    """The array-layout cards astropy's ``PrimaryHDU`` writes first, comments included.

    They are astropy's own, card for card, so our files are byte-identical to
    ``PrimaryHDU.writeto``; there are few distinct shapes, hence the cache.
    """
    cards = (
        fits.Card("SIMPLE", True, "conforms to FITS standard"),
        fits.Card("BITPIX", bitpix, "array data type"),
        fits.Card("NAXIS", 2, "number of array dimensions"),
        fits.Card("NAXIS1", nx),
        fits.Card("NAXIS2", ny),
        fits.Card("EXTEND", True),
    )
    return "".join(card.image for card in cards).encode("ascii")


def _card_image(key: str, value: Any) -> str:
    """One header card (or a long string's CONTINUE cards) exactly as astropy writes it.

    Formatting is delegated to ``astropy.io.fits.Card`` so the writer cannot drift from
    astropy's rules (float repr with upper-case E cut to 20 characters, right-justified
    numbers, quoted strings padded to 8); a card astropy would refuse or warn about raises.
    A ``(value, comment)`` tuple is accepted as ``Header.__setitem__`` accepts it.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyWarning)  # a header we cannot write cleanly is a bug
            card = fits.Card(key, *value) if isinstance(value, tuple) else fits.Card(key, value)
            card.verify("exception")
            return card.image
    except (ValueError, AstropyWarning) as exc:
        raise ValueError(f"header keyword {key!r} = {value!r} cannot be written to FITS: {exc}") from None


# Card construction and verification cost ~50 us each, and most of a dataset's keywords
# (beam, pixel scale, unit) repeat from cutout to cutout. The repr is part of the key
# because 0.0 == -0.0 (and 1 == 1.0 == True) hash alike but are written differently.
@functools.lru_cache(maxsize=4096)
def _cached_card_image(key: str, value_type: type, value_repr: str, value: Any) -> str:
    return _card_image(key, value)


_CACHEABLE = (bool, int, float, str)


def _keyword_cards(header: dict[str, Any]) -> bytes:
    """The data-describing cards of an image FITS: BUNIT first, then the other keywords sorted."""
    images = [_cached_card_image("BUNIT", str, IMAGE_BUNIT, IMAGE_BUNIT)]
    for key in sorted(header):
        if key == "BUNIT":
            continue
        value = header[key]
        value = value.item() if isinstance(value, np.generic) else value
        if type(value) in _CACHEABLE:
            images.append(_cached_card_image(key, type(value), repr(value), value))
        else:
            images.append(_card_image(key, value))
    return "".join(images).encode("ascii")


def _fits_bytes(data: np.ndarray, keyword_cards: bytes = b"") -> bytes:
    """One primary HDU holding a 2-D float32 or uint8 array, byte-identical to astropy's writer.

    Astropy's ``PrimaryHDU.writeto`` costs ~1-5 ms per small file, most of the simulator's
    time, so the bytes are assembled here: layout cards, ``keyword_cards`` (from
    :func:`_keyword_cards`), END, blank padding to a 2880-byte block, then the big-endian
    data zero-padded to a block. No DATE or checksum keywords, so it is deterministic.
    """
    bitpix, stored = _BITPIX[data.dtype]
    ny, nx = data.shape
    head = _layout_cards(bitpix, ny, nx) + keyword_cards + _END_CARD
    body = data.astype(stored, order="C", copy=False).tobytes()
    return b"".join(
        (head, b" " * (-len(head) % _FITS_BLOCK), body, b"\0" * (-len(body) % _FITS_BLOCK))
    )


def _check_header(header: dict[str, Any]) -> None:
    for key, value in header.items():
        if not isinstance(key, str) or not _FITS_KEY.match(key):
            raise ValueError(f"header keyword {key!r} is not a FITS keyword (A-Z, 0-9, '_' or '-', 8 chars at most)")
        if _STRUCTURAL.match(key):
            raise ValueError(f"header keyword {key!r} describes the array layout and is set by the writer")
        if key == "BUNIT" and str(value).strip().upper() != IMAGE_BUNIT:
            raise ValueError(f"header BUNIT {value!r}: images are written in {IMAGE_BUNIT}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"header keyword {key!r} has non-finite value {value!r}")


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write via a temporary sibling and rename, so readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(payload)
    except FileNotFoundError:  # first file of its folder: create it only then, not per file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(payload)
    os.replace(tmp, path)


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
    _check_header(sample.header)
    cards = _keyword_cards(sample.header)  # raises on a card astropy would refuse; image and background share it
    classes: list[SourceClass] = []
    for k, obj in enumerate(sample.objects):
        mask = np.asarray(obj.mask)
        if mask.shape != image.shape:
            raise ValueError(f"sample {name!r}: objects[{k}] mask shape {mask.shape} differs from image {image.shape}")
        cls = SourceClass(int(obj.class_id))
        if cls not in OBJECT_CLASSES:
            raise ValueError(f"sample {name!r}: objects[{k}] has class {cls.label}, not an object class")
        clash = _OBJ_KEYS.intersection(obj.meta)
        if clash:
            raise ValueError(f"sample {name!r}: objects[{k}] meta uses reserved keys {sorted(clash)}")
        classes.append(cls)
    clash = _TOP_KEYS.intersection(sample.meta)
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
    _atomic_write(image_path, _fits_bytes(image.astype(np.float32), cards))
    objs: list[dict[str, Any]] = []
    for k, (obj, cls, entry) in enumerate(zip(sample.objects, classes, metas)):
        mask_path = root_path / MASKS_DIR / _MASK_FILE.format(name=name, k=k)
        _atomic_write(mask_path, _fits_bytes(np.asarray(obj.mask).astype(bool).astype(np.uint8)))
        entry[_KEY_CLASS] = cls.label
        entry[_KEY_MASK] = rel(mask_path)
        objs.append(entry)
    doc.update({_KEY_IMG: rel(image_path), _KEY_OBJS: objs, _KEY_NX: int(image.shape[1]), _KEY_NY: int(image.shape[0])})
    bg_path = root_path / BACKGROUNDS_DIR / f"{name}.fits"
    if background is not None:
        _atomic_write(bg_path, _fits_bytes(background.astype(np.float32), cards))
        doc[_KEY_BACKGROUND] = rel(bg_path)
    _atomic_write(json_path, _canonical_json(doc))

    # Only now drop files an earlier version of this sample left behind. Our writer numbers
    # masks 0..n-1 without gaps, so probing upwards from the new count finds them all;
    # listing the folder instead would make writing a dataset quadratic in its size.
    if background is None:
        bg_path.unlink(missing_ok=True)
    k = len(sample.objects)
    while True:
        try:
            (root_path / MASKS_DIR / _MASK_FILE.format(name=name, k=k)).unlink()
        except FileNotFoundError:
            break
        k += 1
    return json_path
