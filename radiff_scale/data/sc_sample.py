"""A Survey-Collection cutout in memory, and the names the format gives its parts on disk.

The reader (:mod:`.sc_read`), the writer (:mod:`.sc_write`) and their FITS halves share
this vocabulary (folders, JSON keys, which FITS keywords a sample may carry), so the two
directions of the format cannot drift apart. The format is specified in
``docs/data-format.md``; :mod:`.sc_format` is its public face.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radiff_scale.classes import SourceClass

#: Sub-folders of a dataset root written by :func:`.sc_write.write_sample`.
IMAGES_DIR = "images"
ANNOTATIONS_DIR = "annotations"
MASKS_DIR = "masks"
BACKGROUNDS_DIR = "backgrounds"

#: Unit written into every image and background FITS (the project's FITS contract).
IMAGE_BUNIT = "JY/BEAM"

# JSON keys with a meaning to the format; any other key is carried as ``meta``.
KEY_IMG = "img"
KEY_OBJS = "objs"
KEY_BACKGROUND = "background"
KEY_NX = "nx"
KEY_NY = "ny"
KEY_CLASS = "class"
KEY_MASK = "mask"
TOP_KEYS = frozenset({KEY_IMG, KEY_OBJS, KEY_BACKGROUND, KEY_NX, KEY_NY})
OBJ_KEYS = frozenset({KEY_CLASS, KEY_MASK})

# FITS keywords that describe the array layout, not the data: never carried in ``Sample.header``.
STRUCTURAL = re.compile(
    r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|BSCALE|BZERO|BLANK|PCOUNT|GCOUNT|END|COMMENT|HISTORY|)$"
)
#: Mask ``k`` of sample ``name`` under MASKS_DIR; numbered 0..n-1 without gaps.
MASK_FILE = "{name}_obj{k}.fits"


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
