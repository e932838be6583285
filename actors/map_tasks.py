"""The map job's per-item Ray tasks over radiff_scale.mapjob: cut one batch of stamps, own one mosaic chunk, export one chunk.

Each is retried if its worker dies. Each is a pure function of its inputs that writes
its result under a temporary name and renames it (or, for an export, writes fixed bytes
at fixed offsets of a partial file), so a retry, even after the first attempt got as far
as writing, leaves the same bytes.
"""

from __future__ import annotations

from typing import Any

import ray

from actors._worker import one_cpu_task
from radiff_scale.compose.fits_export import FitsLayout
from radiff_scale.mapjob.chunks import ChunkOutcome, compose_chunk
from radiff_scale.mapjob.export import ExportOutcome, export_chunk
from radiff_scale.mapjob.plan import PlannedObject
from radiff_scale.mapjob.stamps import StampBatchOutcome, cut_stamp_batch


def share(value: Any) -> Any:
    """Put what every task of a stage reads (the geometry, the background) into Ray's object
    store once; the returned reference travels with each task instead of a copy."""
    return ray.put(value)


@ray.remote(num_cpus=1, max_retries=3)
@one_cpu_task
def cut_stamps_task(
    run_root: str,
    batch: int,
    batch_size: int,
    objects: list[PlannedObject],
    geometry: Any,
    stretch: Any,
    bank: tuple[str, str] | None = None,
    flux_mode: str = "k",
) -> StampBatchOutcome:
    return cut_stamp_batch(run_root, batch, batch_size, objects, geometry, stretch, bank, flux_mode)


@ray.remote(num_cpus=1, max_retries=3)
@one_cpu_task
def compose_chunk_task(
    run_root: str,
    index: tuple[int, int],
    ranks: list[int],
    batch_size: int,
    background: Any,
) -> ChunkOutcome:
    return compose_chunk(run_root, index, ranks, batch_size, background)


@ray.remote(num_cpus=1, max_retries=3)
@one_cpu_task
def export_chunk_task(
    run_root: str,
    index: tuple[int, int],
    layouts: tuple[FitsLayout, ...],
    quicklook_factor: int | None,
) -> ExportOutcome:
    return export_chunk(run_root, index, layouts, quicklook_factor)
