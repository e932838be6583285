"""Cut stamps on disk, one file per batch of consecutive ranks.

A stamp is what one placed object adds to the map: Jy/beam, zero outside its mask,
trimmed to its bounding box (a few kB where its tile is 64 kB). The stamp stage cuts
every object once, a batch at a time (whole tile batches: see
``jobs.make_map.stamp_batch_size``), and the chunk owners only read and paint stamps.
Ranks follow owner chunks, so a chunk owner reads a handful of batch files.

``work/stamps/<batch>.npz`` (uncompressed) holds, in rank order within the batch:

* ``meta``: int64 (n, 6): object_id, class_id, row0, col0, rows, cols;
* ``data``: float32, every stamp's pixels concatenated row-major;
* ``mask``: bool, their masks, concatenated the same way.

A file is written under a temporary name and renamed, so one that exists is complete:
its existence is the batch's done marker, which is what ``--resume`` reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from radiff_scale.compose.rundir import replace_when_done
from radiff_scale.compose.stamp import Stamp

_SUFFIX = ".npz"


def batch_path(folder: Path, batch: int) -> Path:
    return Path(folder) / f"{int(batch)}{_SUFFIX}"


def write_batch(folder: Path, batch: int, stamps: Sequence[Stamp]) -> None:
    """Write one batch's stamps (in rank order). A rewrite holds the same stamps, though not the
    same file bytes (a zip member records its time)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = np.array(
        [(s.object_id, s.class_id, s.row0, s.col0, *s.data.shape) for s in stamps], dtype=np.int64
    ).reshape(len(stamps), 6)
    data = np.concatenate([np.asarray(s.data, np.float32).ravel() for s in stamps]) if stamps else np.zeros(0, np.float32)
    mask = np.concatenate([np.asarray(s.mask, bool).ravel() for s in stamps]) if stamps else np.zeros(0, bool)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: given a name, savez would append ".npz" to it
            np.savez(fh, meta=meta, data=data, mask=mask)

    replace_when_done(batch_path(folder, batch), write)


def read_batch(folder: Path, batch: int) -> list[Stamp]:
    """All stamps of one batch, in rank order."""
    with np.load(batch_path(folder, batch)) as npz:
        meta, data, mask = npz["meta"], npz["data"], npz["mask"]
    stamps, offset = [], 0
    for object_id, class_id, row0, col0, rows, cols in meta.tolist():
        end = offset + rows * cols
        stamps.append(Stamp(
            object_id, class_id, row0, col0, data[offset:end].reshape(rows, cols), mask[offset:end].reshape(rows, cols)
        ))
        offset = end
    return stamps


def read_ranks(folder: Path, ranks: Iterable[int], batch_size: int) -> list[Stamp]:
    """The stamps at ``ranks`` (in the order given), reading each batch file once."""
    ranks = [int(r) for r in ranks]
    wanted: dict[int, list[int]] = defaultdict(list)
    for rank in ranks:
        wanted[rank // batch_size].append(rank)
    found: dict[int, Stamp] = {}
    for batch, members in wanted.items():
        stamps = read_batch(folder, batch)
        for rank in members:
            found[rank] = stamps[rank - batch * batch_size]
    return [found[r] for r in ranks]


def done_batches(folder: Path) -> set[int]:
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    return {int(p.stem) for p in folder.glob(f"*{_SUFFIX}") if p.stem.isdigit()}
