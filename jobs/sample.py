"""Real masks -> synthetic images: one generated image per given mask, written as a dataset.

    radiff-scale sample --masks DATASET_OR_NPZ --out OUT [--background dataset|none|MAP.fits]
    ray job submit --working-dir . -- python -m jobs.sample --masks masks.npz --out OUT

The augmentation of the RADiff paper: each given class mask (a Survey-Collection
sample's objects, or a class-id mask of an ``.npz``) conditions one tile of the
diffusion model, on the sampler actor pool of the map job (actors/); the tile is
decoded with the bundle's stretch into units of its background rms, scaled to Jy/beam
and written in the Survey-Collection layout with the given masks as its annotations.
Tile ``i`` depends only on (``--seed``, ``i``), its mask and its background, so the
files are the same bytes for any ``--workers``. See docs/sample.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radiff_scale import __version__
from radiff_scale.errors import RadiffError

#: Side of the tiles the models generate (and of every output image).
TILE = 128

#: Noise level (Jy/beam) of the output images when there is no background: FIRST's typical rms.
DEFAULT_RMS_JY = 1.5e-4

#: FIRST's restoring beam (arcsec, circular) and pixel size (arcsec): the header when nothing else says.
FIRST_BEAM_ARCSEC = 5.4
FIRST_PIXEL_ARCSEC = 1.8

#: Purposes of the seed streams (radiff_scale.seeding): tile noise, and background windows of a FITS map.
TILE_PURPOSE = "sample-tile"
WINDOW_PURPOSE = "sample-window"

#: Windows drawn per mask before a FITS background is declared unusable (blank or constant there).
WINDOW_TRIES = 32

#: Header keywords carried from the background FITS / the masks dataset sample when present.
CARRIED_KEYS = ("BMAJ", "BMIN", "BPA", "CDELT1", "CDELT2")

#: What the summary at the top of OUT is called.
SUMMARY = "sample.json"


@dataclass
class MaskItem:
    """One given mask: its objects (class, boolean 128x128 mask) and where it came from."""

    source: dict[str, Any]
    objects: list[tuple[Any, np.ndarray]]
    header: dict[str, Any] = field(default_factory=dict)
    background: np.ndarray | None = None  # the dataset sample's own background (Jy/beam), cropped

    def class_mask(self) -> np.ndarray:
        """Class ids; later objects win where they overlap (as Sample.class_mask)."""
        out = np.zeros((TILE, TILE), dtype=np.uint8)
        for cls, mask in self.objects:
            out[mask] = int(cls)
        return out


@dataclass
class Background:
    """The background of one tile: its centre and rms (Jy/beam) and the image the model is conditioned on."""

    centre: float
    rms: float
    record: dict[str, Any]
    image: np.ndarray | None = None  # Jy/beam window, or None (null background)


# ---------------------------------------------------------------------------------------------
# Inputs (everything is checked here, before any folder is made or any actor started)
# ---------------------------------------------------------------------------------------------


def _centre_crop(array: np.ndarray, where: str) -> np.ndarray:
    from radiff_scale.data.dataset import centre_crop

    return np.ascontiguousarray(centre_crop(array, TILE, where))


def _carried_header(header: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in CARRIED_KEYS:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            out[key] = float(value)
    return out


def masks_from_dataset(root: Path, limit: int | None) -> list[MaskItem]:
    """The first ``limit`` samples of a Survey-Collection dataset, centre-cropped to 128x128."""
    from radiff_scale.data.sc_format import list_samples, read_sample

    paths = list_samples(root)
    if limit is not None:
        paths = paths[:limit]
    items = []
    for path in paths:
        sample = read_sample(path, root)
        where = f"{path}"
        objects = [(obj.class_id, _centre_crop(np.asarray(obj.mask, dtype=bool), where)) for obj in sample.objects]
        _centre_crop(sample.image, where)  # the image itself must be at least a tile
        background = None if sample.background is None else _centre_crop(sample.background, where)
        items.append(MaskItem(
            {"kind": "dataset", "root": str(root), "sample": sample.name, "annotation": path.relative_to(root).as_posix()},
            objects, _carried_header(sample.header), background,
        ))
    return items


def masks_from_npz(path: Path, limit: int | None) -> list[MaskItem]:
    """Class-id masks of an ``.npz`` (``masks`` (N, 128, 128) uint8); objects as the mask bank finds them."""
    from radiff_scale.classes import NUM_CLASSES
    from radiff_scale.data.mask_bank import object_masks

    try:
        with np.load(path, allow_pickle=False) as data:
            if "masks" not in data.files:
                raise RadiffError(f"--masks {path}: no 'masks' array (found: {', '.join(data.files) or 'none'})")
            masks = data["masks"]
            names = [str(n) for n in data["names"].tolist()] if "names" in data.files else None
    except RadiffError:
        raise
    except Exception as exc:  # not an npz, a pickled array, a truncated file...
        raise RadiffError(f"--masks {path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    if masks.ndim != 3 or masks.shape[1:] != (TILE, TILE):
        raise RadiffError(f"--masks {path}: 'masks' must have shape (N, {TILE}, {TILE}), got {masks.shape}")
    if masks.dtype != np.uint8:
        raise RadiffError(f"--masks {path}: 'masks' must be uint8 class ids, got dtype {masks.dtype}")
    if masks.size and int(masks.max()) >= NUM_CLASSES:
        raise RadiffError(f"--masks {path}: class ids must be in 0..{NUM_CLASSES - 1}, found {int(masks.max())}")
    if names is not None and len(names) != len(masks):
        names = None
    n = len(masks) if limit is None else min(limit, len(masks))
    items = []
    for i in range(n):
        source: dict[str, Any] = {"kind": "npz", "path": str(path), "index": i}
        if names is not None:
            source["name"] = names[i]
        items.append(MaskItem(source, [(cls, np.asarray(m, dtype=bool)) for cls, m in object_masks(masks[i])]))
    return items


def load_masks(spec: str, limit: int | None) -> list[MaskItem]:
    path = Path(spec)
    if path.is_dir():
        items = masks_from_dataset(path, limit)
    elif path.is_file() and path.suffix == ".npz":
        items = masks_from_npz(path, limit)
    elif path.exists():
        raise RadiffError(f"--masks {spec}: expected a Survey-Collection dataset folder or an .npz of masks")
    else:
        raise RadiffError(f"--masks {spec}: no such file or folder")
    if not items:
        raise RadiffError(f"--masks {spec}: no masks in it")
    return items


def check_out(out: Path) -> None:
    if out.is_dir():
        if any(out.iterdir()):
            raise RadiffError(f"--out {out} exists and is not empty (choose a new folder)")
    elif out.exists():
        raise RadiffError(f"--out {out} exists and is not a folder")


def sampler_spec(overrides: Sequence[str]):
    """The map job's SamplerSpec (same fields, same validation) from ``--set sampler.KEY=VALUE``."""
    from radiff_scale.compose.spec import SamplerSpec
    from radiff_scale.config import from_dict, parse_override

    values: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        if not key.startswith("sampler.") or key.count(".") != 1:
            raise RadiffError(f"--set {text}: only sampler settings can be set here (sampler.KEY=VALUE)")
        values[key.split(".", 1)[1]] = value
    return from_dict(SamplerSpec, values, where="sampler")


def _fits_header_keys(path: Path) -> dict[str, Any]:
    from radiff_scale.compose.wcs import find_image_hdu, open_fits

    with open_fits(path) as hdul:
        header = hdul[find_image_hdu(hdul, path)].header
        found = {key: header.get(key) for key in CARRIED_KEYS}
        if found["CDELT1"] is None and found["CDELT2"] is None:  # a CD matrix instead
            found["CDELT1"], found["CDELT2"] = header.get("CD1_1"), header.get("CD2_2")
    return _carried_header(found)


def _window_background(source, path: Path, seed: int, i: int, stretch) -> tuple[Background, dict[str, Any]]:
    from radiff_scale.data.stretch import background_stats
    from radiff_scale.seeding import derive_rng

    rows, cols = source.shape
    rng = derive_rng(seed, i, WINDOW_PURPOSE)
    for _ in range(WINDOW_TRIES):
        row0, col0 = int(rng.integers(0, rows - TILE + 1)), int(rng.integers(0, cols - TILE + 1))
        window = source.read(row0, row0 + TILE, col0, col0 + TILE)
        try:
            centre, rms = background_stats(window)
            stretch.encode(window)
        except RadiffError:
            continue  # a blank (NaN, read as 0) or constant window: draw another
        record = {"kind": "fits", "path": str(path), "row0": row0, "col0": col0, "centre_jy": centre, "rms_jy": rms}
        return Background(centre, rms, record, window), record
    raise RadiffError(f"--background {path}: no usable {TILE}x{TILE} window found for mask {i} "
                      f"in {WINDOW_TRIES} tries (the map is blank or constant almost everywhere)")


def plan_backgrounds(kind: str, items: list[MaskItem], seed: int, rms_jy: float, stretch) -> tuple[str, list[Background]]:
    """One Background per mask; returns the resolved kind (``none``, ``dataset`` or ``fits``)."""
    from radiff_scale.data.stretch import background_stats

    from_dataset = items[0].source["kind"] == "dataset"
    if kind == "auto":
        kind = "dataset" if from_dataset and all(it.background is not None for it in items) else "none"
    if kind == "none":
        return "none", [Background(0.0, rms_jy, {"kind": "none", "centre_jy": 0.0, "rms_jy": rms_jy}) for _ in items]
    if kind == "dataset":
        if not from_dataset:
            raise RadiffError("--background dataset needs a dataset folder as --masks (an .npz has no backgrounds)")
        out = []
        for it in items:
            name = it.source["sample"]
            if it.background is None:
                raise RadiffError(f"--background dataset: sample {name} has no background image")
            centre, rms = background_stats(it.background, source=f"background of sample {name}")
            stretch.encode(it.background, source=f"background of sample {name}")
            out.append(Background(centre, rms, {"kind": "dataset", "sample": name, "centre_jy": centre, "rms_jy": rms},
                                  it.background))
        return "dataset", out
    from radiff_scale.compose.background import FitsBackground

    path = Path(kind)
    if not path.is_file():
        raise RadiffError(f"--background {kind}: expected 'dataset', 'none' or a FITS map (no such file)")
    source = FitsBackground(path)
    try:
        if source.shape[0] < TILE or source.shape[1] < TILE:
            raise RadiffError(f"--background {path}: map is {source.shape[0]}x{source.shape[1]}, smaller than a tile")
        header = _fits_header_keys(path)
        out = []
        for i, it in enumerate(items):
            background, _ = _window_background(source, path, seed, i, stretch)
            it.header = {**it.header, **header}
            out.append(background)
    finally:
        source.close()
    return "fits", out


def model_commit(card: dict[str, Any]) -> Any:
    """The commit(s) the bundle's card records: its own, else each training stage's."""
    if card.get("commit") is not None:
        return card["commit"]
    stages = card.get("stages") or {}
    found = {name: stage.get("commit") for name, stage in stages.items() if isinstance(stage, dict) and stage.get("commit")}
    return found or None


# ---------------------------------------------------------------------------------------------
# Sampling and writing
# ---------------------------------------------------------------------------------------------


class _Batches:
    """The masks as tile batches for actors.sampling_stage, background patches encoded when submitted."""

    def __init__(self, masks: np.ndarray, backgrounds: list[Background], seeds: list[int], batch_size: int, stretch,
                 null: bool) -> None:
        self.masks, self.backgrounds, self.seeds, self.stretch, self.null = masks, backgrounds, seeds, stretch, null
        self.n_items, self.batch_size = len(seeds), batch_size

    def __len__(self) -> int:
        from radiff_scale.compose import tile_store

        return tile_store.n_batches(self.n_items, self.batch_size)

    def __getitem__(self, index: int):
        from actors.sampling_stage import TileBatch
        from radiff_scale.compose import tile_store

        sl = tile_store.batch_slice(index, self.n_items, self.batch_size)
        patches = None
        if not self.null:
            patches = np.stack([self.stretch.encode(b.image) for b in self.backgrounds[sl]]).astype(np.float32)
        return TileBatch(index, self.masks[sl], patches, tuple(self.seeds[sl]), tuple(range(sl.start, sl.stop)))


def _header(item: MaskItem, background: Background) -> dict[str, Any]:
    beam_deg = FIRST_BEAM_ARCSEC / 3600.0
    pixel_deg = FIRST_PIXEL_ARCSEC / 3600.0
    header: dict[str, Any] = {"BMAJ": beam_deg, "BMIN": beam_deg, "BPA": 0.0, "CDELT1": -pixel_deg, "CDELT2": pixel_deg}
    header.update(item.header)
    header["RMS"] = float(background.rms)
    header["ORIGIN"] = "radiff-scale sample"
    return header


def tile_zoom(headers: list[dict[str, Any]], card: dict[str, Any]) -> float:
    """The one zoom of the run: the output images' pixels per beam over the model's (tiles are
    sampled at the model's scale and resampled, radiff_scale/compose/resample.py). Masks of
    different pixels per beam in one run are a user error: each needs its own zoom."""
    from radiff_scale.beam import Beam
    from radiff_scale.compose.resample import pixels_per_beam, zoom_factor

    zooms = set()
    for h in headers:
        beam = Beam(float(h["BMAJ"]) * 3600.0, float(h["BMIN"]) * 3600.0, float(h.get("BPA", 0.0)))
        zooms.add(round(zoom_factor(pixels_per_beam(beam, abs(float(h["CDELT2"])) * 3600.0),
                                    card.get("pixels_per_beam")), 6))
    if len(zooms) > 1:
        raise RadiffError(f"the masks come with {len(zooms)} different pixels per beam; sample each beam separately")
    return zooms.pop() if zooms else 1.0


def _name(i: int, n: int) -> str:
    return f"syn{i:0{max(5, len(str(n - 1)))}d}"


def run_sample(
    masks: str, out: str | Path, *, model: str = "demo", seed: int = 0, workers: int = 2, sampler_overrides=(),
    rms_jy: float = DEFAULT_RMS_JY, background: str = "auto", limit: int | None = None, progress: bool = True,
    use_gpu: bool = False,
) -> dict[str, Any]:
    """Generate one image per mask of ``masks`` into the dataset ``out``; returns the summary (OUT/sample.json)."""
    from jobs.make_map import _bar, read_index, resolve_model_dir
    from radiff_scale.classes import SourceClass
    from radiff_scale.data.stretch import stretch_for_card
    from radiff_scale.seeding import derive_seed

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
    card = dict(read_index(model_dir).get("card") or {})
    stretch = stretch_for_card(card)
    items = load_masks(masks, limit)
    kind, backgrounds = plan_backgrounds(background, items, seed, rms_jy, stretch)
    seconds["read"] = round(time.perf_counter() - started, 3)

    n = len(items)
    seeds = [derive_seed(seed, i, TILE_PURPOSE) for i in range(n)]
    class_masks = np.stack([it.class_mask() for it in items])
    from actors.sampling_stage import sample_to_store
    from actors.tile_sampler import SamplerSettings
    from jobs._entry import connect_ray
    from radiff_scale.compose import tile_store
    from radiff_scale.config import to_dict
    from radiff_scale.data.sc_format import AnnotatedObject, Sample, write_sample

    zoom = tile_zoom([_header(it, bg) for it, bg in zip(items, backgrounds)], card)
    settings = SamplerSettings(sampler.name, sampler.steps, sampler.guidance_mask, sampler.guidance_background,
                               sampler.eta, sampler.gpu_precision, zoom)
    sampler_record = to_dict(sampler)
    model_record = {"path": str(model_dir), "commit": model_commit(card), "stretch": stretch.to_card()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():  # what a killed earlier run left
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        t = time.perf_counter()
        connect_ray(workers, include_dashboard=False, log_to_driver=False, configure_logging=True)
        store = tmp / "_tiles.zarr"
        bar = _bar(progress, n, "tiles", "tile")
        try:
            counts = sample_to_store(
                str(model_dir), settings, _Batches(class_masks, backgrounds, seeds, sampler.batch_size, stretch,
                                                   kind == "none"),
                store, workers, use_gpu=use_gpu, on_batch=lambda _batch, k: bar.update(k),
            )
        finally:
            bar.close()
        seconds["sample"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        by_class: Counter[str] = Counter()
        n_objects = 0
        for b in range(tile_store.n_batches(n, sampler.batch_size)):
            sl = tile_store.batch_slice(b, n, sampler.batch_size)
            tiles = tile_store.read_range(store, sl)
            for i, tile in zip(range(sl.start, sl.stop), tiles):
                item, bg = items[i], backgrounds[i]
                image = (stretch.decode(tile) * bg.rms + bg.centre).astype(np.float32)
                objects = [AnnotatedObject(SourceClass(int(cls)), mask) for cls, mask in item.objects]
                by_class.update(SourceClass(int(cls)).label for cls, _ in item.objects)
                n_objects += len(objects)
                meta = {"provenance": {
                    "mask_source": item.source, "model": model_record, "sampler": sampler_record,
                    "run_seed": seed, "index": i, "tile_seed": seeds[i], "background": bg.record,
                    "made_by": f"radiff-scale {__version__} sample",
                }}
                write_sample(tmp, Sample(_name(i, n), image, objects, _header(item, bg), bg.image, meta))
        shutil.rmtree(store)
        seconds["write"] = round(time.perf_counter() - t, 3)
        seconds["total"] = round(time.perf_counter() - started, 3)
        summary = {
            "n_samples": n,
            "n_objects": n_objects,
            "objects_per_class": dict(sorted(by_class.items())),
            "masks": str(masks),
            "limit": limit,
            "background": kind if kind != "fits" else f"fits:{background}",
            "rms_jy": rms_jy if kind == "none" else None,
            "model": model_record,
            "sampler": sampler_record,
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
        if out.is_dir():
            out.rmdir()  # empty (checked above); rename needs the name free
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from radiff_scale.cli import positive_int

    parser.add_argument("--masks", required=True, metavar="DATASET_OR_NPZ",
                        help="Survey-Collection dataset folder, or an .npz with 'masks' (N, 128, 128) uint8 class ids")
    parser.add_argument("--out", required=True, help="output dataset folder (new, or empty)")
    parser.add_argument("--model", default="demo", help="'demo' (the shipped model, default) or a model bundle folder")
    parser.add_argument("--seed", type=int, default=0, help="run seed: tile i's noise comes from (seed, i) alone")
    parser.add_argument("--workers", type=positive_int, default=2, help="sampler actors (output is the same for any number)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N", help="use only the first N masks")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="sampler.KEY=VALUE",
        help="sampler setting, e.g. --set sampler.steps=10 (name, steps, guidance_mask, guidance_background, eta, "
             "batch_size, gpu_precision; repeatable)",
    )
    parser.add_argument("--rms", type=float, default=DEFAULT_RMS_JY, metavar="JY",
                        help=f"noise rms (Jy/beam) of the images without a background (default {DEFAULT_RMS_JY:g}, FIRST's)")
    parser.add_argument(
        "--background", default="auto", metavar="dataset|none|MAP.fits",
        help="'dataset': each sample's own background; a FITS map: a 128x128 window per mask (seeded); 'none': the "
             "model's null background (default: dataset when every masks sample has a background, else none)",
    )
    parser.add_argument("--gpu", action="store_true", help="one GPU per sampler actor (clusters)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def describe(summary: dict[str, Any], out: Path) -> str:
    return (f"{summary['n_samples']} images ({summary['n_objects']} objects) written to {out}/ in "
            f"{summary['seconds']['total']:.0f} s (background: {summary['background']}); summary in {out / SUMMARY}")


def run_from_args(args: argparse.Namespace) -> int:
    summary = run_sample(
        args.masks, args.out, model=args.model, seed=args.seed, workers=args.workers, sampler_overrides=args.overrides,
        rms_jy=args.rms, background=args.background, limit=args.limit, progress=not args.quiet, use_gpu=args.gpu,
    )
    print(describe(summary, Path(args.out)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from jobs._entry import job_main

    return job_main("sample", __doc__, add_arguments, run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
