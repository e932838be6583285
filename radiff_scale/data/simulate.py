"""The labelled cutout simulator: reproducible 128x128 radio cutouts with exact per-object masks.

Why it exists: the paper's Survey Collection is not public, so models, tests and demos
train on cutouts whose truth is known by construction. Every cutout is a pure function
of ``(SimConfig, seed)``; a dataset of N cutouts uses ``derive_seed(seed, i, "simulate")``
for cutout ``i``, so any cutout can be regenerated alone and a dataset never depends on
how it was split across processes.

What a cutout holds (all in Jy/beam; computed in float64, stored as float32):

* **background**: beam-correlated Gaussian noise of rms ``rms_jy`` (``"noise"``), plus a
  smooth power-law random field standing in for Galactic diffuse emission
  (``"noise+diffuse"``; it is unlabelled background, like in real Galactic-plane maps), or a
  random patch of a real map (``"real"``; NaN -> 0, and the cutout's rms is the patch's
  robust rms, 1.4826 * MAD). Real patches can hold real, unlabelled sources.
* **objects**, each a noise-free model through the beam: compact (point or slightly
  resolved Gaussians, :mod:`.sim_sources`), extended (FR-I, FR-II and tailed radio
  galaxies of many components, often 2-3 islands, :mod:`.sim_galaxies`) and spurious
  (sidelobe rings, arcs and spokes around a bright source, which is itself emitted as a
  compact object, :mod:`.sim_artefacts`).

Labels are exact: an object's mask is ``model >= mask_nsigma * rms`` (``|model|`` for
spurious, whose ripples are negative as well as positive), computed on the float32 model
that is stored, so re-thresholding a stored model reproduces its mask bit for bit.

Placement: artefact systems first (they are the largest), then extended, then compact.
A candidate is rejected and redrawn at a new position (at most ``max_tries`` times, then
dropped and never emitted) if its mask comes within ``min_gap_px`` pixels (Chebyshev) of
an accepted mask, or, for compact and extended sources, touches the image border (the
Survey Collection never crops its objects). Objects whose mask would be empty are dropped.
Masks therefore never overlap, though faint wings below the threshold do add up.

This module writes datasets; one cutout is :func:`.sim_cutout.simulate_cutout`, its
settings :class:`.sim_config.SimConfig`, its background :mod:`.sim_background`, and the
placement rules :mod:`.sim_placement` and :mod:`.sim_scene`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radiff_scale.atomic import check_output_path, write_json_atomic
from radiff_scale.classes import OBJECT_CLASSES
from radiff_scale.config import to_dict
from radiff_scale.data.sim_background import load_real_maps
from radiff_scale.data.sim_config import SimConfig
from radiff_scale.data.sim_cutout import LabelledCutout, simulate_cutout
from radiff_scale.errors import RadiffError
from radiff_scale.seeding import derive_seed

if TYPE_CHECKING:
    from radiff_scale.data.sc_format import Sample

__all__ = ["SUMMARY_FILE", "DatasetSummary", "SimConfig", "cutout_to_sample", "simulate_cutout", "simulate_dataset"]

#: Written last by :func:`simulate_dataset`; its presence marks a complete dataset.
SUMMARY_FILE = "summary.json"

#: Bytes of a FITS block: each header and data unit is padded to a whole number of them.
FITS_BLOCK = 2880


@dataclass
class DatasetSummary:
    """What a simulated dataset holds; written to ``summary.json`` and printed by the CLI.

    Per-class dicts are keyed by class label. ``flux_range_jy`` and ``snr_range`` are
    [min, max] over the objects of a class (empty for a class that never appeared);
    spurious fluxes can be negative. ``seconds`` is wall time, so it is the one field that
    differs between two runs of the same seed.
    """

    n_cutouts: int
    seed: int
    objects_per_class: dict[str, int]
    cutouts_with_class: dict[str, int]
    flux_range_jy: dict[str, list[float]]
    snr_range: dict[str, list[float]]
    rms_range_jy: list[float]
    n_empty_cutouts: int
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short table: objects, cutouts holding the class, mean per such cutout, flux and S/N ranges."""
        rate = 1000.0 * self.seconds / max(self.n_cutouts, 1)
        lines = [
            f"{self.n_cutouts} cutouts (seed {self.seed}) in {self.seconds:.1f} s ({rate:.1f} ms/cutout); "
            f"{self.n_empty_cutouts} without objects; rms {self.rms_range_jy[0]:.3g}-{self.rms_range_jy[1]:.3g} Jy/beam",
            f"{'class':<10}{'objects':>9}{'cutouts':>9}{'per cutout':>12}  {'flux [Jy]':<21}{'peak S/N':<16}",
        ]
        for cls in OBJECT_CLASSES:
            label = cls.label
            count, holders = self.objects_per_class[label], self.cutouts_with_class[label]
            per = f"{count / holders:.2f}" if holders else "-"
            flux = self.flux_range_jy[label]
            snr = self.snr_range[label]
            flux_s = f"{flux[0]:.3g} .. {flux[1]:.3g}" if flux else "-"
            snr_s = f"{snr[0]:.3g} .. {snr[1]:.3g}" if snr else "-"
            lines.append(f"{label:<10}{count:>9}{holders:>9}{per:>12}  {flux_s:<21}{snr_s:<16}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


class _Tally:
    """Running per-class statistics, so a 10^4-cutout run keeps no cutout in memory."""

    def __init__(self) -> None:
        self.objects = {c.label: 0 for c in OBJECT_CLASSES}
        self.holders = {c.label: 0 for c in OBJECT_CLASSES}
        self.flux: dict[str, list[float]] = {c.label: [] for c in OBJECT_CLASSES}
        self.snr: dict[str, list[float]] = {c.label: [] for c in OBJECT_CLASSES}
        self.rms = [math.inf, -math.inf]
        self.empty = 0

    @staticmethod
    def _widen(span: list[float], value: float) -> None:
        if not span:
            span.extend([value, value])
        else:
            span[0], span[1] = min(span[0], value), max(span[1], value)

    def add(self, cutout: LabelledCutout) -> None:
        self.rms = [min(self.rms[0], cutout.rms_jy), max(self.rms[1], cutout.rms_jy)]
        self.empty += not cutout.objects
        seen = set()
        for obj in cutout.objects:
            label = obj.class_id.label
            self.objects[label] += 1
            seen.add(label)
            self._widen(self.flux[label], obj.flux_jy)
            self._widen(self.snr[label], cutout.snr(obj))
        for label in seen:
            self.holders[label] += 1

    def merge(self, other: _Tally) -> None:
        """Fold in a worker's tally (the result does not depend on the order of merging)."""
        self.rms = [min(self.rms[0], other.rms[0]), max(self.rms[1], other.rms[1])]
        self.empty += other.empty
        for label in self.objects:
            self.objects[label] += other.objects[label]
            self.holders[label] += other.holders[label]
            for span, theirs in ((self.flux[label], other.flux[label]), (self.snr[label], other.snr[label])):
                for value in theirs:
                    self._widen(span, value)


def cutout_to_sample(cutout: LabelledCutout, name: str) -> Sample:
    """The Survey-Collection sample of a cutout: image, background, header and per-object meta."""
    from radiff_scale.data.sc_format import AnnotatedObject, Sample

    header: dict[str, Any] = {
        "BMAJ": cutout.beam.bmaj_arcsec / 3600.0,
        "BMIN": cutout.beam.bmin_arcsec / 3600.0,
        "BPA": cutout.beam.bpa_deg,
        "CDELT1": -cutout.pixel_scale_arcsec / 3600.0,
        "CDELT2": cutout.pixel_scale_arcsec / 3600.0,
        "BUNIT": "JY/BEAM",
        "RMS": cutout.rms_jy,
        "SEED": cutout.seed,
        "SIMBKG": str(cutout.meta.get("background", "")),
    }
    objects = [
        AnnotatedObject(
            class_id=obj.class_id,
            mask=obj.mask,
            meta={"flux_jy": obj.flux_jy, "peak_jy": obj.peak_jy, "snr": cutout.snr(obj), "kind": obj.kind},
        )
        for obj in cutout.objects
    ]
    meta = {"rms": cutout.rms_jy, "seed": cutout.seed, "simulated": True}
    meta.update({k: v for k, v in cutout.meta.items() if k != "background"})
    return Sample(name=name, image=cutout.image, objects=objects, header=header,
                  background=cutout.background, meta=meta)


def _sample_name(index: int, n: int) -> str:
    return f"sim{index:0{max(6, len(str(n - 1)))}d}"


def _simulate_range(config: SimConfig, seed: int, start: int, stop: int, n: int, root: str) -> _Tally:
    """Simulate and write cutouts ``start..stop-1`` of a dataset; runs in a worker process or inline."""
    from radiff_scale.data.sc_format import write_sample

    real_maps = load_real_maps(config.real_backgrounds) if config.background == "real" else None
    tally = _Tally()
    for i in range(start, stop):
        cutout = simulate_cutout(config, derive_seed(seed, i, "simulate"), real_maps)
        write_sample(root, cutout_to_sample(cutout, _sample_name(i, n)))
        tally.add(cutout)
    return tally


def simulate_dataset(
    n: int,
    out: str | Path,
    seed: int = 0,
    config: SimConfig | None = None,
    progress: bool = False,
    workers: int = 1,
) -> DatasetSummary:
    """Simulate ``n`` cutouts into ``out`` in the Survey-Collection layout and return their summary.

    Cutout ``i`` is ``simulate_cutout(config, derive_seed(seed, i, "simulate"))`` named
    ``sim<i>`` (zero-padded to 6 digits or more). ``out`` must not exist or be empty.
    ``summary.json`` (with the resolved config) is written last, so its presence marks a
    complete dataset: a run that fails midway leaves the cutouts it wrote but no summary.
    ``workers`` > 1 starts that many processes (spawned, ~1-4 s each to import) that write
    disjoint index ranges; the files are the same bytes for any count. It pays only on
    cores nobody else is using, hence the default of 1 (in-process).
    """
    from tqdm import tqdm

    config = config if config is not None else SimConfig()
    if n < 1:
        raise RadiffError(f"--n {n}: the number of cutouts must be >= 1")
    if seed < 0:
        raise RadiffError(f"--seed {seed}: seeds must be >= 0")
    if workers < 1:
        raise RadiffError(f"--workers {workers}: must be >= 1")
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise RadiffError(f"--out {root}: already exists and is not an empty folder")
    # At least an image and a background of float32 per cutout (masks and JSON come on top).
    check_output_path(root, n * (8 * config.size**2 + 4 * FITS_BLOCK),
                      what=f"a dataset of {n} cutouts of {config.size}x{config.size}")
    if config.background == "real":
        load_real_maps(config.real_backgrounds)  # fail on a bad map before writing anything
    root.mkdir(parents=True, exist_ok=True)

    chunk = 64 if workers > 1 else 16
    ranges = [(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    tally = _Tally()
    start_time = time.perf_counter()
    with tqdm(total=n, disable=not progress, unit="cutout", desc="simulate") as bar:
        if workers == 1:
            for lo, hi in ranges:
                tally.merge(_simulate_range(config, seed, lo, hi, n, str(root)))
                bar.update(hi - lo)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # spawn, not fork: the caller may hold threads (tqdm's monitor, Ray) that fork would copy mid-lock.
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(_simulate_range, config, seed, lo, hi, n, str(root)): hi - lo
                           for lo, hi in ranges}
                try:
                    for future in as_completed(futures):
                        tally.merge(future.result())
                        bar.update(futures[future])
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    seconds = time.perf_counter() - start_time

    summary = DatasetSummary(
        n_cutouts=n,
        seed=seed,
        objects_per_class=tally.objects,
        cutouts_with_class=tally.holders,
        flux_range_jy=tally.flux,
        snr_range=tally.snr,
        rms_range_jy=tally.rms,
        n_empty_cutouts=tally.empty,
        seconds=seconds,
        config=to_dict(config),
    )
    write_json_atomic(root / SUMMARY_FILE, summary.to_dict())
    return summary
