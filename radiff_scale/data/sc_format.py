"""Survey-Collection format: one FITS image plus one JSON of per-object mask FITS per cutout.

The layout and every key are specified in ``docs/data-format.md``; the ``sc_*`` modules of
this package are its only reader and writer, and this module is their public face (plus
whole-dataset validation). Two properties drive the design:

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

Reading is :mod:`.sc_read` (FITS: :mod:`.sc_fits_read`), writing :mod:`.sc_write` (FITS:
:mod:`.sc_fits_write`), the in-memory sample and the format's names :mod:`.sc_sample`.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from radiff_scale.classes import OBJECT_CLASSES, SourceClass
from radiff_scale.data.sc_fits_read import read_fits_image
from radiff_scale.data.sc_read import list_samples, read_sample
from radiff_scale.data.sc_sample import (
    ANNOTATIONS_DIR,
    BACKGROUNDS_DIR,
    IMAGE_BUNIT,
    IMAGES_DIR,
    MASKS_DIR,
    AnnotatedObject,
    Sample,
)
from radiff_scale.data.sc_write import write_sample

__all__ = [
    "ANNOTATIONS_DIR", "BACKGROUNDS_DIR", "IMAGES_DIR", "IMAGE_BUNIT", "MASKS_DIR", "AnnotatedObject", "Sample",
    "list_samples", "read_fits_image", "read_sample", "validate_dataset", "write_sample",
]


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
