"""The chunk-owner task: one Ray task per mosaic chunk, retried if its worker dies.

A retried chunk rewrites the same bytes (the work is a pure function of its inputs),
so retries are safe even if the first attempt got as far as writing.
"""

from __future__ import annotations

from typing import Any

import ray

from radiff_scale.compose.chunk_work import ChunkOutcome, compose_chunk

@ray.remote(num_cpus=1, max_retries=3)
def compose_chunk_task(
    run_root: str,
    index: tuple[int, int],
    objects: list[dict[str, Any]],
    background: Any,
    geometry: Any,
    preprocess_reference: dict[str, float],
) -> ChunkOutcome:
    return compose_chunk(run_root, index, objects, background, geometry, preprocess_reference)
