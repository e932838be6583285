"""The Zarr mosaic and its chunk owners."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import zarr

from radiff_scale.beam import Beam
from radiff_scale.classes import SourceClass
from radiff_scale.compose import mosaic as mosaic_mod
from radiff_scale.compose.background import SyntheticBackground
from radiff_scale.compose.mosaic import (
    StampBox,
    StampIndex,
    background_window,
    create_mosaic,
    done_chunks,
    open_mosaic,
    render_chunk,
    stamps_for_chunk,
)
from radiff_scale.compose.stamp import Stamp
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.errors import RadiffError

SHAPE = (300, 260)
CHUNK = 128


def _background(shape=SHAPE) -> SyntheticBackground:
    geo = MapGeometry(shape, 1.5, 10.0, -30.0, Beam(6.5, 6.5), 1.4e9)
    return SyntheticBackground(geo, rms_jy=1e-4, seed=9, block=64)


def _stamp(object_id: int, class_id: int, row0: int, col0: int, size: int = 21, seed: int = 0) -> Stamp:
    """A round blob: positive inside a disc mask, zero outside, like the stamp cutter makes."""
    rr, cc = np.mgrid[0:size, 0:size] - size // 2
    mask = rr**2 + cc**2 <= (size // 2) ** 2
    rng = np.random.default_rng(seed + object_id)
    data = np.where(mask, rng.uniform(0.5, 2.0, (size, size)), 0.0).astype(np.float32) * 1e-3
    return Stamp(object_id, class_id, row0, col0, data, mask)


def _stamps() -> list[Stamp]:
    """Stamps that straddle chunk edges and the chunk corner, plus two that overlap each other."""
    return [
        _stamp(1, int(SourceClass.COMPACT), 118, 10),  # across row edge 128
        _stamp(2, int(SourceClass.EXTENDED), 118, 118, size=31),  # on the corner of 4 chunks
        _stamp(3, int(SourceClass.SPURIOUS), 20, 250 - 10),  # cols 240..261: clipped by the right map edge
        _stamp(4, int(SourceClass.COMPACT), 200, 60),
        _stamp(5, int(SourceClass.EXTENDED), 205, 65),  # overlaps stamp 4; later id wins labels
        _stamp(6, int(SourceClass.COMPACT), 280, 250),  # clipped by the bottom-right map corner
    ]


def _reference(stamps: list[Stamp], background: np.ndarray):
    """Whole-map painter the obvious way, for comparison."""
    image = background.astype(np.float64)
    classes = np.zeros(SHAPE, np.uint8)
    instances = np.zeros(SHAPE, np.int32)
    for s in sorted(stamps, key=lambda s: s.object_id):
        r1, c1 = min(SHAPE[0], s.row1), min(SHAPE[1], s.col1)
        m = s.mask[: r1 - s.row0, : c1 - s.col0]
        image[s.row0 : r1, s.col0 : c1][m] += s.data[: r1 - s.row0, : c1 - s.col0][m]
        classes[s.row0 : r1, s.col0 : c1][m] = s.class_id
        instances[s.row0 : r1, s.col0 : c1][m] = s.object_id
    return image.astype(np.float32), classes, instances


def _render_all(path: Path, stamps, background, order=None):
    m = create_mosaic(path, SHAPE, chunk=CHUNK)
    index = StampIndex(stamps, CHUNK)
    grid = m.chunk_grid()
    for b in order(grid) if order else grid:
        render_chunk(path, b.index, background, stamps_for_chunk(b, index))
    return m


def _read(m):
    return {name: m.array(name)[:] for name in ("image", "class", "instance")}


def test_create_mosaic_layout(tmp_path):
    m = create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=CHUNK, attrs={"seed": 7})
    assert m.shape == SHAPE and m.chunk == CHUNK and m.grid_shape == (3, 3)
    group = zarr.open_group(tmp_path / "m.zarr", mode="r")
    assert group.metadata.zarr_format == 3
    for name, dtype in (("image", np.float32), ("class", np.uint8), ("instance", np.int32)):
        arr = group[name]
        assert arr.dtype == dtype and arr.shape == SHAPE and arr.chunks == (CHUNK, CHUNK)
        assert "zstd" in type(arr.compressors[0]).__name__.lower()
    assert group.attrs["shape"] == list(SHAPE) and group.attrs["chunk"] == CHUNK
    assert open_mosaic(tmp_path / "m.zarr").attrs == {"seed": 7}


@pytest.mark.parametrize("chunk", [0, -64, 100, 20000, 64.5])
def test_chunk_size_rule(tmp_path, chunk):
    with pytest.raises(RadiffError, match="chunk"):
        create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=chunk)


def test_existing_paths_are_protected(tmp_path):
    create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=CHUNK)
    with pytest.raises(RadiffError, match="already exists"):
        create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=CHUNK)
    create_mosaic(tmp_path / "m.zarr", (64, 64), chunk=64, overwrite=True)
    assert open_mosaic(tmp_path / "m.zarr").shape == (64, 64)
    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    with pytest.raises(RadiffError, match="not a"):
        create_mosaic(stranger, SHAPE, overwrite=True)
    assert (stranger / "keep.txt").read_text() == "mine"
    with pytest.raises(RadiffError, match="not a mosaic"):
        open_mosaic(stranger)


def test_chunk_grid_tiles_the_map_exactly(tmp_path):
    m = create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=CHUNK)
    cover = np.zeros(SHAPE, dtype=int)
    grid = m.chunk_grid()
    assert [b.index for b in grid] == [(i, j) for i in range(3) for j in range(3)]
    for b in grid:
        cover[b.slices] += 1
    assert np.all(cover == 1)
    assert grid[-1].shape == (300 - 256, 260 - 256)


def test_render_matches_whole_map_reference(tmp_path):
    stamps = _stamps()
    background = _background()
    m = _render_all(tmp_path / "m.zarr", stamps, background)
    got = _read(m)
    image, classes, instances = _reference(stamps, background.read(0, SHAPE[0], 0, SHAPE[1]))
    np.testing.assert_array_equal(got["class"], classes)
    np.testing.assert_array_equal(got["instance"], instances)
    np.testing.assert_array_equal(got["image"], image)
    # Each object's flux appears exactly once: map - background summed over its pixels.
    residual = got["image"].astype(np.float64) - background_window(background, (0, SHAPE[0], 0, SHAPE[1]))
    for s in stamps:
        if s.object_id in (4, 5):
            continue  # overlapping pair, checked below
        r1, c1 = min(SHAPE[0], s.row1), min(SHAPE[1], s.col1)
        expected = s.data[: r1 - s.row0, : c1 - s.col0].astype(np.float64).sum()
        assert residual[got["instance"] == s.object_id].sum() == pytest.approx(expected, rel=1e-4)
    both = (got["instance"] == 4) | (got["instance"] == 5)
    total = sum(s.data.astype(np.float64).sum() for s in stamps if s.object_id in (4, 5))
    assert residual[both].sum() == pytest.approx(total, rel=1e-4)
    assert np.all(got["class"][got["instance"] == 5] == SourceClass.EXTENDED)


def test_order_of_stamps_and_chunks_does_not_matter(tmp_path):
    stamps = _stamps()
    background = _background()
    a = _read(_render_all(tmp_path / "a.zarr", stamps, background))
    shuffled = stamps[:]
    random.Random(3).shuffle(shuffled)
    rev = _read(_render_all(tmp_path / "b.zarr", shuffled, _background(), order=lambda g: g[::-1]))
    for name in a:
        assert a[name].tobytes() == rev[name].tobytes()
    # The whole stamp list (most of it not touching the chunk) in any order gives the same chunk too.
    m = create_mosaic(tmp_path / "c.zarr", SHAPE, chunk=CHUNK)
    report = render_chunk(m, (0, 0), background, list(reversed(stamps)))
    assert report.object_ids == (1, 2)
    assert m.array("image")[:CHUNK, :CHUNK].tobytes() == a["image"][:CHUNK, :CHUNK].tobytes()


def test_each_array_chunk_is_written_once(tmp_path, monkeypatch):
    m = create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=CHUNK)
    writes: list[tuple[str, object]] = []
    original = zarr.Array.__setitem__

    def spy(self, selection, value):
        writes.append((self.path or str(self.store_path), selection))
        return original(self, selection, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", spy)
    bounds = m.chunk_bounds((1, 2))
    render_chunk(m, (1, 2), _background(), _stamps())
    assert len(writes) == 3
    assert sorted(Path(str(p)).name for p, _ in writes) == ["class", "image", "instance"]
    for _, selection in writes:
        assert selection == bounds.slices


def test_done_markers_record_checksums(tmp_path):
    m = _render_all(tmp_path / "m.zarr", _stamps(), _background())
    assert done_chunks(m) == {b.index for b in m.chunk_grid()}
    assert done_chunks(m, verify=True) == done_chunks(m)
    marker = json.loads((tmp_path / "m.zarr" / "_done" / "1_1.json").read_text())
    assert marker["index"] == [1, 1] and marker["n_stamps"] == 1  # stamp 2 on the corner
    assert not [p for p in (tmp_path / "m.zarr" / "_done").iterdir() if p.suffix != ".json"]
    # A chunk clobbered after it was recorded fails verification (and would be redone).
    m.array("image", mode="r+")[0:CHUNK, 0:CHUNK] = 0.0
    assert (0, 0) not in done_chunks(m, verify=True)
    assert (0, 0) in done_chunks(m)


def test_resume_after_a_crash_gives_the_same_bytes(tmp_path, monkeypatch):
    stamps = _stamps()
    full = _read(_render_all(tmp_path / "full.zarr", stamps, _background()))

    path = tmp_path / "resumed.zarr"
    m = create_mosaic(path, SHAPE, chunk=CHUNK)
    grid = m.chunk_grid()
    for b in grid[:4]:
        render_chunk(path, b.index, _background(), stamps)
    # The fifth chunk "crashes" after writing its arrays but before its marker lands.
    def crash(final, marker):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(mosaic_mod, "_write_marker", crash)
    with pytest.raises(RuntimeError):
        render_chunk(path, grid[4].index, _background(), stamps)
    monkeypatch.undo()

    done = done_chunks(path)
    assert done == {b.index for b in grid[:4]}
    redo = [b for b in grid if b.index not in done]
    for b in redo:  # a new worker, a fresh background object
        render_chunk(path, b.index, _background(), stamps)
    resumed = _read(open_mosaic(path))
    for name in full:
        assert resumed[name].tobytes() == full[name].tobytes()
    assert done_chunks(path, verify=True) == {b.index for b in grid}


def test_bad_stamps_and_mismatched_background(tmp_path):
    m = create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=CHUNK)
    dup = [_stamp(1, 2, 0, 0), _stamp(1, 2, 5, 5)]
    with pytest.raises(ValueError, match="twice"):
        render_chunk(m, (0, 0), _background(), dup)
    with pytest.raises(ValueError, match="object id"):
        render_chunk(m, (0, 0), _background(), [_stamp(0, 2, 0, 0)])
    with pytest.raises(ValueError, match="class"):
        render_chunk(m, (0, 0), _background(), [_stamp(1, 0, 0, 0)])
    with pytest.raises(RadiffError, match="shape"):
        render_chunk(m, (0, 0), _background(shape=(300, 261)), [])
    assert done_chunks(m) == set()


def test_stamp_index_agrees_with_brute_force():
    rng = np.random.default_rng(4)
    boxes = []
    for oid in range(1, 300):
        r0, c0 = (int(v) for v in rng.integers(-20, 1000, 2))
        h, w = (int(v) for v in rng.integers(1, 200, 2))
        boxes.append(StampBox(oid, r0, r0 + h, c0, c0 + w))
    rng.shuffle(boxes)
    index = StampIndex(boxes, 256)
    assert len(index) == len(boxes)
    for r0, r1, c0, c1 in [(0, 256, 0, 256), (256, 512, 768, 1024), (100, 101, 900, 901), (0, 1200, 0, 1200)]:
        got = [b.object_id for b in stamps_for_chunk((r0, r1, c0, c1), index)]
        want = sorted(b.object_id for b in boxes if b.overlaps(r0, r1, c0, c1))
        assert got == want
    stamp_index = StampIndex(_stamps(), CHUNK)  # Stamps index as well as boxes
    assert [s.object_id for s in stamp_index.query(0, 128, 0, 128)] == [1, 2]


def test_bytes_do_not_depend_on_the_chunk_size(tmp_path):
    """Noise is computed per fixed noise block and stamps add per pixel in id order, so even a
    different chunking (hence a different number of workers) gives the same map."""
    stamps = _stamps()
    a = _read(_render_all(tmp_path / "a.zarr", stamps, _background()))
    m = create_mosaic(tmp_path / "b.zarr", SHAPE, chunk=64)
    for b in m.chunk_grid():
        render_chunk(m, b.index, _background(), stamps)
    b = _read(m)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes()
