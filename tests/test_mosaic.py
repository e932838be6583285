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
from radiff_scale.compose import paint as paint_mod
from radiff_scale.compose.background import SyntheticBackground
from radiff_scale.compose.mosaic import (
    background_window,
    create_mosaic,
    done_chunks,
    open_mosaic,
    render_chunk,
)
from radiff_scale.compose.paint import paint_stamps
from radiff_scale.compose.stamps import Stamp
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
    grid = m.chunk_grid()
    for b in order(grid) if order else grid:
        render_chunk(path, b.index, background, _touching(stamps, b))
    return m


def _touching(stamps, bounds):
    """The stamps whose box touches a chunk, in id order (the job finds them from footprint boxes)."""
    return sorted((s for s in stamps if s.overlaps(bounds.row0, bounds.row1, bounds.col0, bounds.col1)),
                  key=lambda s: s.object_id)


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
        (codec,) = arr.compressors
        assert type(codec).__name__ == "BloscCodec" and codec.cname.value == "lz4" and codec.shuffle.value == "shuffle"
    assert group.attrs["shape"] == list(SHAPE) and group.attrs["chunk"] == CHUNK
    assert open_mosaic(tmp_path / "m.zarr").attrs == {"seed": 7}


def test_an_owner_stores_an_all_zero_chunk_too(tmp_path):
    """Writers skip zarr's empty-chunk test (speed), so a written zero chunk is a stored object."""
    m = create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=CHUNK)
    m.array("class", mode="r+")[:CHUNK, :CHUNK] = np.zeros((CHUNK, CHUNK), np.uint8)
    assert (tmp_path / "m.zarr" / "class" / "c" / "0" / "0").is_file()
    assert not (tmp_path / "m.zarr" / "class" / "c" / "0" / "1").exists()
    assert not open_mosaic(tmp_path / "m.zarr").array("class")[:CHUNK, :CHUNK].any()


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
    marker = json.loads((tmp_path / "m.zarr.done" / "1_1.json").read_text())
    assert marker["index"] == [1, 1] and marker["n_stamps"] == 1  # stamp 2 on the corner
    assert not [p for p in (tmp_path / "m.zarr.done").iterdir() if p.suffix != ".json"]
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


# --- painting in float32, checksums ---------------------------------------------------------


def _crowded_stamps(n: int = 60, seed: int = 5) -> list[Stamp]:
    """Boxes and masks that overlap a lot: chains of overlaps, pixels under three or more
    stamps, some float64 data (which must not be rounded to float32 before adding)."""
    rng = np.random.default_rng(seed)
    out = []
    for oid in range(1, n + 1):
        h, w = (int(v) for v in rng.integers(3, 40, 2))
        r0, c0 = int(rng.integers(-20, 140)), int(rng.integers(-20, 140))
        mask = rng.random((h, w)) < 0.7
        mask[h // 2, w // 2] = True
        dtype = np.float64 if oid % 7 == 0 else np.float32
        data = np.where(mask, rng.normal(0, 1e-3, (h, w)), 0.0).astype(dtype)
        out.append(Stamp(oid, int(OBJECT_CLASS_IDS[oid % len(OBJECT_CLASS_IDS)]), r0, c0, data, mask))
    return out


OBJECT_CLASS_IDS = (int(SourceClass.SPURIOUS), int(SourceClass.COMPACT), int(SourceClass.EXTENDED))


def test_float32_painting_is_float64_accumulation_rounded_once():
    stamps = _crowded_stamps()
    bounds = (10, 138, 5, 133)
    base = (np.random.default_rng(1).normal(0, 1e-4, (128, 128))).astype(np.float32)
    wide = base.astype(np.float64)
    narrow = base.copy()
    labels = [(np.zeros((128, 128), np.uint8), np.zeros((128, 128), np.int32)) for _ in range(2)]
    ids_wide = paint_stamps(bounds, wide, *labels[0], list(reversed(stamps)))
    ids_narrow = paint_stamps(bounds, narrow, *labels[1], stamps)
    assert ids_narrow == ids_wide == sorted(ids_wide)
    assert narrow.dtype == np.float32
    assert narrow.tobytes() == wide.astype(np.float32).tobytes()
    for a, b in zip(*labels):
        assert a.tobytes() == b.tobytes()
    # The test is only worth something if some pixels really are under several stamps.
    cover = np.zeros((128, 128), int)
    for s in stamps:
        r0, r1, c0, c1 = max(10, s.row0), min(138, s.row1), max(5, s.col0), min(133, s.col1)
        if r0 < r1 and c0 < c1:
            cover[r0 - 10 : r1 - 10, c0 - 5 : c1 - 5] += s.mask[r0 - s.row0 : r1 - s.row0, c0 - s.col0 : c1 - s.col0]
    assert cover.max() >= 3


@pytest.mark.parametrize("with_masks", [False, True])
def test_overlap_groups_are_the_connected_components_of_overlap(with_masks):
    """Groups = connected components of 'boxes overlap' (or, given masks, 'masks share a pixel')."""
    rng = np.random.default_rng(8)
    for trial in range(20):
        n = int(rng.integers(1, 40))
        boxes, masks = [], []
        for _ in range(n):
            r0, c0 = (int(v) for v in rng.integers(0, 200, 2))
            h, w = (int(v) for v in rng.integers(1, 40, 2))
            boxes.append((r0, r0 + h, c0, c0 + w))
            masks.append(rng.random((h, w)) < 0.3)

        def meet(a, b, boxes=boxes, masks=masks):
            ra0, ra1, ca0, ca1 = boxes[a]
            rb0, rb1, cb0, cb1 = boxes[b]
            if not (ra0 < rb1 and rb0 < ra1 and ca0 < cb1 and cb0 < ca1):
                return False
            if not with_masks:
                return True
            plane = np.zeros((240, 240), int)
            plane[ra0:ra1, ca0:ca1] += masks[a]
            plane[rb0:rb1, cb0:cb1] += masks[b]
            return bool((plane == 2).any())

        groups = paint_mod._overlap_groups(boxes, masks if with_masks else None)
        assert sorted(k for g in groups for k in g) == list(range(n))
        assert all(g == sorted(g) for g in groups)
        label = {k: gi for gi, g in enumerate(groups) for k in g}
        edges = {(a, b) for a in range(n) for b in range(n) if a != b and meet(a, b)}
        assert all(label[a] == label[b] for a, b in edges)
        for g in groups:  # nothing merged without a chain of overlaps
            reached, todo = {g[0]}, [g[0]]
            while todo:
                a = todo.pop()
                for b in g:
                    if b not in reached and (a, b) in edges:
                        reached.add(b)
                        todo.append(b)
            assert reached == set(g)
        if with_masks:
            assert len(groups) >= len(paint_mod._overlap_groups(boxes))


@pytest.mark.parametrize("name", ["image", "class", "instance"])
def test_verification_catches_one_flipped_bit_in_any_array(tmp_path, name):
    m = _render_all(tmp_path / "m.zarr", _stamps(), _background())
    arr = m.array(name, mode="r+")
    block = arr[128:256, 128:256]  # chunk (1, 1): stamp 2 sits on its corner
    raw = block.view(np.uint8).copy()
    raw.reshape(-1)[raw.size // 3] ^= 0x10
    arr[128:256, 128:256] = raw.view(block.dtype).reshape(block.shape)
    verified = done_chunks(m, verify=True)
    assert (1, 1) not in verified
    assert verified == done_chunks(m) - {(1, 1)}


@pytest.mark.parametrize("legacy", ["sha256", "crc32"])
def test_markers_of_earlier_versions_still_verify(tmp_path, legacy):
    import hashlib
    import zlib

    m = _render_all(tmp_path / "m.zarr", _stamps(), _background())
    for b in m.chunk_grid():
        path = tmp_path / "m.zarr.done" / f"{b.i}_{b.j}.json"
        marker = json.loads(path.read_text())
        assert all(v.startswith("crc32c:") for v in marker["checksums"].values())
        chunks = {n: m.array(n)[b.slices].tobytes() for n in ("image", "class", "instance")}
        if legacy == "sha256":
            del marker["checksums"]
            marker["sha256"] = {n: hashlib.sha256(data).hexdigest() for n, data in chunks.items()}
        else:
            marker["checksums"] = {n: f"crc32:{zlib.crc32(data):08x}" for n, data in chunks.items()}
        path.write_text(json.dumps(marker))
    assert done_chunks(m, verify=True) == {b.index for b in m.chunk_grid()}
    m.array("class", mode="r+")[0:CHUNK, 0:CHUNK] = 9
    assert done_chunks(m, verify=True) == {b.index for b in m.chunk_grid()} - {(0, 0)}


def test_painting_never_writes_into_a_background_sources_memory(tmp_path):
    """A source handing out views of its own array (against the protocol) keeps its pixels."""

    class ViewBackground:
        def __init__(self, data):
            self.data = data
            self.shape = data.shape

        def read(self, row0, row1, col0, col1):
            return self.data[row0:row1, col0:col1]

    data = _background().read(0, SHAPE[0], 0, SHAPE[1])
    kept = data.copy()
    m = _render_all(tmp_path / "m.zarr", _stamps(), ViewBackground(data))
    assert data.tobytes() == kept.tobytes()
    expected = _read(_render_all(tmp_path / "ref.zarr", _stamps(), _background()))
    assert _read(m)["image"].tobytes() == expected["image"].tobytes()


# --- the chunk owner's inputs: the tile store, and compose_chunk ------------------------------


def test_tile_store_codecs_and_batch_reads(tmp_path):
    from radiff_scale.mapjob import tiles as tile_store

    rng = np.random.default_rng(2)
    tiles = rng.random((10, 128, 128), dtype=np.float32)
    masks = (rng.random((10, 128, 128)) < 0.05).astype(np.uint8) * 2
    for name, data, dtype in (("tiles.zarr", tiles, "float32"), ("masks.zarr", masks, "uint8")):
        store = tmp_path / name
        tile_store.create_store(store, 10, 4, dtype)
        for batch in range(tile_store.n_batches(10, 4)):
            tile_store.write_batch(store, batch, 4, data[tile_store.batch_slice(batch, 10, 4)])
        assert np.array_equal(tile_store.read_range(store, slice(4, 10)), data[4:10])  # a batch and a ragged one
    # Float tiles barely compress, so they are stored raw (fast to read); masks keep zstd.
    assert not zarr.open_array(tmp_path / "tiles.zarr").compressors
    assert "zstd" in type(zarr.open_array(tmp_path / "masks.zarr").compressors[0]).__name__.lower()
    # A store made by an earlier version (zstd float tiles) is reopened as it is and reads the same.
    old = tmp_path / "old.zarr"
    zarr.create_array(store=str(old), shape=(10, 128, 128), chunks=(4, 128, 128), dtype="float32", fill_value=0)
    reopened = tile_store.create_store(old, 10, 4, "float32")
    reopened[:] = tiles
    assert reopened.compressors and np.array_equal(tile_store.read_range(old, slice(1, 6)), tiles[1:6])


def _chunk_run(root: Path, n: int = 24):
    """A run folder as the map job leaves it before the stamp stage: mosaic, tile store, and
    the placement records (tile origins, footprint boxes and crops, ranks); and the masks."""
    from radiff_scale.data.preprocess import PreprocessParams
    from radiff_scale.mapjob import tiles as tile_store
    from radiff_scale.mapjob.plan import Footprint, PlannedObject
    from radiff_scale.mapjob.rundir import RunDir

    run = RunDir(root)
    run.work.mkdir(parents=True)
    create_mosaic(run.mosaic, SHAPE, chunk=CHUNK)
    rng = np.random.default_rng(6)
    rr, cc = np.mgrid[0:128, 0:128]
    tiles = np.empty((n, 128, 128), np.float32)
    masks = np.zeros((n, 128, 128), np.uint8)
    records = []
    for rank in range(n):
        cr, cc0, radius = int(rng.integers(20, 108)), int(rng.integers(20, 108)), float(rng.uniform(3, 15))
        disc = (rr - cr) ** 2 + (cc - cc0) ** 2 <= radius**2
        tiles[rank] = np.clip(0.15 + 0.02 * rng.standard_normal((128, 128)) + 0.7 * disc * rng.random(), 0, 1)
        class_id = OBJECT_CLASS_IDS[rank % 3]
        masks[rank][disc] = class_id
        row0, col0 = int(rng.integers(-cr, SHAPE[0] - cr)), int(rng.integers(-cc0, SHAPE[1] - cc0))
        rows, cols = np.nonzero(disc)
        fp = (row0 + rows.min(), row0 + rows.max() + 1, col0 + cols.min(), col0 + cols.max() + 1)
        fp = (max(fp[0], 0), min(fp[1], SHAPE[0]), max(fp[2], 0), min(fp[3], SHAPE[1]))
        if fp[0] >= fp[1] or fp[2] >= fp[3]:
            fp = (0, 1, 0, 1)
        crop = disc[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].copy()
        records.append(PlannedObject(
            object_id=100 + 3 * rank, class_id=class_id, k=float(rng.uniform(1, 10)), seed=rank,
            row0=row0, col0=col0, rank=rank, sigma_local=1e-4,
            fp_row0=fp[0], fp_row1=fp[1], fp_col0=fp[2], fp_col1=fp[3], bank_index=-1,
            footprint=Footprint(crop, int(rows.min()), int(cols.min()), class_id),
        ))
    tile_store.create_store(run.tiles, n, 5, "float32")
    for batch in range(tile_store.n_batches(n, 5)):
        tile_store.write_batch(run.tiles, batch, 5, tiles[tile_store.batch_slice(batch, n, 5)])
    params = PreprocessParams(zmin=-3e-4, zmax=1e-2, clip_lo=-0.05, clip_hi=5.0, tmin=float(np.tanh(-0.05)),
                              tmax=float(np.tanh(5.0)))
    return run, records, tiles, masks, params


def test_stamp_stage_and_chunk_owners_do_not_depend_on_the_batch_size(tmp_path):
    """Stamps are cut once per tile batch (the inverse preprocessing only inside each stamp's box)
    and painted by chunk owners from the stamp store: the chunks and the catalogue do not depend on
    the batch size, and equal a whole-map painting of stamps cut the plain way (whole tile
    through the inverse)."""
    from radiff_scale.mapjob import tiles as tile_store
    from radiff_scale.mapjob.chunks import compose_chunk, ranks_by_chunk
    from radiff_scale.mapjob.stamps import cut_stamp_batch, read_catalogue_parts
    from radiff_scale.compose.stamps import cut_stamp
    from radiff_scale.data.preprocess import inverse_preprocess
    from radiff_scale.data.stretch import ZScaleTanhStretch

    geometry = MapGeometry(SHAPE, 1.5, 10.0, -30.0, Beam(6.5, 6.5), 1.4e9)
    results = []
    for batch_size in (5, 2):
        run, records, tiles, masks, params = _chunk_run(tmp_path / f"b{batch_size}")
        for batch in range(tile_store.n_batches(len(records), batch_size)):
            objects = records[tile_store.batch_slice(batch, len(records), batch_size)]
            outcome = cut_stamp_batch(run.root, batch, batch_size, objects, geometry, ZScaleTanhStretch(params.to_dict()))
            assert outcome.n_stamps == len(objects)
        by_chunk = ranks_by_chunk(records, CHUNK)
        for b in open_mosaic(run.mosaic).chunk_grid():
            compose_chunk(run.root, b.index, by_chunk.get(b.index, []), batch_size, _background())
        results.append((_read(open_mosaic(run.mosaic)), read_catalogue_parts(run.catalogue_parts)))
    (first, cat_a), (second, cat_b) = results
    for name in first:
        assert first[name].tobytes() == second[name].tobytes()
    # Compared as bytes of each column: NaN (a k-scaled object's requested flux) is not equal to itself.
    assert cat_a.schema.equals(cat_b.schema) and cat_a.num_rows == len(records)
    for name in cat_a.column_names:
        a, b = cat_a.column(name).to_numpy(zero_copy_only=False), cat_b.column(name).to_numpy(zero_copy_only=False)
        assert (a.tobytes() == b.tobytes()) if a.dtype.kind == "f" else a.tolist() == b.tolist(), name
    stamps = [
        cut_stamp(r.placed(), tiles[r.rank], masks[r.rank] > 0, r.sigma_local, lambda y: inverse_preprocess(y, params))
        for r in records
    ]
    clipped = []
    for s in stamps:  # the reference painter wants stamps inside the map
        r0, c0 = max(s.row0, 0), max(s.col0, 0)
        r1, c1 = min(s.row1, SHAPE[0]), min(s.col1, SHAPE[1])
        src = (slice(r0 - s.row0, r1 - s.row0), slice(c0 - s.col0, c1 - s.col0))
        if r0 < r1 and c0 < c1:
            clipped.append(Stamp(s.object_id, s.class_id, r0, c0, s.data[src], s.mask[src]))
    image, classes, instances = _reference(clipped, _background().read(0, SHAPE[0], 0, SHAPE[1]))
    assert first["image"].tobytes() == image.tobytes()
    assert first["instance"].tobytes() == instances.tobytes()
    assert first["class"].tobytes() == classes.tobytes()


def test_chunk_owners_reopen_a_different_mosaic_made_at_the_same_path(tmp_path):
    """Workers keep the mosaic open between chunks; one recreated under the same path with
    another chunk size (--overwrite in a live Ray session) must not be served stale."""
    from radiff_scale.mapjob.chunks import worker_mosaic

    path = tmp_path / "m.zarr"
    create_mosaic(path, (256, 256), chunk=64)
    assert worker_mosaic(path).chunk == 64 and worker_mosaic(path) is worker_mosaic(path)
    create_mosaic(path, (256, 256), chunk=128, overwrite=True)
    assert worker_mosaic(path).chunk == 128 and worker_mosaic(path).grid_shape == (2, 2)
