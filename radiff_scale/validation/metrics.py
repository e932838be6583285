"""Completeness, reliability, flux ratio and positional offsets, binned by S/N, per class and overall.

The two S/N axes differ on purpose. Completeness asks "of the objects placed at this S/N,
how many were found?", so it bins the **truth** S/N, ``peak_jy_beam / sigma_local``
(= ``k``, docs/truth.md): known exactly, not affected by what the finder measured.
Reliability asks "of the detections at this S/N, how many are real?", and a spurious
detection has no truth, so it bins the **detection** S/N, PyBDSF's ``Peak_flux / Isl_rms``.
Detections carry no class, so reliability is reported overall only; an unmatched detection
is either on an object's footprint in labels.fits (a fragment of an extended object, or the
second part of a blend: one-to-one matching keeps one detection per object) or on empty sky
(a noise peak), and the report counts both.

The flux ratio is detected / true integrated flux (both Jy) of matched pairs, binned by
truth S/N with median and 16th/84th percentiles (the +-1 sigma range of a Gaussian scatter,
robust to the few blends that double a flux). The detected flux is PyBDSF's ``Total_flux``,
the integral of its fitted Gaussians (what a catalogue user gets); the island flux ratio
(``Isl_Total_flux``, a pixel sum) is reported beside it, because a Gaussian model overshoots
on objects with sharp edges while a pixel sum does not. Objects with no positive true flux
(``normalisation = "abs_peak"`` stamps) have no meaningful ratio and are left out of it.
Offsets are match distances in units of the beam's FWHM (geometric mean of its axes).

Bins are half-open ``[lo, hi)``; open ends are written as null in the JSON report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from radiff_scale.classes import OBJECT_CLASSES
from radiff_scale.validation.match import Matches

INF = math.inf
#: Default S/N bin edges: fine where completeness turns over (3-10 sigma), coarse above.
DEFAULT_SNR_EDGES: tuple[float, ...] = (-INF, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, INF)


@dataclass(frozen=True)
class Targets:
    """The acceptance numbers issue 15 checks for compact objects above ``snr_min``."""

    snr_min: float = 10.0
    completeness_min: float = 0.9
    flux_ratio_tolerance: float = 0.1
    offset_max_beams: float = 0.3

    def describe(self) -> dict[str, float]:
        return {"snr_min": self.snr_min, "completeness_min": self.completeness_min,
                "flux_ratio_tolerance": self.flux_ratio_tolerance, "offset_max_beams": self.offset_max_beams}


def _edge(v: float) -> float | None:
    return None if math.isinf(v) else float(v)


def bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin of each value (``edges[b] <= v < edges[b + 1]``), or -1 for a value outside every bin (or NaN)."""
    values = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right") - 1
    idx[(idx >= len(edges) - 1) | np.isnan(values)] = -1
    return idx


def quantiles(values: np.ndarray) -> dict[str, Any]:
    """n, median and 16th/84th percentiles (None when empty)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"n": 0, "median": None, "p16": None, "p84": None}
    p16, p50, p84 = np.percentile(values, [16, 50, 84])
    return {"n": int(len(values)), "median": float(p50), "p16": float(p16), "p84": float(p84)}


def binned_fraction(snr: np.ndarray, hit: np.ndarray, edges: Sequence[float]) -> list[dict[str, Any]]:
    """Per bin of ``snr``: how many, how many hit, and the fraction (None for an empty bin)."""
    idx = bin_index(snr, edges)
    hit = np.asarray(hit, dtype=bool)
    out = []
    for b in range(len(edges) - 1):
        sel = idx == b
        n, k = int(sel.sum()), int(hit[sel].sum())
        out.append({"snr_lo": _edge(edges[b]), "snr_hi": _edge(edges[b + 1]), "n": n, "n_matched": k,
                    "fraction": k / n if n else None})
    return out


def binned_quantiles(snr: np.ndarray, values: np.ndarray, edges: Sequence[float]) -> list[dict[str, Any]]:
    """Per bin of ``snr``: :func:`quantiles` of ``values``."""
    idx = bin_index(snr, edges)
    values = np.asarray(values, dtype=np.float64)
    return [{"snr_lo": _edge(edges[b]), "snr_hi": _edge(edges[b + 1]), **quantiles(values[idx == b])}
            for b in range(len(edges) - 1)]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den where den > 0, NaN elsewhere (no division warnings)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(num.shape, np.nan)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def class_summary(sel: np.ndarray, truth_snr: np.ndarray, partner: np.ndarray, ratio: np.ndarray,
                  offset: np.ndarray, edges: Sequence[float], island_ratio: np.ndarray,
                  touched: np.ndarray | None) -> dict[str, Any]:
    """The numbers of one class (``sel`` picks its truth rows): completeness, flux ratio, offsets.

    ``island_flux_ratio`` (PyBDSF's island pixel sum over the true flux) is a diagnostic beside
    the Gaussian-model ``flux_ratio``: where the two differ, the objects are not Gaussian.
    ``footprint_completeness`` counts an object found when any detection's centre lies on its
    footprint (labels.fits), whatever the distance between centroids: for extended and spurious
    objects, whose flux-weighted centroid can be far from any one PyBDSF source, it tells
    "not found" from "found in pieces or off-centre".
    """
    found = partner[sel] >= 0
    snr = truth_snr[sel]
    n = int(sel.sum())
    on = None if touched is None else touched[sel]
    return {
        "n_truth": n, "n_matched": int(found.sum()), "completeness": float(found.mean()) if n else None,
        "footprint_completeness": None if on is None or not n else float(on.mean()),
        "completeness_by_snr": binned_fraction(snr, found, edges),
        "flux_ratio": quantiles(ratio[sel]), "flux_ratio_by_snr": binned_quantiles(snr, ratio[sel], edges),
        "island_flux_ratio": quantiles(island_ratio[sel]),
        "offset_beams": quantiles(offset[sel]), "offset_beams_by_snr": binned_quantiles(snr, offset[sel], edges),
    }


def headline(truth: Mapping[str, np.ndarray], truth_snr: np.ndarray, partner: np.ndarray, ratio: np.ndarray,
             offset: np.ndarray, targets: Targets, island_ratio: np.ndarray) -> dict[str, Any]:
    """Compact objects with truth S/N > ``targets.snr_min``: the three numbers the issue checks, and whether they pass.

    A pass is None when there is nothing to judge (no such objects, or none matched). The median
    island flux ratio is there to read the flux ratio by, not judged.
    """
    sel = (np.asarray(truth["class"]) == 2) & (truth_snr > targets.snr_min)
    n = int(sel.sum())
    completeness = float((partner[sel] >= 0).mean()) if n else None
    flux = quantiles(ratio[sel])["median"]
    off = quantiles(offset[sel])["median"]
    return {
        "selection": f"class == compact and peak_jy_beam / sigma_local > {targets.snr_min:g}",
        "n_truth": n, "n_matched": int((partner[sel] >= 0).sum()),
        "completeness": completeness, "median_flux_ratio": flux, "median_offset_beams": off,
        "median_island_flux_ratio": quantiles(island_ratio[sel])["median"], "targets": targets.describe(),
        "pass": {
            "completeness": None if completeness is None else completeness >= targets.completeness_min,
            "flux_ratio": None if flux is None else abs(flux - 1.0) <= targets.flux_ratio_tolerance,
            "offset": None if off is None else off < targets.offset_max_beams,
        },
    }


def unmatched_where(real: np.ndarray, det_label: np.ndarray | None) -> dict[str, int | None]:
    """Unmatched detections on an object's footprint (fragments, blends) and on empty sky (noise peaks)."""
    if det_label is None:
        return {"n_unmatched_on_object": None, "n_unmatched_on_background": None}
    lost = ~real
    return {"n_unmatched_on_object": int((lost & (det_label > 0)).sum()),
            "n_unmatched_on_background": int((lost & (det_label <= 0)).sum())}


def evaluate(truth: Mapping[str, np.ndarray], det: Mapping[str, np.ndarray], matches: Matches, beam_px: float,
             edges: Sequence[float] = DEFAULT_SNR_EDGES, targets: Targets = Targets(),
             hist_max_beams: float = 1.0, hist_step_beams: float = 0.05,
             det_label: np.ndarray | None = None) -> dict[str, Any]:
    """Every metric of the report from the truth columns, the detection columns and their matches.

    ``det_label``: the labels.fits object id under each detection (see ``inputs.labels_at``), to
    split the unmatched detections into fragments of objects and noise peaks.
    """
    truth_snr = _ratio(truth["peak_jy_beam"], truth["sigma_local"])
    det_snr = _ratio(det["peak_jy_beam"], det["rms_jy_beam"])
    partner = matches.truth_partner()
    ratio = np.full(matches.n_truth, np.nan)
    offset = np.full(matches.n_truth, np.nan)
    true_flux = np.asarray(truth["flux_jy"])[matches.truth]
    ratio[matches.truth] = _ratio(np.asarray(det["flux_jy"])[matches.det], true_flux)
    island = np.full(matches.n_truth, np.nan)
    if "isl_flux_jy" in det:
        island[matches.truth] = _ratio(np.asarray(det["isl_flux_jy"])[matches.det], true_flux)
    offset[matches.truth] = matches.distance / beam_px
    classes = np.asarray(truth["class"])
    touched = None if det_label is None else np.isin(np.asarray(truth["id"]), det_label[det_label > 0])
    per_class = {"all": class_summary(np.ones(matches.n_truth, dtype=bool), truth_snr, partner, ratio, offset, edges,
                                      island, touched)}
    for cls in OBJECT_CLASSES:
        per_class[cls.label] = class_summary(classes == int(cls), truth_snr, partner, ratio, offset, edges, island,
                                             touched)
    real = matches.det_partner() >= 0
    hist_edges = np.arange(0.0, hist_max_beams + hist_step_beams / 2, hist_step_beams)
    hist = {"all": np.histogram(offset[partner >= 0], hist_edges)[0].tolist()}
    for cls in OBJECT_CLASSES:
        hist[cls.label] = np.histogram(offset[(partner >= 0) & (classes == int(cls))], hist_edges)[0].tolist()
    return {
        "snr_definition": {"truth": "peak_jy_beam / sigma_local (catalogue.parquet)",
                           "detection": "Peak_flux / Isl_rms (PyBDSF source list)"},
        "classes": per_class,
        "reliability": {"n_det": matches.n_det, "n_matched": int(real.sum()),
                        "reliability": float(real.mean()) if matches.n_det else None,
                        **unmatched_where(real, det_label),
                        "by_snr": binned_fraction(det_snr, real, edges)},
        "offset_histogram": {"edges_beams": hist_edges.tolist(), "counts": hist},
        "headline": headline(truth, truth_snr, partner, ratio, offset, targets, island),
    }
