"""What one export task does: one chunk's rows into the FITS files, and its quick-look share.

The FITS files were laid out by the driver (:func:`radiff_scale.compose.fits_export.lay_out_fits`);
a task decodes its chunk of each array once, writes it at its offsets in every file that
needs it, and reduces it for the quick-look. Tasks touch disjoint bytes, so they run in
any number and order; a retried task writes the same bytes again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from radiff_scale.compose.chunk_work import worker_mosaic
from radiff_scale.compose.fits_export import FitsLayout, write_chunk_into
from radiff_scale.compose.quicklook import QuicklookPiece, reduce_chunk
from radiff_scale.compose.rundir import RunDir


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
