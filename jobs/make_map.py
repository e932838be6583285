"""The map job: a synthetic radio map with its exact truth, from one MapSpec.

    ray job submit --working-dir . -- python -m jobs.make_map --config configs/sdc-like.yaml --out OUT
    radiff-scale make-map --config configs/sdc-like.yaml --out OUT [--resume]
    radiff-scale make-map ... --positions CATALOGUE    (objects at a catalogue's RA/Dec or x/y)
    radiff-scale demo --out OUT

From Python: ``radiff_scale.make_map`` (radiff_scale/api.py) runs this same job.

Stages (see DESIGN.md): plan and place on the driver from the seed alone -> sample one
tile per placed object on a pool of actors -> one task per mosaic chunk cuts, scales and
adds the stamps and measures the objects it owns -> stream FITS, labels, catalogue,
regions and a quick-look out of the mosaic -> manifest.json last. Every stage records
what it finished, so ``--resume`` after a crash does only what is missing and ends
with the same bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import radiff_scale
from radiff_scale import __version__
from radiff_scale.errors import RadiffError

if TYPE_CHECKING:
    from radiff_scale.compose.positions import Positions
    from radiff_scale.compose.spec import MapSpec

#: The bundle index file of radiff_scale.models.io (not imported here: torch is slow to import).
INDEX = "radiff_models.json"

#: Where the shipped demo model lives inside the package.
DEMO_MODEL = Path(radiff_scale.__file__).resolve().parent / "assets" / "demo"


@dataclass
class StageLog:
    """Timings and counts that end up in manifest.json."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    #: Workers' seconds by stage and step, summed over the tasks this run did (worker time,
    #: not wall time: with W workers a stage's steps add up to about W times its wall time).
    worker_steps: dict[str, dict[str, float]] = field(default_factory=dict)

    #: CPU seconds of the driver process (all its threads, Ray's included) per stage: what
    #: the driver takes from the workers on a small machine.
    driver_cpu_seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def start() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def timed(self, name: str, started: tuple[float, float]) -> None:
        wall, cpu = started
        self.seconds[name] = round(time.perf_counter() - wall, 3)
        self.driver_cpu_seconds[name] = round(time.process_time() - cpu, 3)


def resolve_model_dir(model: str) -> Path:
    """``demo`` is the shipped bundle; anything else is a bundle folder."""
    if model == "demo":
        if not (DEMO_MODEL / INDEX).is_file():
            raise RadiffError(f"the shipped demo model is missing from {DEMO_MODEL} (reinstall the package)")
        return DEMO_MODEL
    path = Path(model)
    if not path.is_dir():
        raise RadiffError(f"model {model}: no such folder (expected 'demo' or a model bundle folder)")
    return path


def read_index(model_dir: Path) -> dict[str, Any]:
    """A bundle's index (components, schedule, card), after every check loading would make
    (config, safetensors header, each tensor's shape) without reading a weight: a broken
    bundle is one line here, on the driver, not a crash in every actor."""
    from radiff_scale.models.io import check_bundle

    return check_bundle(model_dir)


def _bar(progress: bool, total: int, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True, leave=True)


def _geometry_and_background(spec: MapSpec):
    from radiff_scale.compose.background import FitsBackground, SyntheticBackground
    import numpy as np

    from radiff_scale.compose.sigma import SigmaMap
    from radiff_scale.compose.wcs import MapGeometry, read_map_header

    if spec.background is not None:
        geometry = read_map_header(spec.background, default_freq_hz=spec.freq_hz)
        source = FitsBackground(spec.background)
        return geometry, source, None
    geometry = MapGeometry(
        shape=(spec.size, spec.size), pixel_scale_arcsec=spec.pixel_scale_arcsec, centre_ra_deg=spec.centre_ra_deg,
        centre_dec_deg=spec.centre_dec_deg, beam=spec.beam, freq_hz=spec.freq_hz,
    )
    source = SyntheticBackground(geometry, spec.noise_rms_jy, spec.seed)
    # Synthetic noise has a known rms everywhere: no need to generate the map twice to measure it.
    sigma = SigmaMap(grid=np.full((1, 1), spec.noise_rms_jy), block=max(geometry.shape), shape=geometry.shape)
    return geometry, source, sigma


def _mask_bank(spec: MapSpec):
    """The bank of ``masks: bank`` / ``bank:PATH`` (``prior`` masks are sampled later: :func:`prior_mask_bank`)."""
    from radiff_scale.data.mask_bank import MaskBank

    if spec.masks == "prior":
        return None
    if spec.masks == "bank":
        return MaskBank.default()
    path = Path(spec.masks.split(":", 1)[1])
    if not path.is_file():
        raise RadiffError(f"masks {spec.masks}: no such file")
    return MaskBank.from_npz(path)


def _header(geometry, spec: MapSpec, n_objects: int):
    header = geometry.header()
    header["SEED"] = (spec.seed, "radiff-scale run seed")
    header["NOBJECTS"] = (n_objects, "objects placed on this map")
    header["ORIGIN"] = "radiff-scale"
    header["RSVERS"] = (__version__, "radiff-scale version")
    header["MODEL"] = (Path(spec.model).name[:60], "tile model")
    if spec.tiles != "model":  # the FITS file itself says its tiles were reused
        header["MODEL"] = (Path(spec.tiles.split(":", 1)[1]).name[:60], "tile bank (pre-sampled tiles)")
    header["TILESRC"] = (spec.tiles.split(":", 1)[0], "tiles: model-sampled or from a tile bank")
    return header


class _PlannedBatches:
    """The placed objects as tile batches, built when submitted (background patches are read then)."""

    def __init__(self, records: list[dict], masks, source, batch_size: int, stretch) -> None:
        self.records, self.masks, self.source, self.stretch = records, masks, source, stretch
        self.n_items, self.batch_size = len(records), batch_size

    def __len__(self) -> int:
        from radiff_scale.compose import tile_store

        return tile_store.n_batches(self.n_items, self.batch_size)

    def __getitem__(self, index: int):
        from actors.sampling_stage import TileBatch
        from radiff_scale.compose import tile_store
        from radiff_scale.compose.conditioning import background_patches

        sl = tile_store.batch_slice(index, self.n_items, self.batch_size)
        chunk = self.records[sl]
        patches = background_patches(self.source, [(r["row0"], r["col0"]) for r in chunk], self.stretch)
        return TileBatch(index, self.masks[sl], patches, tuple(r["seed"] for r in chunk),
                         tuple(r["object_id"] for r in chunk))


def sample_tiles_stage(
    spec: MapSpec, run, planned, records: list[dict], source, model_dir: Path | None, use_gpu: bool, progress: bool,
    log: StageLog, stretch, zoom: float = 1.0, tile_bank=None,
) -> None:
    """One tile per placed object into run.tiles: sampled on actors, or copied from a tile bank."""
    from radiff_scale.compose import tile_store

    n, b = planned.table.num_rows, spec.sampler.batch_size
    already = len(tile_store.done_batches(run.tiles)) if run.tiles.exists() else 0
    bar = _bar(progress, n, "tiles" if tile_bank is None else "tiles (bank)", "tile")
    bar.update(min(n, already * b))  # a resumed run's batches (all full but maybe the last)
    try:
        if tile_bank is not None:
            from radiff_scale.compose.tile_bank import fill_store_from_bank

            codes = planned.table.column("bank_index").to_pylist()
            total, done_now = fill_store_from_bank(tile_bank, codes, run.tiles, b, planned.masks, bar.update)
            resubmitted = 0
        else:
            from actors.sampling_stage import sample_to_store
            from actors.tile_sampler import SamplerSettings

            s = spec.sampler
            settings = SamplerSettings(s.name, s.steps, s.guidance_mask, s.guidance_background, s.eta, s.gpu_precision, zoom)
            counts = sample_to_store(
                str(model_dir), settings, _PlannedBatches(records, planned.masks, source, b, stretch), run.tiles,
                spec.workers, use_gpu=use_gpu, on_batch=lambda _batch, k: bar.update(k),
            )
            total, done_now, resubmitted = counts.batches_total, counts.batches_sampled, counts.resubmitted
    finally:
        bar.close()
    log.counts["tile_batches_total"] = total
    log.counts["tile_batches_sampled"] = done_now
    log.counts["tile_batches_resubmitted"] = resubmitted


def check_mask_prior(spec: MapSpec, model_dir: Path | None, index: dict[str, Any] | None) -> None:
    """``masks: prior`` needs model-sampled tiles and a bundle (``index``) that has a mask prior."""
    if spec.masks != "prior":
        return
    if model_dir is None or index is None:
        raise RadiffError("masks: prior needs tiles: model (a tile bank brings its own masks)")
    if "mask_prior" not in (index.get("components") or []):
        raise RadiffError(f"model {model_dir} has no mask prior: use masks: bank, or train one (radiff-scale train --stage mask)")


def prior_mask_bank(spec: MapSpec, run, model_dir: Path, use_gpu: bool, progress: bool, log: StageLog):
    """A MaskBank of ``spec.mask_pool`` masks invented by the mask prior on the sampler actors.

    Mask ``i`` of the pool depends only on (run seed, i), so the pool -- and every object
    picked from it -- is the same for any number of actors; the pool is a resumable
    store in the run folder, so ``--resume`` does not sample it again.
    """
    import numpy as np
    import zarr

    from actors.sampling_stage import sample_masks_to_store
    from radiff_scale.data.mask_bank import MaskBank
    from radiff_scale.seeding import derive_seed

    s = spec.sampler
    seeds = [derive_seed(spec.seed, i, "mask-prior") for i in range(spec.mask_pool)]
    bar = _bar(progress, spec.mask_pool, "masks (prior)", "mask")
    try:
        counts = sample_masks_to_store(
            str(model_dir), seeds, run.mask_pool, s.batch_size, s.steps, s.name, spec.workers, use_gpu=use_gpu,
            on_batch=lambda _batch, k: bar.update(k),
        )
    finally:
        bar.close()
    log.counts["mask_pool_batches_sampled"] = counts.batches_sampled
    masks = np.asarray(zarr.open_array(str(run.mask_pool), mode="r")[:])
    return MaskBank(masks, source=f"the mask prior's {len(masks)} masks (masks: prior; raise mask_pool for more)")


def _tile_bank(spec: MapSpec):
    """The tile bank of ``tiles: bank:PATH`` (None for model-sampled tiles)."""
    if not spec.tiles.startswith("bank:"):
        return None
    from radiff_scale.compose.tile_bank import TileBank

    return TileBank.load(spec.tiles[len("bank:"):])


def _run_stage_tasks(stage: str, unit: str, submit, items: list, workers: int, progress: bool, log: StageLog,
                     on_result=None) -> None:
    """Submit ``submit(item)`` for each item, at most two per worker in flight, behind a progress
    bar. Each result's ``step_seconds`` add up in ``log.worker_steps[stage]`` and the result goes
    to ``on_result`` as it arrives (the driver never holds every pending result)."""
    import ray

    totals = log.worker_steps.setdefault(stage, {})
    bar = _bar(progress, len(items), stage, unit)
    running: list = []
    queue = list(items)
    limit = 2 * max(1, workers)
    try:
        while queue or running:
            while queue and len(running) < limit:
                running.append(submit(queue.pop(0)))
            ready, running = ray.wait(running, num_returns=1)
            outcome = ray.get(ready[0])
            for step, seconds in outcome.step_seconds.items():
                totals[step] = totals.get(step, 0.0) + seconds
            if on_result is not None:
                on_result(outcome)
            bar.update(1)
    finally:
        bar.close()


#: Objects per stamp task (and stamp file), rounded up to whole tile batches: a task has a
#: fixed cost (scheduling, opening the store, writing two files) of ~15 ms, as much as
#: cutting 50 objects, so tasks of one 64-tile batch spent a fifth of the stage on it.
STAMP_BATCH_MIN = 256


def stamp_batch_size(spec: MapSpec) -> int:
    """Ranks per stamp batch: whole tile batches (its tiles are whole tile-store chunks), >= STAMP_BATCH_MIN."""
    b = spec.sampler.batch_size
    return b * max(1, -(-STAMP_BATCH_MIN // b))


def model_zoom(card: dict, geometry) -> float:
    """Map pixels per beam over the model's (1 for bundles that do not record theirs)."""
    from radiff_scale.compose.resample import pixels_per_beam, zoom_factor

    return zoom_factor(pixels_per_beam(geometry.beam, geometry.pixel_scale_arcsec), card.get("pixels_per_beam"))


def stamps_stage(
    spec: MapSpec, run, records: list[dict], geometry, stretch, progress: bool, log: StageLog
):
    """Cut every placed object's stamp once and measure its catalogue row, a batch of objects per task."""
    import ray

    from actors.compositor import cut_stamps_task
    from radiff_scale.compose import stamp_store, tile_store

    b = stamp_batch_size(spec)
    total = tile_store.n_batches(len(records), b)
    finished = stamp_store.done_batches(run.stamps)
    todo = [batch for batch in range(total) if batch not in finished]
    log.counts["stamp_batches_total"] = total
    log.counts["stamp_batches_cut"] = len(todo)
    odd: list[int] = []
    geometry_ref = ray.put(geometry)

    def submit(batch: int):
        objects = records[tile_store.batch_slice(batch, len(records), b)]
        return cut_stamps_task.remote(str(run.root), batch, b, objects, geometry_ref, stretch)

    _run_stage_tasks("stamps", "batch", submit, todo, spec.workers, progress, log,
                     lambda outcome: odd.extend(outcome.odd_normalisation))
    log.counts["objects_not_brighter_than_tile_background"] = sorted(set(odd))


def compose_chunks_stage(spec: MapSpec, run, records: list[dict], source, geometry, progress: bool, log: StageLog):
    """Paint the stamps into the mosaic, one task per chunk (each chunk written once, by its owner)."""
    import ray

    from actors.compositor import compose_chunk_task
    from radiff_scale.compose.chunk_work import chunks_touched
    from radiff_scale.compose.mosaic import create_mosaic, done_chunks, open_mosaic

    mosaic = open_mosaic(run.mosaic) if run.mosaic.exists() else create_mosaic(run.mosaic, geometry.shape, spec.chunk)
    by_chunk: dict[tuple[int, int], list[int]] = defaultdict(list)
    for record in records:  # rank order, so every chunk's list is ascending
        fp = (record["fp_row0"], record["fp_row1"], record["fp_col0"], record["fp_col1"])
        for index in chunks_touched(fp, spec.chunk):
            by_chunk[index].append(int(record["rank"]))
    all_chunks = [c.index for c in mosaic.chunk_grid()]
    finished = done_chunks(run.mosaic)
    todo = [c for c in all_chunks if c not in finished]
    log.counts["chunks_total"] = len(all_chunks)
    log.counts["chunks_written"] = len(todo)
    background_ref = ray.put(source)

    def submit(index: tuple[int, int]):
        return compose_chunk_task.remote(
            str(run.root), index, by_chunk.get(index, []), stamp_batch_size(spec), background_ref
        )

    _run_stage_tasks("chunks", "chunk", submit, todo, spec.workers, progress, log)


def export_stage(spec: MapSpec, run, n_placed: int, geometry, progress: bool, log: StageLog) -> dict[str, str]:
    """map.fits, labels.fits and the quick-look from the mosaic, one task per chunk; then the
    catalogue files and regions. Files already complete (a resumed run) are not redone."""
    import ray

    from actors.compositor import export_chunk_task
    from radiff_scale.compose import fits_export
    from radiff_scale.compose.catalogue import write_catalogue
    from radiff_scale.compose.mosaic import open_mosaic
    from radiff_scale.compose.quicklook import QuicklookCanvas, quicklook_factor, save_quicklook
    from radiff_scale.compose.regions import write_ds9_regions
    from radiff_scale.compose.stamp_work import read_catalogue_parts

    header = _header(geometry, spec, n_placed)
    mosaic = open_mosaic(run.mosaic)
    targets = {"map": run.output("map.fits"), "labels": run.output("labels.fits"), "quicklook": run.output("quicklook.png")}
    layouts = []
    if not targets["map"].exists():
        layouts.append(fits_export.image_layout(mosaic, targets["map"], header))
    if not targets["labels"].exists():
        layouts.append(fits_export.labels_layout(mosaic, targets["labels"], header))
    canvas = None if targets["quicklook"].exists() else QuicklookCanvas(mosaic.shape, quicklook_factor(mosaic.shape))
    if layouts or canvas is not None:
        layouts_ref = ray.put(tuple(layouts))
        factor = canvas.factor if canvas is not None else None

        def submit(index: tuple[int, int]):
            return export_chunk_task.remote(str(run.root), index, layouts_ref, factor)

        def on_result(outcome) -> None:
            if canvas is not None:
                canvas.add(outcome.piece)

        try:
            _run_stage_tasks("export", "chunk", submit, [c.index for c in mosaic.chunk_grid()], spec.workers,
                             progress, log, on_result)
        except BaseException:
            for layout in layouts:
                fits_export.abandon(layout)
            raise
        for layout in layouts:
            fits_export.finish(layout)
        if canvas is not None:
            save_quicklook(canvas, targets["quicklook"])
    table = read_catalogue_parts(run.catalogue_parts)
    if table.num_rows != n_placed:
        raise RuntimeError(f"catalogue has {table.num_rows} rows for {n_placed} placed objects")
    outputs = {name: path.name for name, path in targets.items()}
    paths = write_catalogue(table, run.root, stem="catalogue")
    outputs.update({f"catalogue_{k}": Path(v).name for k, v in paths.items()})
    write_ds9_regions(table, run.output("regions.reg"))
    outputs["regions"] = "regions.reg"
    log.counts["catalogue_rows"] = table.num_rows
    return outputs


def _versions() -> dict[str, str]:
    """Versions from package metadata: importing torch on the driver just to read its
    version would cost ~300 MB of RSS."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"radiff_scale": __version__, "python": platform.python_version()}
    for name in ("numpy", "torch", "ray", "zarr", "astropy", "diffusers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_make_map(
    spec: MapSpec, out: str | Path, resume: bool = False, overwrite: bool = False, progress: bool = True,
    use_gpu: bool = False, positions: Positions | None = None,
) -> dict[str, Any]:
    """Make the map of ``spec`` in ``out``; returns the manifest (also written to out/manifest.json).

    ``positions``: objects at given places (catalogue-aware maps, see radiff_scale.api)
    instead of ``spec.placement.n_objects`` random ones. They are part of the run's
    identity: ``resume`` refuses a folder made with other positions.
    """
    from radiff_scale.compose.mosaic import validate_chunk
    from radiff_scale.compose.spec import preflight_disk
    from radiff_scale.compose.placement_stage import plan_map
    from radiff_scale.compose.rundir import RUN_LAYOUT, prepare_run_dir, write_json_atomic
    from radiff_scale.compose.sigma import sigma_map
    from radiff_scale.compose.stamp_work import FOOTPRINT
    from radiff_scale.data.stretch import stretch_for_card

    started = time.perf_counter()
    log = StageLog()
    # Everything a user can get wrong is checked before any folder is made or any heavy work starts.
    validate_chunk(spec.chunk)
    tile_bank = _tile_bank(spec)
    model_dir = resolve_model_dir(spec.model) if tile_bank is None else None
    index = read_index(model_dir) if tile_bank is None else None
    card = dict(index.get("card") or {}) if index is not None else tile_bank.card
    stretch = stretch_for_card(card)  # without it tiles cannot go back to flux: checked before any heavy work
    geometry, source, sigma = _geometry_and_background(spec)
    zoom = model_zoom(card, geometry) if tile_bank is None else 1.0
    if zoom != 1.0:
        print(f"tiles: the model works at {card['pixels_per_beam']:.2f} pixels per beam, the map has "
              f"{zoom * card['pixels_per_beam']:.2f}: each tile is sampled at the model's scale and resampled "
              f"by {zoom:.3f}", file=sys.stderr)
    check_mask_prior(spec, model_dir, index)
    bank = _mask_bank(spec) if tile_bank is None else tile_bank  # a bank's masks come with its tiles
    if tile_bank is not None:  # never silent: reused tiles are a different product
        print(f"tiles: copied from the tile bank {tile_bank.source} ({len(tile_bank)} pre-sampled tiles, "
              f"8 flips/rotations each; shapes repeat and tiles ignore the local background)", file=sys.stderr)
    given = positions.resolve(geometry) if positions is not None else None
    identity = {**spec.identity(), "run_layout": RUN_LAYOUT}
    if given is not None:
        identity["positions"] = {"rows": len(given), "sha256": given.fingerprint()}
    out = Path(out)
    preflight_disk(out, geometry.shape)
    # The noise map before the run folder: a background with no usable pixels is refused
    # without leaving a spec.json behind (the same command would then be "not empty").
    t = log.start()
    if sigma is None:
        sigma = sigma_map(source)
    log.timed("sigma_map", t)
    run = prepare_run_dir(out, identity, resume=resume, overwrite=overwrite)
    if run.manifest.exists():
        run.manifest.unlink()  # a resumed run is not complete until its new manifest is written

    from actors._worker import release_free_memory
    from jobs._entry import connect_ray

    # No dashboard and no worker logs locally: the driver's progress bars say all there is.
    connect_ray(spec.workers, include_dashboard=False, log_to_driver=False, configure_logging=True)
    if bank is None:
        t = log.start()
        bank = prior_mask_bank(spec, run, model_dir, use_gpu, progress, log)
        log.timed("mask_pool", t)

    t = log.start()
    planned = plan_map(
        spec.placement, geometry.shape, geometry.pixel_scale_arcsec, spec.seed, bank, sigma, given, chunk=spec.chunk
    )
    log.counts.update(
        objects_planned=planned.n_planned, objects_placed=planned.table.num_rows,
        objects_unplaced=len(planned.placement.unplaced),
    )
    write_json_atomic(run.unplaced, [{"id": u.object_id, "reason": u.reason} for u in planned.placement.unplaced])
    log.timed("plan", t)
    if progress:
        print(f"planned {planned.n_planned} objects, placed {planned.table.num_rows} on a "
              f"{geometry.shape[0]}x{geometry.shape[1]} map", file=sys.stderr)

    records = planned.records()  # rank order, as are the footprints
    for record, footprint in zip(records, planned.masks.footprints):
        record[FOOTPRINT] = (footprint.row0, footprint.col0, footprint.crop)
    t = log.start()
    sample_tiles_stage(spec, run, planned, records, source, model_dir, use_gpu, progress, log, stretch, zoom, tile_bank)
    log.timed("tiles", t)
    t = log.start()
    stamps_stage(spec, run, records, geometry, stretch, progress, log)
    log.timed("stamps", t)
    t = log.start()
    compose_chunks_stage(spec, run, records, source, geometry, progress, log)
    log.timed("chunks", t)
    # The export needs none of the placement: free it (at 60,000 objects ~ hundreds of MB of
    # records, footprints and the spatial index) before streaming gigabytes through the driver.
    n_placed, unplaced = planned.table.num_rows, planned.placement.unplaced
    del records, planned
    gc.collect()
    release_free_memory()
    t = log.start()
    outputs = export_stage(spec, run, n_placed, geometry, progress, log)
    log.timed("export", t)
    log.seconds["total"] = round(time.perf_counter() - started, 3)

    manifest = {
        "spec": spec.to_dict(),
        "geometry": {"shape": list(geometry.shape), "pixel_scale_arcsec": geometry.pixel_scale_arcsec,
                     "centre_ra_deg": geometry.centre_ra_deg, "centre_dec_deg": geometry.centre_dec_deg,
                     "freq_hz": geometry.freq_hz, "beam_arcsec_deg": [geometry.beam.bmaj_arcsec,
                     geometry.beam.bmin_arcsec, geometry.beam.bpa_deg]},
        "model": {"path": str(model_dir if tile_bank is None else tile_bank.meta.model), "card": card},
        "tiles": {"source": "model", "zoom": zoom} if tile_bank is None else {"source": "bank", **tile_bank.describe()},
        "resumed": bool(resume),
        "versions": _versions(),
        "seconds": log.seconds,
        "driver_cpu_seconds": log.driver_cpu_seconds,
        "worker_seconds": {
            stage: {k: round(v, 3) for k, v in steps.items()} for stage, steps in log.worker_steps.items()
        },
        "counts": log.counts,
        "outputs": outputs,
        "unplaced": run.unplaced.relative_to(run.root).as_posix(),
    }
    if positions is not None:
        manifest["positions"] = {
            **positions.describe(), "sha256": identity["positions"]["sha256"],
            "placed": n_placed, "unplaced": len(unplaced), "unplaced_by_reason": _reason_counts(unplaced),
        }
    write_json_atomic(run.manifest, manifest)
    return manifest


def _reason_counts(unplaced) -> dict[str, int]:
    """How many objects were refused for each kind of reason (the full list is in work/unplaced.json)."""
    kinds = (("outside the", "outside the map"), ("margin", "footprint leaves the margin"),
             ("overlap", "overlap"), ("not finite", "not on the map's projection"), ("empty", "empty footprint"))
    counts: dict[str, int] = {}
    for u in unplaced:
        kind = next((label for key, label in kinds if key in u.reason), "other")
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def add_arguments(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    parser.add_argument("--out", required=True, help="output folder (new, or a previous run of the same spec with --resume)")
    if not demo:
        parser.add_argument("--config", default=None, help="MapSpec YAML (e.g. configs/sdc-like.yaml)")
        parser.add_argument("--size", type=int, default=None, help="map side in pixels (synthetic background)")
        parser.add_argument("--background", default=None, help="real background map (2-D FITS with celestial WCS)")
        parser.add_argument("--seed", type=int, default=None, help="run seed")
        parser.add_argument(
            "--tiles", default=None, metavar="model|bank:PATH",
            help="tile source: sample with the model (default) or reuse a tile bank .npz (radiff-scale make-tile-bank)",
        )
        parser.add_argument(
            "--masks", default=None, metavar="bank|bank:PATH|prior",
            help="mask source: the shipped real mask bank (default), an .npz bank, or the model's mask prior",
        )
        parser.add_argument(
            "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
            help="override any MapSpec field, e.g. --set placement.n_objects=2000 (repeatable)",
        )
        parser.add_argument(
            "--positions", default=None, metavar="CATALOGUE",
            help="put object i at row i of this FITS/CSV/Parquet/text catalogue (RA/Dec or x/y columns; "
                 "class names and k read when present) instead of placing n_objects at random",
        )
    parser.add_argument("--workers", type=int, default=None, help="sampler actors and parallel chunk owners")
    parser.add_argument("--resume", action="store_true", help="finish a previous run of the same spec in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    parser.add_argument("--gpu", action="store_true", help="one GPU per sampler actor (clusters)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def spec_from_args(args: argparse.Namespace, demo: bool = False) -> MapSpec:
    from radiff_scale.compose.spec import MapSpec
    from radiff_scale.config import load_config, parse_override

    overrides: dict[str, Any] = {}
    if not demo and args.size is not None and args.background is not None:
        raise RadiffError("--size and --background exclude each other: a background map sets the map's size")
    if not demo:
        overrides.update(dict(parse_override(o) for o in args.overrides))
        for name in ("size", "background", "seed", "tiles", "masks"):
            if getattr(args, name) is not None:
                overrides[name] = getattr(args, name)
    if args.workers is not None:
        overrides["workers"] = args.workers
    return load_config(MapSpec, None if demo else args.config, overrides)


def describe(manifest: dict[str, Any], out: Path) -> str:
    counts, seconds = manifest["counts"], manifest["seconds"]
    lines = [
        f"map written to {out}/ in {seconds['total']:.0f} s "
        f"({counts['objects_placed']} objects placed, {counts['objects_unplaced']} could not be placed)",
    ]
    for key, name in manifest["outputs"].items():
        lines.append(f"  {key:<18} {out / name}")
    lines.append(f"  {'manifest':<18} {out / 'manifest.json'}")
    return "\n".join(lines)


def run_from_args(args: argparse.Namespace, demo: bool = False) -> int:
    spec = spec_from_args(args, demo=demo)
    positions = None
    if not demo and args.positions is not None:
        from radiff_scale.compose.positions import positions_from_catalogue

        positions = positions_from_catalogue(args.positions)
    manifest = run_make_map(
        spec, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet, use_gpu=args.gpu,
        positions=positions,
    )
    print(describe(manifest, Path(args.out)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from jobs._entry import job_main

    return job_main("make_map", __doc__, add_arguments, run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
