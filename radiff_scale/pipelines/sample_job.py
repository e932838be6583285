"""Real masks -> synthetic images: the driver of ``radiff-scale sample`` (and ``python -m jobs.sample``).

The augmentation of the RADiff paper: each given class mask conditions one tile of the
diffusion model, on the sampler actor pool of the map job (actors/); the tile is decoded
with the bundle's stretch into units of its background rms, scaled to Jy/beam and
written in the Survey-Collection layout with the given masks as its annotations.

The run is read, sample, write. Every input is checked in the read step, before an
output folder exists or Ray starts. Tile ``i`` depends only on (``seed``, ``i``), its mask
and its background, so the files are the same bytes for any number of workers. The
dataset is built in ``.OUT.partial`` and renamed at the very end, so a killed run never
leaves a complete-looking dataset. See docs/sample.md.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from actors.sampling_stage import SamplingCounts, sample_to_store
from radiff_scale.atomic import check_output_path
from radiff_scale.classes import SourceClass
from radiff_scale.compose.sample_backgrounds import DEFAULT_RMS_JY, Background, plan_backgrounds, tile_header, tile_zoom
from radiff_scale.config import from_dict, parse_override, to_dict
from radiff_scale.data.sample_inputs import MaskItem, load_masks
from radiff_scale.data.sc_format import AnnotatedObject, Sample, write_sample
from radiff_scale.data.stretch import Stretch, stretch_for_card
from radiff_scale.diffusion.settings import SamplerSpec
from radiff_scale.errors import RadiffError
from radiff_scale.mapjob import tiles
from radiff_scale.models.bundle import resolve_model_dir
from radiff_scale.models.bundle import check_sampler_fits
from radiff_scale.models.io import check_bundle
from radiff_scale.progress import progress_bar
from radiff_scale.seeding import derive_seed
from radiff_scale.version import __version__

#: Purpose of the per-tile noise seed streams (radiff_scale.seeding).
TILE_PURPOSE = "sample-tile"

#: What the summary at the top of OUT is called.
SUMMARY = "sample.json"


def run_sample(
    masks: str, out: str | Path, *, model: str = "demo", seed: int = 0, workers: int = 2,
    sampler_overrides: Sequence[str] = (), rms_jy: float = DEFAULT_RMS_JY, background: str = "auto",
    limit: int | None = None, progress: bool = True, use_gpu: bool = False,
) -> dict[str, Any]:
    """Generate one image per mask of ``masks`` into the dataset ``out``; returns the summary (OUT/sample.json)."""
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    out = Path(out)
    if seed < 0:
        raise RadiffError(f"--seed must be >= 0, got {seed}")
    if not (rms_jy > 0 and np.isfinite(rms_jy)):
        raise RadiffError(f"--rms must be a finite number > 0, got {rms_jy}")
    check_out(out)
    sampler = sampler_spec(sampler_overrides)
    model_dir = resolve_model_dir(model)
    index = check_bundle(model_dir)  # a broken bundle: one line here, not in every actor
    check_sampler_fits(index, sampler.name, model)
    card = dict(index.get("card") or {})
    stretch = stretch_for_card(card)
    items = load_masks(masks, limit)
    kind, backgrounds = plan_backgrounds(background, items, seed, rms_jy, stretch)
    seconds["read"] = round(time.perf_counter() - started, 3)

    seeds = [derive_seed(seed, i, TILE_PURPOSE) for i in range(len(items))]
    zoom = tile_zoom([tile_header(it, bg) for it, bg in zip(items, backgrounds)], card)
    model_record = {"path": str(model_dir), "commit": model_commit(card), "stretch": stretch.to_card()}
    provenance = {"model": model_record, "sampler": to_dict(sampler), "run_seed": seed}
    with _partial_folder(out) as tmp:
        t = time.perf_counter()
        store = tmp / "_tiles.zarr"
        batches = _Batches(np.stack([it.class_mask() for it in items]), backgrounds, seeds, sampler.batch_size,
                           null=kind == "none")
        counts = _sample(model_dir, sampler, batches, store, workers, use_gpu, zoom, progress)
        seconds["sample"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        by_class = _write_samples(tmp, store, items, backgrounds, seeds, stretch, sampler.batch_size, provenance)
        shutil.rmtree(store)
        seconds["write"] = round(time.perf_counter() - t, 3)
        seconds["total"] = round(time.perf_counter() - started, 3)
        summary = {
            "n_samples": len(items),
            "n_objects": sum(by_class.values()),
            "objects_per_class": dict(sorted(by_class.items())),
            "masks": str(masks),
            "limit": limit,
            "background": kind if kind != "fits" else f"fits:{background}",
            "rms_jy": rms_jy if kind == "none" else None,
            "model": model_record,
            "sampler": provenance["sampler"],
            "seed": seed,
            "seed_purpose": TILE_PURPOSE,
            "tile_zoom": zoom,
            "workers": workers,
            "actors": counts.actors,
            "gpu": use_gpu,
            "seconds": seconds,
            "version": __version__,
        }
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


# ---------------------------------------------------------------------------------------------
# Read: what is checked before anything is written
# ---------------------------------------------------------------------------------------------


def check_out(out: Path) -> None:
    """OUT must be new or an empty folder: a run never mixes its samples with someone else's files."""
    if out.is_dir():
        if any(out.iterdir()):
            raise RadiffError(f"--out {out} exists and is not empty (choose a new folder)")
    elif out.exists():
        raise RadiffError(f"--out {out} exists and is not a folder")
    check_output_path(out, folder=False)  # built beside OUT as .OUT.partial, then renamed


def sampler_spec(overrides: Sequence[str]) -> SamplerSpec:
    """The map job's SamplerSpec (same fields, same validation) from ``--set sampler.KEY=VALUE``."""
    values: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        if not key.startswith("sampler.") or key.count(".") != 1:
            raise RadiffError(f"--set {text}: only sampler settings can be set here (sampler.KEY=VALUE)")
        values[key.split(".", 1)[1]] = value
    return from_dict(SamplerSpec, values, where="sampler")


def model_commit(card: dict[str, Any]) -> Any:
    """The commit(s) the bundle's card records: its own, else each training stage's."""
    if card.get("commit") is not None:
        return card["commit"]
    stages = card.get("stages") or {}
    found = {name: stage.get("commit") for name, stage in stages.items() if isinstance(stage, dict) and stage.get("commit")}
    return found or None


# ---------------------------------------------------------------------------------------------
# Sample and write
# ---------------------------------------------------------------------------------------------


@contextmanager
def _partial_folder(out: Path) -> Iterator[Path]:
    """``.OUT.partial`` beside OUT, renamed to OUT when the block ends well and removed when it does not."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():  # what a killed earlier run left
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if out.is_dir():
            out.rmdir()  # empty (checked before): rename needs the name free
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _Batches:
    """The masks as tile batches for actors.sampling_stage, built when each batch is submitted.

    Not tiles.ArrayBatches: that one wants every conditioning patch in one more array,
    a third copy of the backgrounds on the driver.
    """

    def __init__(self, masks: np.ndarray, backgrounds: list[Background], seeds: list[int], batch_size: int, *,
                 null: bool) -> None:
        self.masks, self.backgrounds, self.seeds, self.null = masks, backgrounds, seeds, null
        self.n_items, self.batch_size = len(seeds), batch_size

    def __len__(self) -> int:
        return tiles.n_batches(self.n_items, self.batch_size)

    def __getitem__(self, index: int) -> tiles.TileBatch:
        sl = tiles.batch_slice(index, self.n_items, self.batch_size)
        patches = None if self.null else np.stack([b.patch for b in self.backgrounds[sl]]).astype(np.float32)
        return tiles.TileBatch(index, self.masks[sl], patches, tuple(self.seeds[sl]), tuple(range(sl.start, sl.stop)))


def _sample(model_dir: Path, sampler: SamplerSpec, batches: _Batches, store: Path, workers: int, use_gpu: bool,
            zoom: float, progress: bool) -> SamplingCounts:
    """Every tile into the tile store ``store``, on ``workers`` sampler actors."""
    # Imported here, not above: Ray takes seconds to import, and a user error found while
    # reading the inputs should not wait for it.
    from actors.runtime import connect_ray

    connect_ray(workers, include_dashboard=False, log_to_driver=False, configure_logging=True)
    bar = progress_bar(progress, batches.n_items, "tiles", "tile")
    try:
        return sample_to_store(str(model_dir), sampler, batches, store, workers, use_gpu=use_gpu,
                               on_batch=lambda _batch, k: bar.update(k), zoom=zoom)
    finally:
        bar.close()


def _name(i: int, n: int) -> str:
    return f"syn{i:0{max(5, len(str(n - 1)))}d}"


def _write_samples(root: Path, store: Path, items: list[MaskItem], backgrounds: list[Background], seeds: list[int],
                   stretch: Stretch, batch_size: int, provenance: dict[str, Any]) -> Counter[str]:
    """Decode each tile to Jy/beam and write it with its given objects; returns the objects per class.

    The store is read a batch at a time, so the driver never holds every image at once.
    """
    n = len(items)
    by_class: Counter[str] = Counter()
    for b in range(tiles.n_batches(n, batch_size)):
        sl = tiles.batch_slice(b, n, batch_size)
        for i, tile in zip(range(sl.start, sl.stop), tiles.read_range(store, sl)):
            item, bg = items[i], backgrounds[i]
            image = (stretch.decode(tile) * bg.rms + bg.centre).astype(np.float32)
            objects = [AnnotatedObject(SourceClass(int(cls)), mask) for cls, mask in item.objects]
            by_class.update(SourceClass(int(cls)).label for cls, _ in item.objects)
            meta = {"provenance": {
                "mask_source": item.source, "model": provenance["model"], "sampler": provenance["sampler"],
                "run_seed": provenance["run_seed"], "index": i, "tile_seed": seeds[i], "background": bg.record,
                "made_by": f"radiff-scale {__version__} sample",
            }}
            write_sample(root, Sample(_name(i, n), image, objects, tile_header(item, bg), bg.image, meta))
    return by_class
