"""The map job, top to bottom: a synthetic radio map with its exact truth, from one MapSpec.

    inputs   resolve and check everything a user can get wrong      (radiff_scale.mapjob.inputs)
    plan     plan objects, pick masks, place them, from the seed    (radiff_scale.mapjob.plan)
    tiles    one tile per placed object: sampler actors or a bank   (radiff_scale.mapjob.tiles)
    stamps   cut, scale and measure each object once                (radiff_scale.mapjob.stamps)
    chunks   each mosaic chunk painted and written once, by its owner (radiff_scale.mapjob.chunks)
    export   FITS, labels, quick-look, catalogue, regions           (radiff_scale.mapjob.export)
    manifest written last: its presence means the run is complete   (radiff_scale.mapjob.manifest)

Each stage reads "what is left -> run tasks -> counts". Every store records what it
finished (a batch owns its output, then marks it done), so ``resume`` after a crash does
only what is missing and ends with the same bytes; every task is a pure function of its
inputs, so the bytes do not depend on the number of workers. Ray is reached only
through actors/ (tasks, sampler pool, scheduler).
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr

from actors._worker import release_free_memory
from actors.map_tasks import compose_chunk_task, cut_stamps_task, export_chunk_task, share
from actors.runtime import connect_ray
from actors.sampling_stage import sample_masks_to_store, sample_to_store
from actors.scheduler import run_tasks
from radiff_scale.atomic import write_json_atomic
from radiff_scale.compose.given import GivenObjects
from radiff_scale.compose.mosaic import create_mosaic, done_chunks, open_mosaic, validate_chunk
from radiff_scale.compose.positions import Positions
from radiff_scale.compose.sigma import sigma_map
from radiff_scale.compose.spec import MapSpec, preflight_disk
from radiff_scale.data.mask_bank import MaskBank
from radiff_scale.diffusion.settings import MASK_PRIOR_FALLBACK, STUDENT_SAMPLERS
from radiff_scale.mapjob import chunks, export, stamps, tiles
from radiff_scale.mapjob.inputs import MapInputs, check_bank_classes, describe_tile_source, resolve_inputs
from radiff_scale.mapjob.manifest import StageLog, build_manifest, refusal_counts
from radiff_scale.mapjob.plan import PlannedMap, PlannedObject, plan_map
from radiff_scale.mapjob.rundir import RUN_LAYOUT, RunDir, check_run_flags, prepare_run_dir
from radiff_scale.progress import progress_bar
from radiff_scale.seeding import derive_seed


def run_make_map(
    spec: MapSpec, out: str | Path, resume: bool = False, overwrite: bool = False, progress: bool = True,
    use_gpu: bool = False, positions: Positions | None = None,
) -> dict[str, Any]:
    """Make the map of ``spec`` in ``out``; returns the manifest (also written to out/manifest.json).

    ``positions``: objects at given places (catalogue-aware maps, see radiff_scale.api)
    instead of ``spec.placement.n_objects`` random ones. They are part of the run's
    identity: ``resume`` refuses a folder made with other positions.
    """
    started = time.perf_counter()
    log = StageLog()
    validate_chunk(spec.chunk)
    check_run_flags(resume, overwrite)
    inputs = resolve_inputs(spec)  # every user mistake, before any folder or heavy work
    given = positions.resolve(inputs.geometry) if positions is not None else None
    identity = run_identity(spec, given)
    out = Path(out)
    preflight_disk(out, inputs.geometry.shape)
    check_bank_classes(inputs.mask_bank, spec.placement, given)  # indexes the bank (~2 s): after the quick checks
    # The noise map before the run folder: a background with no usable pixels is refused
    # without leaving a spec.json behind (the same command would then be "not empty").
    t = log.start()
    sigma = inputs.sigma if inputs.sigma is not None else sigma_map(inputs.background)
    log.timed("sigma_map", t)
    run = prepare_run_dir(out, identity, resume=resume, overwrite=overwrite)
    run.manifest.unlink(missing_ok=True)  # a resumed run is not complete until its new manifest is written
    note = describe_tile_source(inputs)  # after every refusal: a refused run prints its one line alone
    if note:
        print(note, file=sys.stderr)
    # No dashboard and no worker logs locally: the driver's progress bars say all there is.
    connect_ray(spec.workers, include_dashboard=False, log_to_driver=False, configure_logging=True)

    bank = inputs.mask_bank
    if bank is None:
        t = log.start()
        bank = mask_pool_stage(spec, run, inputs, use_gpu, progress, log)
        log.timed("mask_pool", t)
    t = log.start()
    planned = plan_stage(spec, run, inputs, bank, sigma, given, progress, log)
    objects = planned.objects()  # rank order
    log.timed("plan", t)
    t = log.start()
    tiles_stage(spec, run, inputs, planned, objects, use_gpu, progress, log)
    log.timed("tiles", t)
    t = log.start()
    stamps_stage(spec, run, inputs, objects, progress, log)
    log.timed("stamps", t)
    t = log.start()
    chunks_stage(spec, run, inputs, objects, progress, log)
    log.timed("chunks", t)
    # The export needs none of the placement: free it (at 60,000 objects ~ hundreds of MB of
    # records, footprints and the spatial index) before streaming gigabytes through the driver.
    n_placed, unplaced = planned.table.num_rows, planned.placement.unplaced
    del objects, planned
    gc.collect()
    release_free_memory()
    t = log.start()
    outputs = export_stage(spec, run, inputs, n_placed, progress, log)
    log.timed("export", t)
    log.seconds["total"] = round(time.perf_counter() - started, 3)

    model = {"path": str(inputs.model_dir if inputs.tile_bank is None else inputs.tile_bank.meta.model),
             "card": inputs.card}
    source = {"source": "model", "zoom": inputs.zoom} if inputs.tile_bank is None else \
        {"source": "bank", **inputs.tile_bank.describe()}
    manifest = build_manifest(spec, inputs.geometry, model, source, resume, log, outputs,
                              run.unplaced.relative_to(run.root).as_posix())
    if positions is not None:
        manifest["positions"] = {
            **positions.describe(), "sha256": identity["positions"]["sha256"],
            "placed": n_placed, "unplaced": len(unplaced), "unplaced_by_reason": refusal_counts(unplaced),
        }
    write_json_atomic(run.manifest, manifest)
    return manifest


def run_identity(spec: MapSpec, given: GivenObjects | None) -> dict[str, Any]:
    """What decides the output bytes: a ``resume`` must find the same identity in spec.json."""
    identity = {**spec.identity(), "run_layout": RUN_LAYOUT}
    if given is not None:
        identity["positions"] = {"rows": len(given), "sha256": given.fingerprint()}
    return identity


def mask_pool_stage(spec: MapSpec, run: RunDir, inputs: MapInputs, use_gpu: bool, progress: bool,
                    log: StageLog) -> MaskBank:
    """``spec.mask_pool`` masks invented by the mask prior on the sampler actors, as a bank.

    Mask ``i`` of the pool depends only on (run seed, i), so the pool -- and every object
    picked from it -- is the same for any number of actors; the pool is a resumable
    store in the run folder, so ``--resume`` does not sample it again.
    """
    s = spec.sampler
    # The mask prior has no student: with a student sampler for tiles, it keeps its own solver.
    name, steps = (s.name, s.steps) if s.name not in STUDENT_SAMPLERS else MASK_PRIOR_FALLBACK
    seeds = [derive_seed(spec.seed, i, "mask-prior") for i in range(spec.mask_pool)]
    with progress_bar(progress, spec.mask_pool, "masks (prior)", "mask") as bar:
        counts = sample_masks_to_store(
            str(inputs.model_dir), seeds, run.mask_pool, s.batch_size, steps, name, spec.workers,
            use_gpu=use_gpu, on_batch=lambda _batch, k: bar.update(k),
        )
    log.counts["mask_pool_batches_sampled"] = counts.batches_sampled
    masks = np.asarray(zarr.open_array(str(run.mask_pool), mode="r")[:])
    return MaskBank(masks, source=f"the mask prior's {len(masks)} masks (masks: prior; raise mask_pool for more)")


def plan_stage(spec: MapSpec, run: RunDir, inputs: MapInputs, bank: Any, sigma: Any, given: GivenObjects | None,
               progress: bool, log: StageLog) -> PlannedMap:
    """Plan, pick masks and place, on the driver, from the seed alone; record the refusals."""
    planned = plan_map(spec.placement, inputs.geometry.shape, inputs.geometry.pixel_scale_arcsec, spec.seed, bank,
                       sigma, given, chunk=spec.chunk, beam=inputs.geometry.beam)
    unplaced = planned.placement.unplaced
    log.counts.update(objects_planned=planned.n_planned, objects_placed=planned.table.num_rows,
                      objects_unplaced=len(unplaced))
    write_json_atomic(run.unplaced, [{"id": u.object_id, "kind": u.kind.value, "reason": u.reason} for u in unplaced])
    if progress:
        shape = inputs.geometry.shape
        print(f"planned {planned.n_planned} objects, placed {planned.table.num_rows} on a {shape[0]}x{shape[1]} map",
              file=sys.stderr)
    return planned


def tiles_stage(spec: MapSpec, run: RunDir, inputs: MapInputs, planned: PlannedMap, objects: list[PlannedObject],
                use_gpu: bool, progress: bool, log: StageLog) -> None:
    """One tile per placed object into the tile store, sampled on the actor pool (a bank needs no store)."""
    if inputs.tile_bank is not None:  # the stamp tasks read the bank itself: nothing to sample or copy
        tiles.check_bank_run(inputs.tile_bank, objects, planned.masks, run.tile_bank)
        log.counts.update(tile_batches_total=0, tile_batches_sampled=0, tile_batches_resubmitted=0,
                          tile_actors_lost=0)
        return
    n, b = len(objects), spec.sampler.batch_size
    already = len(tiles.done_batches(run.tiles)) if run.tiles.exists() else 0
    with progress_bar(progress, n, "tiles", "tile") as bar:
        bar.update(min(n, already * b))  # a resumed run's batches (all full but maybe the last)
        batches = tiles.PlannedBatches(objects, planned.masks, inputs.background, b, inputs.stretch)
        counts = sample_to_store(str(inputs.model_dir), spec.sampler, batches, run.tiles, spec.workers,
                                 use_gpu=use_gpu, on_batch=lambda _batch, k: bar.update(k), zoom=inputs.zoom)
    # Lost actors and resubmitted batches: what a node that went away cost (the bytes do not change).
    log.counts.update(tile_batches_total=counts.batches_total, tile_batches_sampled=counts.batches_sampled,
                      tile_batches_resubmitted=counts.resubmitted, tile_actors_lost=counts.actors_lost)


def stamps_stage(spec: MapSpec, run: RunDir, inputs: MapInputs, objects: list[PlannedObject], progress: bool,
                 log: StageLog) -> None:
    """Cut every placed object's stamp once and measure its catalogue row, a batch of objects per task."""
    b = stamps.stamp_batch_size(spec.sampler.batch_size)
    total = tiles.n_batches(len(objects), b)
    todo = sorted(set(range(total)) - stamps.done_batches(run.stamps))
    log.counts.update(stamp_batches_total=total, stamp_batches_cut=len(todo))
    odd: set[int] = set()
    geometry = share(inputs.geometry)
    bank = None if inputs.tile_bank is None else \
        (str(Path(inputs.tile_bank.source).resolve()), inputs.tile_bank.fingerprint)  # workers have their own cwd

    def submit(batch: int) -> Any:
        return cut_stamps_task.remote(str(run.root), batch, b, objects[tiles.batch_slice(batch, len(objects), b)],
                                      geometry, inputs.stretch, bank, spec.placement.flux_mode)

    stage_tasks("stamps", "batch", submit, todo, spec.workers, progress, log,
                lambda outcome: odd.update(outcome.odd_normalisation))
    log.counts["objects_not_brighter_than_tile_background"] = sorted(odd)


def chunks_stage(spec: MapSpec, run: RunDir, inputs: MapInputs, objects: list[PlannedObject], progress: bool,
                 log: StageLog) -> None:
    """Paint the stamps into the mosaic, one task per chunk (each chunk written once, by its owner)."""
    mosaic = open_mosaic(run.mosaic) if run.mosaic.exists() else \
        create_mosaic(run.mosaic, inputs.geometry.shape, spec.chunk, markers=run.chunk_markers)
    ranks = chunks.ranks_by_chunk(objects, spec.chunk)
    all_chunks = [c.index for c in mosaic.chunk_grid()]
    finished = done_chunks(run.mosaic)
    todo = [c for c in all_chunks if c not in finished]
    log.counts.update(chunks_total=len(all_chunks), chunks_written=len(todo))
    background = share(inputs.background)
    b = stamps.stamp_batch_size(spec.sampler.batch_size)

    def submit(index: tuple[int, int]) -> Any:
        return compose_chunk_task.remote(str(run.root), index, ranks.get(index, []), b, background)

    stage_tasks("chunks", "chunk", submit, todo, spec.workers, progress, log)


def export_stage(spec: MapSpec, run: RunDir, inputs: MapInputs, n_placed: int, progress: bool,
                 log: StageLog) -> dict[str, str]:
    """map.fits, labels.fits and the quick-look, one task per chunk; then the catalogue files and regions."""
    mosaic = open_mosaic(run.mosaic)
    plan = export.plan_export(run, mosaic, export.map_header(inputs.geometry, spec, n_placed))
    if plan.todo:
        layouts = share(plan.layouts)

        def submit(index: tuple[int, int]) -> Any:
            return export_chunk_task.remote(str(run.root), index, layouts, plan.quicklook_factor)

        def on_result(outcome: export.ExportOutcome) -> None:
            if plan.canvas is not None:
                plan.canvas.add(outcome.piece)

        try:
            stage_tasks("export", "chunk", submit, [c.index for c in mosaic.chunk_grid()], spec.workers, progress,
                        log, on_result)
        except BaseException:
            export.finish_export(plan, complete=False)
            raise
        export.finish_export(plan, complete=True)
    outputs = export.write_truth(run, plan, n_placed)
    log.counts["catalogue_rows"] = n_placed
    return outputs


def stage_tasks(stage: str, unit: str, submit: Callable[[Any], Any], items: list, workers: int, progress: bool,
                log: StageLog, on_result: Callable[[Any], None] | None = None) -> None:
    """Run a stage's tasks, two per worker in flight, behind a progress bar; each task's
    seconds by step add up in the log, and its outcome goes to ``on_result`` as it arrives."""
    log.worker_steps.setdefault(stage, {})
    with progress_bar(progress, len(items), stage, unit) as bar:
        def arrived(outcome: Any) -> None:
            log.add_steps(stage, outcome.step_seconds)
            if on_result is not None:
                on_result(outcome)
            bar.update(1)

        run_tasks(submit, items, 2 * max(1, workers), arrived)
