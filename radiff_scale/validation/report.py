"""validate's outputs: validation.json (what was run and every number), the matched detections, and a one-line summary.

JSON has no NaN or infinity, and an empty bin's median is not a number anyone should
read as one: :func:`json_safe` writes both as null. Files are written whole or not at all
(:mod:`radiff_scale.atomic`), so a killed validate leaves the previous report or none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from radiff_scale.atomic import replace_when_done, write_json_atomic

#: Bump when the layout of validation.json changes.
REPORT_VERSION = 1


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays to Python, NaN and +-inf to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-able in a report: {type(value).__name__}")


def write_report(path: str | Path, report: Mapping[str, Any]) -> Path:
    """validation.json: sorted keys, indented, whole or not at all."""
    return write_json_atomic(path, json_safe({"report_version": REPORT_VERSION, **report}))


def write_detections(path: str | Path, table: pa.Table, truth_id: np.ndarray) -> Path:
    """PyBDSF's merged source list with the id of its matched truth object (-1: none), as Parquet."""
    import pyarrow.parquet as pq

    out = table.append_column("truth_id", pa.array(np.asarray(truth_id, dtype=np.int64)))
    return replace_when_done(path, lambda tmp: pq.write_table(out, tmp, compression="zstd", write_statistics=False))


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """What the command prints: the headline numbers against their targets, and the SDC1 score."""
    metrics = report["metrics"]
    h = metrics["headline"]
    t = h["targets"]
    flags = {k: ("pass" if v else "MISS") if v is not None else "n/a" for k, v in h["pass"].items()}
    allc = metrics["classes"]["all"]
    lines = [
        f"detections: {report['counts']['detections']}, truth objects: {report['counts']['truth']}, "
        f"matched: {allc['n_matched']} (completeness {_fmt(allc['completeness'], '.3f')}, "
        f"reliability {_fmt(metrics['reliability']['reliability'], '.3f')}; unmatched detections: "
        f"{_n(metrics['reliability']['n_unmatched_on_object'])} on objects, "
        f"{_n(metrics['reliability']['n_unmatched_on_background'])} on empty sky)",
        f"compact objects with S/N > {t['snr_min']:g}: n = {h['n_truth']}",
        f"  completeness        {_fmt(h['completeness'], '.3f')}  (target >= {t['completeness_min']:g}: {flags['completeness']})",
        f"  median flux ratio   {_fmt(h['median_flux_ratio'], '.3f')}  "
        f"(target 1 +- {t['flux_ratio_tolerance']:g}: {flags['flux_ratio']}; "
        f"island pixel sums: {_fmt(h['median_island_flux_ratio'], '.3f')})",
        f"  median offset       {_fmt(h['median_offset_beams'], '.3f')} beam  "
        f"(target < {t['offset_max_beams']:g}: {flags['offset']})",
    ]
    sdc1 = report["sdc1"]
    if sdc1.get("scored"):
        lines.append(f"SDC1 score {sdc1['value']:.1f} ({sdc1['n_match']} matches, {sdc1['n_false']} false, "
                     f"{sdc1['acc_pc']:.1f}% accuracy per match; {sdc1['reason']})")
    else:
        lines.append(f"SDC1 score: not computed ({sdc1['reason']})")
    return lines
