"""The SKA Science Data Challenge 1 score of PyBDSF's catalogue against our truth, by ska-sdc's own scorer.

``ska_sdc.Sdc1Scorer`` runs unmodified on two DataFrames in SDC1's 12 columns. The truth
side is :func:`radiff_scale.compose.sdc1.truth_to_sdc1`, the project's one mapping of our
truth to SDC1 (docs/truth.md, "SDC1 catalogue": compact -> SFG, extended -> SS-AGN with LAS
sizes, spurious objects and non-positive fluxes left out, PA turned to SDC1's convention).
The submission side follows the same conventions, so that truth and detections agree:

- core = PyBDSF's brightest point (``RA_max``/``DEC_max``, as the truth's core is its
  brightest pixel), centroid = PyBDSF's centroid;
- sizes mean what the truth's mean: PyBDSF's deconvolved FWHM (``DC_Maj``/``DC_Min``/``DC_PA``)
  when the truth has intrinsic sizes (``src_major_arcsec``), else its fitted FWHM (the truth's
  then are the mask's, not deconvolved); always size code 2, since PyBDSF fits Gaussians
  (the scorer converts between size codes itself);
- PA turned to SDC1's convention with the truth's formula, ``(90 - pa) mod 180``;
- class 3 (SFG) for a source PyBDSF fitted with one Gaussian (``S_Code == "S"``), else 1
  (SS-AGN): compact vs extended, the only distinction our classes make;
- ``core_frac`` 0, as in the truth.

What the scorer assumes and our maps may not satisfy: it knows only 560, 1400 and 9200 MHz,
so a map is scored at the band within 10% of its frequency or not at all (the reason is
recorded); and its beam is SDC1's, 0.25" x 1400 / band, not the map's. That beam sets its
match radius (source size and beam in quadrature) and its position accuracy, so on a map
whose beam is much larger (the 9.8" default at 1.4 GHz) unresolved sources find few matches
and the score says little; both beams are recorded beside it. The scorer logs at INFO level
through the root logger and trips pandas warnings; both are kept off the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from radiff_scale.compose.sdc1 import CLASS_SFG, CLASS_SS_AGN, SDC1_FREQS_MHZ, SIZE_GAUSSIAN, sdc1_dataframe, \
    truth_to_sdc1
from radiff_scale.validation.deps import quiet_import
from radiff_scale.validation.inputs import MapInfo

#: How far (fraction) a map's frequency may be from a band and still be scored at it.
BAND_TOLERANCE = 0.1

COMPONENTS = ("position", "flux", "b_maj", "b_min", "pa", "core_frac", "class")


def sdc1_band(freq_hz: float | None, tolerance: float = BAND_TOLERANCE) -> tuple[int | None, str]:
    """SDC1's band (MHz) for a map observed at ``freq_hz``, or None with the reason it cannot be scored."""
    if freq_hz is None or not np.isfinite(freq_hz) or freq_hz <= 0:
        return None, "the map has no observing frequency (RESTFRQ), so no SDC1 band applies"
    mhz = freq_hz / 1e6
    band = min(SDC1_FREQS_MHZ, key=lambda b: abs(mhz - b) / b)
    if abs(mhz - band) / band > tolerance:
        return None, (f"the map is at {mhz:g} MHz, not within {tolerance:.0%} of an SDC1 band "
                      f"({', '.join(str(b) for b in SDC1_FREQS_MHZ)} MHz): the SDC1 scorer only knows those")
    return band, f"scored at SDC1's {band} MHz band (map at {mhz:g} MHz)"


def submission_columns(det: Mapping[str, np.ndarray], deconvolved: bool) -> dict[str, np.ndarray]:
    """PyBDSF's detections as SDC1 submission columns (ids 1..n in detection order; see the module doc)."""
    n = len(det["ra"])

    def f(name: str) -> np.ndarray:
        return np.asarray(det[name], dtype=np.float64)

    def wrap(ra: np.ndarray) -> np.ndarray:
        return np.where(ra > 180.0, ra - 360.0, ra)

    pa_deg = f("dc_pa_deg" if deconvolved else "pa_deg")
    single = np.asarray([str(s) == "S" for s in det["s_code"]], dtype=bool)
    return {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "ra_core": wrap(f("ra_max")), "dec_core": f("dec_max"), "ra_cent": wrap(f("ra")), "dec_cent": f("dec"),
        "flux": f("flux_jy"), "core_frac": np.zeros(n),
        "b_maj": f("dc_major_arcsec" if deconvolved else "major_arcsec"),
        "b_min": f("dc_minor_arcsec" if deconvolved else "minor_arcsec"),
        "pa": (90.0 - pa_deg) % 180.0, "size": np.full(n, SIZE_GAUSSIAN, dtype=np.int64),
        "class": np.where(single, CLASS_SFG, CLASS_SS_AGN).astype(np.int64),
    }


@contextlib.contextmanager
def _scorer_quiet() -> Iterator[None]:
    """The scorer's ``logging.basicConfig(level=INFO)`` finds a handler and does nothing; INFO is off meanwhile."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
        root.removeHandler(guard)


def score_sdc1(truth: pa.Table, det: Mapping[str, np.ndarray], info: MapInfo) -> dict[str, Any]:
    """The SDC1 score and its parts, or ``{"scored": False, "reason": ...}`` where it does not apply."""
    band, reason = sdc1_band(info.freq_hz)
    if band is None:
        return {"scored": False, "reason": reason}
    if len(det["ra"]) == 0:
        return {"scored": False, "reason": "PyBDSF found no sources: nothing to score"}
    deconvolved = "src_major_arcsec" in truth.column_names
    truth_cols = truth_to_sdc1(truth)
    if len(truth_cols["id"]) == 0:
        return {"scored": False, "reason": "no compact or extended object with positive flux: no SDC1 truth"}
    scorer_mod = quiet_import("ska_sdc")
    prep = quiet_import("ska_sdc.sdc1.utils.prep")
    with _scorer_quiet():
        truth_df, sub_df = sdc1_dataframe(truth_cols), sdc1_dataframe(submission_columns(det, deconvolved))
        # The scorer scores either SDC1's training box only or everything outside it; a map
        # re-centred on the training catalogue lies inside it, so take the side holding
        # most of the truth (train=False alone left such a map with no truth, and the scorer
        # failed on an empty tree).
        n_out = len(prep.prepare_data(truth_df.copy(), band, False))
        n_in = len(prep.prepare_data(truth_df.copy(), band, True))
        train = n_in > n_out
        n_truth_scored = max(n_in, n_out)
        if n_truth_scored == 0:
            return {"scored": False, "reason": "no truth source survives the scorer's own cleaning"}
        score = scorer_mod.Sdc1Scorer(sub_df, truth_df, band).run(mode=0, train=train, detail=True)
    scores = score.scores_df
    components = {c: (float(scores[c].mean()) if scores is not None and len(scores) else None) for c in COMPONENTS}
    return {
        "scored": True, "reason": reason, "band_mhz": band, "mode": "core", "train": train,
        "n_truth_outside_training_box": int(n_out), "n_truth_inside_training_box": int(n_in),
        "value": float(score.value), "n_det": int(score.n_det), "n_match": int(score.n_match),
        "n_false": int(score.n_false), "n_bad": int(score.n_bad), "score_det": float(score.score_det),
        "acc_pc": float(score.acc_pc), "n_truth_given": len(truth_cols["id"]), "n_truth_scored": int(n_truth_scored),
        "component_means": components,
        "scorer_beam_arcsec": 0.25 * 1400.0 / band,
        "map_beam_arcsec": [info.beam.bmaj_arcsec, info.beam.bmin_arcsec],
        "submission_sizes": "PyBDSF deconvolved (DC_Maj/DC_Min/DC_PA)" if deconvolved else "PyBDSF fitted (Maj/Min/PA)",
        "truth_sizes": "src_major/minor_arcsec (deconvolved)" if deconvolved else "major/minor_arcsec (mask moments)",
    }
