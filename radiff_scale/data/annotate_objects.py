"""The objects of an input image: islands segmented and grouped, measured, and given a class.

The class rule (:func:`classify`, documented in ``docs/annotate.md``) is deterministic
and says in words why it chose a class, so every label in a dataset can be audited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from radiff_scale.classes import SourceClass
from radiff_scale.data.annotate_config import AnnotateConfig
from radiff_scale.data.annotate_group import group_islands
from radiff_scale.data.annotate_image import InputImage
from radiff_scale.data.annotate_segment import count_peaks, detect_islands


@dataclass
class FoundObject:
    """One object on the full image: its pixels and the measurements the class rule uses."""

    mask: np.ndarray  # bool, full image
    nislands: int
    npeaks: int
    peak_snr: float
    flux_jy: float
    area_beams: float
    class_id: SourceClass
    rule: str
    weight_centre: tuple[float, float]  # flux-weighted (row, col)


def classify(npix: int, nislands: int, npeaks: int, peak_snr: float, beam_area_px: float,
             config: AnnotateConfig, spurious: bool) -> tuple[SourceClass, str, float]:
    """The class rule (docs/annotate.md), the reason in words, and the area in beam areas.

    ``compact`` needs one island, one peak and an area of at most ``compact_beams`` beam
    areas *beyond* what an unresolved source of the same peak covers above island-sigma:
    for a Gaussian beam that is ln(peak_snr / island_sigma) beam areas, so a bright point
    source (whose 3-sigma island grows with its flux) stays compact.
    """
    area_beams = npix / beam_area_px
    if spurious:
        return SourceClass.SPURIOUS, "input listed in --spurious-names", area_beams
    point_area = max(0.0, math.log(peak_snr / config.island_sigma))
    excess = area_beams - point_area
    if nislands == 1 and npeaks <= 1 and excess <= config.compact_beams:
        return SourceClass.COMPACT, (
            f"1 island, 1 peak, area {area_beams:.2f} - point-source area {point_area:.2f} <= {config.compact_beams:g} beams"
        ), area_beams
    reasons = []
    if nislands > 1:
        reasons.append(f"{nislands} islands")
    if npeaks > 1:
        reasons.append(f"{npeaks} peaks")
    if excess > config.compact_beams:
        reasons.append(f"area {area_beams:.2f} - point-source area {point_area:.2f} > {config.compact_beams:g} beams")
    return SourceClass.EXTENDED, ", ".join(reasons), area_beams


def find_objects(image: InputImage, bkg: np.ndarray, rms: np.ndarray, config: AnnotateConfig,
                 spurious: bool) -> list[FoundObject]:
    """Objects of the whole image, in the order of their first pixel (row-major): deterministic."""
    nan = ~np.isfinite(image.data)
    snr = np.where(nan, 0.0, (np.nan_to_num(image.data) - bkg) / rms)
    islands = detect_islands(snr, nan, image, config)
    mapping = group_islands(islands, image, config)
    objects_map = mapping[islands]  # 0 stays 0
    peaks = count_peaks(snr, nan, image, config)
    peak_obj = objects_map[peaks[:, 0], peaks[:, 1]] if len(peaks) else np.zeros(0, dtype=int)
    residual = np.where(nan, 0.0, np.nan_to_num(image.data) - bkg)
    found: list[FoundObject] = []
    ids = [int(v) for v in dict.fromkeys(objects_map.ravel()[np.flatnonzero(objects_map)])]  # first-pixel order
    for oid in ids:
        mask = objects_map == oid
        nislands = len(np.unique(islands[mask]))
        npeaks = max(1, int(np.count_nonzero(peak_obj == oid)))
        peak_snr = float(snr[mask].max())
        npix = int(mask.sum())
        flux = float(residual[mask].sum() / image.beam_area_px)
        cls, rule, area = classify(npix, nislands, npeaks, peak_snr, image.beam_area_px, config, spurious)
        w = np.clip(residual, 0.0, None) * mask
        rows, cols = np.nonzero(mask)
        total = float(w[rows, cols].sum())
        if total > 0:
            centre = (float((w[rows, cols] * rows).sum() / total), float((w[rows, cols] * cols).sum() / total))
        else:
            centre = (float(rows.mean()), float(cols.mean()))
        found.append(FoundObject(mask, nislands, npeaks, peak_snr, flux, area, cls, rule, centre))
    return found
