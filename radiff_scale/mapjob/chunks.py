"""The chunk stage's work: each chunk owner paints the stamps that touch its chunk and writes it once.

Stamps were cut by the stamp stage (:mod:`radiff_scale.mapjob.stamps`); an owner
reads them by rank from the stamp store. Ranks follow owner chunks (see
:class:`radiff_scale.mapjob.plan.PlannedMap`), so a chunk's stamps sit in a
few batch files: its own objects in consecutive batches, plus those of neighbours whose
footprints reach into it. An object that touches several chunks is painted by each of
them from the same stored stamp, so the copies agree to the bit.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from radiff_scale.compose.background import BackgroundSource
from radiff_scale.compose.mosaic import Mosaic, open_mosaic, render_chunk
from radiff_scale.mapjob.plan import PlannedObject
from radiff_scale.mapjob.rundir import RunDir
from radiff_scale.mapjob.stamps import read_ranks


@dataclass(frozen=True)
class ChunkOutcome:
    """What the driver keeps of one chunk (small: it travels back through Ray)."""

    index: tuple[int, int]
    n_stamps: int
    seconds: float
    #: Seconds by step: ``stamps`` (reading them), then render_chunk's ``background``,
    #: ``paint`` and ``write``.
    step_seconds: dict[str, float]


def chunks_touched(fp: tuple[int, int, int, int], chunk: int) -> list[tuple[int, int]]:
    """Chunk indices a footprint box (row0, row1, col0, col1) touches."""
    r0, r1, c0, c1 = fp
    return [
        (i, j)
        for i in range(r0 // chunk, (r1 - 1) // chunk + 1)
        for j in range(c0 // chunk, (c1 - 1) // chunk + 1)
    ]


def ranks_by_chunk(objects: list[PlannedObject], chunk: int) -> dict[tuple[int, int], list[int]]:
    """The ranks of the objects whose footprint touches each chunk, ascending (``objects`` in rank order)."""
    by_chunk: dict[tuple[int, int], list[int]] = defaultdict(list)
    for obj in objects:
        for index in chunks_touched(obj.footprint_box, chunk):
            by_chunk[index].append(obj.rank)
    return dict(by_chunk)


def worker_mosaic(path: Path) -> Mosaic:
    """The mosaic, opened once per worker process: opening the group and its three arrays
    re-reads and parses four metadata files, ~10 ms a chunk otherwise. Keyed by the group
    metadata's bytes too (shape, chunk, arrays), so a different mosaic made at the same
    path (``--overwrite``) while a worker lives is opened afresh."""
    return _open_mosaic_cached(str(path), (path / "zarr.json").read_bytes())


@functools.lru_cache(maxsize=4)  # a worker serves one map, rarely a few
def _open_mosaic_cached(path: str, metadata: bytes) -> Mosaic:
    return open_mosaic(path)


def compose_chunk(
    run_root: str | Path,
    index: tuple[int, int],
    ranks: list[int],
    batch_size: int,
    background: BackgroundSource,
) -> ChunkOutcome:
    """Render chunk ``index`` of ``run_root``'s mosaic from the stamps at ``ranks`` (those touching it)."""
    started = time.perf_counter()
    run = RunDir(Path(run_root))
    stamps = read_ranks(run.stamps, ranks, batch_size)
    read = time.perf_counter() - started
    report = render_chunk(worker_mosaic(run.mosaic), tuple(index), background, stamps)
    return ChunkOutcome(
        index=tuple(index), n_stamps=report.n_stamps, seconds=time.perf_counter() - started,
        step_seconds={"stamps": read, **report.step_seconds},
    )
