"""Turn real FITS radio images into a labelled Survey-Collection dataset (``radiff-scale annotate``).

The training job needs cutouts with one mask per object and a background image; real
survey images come without masks. This module segments them the way a radio source
finder does (PyBDSF-like double threshold on a robust rms, then grouping of nearby
islands into one radio galaxy), labels each object with a documented, deterministic
rule, and writes the result with :func:`~radiff_scale.data.sc_format.write_sample`.
Everything statistical is delegated to photutils/astropy (background, rms, segmentation,
peaks), and ``docs/annotate.md`` explains each choice.

Pipeline per input file (this module runs it; each step is its own module): read and
check (:func:`.annotate_image.load_image`), estimate background and rms
(:func:`.annotate_background.estimate_background`), find objects on the whole image
(:func:`.annotate_objects.find_objects`: :mod:`.annotate_segment`, :mod:`.annotate_group`,
then the class rule), choose the crop windows (:func:`.annotate_windows.choose_windows`),
then build and write one sample per window that holds at least one object
(:func:`.annotate_sample.build_sample`, its background image from :mod:`.annotate_fill`).
Options are :class:`.annotate_config.AnnotateConfig`, inputs :mod:`.annotate_inputs`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from radiff_scale.atomic import check_output_path
from radiff_scale.classes import SourceClass
from radiff_scale.data.annotate_background import estimate_background
from radiff_scale.data.annotate_config import TOOL, AnnotateConfig
from radiff_scale.data.annotate_fill import source_pixels
from radiff_scale.data.annotate_image import load_image
from radiff_scale.data.annotate_inputs import expand_inputs, match_names, sample_name, select_inputs
from radiff_scale.data.annotate_objects import find_objects
from radiff_scale.data.annotate_sample import build_sample, photutils_version
from radiff_scale.data.annotate_windows import choose_windows
from radiff_scale.data.sc_format import ANNOTATIONS_DIR, write_sample
from radiff_scale.errors import RadiffError

__all__ = ["SUMMARY_FILE", "AnnotateConfig", "AnnotateSummary", "annotate", "annotate_file", "parse_beam"]

#: Written at the dataset root; its presence (with ``tool`` = TOOL) marks a folder we may overwrite.
SUMMARY_FILE = "annotate.json"


def parse_beam(text: str) -> tuple[float, ...]:
    """``BMAJ[,BMIN[,BPA]]`` as floats (the CLI's ``--beam``)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise RadiffError(f"--beam {text!r}: expected BMAJ[,BMIN[,BPA]] in arcsec/deg, e.g. 5.4 or 6.4,5.4,30") from None
    if not 1 <= len(values) <= 3:
        raise RadiffError(f"--beam {text!r}: expected one to three comma-separated numbers")
    return values


@dataclass
class AnnotateSummary:
    """Counts of one run, printed as one line and written to ``annotate.json``."""

    images_read: int = 0
    cutouts_written: int = 0
    windows_without_objects: int = 0
    objects_per_class: dict[str, int] = field(default_factory=lambda: {c.label: 0 for c in (SourceClass.COMPACT, SourceClass.EXTENDED, SourceClass.SPURIOUS)})
    images_without_objects: list[str] = field(default_factory=list)
    #: Each object once, on its whole input image (a tiled map's overlaps repeat objects in ``objects_per_class``).
    objects_found_per_class: dict[str, int] = field(default_factory=lambda: {c.label: 0 for c in (SourceClass.COMPACT, SourceClass.EXTENDED, SourceClass.SPURIOUS)})

    def describe(self) -> str:
        per_class = ", ".join(f"{k} {v}" for k, v in self.objects_per_class.items())
        return (f"annotate: {self.images_read} images read, {self.cutouts_written} cutouts written, objects: "
                f"{per_class}; {len(self.images_without_objects)} images without any object, "
                f"{self.windows_without_objects} empty windows skipped")


def _check_out(out: Path) -> None:
    """Refuse an existing non-empty folder unless an earlier annotate run wrote it."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RadiffError(f"--out {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    try:
        marker = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if not (isinstance(marker, dict) and marker.get("tool") == TOOL):
        raise RadiffError(f"--out {out}: folder is not empty and was not written by {TOOL}; choose another")


def annotate_file(path: Path, name: str, config: AnnotateConfig, spurious: bool, root: Path,
                  summary: AnnotateSummary) -> None:
    """Annotate one input file and write its samples under ``root``, updating ``summary``."""
    image = load_image(path, config)
    try:
        bkg, rms, method = estimate_background(image.data, config)
    except RadiffError as exc:
        raise RadiffError(f"{path}: {exc}") from None
    objects = find_objects(image, bkg, rms, config, spurious)
    summary.images_read += 1
    for obj in objects:
        summary.objects_found_per_class[obj.class_id.label] += 1
    if not objects:
        summary.images_without_objects.append(path.name)
        return
    source_px = source_pixels(objects, image.data.shape, image.fwhm_px)
    windows, tiled = choose_windows(image.data.shape, objects, config)
    for row0, col0 in windows:
        cut_name = f"{name}_r{row0}_c{col0}" if tiled else name
        sample = build_sample(cut_name, image, (row0, col0), objects, bkg, rms, source_px, config, method)
        if sample is None:
            summary.windows_without_objects += 1
            continue
        write_sample(root, sample)
        summary.cutouts_written += 1
        for obj in sample.objects:
            summary.objects_per_class[obj.class_id.label] += 1


def _unique_names(files: list[Path]) -> list[str]:
    names = [sample_name(f.name) for f in files]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise RadiffError(f"two inputs give the same sample name {dup[0]!r}; rename one or annotate them separately")
    return names


def annotate(inputs: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str],
             config: AnnotateConfig = AnnotateConfig(), quiet: bool = False) -> AnnotateSummary:
    """Annotate every input and write the dataset to ``out`` (atomically: temp folder, then rename)."""
    from tqdm import tqdm

    out_path = Path(out)
    _check_out(out_path)
    check_output_path(out_path, folder=False)  # built beside OUT, then renamed: the parent is written
    files = select_inputs(expand_inputs(inputs), config)
    spurious = match_names(files, config.spurious_names, "--spurious-names", required=False) if config.spurious_names else set()
    names = _unique_names(files)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f".{out_path.name}.annotate-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / ANNOTATIONS_DIR).mkdir(parents=True)  # present even when no cutout is written: validate-dataset then says "empty"
    summary = AnnotateSummary()
    try:
        for path, name in tqdm(list(zip(files, names)), desc="annotate", unit="file", disable=True if quiet else None):
            annotate_file(path, name, config, path in spurious, tmp, summary)
        doc = {"tool": TOOL, "photutils": photutils_version(), "parameters": asdict(config),
               "inputs": [f.name for f in files], **asdict(summary)}
        (tmp / SUMMARY_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _replace_folder(tmp, out_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move the finished temp folder to ``out``; an earlier annotate dataset (or empty folder) is replaced."""
    if out.exists():
        old = out.parent / f".{out.name}.annotate-old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
