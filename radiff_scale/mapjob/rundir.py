"""The output folder of a map run: its layout, its identity, and what counts as finished.

Layout of ``OUT/``::

    spec.json          resolved MapSpec identity, written first (what --resume checks)
    work/unplaced.json     objects that could not be placed, with reasons
    work/mask_pool.zarr    masks invented by the mask prior (only with ``masks: prior``)
    work/tiles.zarr        one generated tile per placed object; one chunk per batch (model tiles)
    work/tile_bank.json    the tile bank a banked run reads its tiles from, with its sha256
    work/stamps/           the cut stamps, one file per stamp batch (radiff_scale.mapjob.stamps)
    work/catalogue/        catalogue rows, one part per stamp batch
    work/chunks_done/      one done marker per mosaic chunk (outside map.zarr: xarray and dask open it clean)
    map.zarr/          the mosaic (image, class, instance, dimensions y, x)
    map.fits, labels.fits, catalogue.{parquet,fits,csv}, regions.reg, quicklook.png
    manifest.json      written last: its presence means the run is complete

Every final file is written under a temporary name and renamed when complete, so an
interrupted run never leaves something that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radiff_scale.atomic import write_json_atomic
from radiff_scale.errors import RadiffError


#: Version of what ``work/`` holds and in which order (part of a run's identity in
#: spec.json, so ``--resume`` refuses a folder an older layout left half done). 2: objects
#: ranked by owner chunk, stamps cut once into ``work/stamps``, catalogue parts per batch. 3: chunk
#: done markers in ``work/chunks_done`` instead of inside map.zarr; banked runs read the bank
#: instead of a copy of its tiles in ``work/tiles.zarr``. 4: fluxes, given shapes and reserved
#: regions in the placement, new truth columns in the catalogue parts.
RUN_LAYOUT = 4


@dataclass(frozen=True)
class RunDir:
    """Paths of one map run."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def unplaced(self) -> Path:
        return self.work / "unplaced.json"

    @property
    def mask_pool(self) -> Path:
        return self.work / "mask_pool.zarr"

    @property
    def tiles(self) -> Path:
        return self.work / "tiles.zarr"

    @property
    def stamps(self) -> Path:
        return self.work / "stamps"

    @property
    def catalogue_parts(self) -> Path:
        return self.work / "catalogue"

    @property
    def mosaic(self) -> Path:
        return self.root / "map.zarr"

    @property
    def tile_bank(self) -> Path:
        return self.work / "tile_bank.json"

    @property
    def chunk_markers(self) -> Path:
        return self.work / "chunks_done"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def output(self, name: str) -> Path:
        return self.root / name


def check_run_flags(resume: bool, overwrite: bool) -> None:
    """The flags alone: refused before any input is read (a big background takes a while)."""
    if resume and overwrite:
        raise RadiffError("--resume and --overwrite exclude each other: finish the run in the folder, or replace it")


def prepare_run_dir(out: str | Path, identity: dict[str, Any], resume: bool, overwrite: bool) -> RunDir:
    """Create or reopen ``out`` for a run of ``identity``; refuse anything ambiguous.

    - new or empty folder: a fresh run (but ``resume`` there is a user error: nothing to finish);
    - ``resume``: the folder must hold a run of the *same* identity (else a user error);
    - ``overwrite``: whatever is there is removed first (only folders that look like
      one of our runs, so a typo cannot wipe a home folder);
    - otherwise an existing non-empty folder is refused.
    """
    root = Path(out)
    run = RunDir(root)
    check_run_flags(resume, overwrite)
    if root.exists() and not root.is_dir():
        raise RadiffError(f"output {root} exists and is not a folder")
    exists = root.is_dir() and any(root.iterdir())
    if resume and not exists:
        raise RadiffError(f"nothing to --resume in {root}: no run there (leave out --resume to start one)")
    if exists and overwrite:
        if not run.spec.is_file():
            raise RadiffError(f"refusing to --overwrite {root}: it is not a radiff-scale run folder (no spec.json)")
        shutil.rmtree(root)
        exists = False
    if exists:
        if not resume:
            hint = "use --resume to finish it" if run.spec.is_file() else "choose a new folder"
            raise RadiffError(f"output {root} already exists and is not empty ({hint}, or --overwrite)")
        try:
            previous = json.loads(run.spec.read_text())
        except (OSError, ValueError):
            raise RadiffError(f"cannot --resume {root}: it has no readable spec.json (not a radiff-scale run)") from None
        if previous != json.loads(json.dumps(identity)):
            changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
            raise RadiffError(
                f"cannot --resume {root}: it was made from a different spec (changed: {', '.join(changed)}); "
                "use --overwrite or a new folder"
            )
        return run
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        run.work.mkdir(exist_ok=True)
        write_json_atomic(run.spec, identity)
    except OSError as exc:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise RadiffError(f"cannot write the output folder {root}: {exc.strerror or exc}") from None
    return run
