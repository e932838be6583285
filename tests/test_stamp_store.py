"""The stamp store: one file per tile batch, read back by rank."""

from __future__ import annotations

import numpy as np
import pytest

from radiff_scale.atomic import replace_when_done
from radiff_scale.compose.stamps import Stamp
from radiff_scale.mapjob import stamps as stamp_store


def _stamp(rng: np.random.Generator, object_id: int) -> Stamp:
    rows, cols = (int(v) for v in rng.integers(1, 9, size=2))
    mask = rng.random((rows, cols)) > 0.3
    data = np.where(mask, rng.standard_normal((rows, cols)), 0.0).astype(np.float32)
    return Stamp(object_id, 2, int(rng.integers(-5, 50)), int(rng.integers(-5, 50)), data, mask)


def test_stamps_come_back_exactly_by_rank_in_the_order_asked(tmp_path):
    rng = np.random.default_rng(3)
    batch_size, n = 4, 10
    stamps = [_stamp(rng, 100 + i) for i in range(n)]
    for batch in range(3):
        stamp_store.write_batch(tmp_path, batch, stamps[batch * batch_size : (batch + 1) * batch_size])
    assert stamp_store.done_batches(tmp_path) == {0, 1, 2}
    ranks = [9, 0, 5, 4, 3]
    for rank, got in zip(ranks, stamp_store.read_ranks(tmp_path, ranks, batch_size)):
        want = stamps[rank]
        assert (got.object_id, got.class_id, got.row0, got.col0) == (want.object_id, 2, want.row0, want.col0)
        assert got.data.dtype == np.float32 and got.data.tobytes() == want.data.tobytes()
        assert got.mask.dtype == bool and np.array_equal(got.mask, want.mask)
    assert stamp_store.read_ranks(tmp_path, [], batch_size) == []


def test_a_batch_file_appears_only_when_complete_and_a_retry_replaces_it_whole(tmp_path):
    rng = np.random.default_rng(4)
    stamps = [_stamp(rng, i + 1) for i in range(3)]
    stamp_store.write_batch(tmp_path, 7, stamps)
    stamp_store.write_batch(tmp_path, 7, stamps)  # a retried task
    again = stamp_store.read_batch(tmp_path, 7)
    assert [(s.object_id, s.data.tobytes(), s.mask.tobytes()) for s in again] == [
        (s.object_id, s.data.tobytes(), s.mask.tobytes()) for s in stamps
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["7.npz"]  # no temporary files left behind
    stamp_store.write_batch(tmp_path, 8, [])
    assert stamp_store.read_batch(tmp_path, 8) == [] and stamp_store.done_batches(tmp_path) == {7, 8}


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    """The stamp store, catalogue parts and run JSON share replace_when_done: all or nothing."""
    target = tmp_path / "part.bin"

    def half_then_fail(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_when_done(target, half_then_fail)
    assert list(tmp_path.iterdir()) == []
    assert replace_when_done(target, lambda tmp: tmp.write_bytes(b"whole")) == target
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["part.bin"]
