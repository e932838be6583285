"""The validate job: PyBDSF on a finished map run, matched against its truth, scored, reported.

``run_validate`` reads top to bottom:

    run folder + packages ──► map grid, beam, truth ──► regions ──► PyBDSF per region
    (one line and exit 2 for         (validation.inputs)    (pure)     (Ray tasks; one region:
     a wrong folder, no bdsf)                                           in this process)
        ──► merge owned sources ──► match ──► metrics ──► SDC1 score ──► detections, png, json (last)

A map of one region (up to ``region_size`` pixels a side) runs in this process, with
PyBDSF's own fitting spread over ``workers`` cores, and never starts Ray. Larger maps run
one one-CPU task per region (actors/finder_tasks.py); each returns only the sources whose
centre its core holds, so the merged list has no duplicates (validation/regions.py).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from radiff_scale.atomic import check_output_path
from radiff_scale.errors import RadiffError
from radiff_scale.progress import progress_bar
from radiff_scale.validation.deps import package_versions, require_packages
from radiff_scale.validation.finder import DETECTION_SCHEMA, FinderParams, check_options, find_owned_sources
from radiff_scale.validation.inputs import LABELS_FILE, MANIFEST_FILE, MAP_FILE, TRUTH_FILE, MapInfo, \
    check_run_folder, labels_at, read_map_info, read_truth, truth_columns
from radiff_scale.validation.match import cross_match
from radiff_scale.validation.metrics import DEFAULT_SNR_EDGES, Targets, evaluate
from radiff_scale.validation.plot import write_plot
from radiff_scale.validation.regions import Region, RegionPlan, plan_regions
from radiff_scale.validation.report import write_detections, write_report
from radiff_scale.validation.sdc1_score import score_sdc1

#: Regions overlap by this many beams (at least MIN_MARGIN_PX): wider than any compact source.
MARGIN_BEAMS = 8.0
MIN_MARGIN_PX = 128


def default_margin(info: MapInfo) -> int:
    return max(MIN_MARGIN_PX, int(math.ceil(MARGIN_BEAMS * info.beam_px)))


def find_all(info: MapInfo, plan: RegionPlan, params: FinderParams, workers: int, progress: bool,
             use_ray: bool = True) -> pa.Table:
    """Every owned source of every region, merged in (region, PyBDSF source id) order."""
    regions = plan.regions
    tables: list[pa.Table] = []
    bar = progress_bar(progress, len(regions), "PyBDSF", "region")
    try:
        if len(regions) == 1 or not use_ray:
            for region in regions:  # in this process: PyBDSF may fit on every core it is given
                tables.append(find_owned_sources(info, plan, region, params, ncores=workers))
                bar.update(1)
        else:
            tables = _find_on_ray(info, plan, regions, params, workers, bar)
    finally:
        bar.close()
    merged = pa.concat_tables([DETECTION_SCHEMA.empty_table(), *tables])
    return merged.sort_by([("region_row", "ascending"), ("region_col", "ascending"), ("source_id", "ascending")])


def _find_on_ray(info: MapInfo, plan: RegionPlan, regions: Sequence[Region], params: FinderParams, workers: int,
                 bar: Any) -> list[pa.Table]:
    from actors.finder_tasks import find_sources_task
    from actors.runtime import connect_ray
    from actors.scheduler import run_tasks

    connect_ray(workers, include_dashboard=False, log_to_driver=False, configure_logging=True)
    tables: list[pa.Table] = []

    def on_result(table: pa.Table) -> None:
        tables.append(table)
        bar.update(1)

    run_tasks(lambda region: find_sources_task.remote(info, plan, region, params), regions, workers, on_result)
    return tables


def _manifest_summary(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RadiffError(f"{path}: cannot read the run's manifest ({exc})") from None
    keep = ("spec", "geometry", "counts", "model", "tiles", "versions")
    return {k: manifest[k] for k in keep if k in manifest}


def run_validate(
    out: str | Path,
    out_json: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    params: FinderParams | None = None,
    region_size: int = 4096,
    margin_px: int | None = None,
    match_radius_beams: float = 1.0,
    targets: Targets | None = None,
    snr_edges: Sequence[float] = DEFAULT_SNR_EDGES,
    use_ray: bool = True,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Validate the map run in ``out``; returns the report also written to ``out_json`` (default OUT/validation.json)."""
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    params = params or FinderParams()
    targets = targets or Targets()
    if workers is not None and workers < 1:
        raise RadiffError(f"--workers must be >= 1, got {workers}")
    if not match_radius_beams > 0:
        raise RadiffError(f"the match radius must be > 0 beams, got {match_radius_beams}")
    out = check_run_folder(out)
    out_json = Path(out_json) if out_json is not None else out / "validation.json"
    check_output_path(out_json, folder=False, what="the report")
    require_packages()
    check_options(params)
    info = read_map_info(out / MAP_FILE)
    if info.freq_hz is None:  # PyBDSF stops on a single-plane image without one
        raise RadiffError(f"{info.path}: no observing frequency (RESTFRQ, RESTFREQ or a FREQ axis); PyBDSF needs one")
    truth_table = read_truth(out / TRUTH_FILE)
    truth = truth_columns(truth_table)
    manifest = _manifest_summary(out / MANIFEST_FILE)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    plan = plan_regions(info.shape, region_size, default_margin(info) if margin_px is None else margin_px)
    n_regions = len(plan.regions)
    cpus = os.cpu_count() or 1
    # One region: PyBDSF fits its islands on every core; several: one region per core.
    workers = workers or (cpus if n_regions == 1 else min(n_regions, cpus))

    on_ray = bool(use_ray and n_regions > 1)
    t = time.perf_counter()
    det_table = find_all(info, plan, params, workers, progress, use_ray)
    seconds["pybdsf"] = time.perf_counter() - t
    det = {n: det_table.column(n).to_numpy(zero_copy_only=False) for n in det_table.column_names}

    t = time.perf_counter()
    radius_px = match_radius_beams * info.beam_px
    matches = cross_match(truth["x"], truth["y"], det["x"], det["y"], radius_px)
    det_label = labels_at(out / LABELS_FILE, det["x"], det["y"])
    metrics = evaluate(truth, det, matches, info.beam_px, snr_edges, targets, det_label=det_label)
    seconds["match_and_metrics"] = time.perf_counter() - t
    t = time.perf_counter()
    sdc1 = score_sdc1(truth_table, det, info)
    seconds["sdc1"] = time.perf_counter() - t

    partner = matches.det_partner()
    truth_id = np.full(len(partner), -1, dtype=np.int64)
    truth_id[partner >= 0] = truth["id"][partner[partner >= 0]]
    png = out_json.with_suffix(".png")
    detections = out_json.with_name(out_json.stem + "_detections.parquet")
    write_detections(detections, det_table, truth_id)
    write_plot(png, metrics)
    seconds["total"] = time.perf_counter() - started
    report = {
        "command": list(command) if command is not None else None,
        "run_folder": str(out),
        "inputs": {"map": info.describe(), "truth": {"path": str(out / TRUTH_FILE), "rows": len(truth["id"])},
                   "manifest": manifest},
        "parameters": {
            "finder": {"program": "bdsf.process_image", **params.describe(),
                       "process_image_kwargs": params.process_kwargs(info, 1 if on_ray else workers)},
            "regions": plan.describe(), "workers": workers, "ray": on_ray,
            "match": {"method": "greedy one-to-one by distance, truth centroid vs PyBDSF centroid",
                      "radius_beams": match_radius_beams, "radius_px": radius_px, "beam_unit_px": info.beam_px,
                      "beam_unit": "geometric mean of BMAJ and BMIN (FWHM)"},
            "snr_edges": list(snr_edges), "targets": targets.describe(),
        },
        "versions": package_versions(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "counts": {"truth": len(truth["id"]), "detections": det_table.num_rows, "matched": len(matches.truth)},
        "metrics": metrics,
        "sdc1": sdc1,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "outputs": {"report": out_json.name, "plot": png.name, "detections": detections.name},
    }
    write_report(out_json, report)  # last: its presence means everything above was written
    return report
