"""Real mask bank: shipped file, crop/resize, single-object extraction, seeded picks."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from radiff_scale.classes import OBJECT_CLASSES, SourceClass
from radiff_scale.data.mask_bank import (
    BANK_SIZE,
    MaskBank,
    build_shipped_bank,
    crop_or_resize,
    object_masks,
)
from radiff_scale.errors import RadiffError

S, C, E = int(SourceClass.SPURIOUS), int(SourceClass.COMPACT), int(SourceClass.EXTENDED)
CENTRE = (BANK_SIZE - 1) / 2


@pytest.fixture(scope="module")
def default_bank() -> MaskBank:
    return MaskBank.default()


def _crafted() -> np.ndarray:
    """Two compact islands (one joined only diagonally), a two-lobed galaxy, a broken sidelobe."""
    m = np.zeros((BANK_SIZE, BANK_SIZE), np.uint8)
    m[10:14, 10:14] = C
    m[14, 14] = C  # touches the square diagonally: same 8-connected component
    m[30:33, 80:83] = C
    m[60:70, 40:50] = E  # core
    m[60:66, 75:90] = E  # lobe, a separate island
    m[100:103, 5:20] = S
    m[110:112, 30:40] = S
    return m


def _bbox_centre(pixels: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(pixels)
    return (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2


def test_shipped_bank_is_the_crop_of_the_shared_archive(shared_data: Path, default_bank: MaskBank) -> None:
    shipped = resources.files("radiff_scale").joinpath("assets", "masks", "mask_bank.npz")
    assert shipped.is_file()
    with resources.as_file(shipped) as path:
        assert path.stat().st_size < 1_000_000
        with np.load(path, allow_pickle=False) as data:
            masks = data["masks"]
            assert masks.dtype == np.uint8 and masks.shape == (7354, BANK_SIZE, BANK_SIZE)
    with np.load(shared_data / "masks" / "tiramisu_masks_train.npz", allow_pickle=False) as data:
        source, names = data["masks"], data["names"].tolist()
    np.testing.assert_array_equal(masks, source[:, 2:130, 2:130])
    assert default_bank.names == names
    assert len(default_bank) == 7354


def test_crop_pad_and_resize_preserve_class_ids() -> None:
    rng = np.random.default_rng(0)
    big = rng.integers(0, 4, size=(132, 132), dtype=np.uint8)
    np.testing.assert_array_equal(crop_or_resize(big), big[2:130, 2:130])
    odd = rng.integers(0, 4, size=(131, 133), dtype=np.int64)
    out = crop_or_resize(odd)
    assert out.dtype == np.uint8 and out.shape == (128, 128)
    np.testing.assert_array_equal(out, odd[1:129, 2:130])
    small = rng.integers(1, 4, size=(124, 126), dtype=np.uint8)  # no background: padding shows
    padded = crop_or_resize(small)
    np.testing.assert_array_equal(padded[2:126, 1:127], small)
    assert padded[:2].max() == 0 and padded[126:].max() == 0 and padded[:, 0].max() == 0
    # far from 128: nearest neighbour, so every output pixel is some input pixel
    for shape in ((64, 64), (300, 200), (40, 250)):
        src = rng.integers(0, 4, size=shape, dtype=np.uint8)
        src[0, 0] = 3
        res = crop_or_resize(src)
        assert res.shape == (128, 128)
        assert set(np.unique(res)) <= set(np.unique(src))
    up = crop_or_resize(np.array([[0, 1], [2, 3]], np.uint8))
    assert np.array_equal(np.unique(up[:64, :64]), [0]) and np.array_equal(np.unique(up[64:, 64:]), [3])
    # a stack is handled mask by mask
    stack = rng.integers(0, 4, size=(3, 132, 132), dtype=np.uint8)
    np.testing.assert_array_equal(crop_or_resize(stack), stack[:, 2:130, 2:130])
    with pytest.raises(RadiffError, match="class ids"):
        crop_or_resize(np.full((130, 130), 7))
    with pytest.raises(RadiffError, match="2-D"):
        crop_or_resize(np.zeros(128))


def test_object_masks_groups_by_the_class_rules() -> None:
    m = _crafted()
    objects = object_masks(m)
    assert [cls for cls, _ in objects] == [
        SourceClass.SPURIOUS,
        SourceClass.COMPACT,
        SourceClass.COMPACT,
        SourceClass.EXTENDED,
    ]
    compact = [px for cls, px in objects if cls == SourceClass.COMPACT]
    assert sorted(int(px.sum()) for px in compact) == [9, 17]
    for cls in OBJECT_CLASSES:
        union = np.zeros(m.shape, bool)
        for c, px in objects:
            if c == cls:
                assert not (union & px).any()  # objects are disjoint
                union |= px
        np.testing.assert_array_equal(union, m == cls)
    assert object_masks(np.zeros((8, 8), np.uint8)) == []


def test_object_masks_cover_real_masks(default_bank: MaskBank) -> None:
    for i in range(0, len(default_bank), 97):
        m = default_bank.mask(i)
        objects = object_masks(m)
        covered = np.zeros(m.shape, np.uint8)
        for cls, px in objects:
            assert px.any() and not covered[px].any()
            covered[px] = cls
        np.testing.assert_array_equal(covered, m)
        assert sum(cls != SourceClass.COMPACT for cls, _ in objects) == len(np.intersect1d(np.unique(m), [S, E]))


def test_index_agrees_with_object_extraction() -> None:
    masks = np.zeros((5, BANK_SIZE, BANK_SIZE), np.uint8)
    masks[0] = _crafted()
    masks[2, 50:60, 50:60] = C
    masks[2, 5:8, 100:103] = C
    masks[2, 70:72, 20:22] = C
    masks[3, 40:50, 40:50] = E
    masks[4, 0:5, 60:70] = S  # touches the border
    bank = MaskBank(masks)
    assert bank.entries_with(C).tolist() == [0, 2]
    assert bank.entries_with(E).tolist() == [0, 3]
    assert bank.entries_with(S).tolist() == [0, 4]
    table = bank._objects()
    for cls in OBJECT_CLASSES:
        expected = [
            (i, int(px.sum())) for i in range(len(bank)) for c, px in object_masks(bank.mask(i)) if c == cls
        ]
        got = list(zip(table[cls].bank_index.tolist(), table[cls].pixels.tolist()))
        assert got == expected, cls
    assert table[SourceClass.SPURIOUS].touches_edge.tolist() == [False, True]


def _check_pick(bank: MaskBank, cls: int, seed: int) -> tuple[int, np.ndarray]:
    index, out = bank.pick(cls, seed)
    assert out.dtype == np.uint8 and out.shape == (BANK_SIZE, BANK_SIZE)
    objects = object_masks(out)
    assert len(objects) == 1 and objects[0][0] == cls
    np.testing.assert_array_equal(objects[0][1], out > 0)
    assert set(np.unique(out)) == {0, cls}
    r, c = _bbox_centre(out > 0)
    assert abs(r - CENTRE) <= 0.5 and abs(c - CENTRE) <= 0.5
    # the shape is one real object of that source mask, moved
    sizes = [int(px.sum()) for k, px in object_masks(bank.mask(index)) if k == cls]
    assert int((out > 0).sum()) in sizes
    return index, out


def test_pick_is_deterministic_one_centred_object(default_bank: MaskBank) -> None:
    for cls in OBJECT_CLASSES:
        picks = [_check_pick(default_bank, int(cls), seed) for seed in range(6)]
        for index, _ in picks:
            assert int(cls) in default_bank.mask(index)
        assert len({index for index, _ in picks}) >= 4  # seeds spread over the bank
    first = default_bank.pick(C, 1234)
    default_bank.pick(E, 99)  # other draws in between do not matter
    assert np.array_equal(default_bank.pick(C, 1234)[1], first[1])
    # nor does the instance: two banks of the same masks give the same picks
    subset = np.stack([default_bank.mask(i) for i in range(300)])
    one, two = MaskBank(subset), MaskBank(subset.copy())
    for seed in range(5):
        a, b = one.pick(E, seed), two.pick(E, seed)
        assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_picked_object_from_its_box_equals_the_whole_mask_path(default_bank: MaskBank) -> None:
    """pick() cuts the object from its stored box; it must equal labelling the whole mask
    and recentring (real objects of every class, crowded compact masks included)."""
    from radiff_scale.data.mask_bank import recentre

    rng = np.random.default_rng(0)
    for cls in OBJECT_CLASSES:
        table = default_bank._objects()[cls]
        for row in rng.choice(table.bank_index.size, size=min(400, table.bank_index.size), replace=False):
            i, comp = int(table.bank_index[row]), int(table.component[row])
            # object_masks lists compact components in label order; other classes are one object
            same_class = [pixels for c, pixels in object_masks(default_bank.mask(i)) if c == cls]
            expected = recentre(same_class[comp - 1 if cls == SourceClass.COMPACT else 0], cls)
            assert np.array_equal(default_bank._recentred(i, cls, table.box[row]), expected)


def test_pick_prefers_whole_objects_of_reasonable_size() -> None:
    masks = np.zeros((3, BANK_SIZE, BANK_SIZE), np.uint8)
    masks[0, 0:6, 30:36] = C  # cut by the border
    masks[1, 50, 50] = C  # a one-pixel crumb
    masks[2, 80:86, 20:26] = C  # the only good one
    bank = MaskBank(masks)
    assert {bank.pick(C, seed)[0] for seed in range(25)} == {2}
    assert {bank.pick(C, seed, min_pixels=1)[0] for seed in range(25)} == {1, 2}
    # with nothing whole, a cut object is still better than no object
    only_cut = MaskBank(masks[:1])
    index, out = only_cut.pick(C, 3)
    assert index == 0 and int((out > 0).sum()) == 36


def test_pick_rejects_bad_classes() -> None:
    bank = MaskBank(_crafted()[None])
    with pytest.raises(RadiffError, match="unknown class id"):
        bank.pick(7, 0)
    with pytest.raises(RadiffError, match="not an object class"):
        bank.pick(0, 0)
    no_spurious = MaskBank(np.where(_crafted() == S, 0, _crafted())[None])
    with pytest.raises(RadiffError, match="no spurious object"):
        no_spurious.pick(S, 0)


def test_from_npz_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(RadiffError, match="nope.npz"):
        MaskBank.from_npz(missing)
    keyless = tmp_path / "keyless.npz"
    np.savez(keyless, other=np.zeros(3))
    with pytest.raises(RadiffError, match="keyless.npz has no 'masks'"):
        MaskBank.from_npz(keyless)
    bad_ids = tmp_path / "bad.npz"
    np.savez(bad_ids, masks=np.full((2, 128, 128), 9, np.uint8))
    with pytest.raises(RadiffError, match="bad.npz.*class ids"):
        MaskBank.from_npz(bad_ids)
    with pytest.raises(IndexError):
        MaskBank(np.zeros((2, 128, 128), np.uint8)).mask(2)


def test_build_shipped_bank_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    archive = tmp_path / "archive.npz"
    masks = rng.integers(0, 4, size=(4, 132, 132), dtype=np.uint8)
    names = np.array([f"sample1_galaxy{i:04d}.png" for i in range(4)])
    np.savez_compressed(archive, masks=masks, names=names, original_subset=np.array(["trainannot"] * 4))
    out = build_shipped_bank(archive, tmp_path / "sub" / "bank.npz")
    bank = MaskBank.from_npz(out)
    assert bank.names == names.tolist()
    for i in range(4):
        np.testing.assert_array_equal(bank.mask(i), masks[i, 2:130, 2:130])
