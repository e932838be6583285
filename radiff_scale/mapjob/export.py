"""The export stage: map.fits, labels.fits and the quick-look from the mosaic, then the truth files.

The driver lays the FITS files out (:func:`plan_export`: headers and sizes, so every
chunk's bytes have fixed offsets); one task per chunk (:func:`export_chunk`) decodes
its chunk of each array once, writes it at its offsets in every file that needs it, and
reduces it for the quick-look. Tasks touch disjoint bytes, so they run in any number
and order, and a retried task writes the same bytes again. Files are renamed into
place only when every chunk is in (:func:`finish_export`); files already complete (a
resumed run) are not redone. The catalogue and regions come last (:func:`write_truth`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from radiff_scale.version import __version__
from radiff_scale.compose import fits_export
from radiff_scale.compose.catalogue import write_catalogue
from radiff_scale.compose.fits_export import FitsLayout, write_chunk_into
from radiff_scale.compose.mosaic import Mosaic
from radiff_scale.compose.quicklook import QuicklookCanvas, QuicklookPiece, quicklook_factor, reduce_chunk, save_quicklook
from radiff_scale.compose.regions import write_ds9_regions
from radiff_scale.compose.sdc1 import write_sdc1
from radiff_scale.compose.spec import MapSpec
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.mapjob.stamps import read_catalogue_parts
from radiff_scale.mapjob.chunks import worker_mosaic
from radiff_scale.mapjob.rundir import RunDir


@dataclass(frozen=True)
class ExportOutcome:
    """What the driver keeps of one exported chunk: its quick-look piece (~1/factor^2 of it)."""

    index: tuple[int, int]
    piece: QuicklookPiece | None
    seconds: float
    #: Seconds by step: ``read`` (decoding the chunk), ``fits`` (byte swap + writes), ``quicklook``.
    step_seconds: dict[str, float]


def export_chunk(
    run_root: str | Path,
    index: tuple[int, int],
    layouts: tuple[FitsLayout, ...],
    quicklook_factor: int | None,
) -> ExportOutcome:
    """Write chunk ``index`` into every layout's partial file; reduce it if ``quicklook_factor``."""
    started = time.perf_counter()
    mosaic = worker_mosaic(RunDir(Path(run_root)).mosaic)
    bounds = mosaic.chunk_bounds(tuple(index))
    names = {slot.array for layout in layouts for slot in layout.slots}
    if quicklook_factor:
        names |= {"image", "class"}
    arrays = {name: mosaic.array(name)[bounds.slices] for name in sorted(names)}
    read = time.perf_counter()
    for layout in layouts:
        write_chunk_into(layout, bounds, arrays)
    written = time.perf_counter()
    piece = reduce_chunk(arrays["image"], arrays["class"], bounds, quicklook_factor) if quicklook_factor else None
    done = time.perf_counter()
    return ExportOutcome(
        index=bounds.index, piece=piece, seconds=done - started,
        step_seconds={"read": read - started, "fits": written - read, "quicklook": done - written},
    )


# ---- on the driver ---------------------------------------------------------------------------


def map_header(geometry: MapGeometry, spec: MapSpec, n_objects: int) -> fits.Header:
    """The header of map.fits and labels.fits: the geometry plus what made the map."""
    header = geometry.header()
    header["SEED"] = (spec.seed, "radiff-scale run seed")
    header["NOBJECTS"] = (n_objects, "objects placed on this map")
    header["ORIGIN"] = "radiff-scale"
    header["RSVERS"] = (__version__, "radiff-scale version")
    tiles = spec.tile_source
    if tiles.bank is None:
        header["MODEL"] = (Path(spec.model).name[:60], "tile model")
    else:  # the FITS file itself says its tiles were reused
        header["MODEL"] = (tiles.bank.name[:60], "tile bank (pre-sampled tiles)")
    header["TILESRC"] = (tiles.kind, "tiles: model-sampled or from a tile bank")
    return header


@dataclass
class ExportPlan:
    """The image files still to write: their laid-out FITS files and the quick-look canvas."""

    targets: dict[str, Path]
    layouts: tuple[FitsLayout, ...]
    canvas: QuicklookCanvas | None

    @property
    def todo(self) -> bool:
        return bool(self.layouts) or self.canvas is not None

    @property
    def quicklook_factor(self) -> int | None:
        return None if self.canvas is None else self.canvas.factor


def plan_export(run: RunDir, mosaic: Mosaic, header: fits.Header) -> ExportPlan:
    """Lay out the image files of ``run`` not yet complete."""
    targets = {"map": run.output("map.fits"), "labels": run.output("labels.fits"),
               "quicklook": run.output("quicklook.png")}
    layouts = []
    if not targets["map"].exists():
        layouts.append(fits_export.image_layout(mosaic, targets["map"], header))
    if not targets["labels"].exists():
        layouts.append(fits_export.labels_layout(mosaic, targets["labels"], header))
    canvas = None if targets["quicklook"].exists() else QuicklookCanvas(mosaic.shape, quicklook_factor(mosaic.shape))
    return ExportPlan(targets, tuple(layouts), canvas)


def finish_export(plan: ExportPlan, complete: bool) -> None:
    """Rename the files into place once every chunk is in; otherwise drop the partial files."""
    for layout in plan.layouts:
        (fits_export.finish if complete else fits_export.abandon)(layout)
    if complete and plan.canvas is not None:
        save_quicklook(plan.canvas, plan.targets["quicklook"])


def write_truth(run: RunDir, plan: ExportPlan, n_placed: int) -> dict[str, str]:
    """The catalogue (Parquet, FITS, CSV) and DS9 regions from the stamp stage's parts; the
    manifest's ``outputs`` (key -> file name), image files included."""
    table = read_catalogue_parts(run.catalogue_parts)
    if table.num_rows != n_placed:
        raise RuntimeError(f"catalogue has {table.num_rows} rows for {n_placed} placed objects")
    outputs = {name: path.name for name, path in plan.targets.items()}
    paths = write_catalogue(table, run.root, stem="catalogue")
    outputs.update({f"catalogue_{k}": Path(v).name for k, v in paths.items()})
    write_ds9_regions(table, run.output("regions.reg"))
    outputs["regions"] = "regions.reg"
    write_sdc1(table, run.output("catalogue_sdc1.txt"))  # what the SDC1 scorer reads (docs/truth.md)
    outputs["catalogue_sdc1"] = "catalogue_sdc1.txt"
    return outputs
