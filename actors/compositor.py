"""The map's per-item Ray tasks: cut one tile batch's stamps, own one mosaic chunk, export one chunk.

Each is retried if its worker dies. Each is a pure function of its inputs that writes
its result under a temporary name and renames it (or, for an export, writes fixed bytes
at fixed offsets of a partial file), so a retry, even after the first attempt got as far
as writing, leaves the same bytes.
"""

from __future__ import annotations

from typing import Any

import ray

from actors._worker import one_cpu_task
from radiff_scale.compose.chunk_work import ChunkOutcome, compose_chunk
from radiff_scale.compose.export_work import ExportOutcome, export_chunk
from radiff_scale.compose.fits_export import FitsLayout
from radiff_scale.compose.stamp_work import BatchOutcome, cut_batch


@ray.remote(num_cpus=1, max_retries=3)
@one_cpu_task
def cut_stamps_task(
    run_root: str,
    batch: int,
    batch_size: int,
    objects: list[dict[str, Any]],
    geometry: Any,
    stretch: Any,
) -> BatchOutcome:
    return cut_batch(run_root, batch, batch_size, objects, geometry, stretch)


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
