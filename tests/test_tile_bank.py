"""Tile banks: building one, deterministic class-matched picks, aligned flips/rotations, and a
map made from a bank whose catalogue is still the truth of its pixels."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jobs.make_map import main as make_map_main
from radiff_scale.classes import OBJECT_CLASSES, SourceClass
from radiff_scale.compose.background import SyntheticBackground
from radiff_scale.compose.planner import PlacementConfig
from radiff_scale.compose.spec import MapSpec
from radiff_scale.diffusion.settings import SamplerSpec
from radiff_scale.compose.tile_bank import (
    N_TRANSFORMS,
    TileBank,
    build_tile_bank,
    decode,
    dihedral,
)
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.errors import RadiffError
from radiff_scale.mapjob.inputs import geometry_and_background
from radiff_scale.mapjob.plan import plan_map
from radiff_scale.mapjob.tiles import bank_tiles, check_bank_run
from radiff_scale.pipelines.map_job import run_make_map


@pytest.fixture(scope="module")
def bank_path(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank") / "bank.npz"
    build_tile_bank(tiny_bundle, 6, out, seed=4, sampler=SamplerSpec(name="ddim", steps=2, guidance_mask=1.5, batch_size=3))
    return out


def test_built_bank_holds_one_object_per_entry_of_every_class(bank_path: Path) -> None:
    bank = TileBank.load(bank_path)
    assert len(bank) == 6 and bank.class_counts() == {"spurious": 1, "compact": 4, "extended": 1}
    for mask, cls in zip(bank.masks, bank.classes):
        assert set(np.unique(mask).tolist()) == {0, int(cls)}  # a single object of its class
    tiles = np.asarray(bank.tiles)
    assert tiles.dtype == np.float32 and tiles.min() >= 0 and tiles.max() <= 1 and np.ptp(tiles) > 0
    assert bank.card["stretch"]["kind"] == "asinh_sigma" and bank.meta.sampler["background"] is None


def test_pick_is_deterministic_and_class_matched(bank_path: Path) -> None:
    bank, again = TileBank.load(bank_path), TileBank.load(bank_path)
    for cls in OBJECT_CLASSES:
        seen = set()
        for seed in range(64):
            code, mask = bank.pick(int(cls), seed)
            code2, mask2 = again.pick(int(cls), seed)
            assert code == code2 and np.array_equal(mask, mask2)
            entry, transform = decode(code)
            assert bank.classes[entry] == cls and set(np.unique(mask).tolist()) == {0, int(cls)}
            assert np.array_equal(mask, bank.draw(code)[0])
            seen.add(transform)
        assert len(seen) > 4  # the seed really chooses among the transforms
    entries = {decode(bank.pick(int(SourceClass.COMPACT), seed)[0])[0] for seed in range(64)}
    assert len(entries) == 4  # ... and among the entries of the class


def test_a_class_missing_from_the_bank_is_a_user_error(bank_path: Path) -> None:
    full = TileBank.load(bank_path)
    keep = np.flatnonzero(full.classes == SourceClass.COMPACT)
    compact_only = TileBank(np.asarray(full.masks)[keep], np.asarray(full.tiles)[keep], full.classes[keep], full.meta)
    with pytest.raises(RadiffError, match="no extended tile"):
        compact_only.pick(int(SourceClass.EXTENDED), 0)


def test_the_eight_transforms_keep_mask_and_tile_aligned() -> None:
    rows, cols = np.mgrid[0:128, 0:128]
    tile = (rows * 128 + cols).astype(np.float32)  # every pixel knows where it came from
    mask = np.zeros((128, 128), np.uint8)
    mask[40:90, 50:60] = 2
    mask[80:90, 60:100] = 2  # an L: no symmetry, so all 8 images differ
    originals = set(tile[mask > 0].astype(int).tolist())
    images = set()
    for t in range(N_TRANSFORMS):
        m, x = dihedral(mask, t), dihedral(tile, t)
        assert set(x[m > 0].astype(int).tolist()) == originals  # the tile's object pixels moved with the mask
        assert (m > 0).sum() == (mask > 0).sum()
        images.add(m.tobytes())
    assert len(images) == N_TRANSFORMS
    assert np.array_equal(dihedral(tile, 0), tile)
    stack = np.stack([tile, tile + 1])
    assert np.array_equal(dihedral(stack, 5)[1], dihedral(tile + 1, 5))  # works on stacks too


def test_a_banked_run_checks_its_masks_and_refuses_a_changed_bank(bank_path: Path, tmp_path: Path) -> None:
    """Banked runs read tiles from the bank file itself, so a resume must see the same bank."""
    bank = TileBank.load(bank_path)
    codes = [bank.pick(int(OBJECT_CLASSES[i % 3]), 100 + i)[0] for i in range(7)]
    objects = [SimpleNamespace(rank=i, bank_index=c) for i, c in enumerate(codes)]
    masks = np.stack([bank.draw(c)[0] for c in codes])
    record = tmp_path / "tile_bank.json"
    check_bank_run(bank, objects, masks, record)
    assert json.loads(record.read_text())["sha256"] == bank.fingerprint
    check_bank_run(bank, objects, masks, record)  # a resume with the same bank
    with pytest.raises(RadiffError, match="does not match the planned mask"):
        check_bank_run(bank, objects, np.zeros_like(masks), record)
    other = TileBank(np.asarray(bank.masks), np.asarray(bank.tiles)[::-1].copy(), bank.classes, bank.meta)
    with pytest.raises(RadiffError, match="not the tile bank this run started with"):
        check_bank_run(other, objects, masks, record)  # a resume must not mix two banks
    tiles = bank_tiles(str(bank_path), bank.fingerprint, codes)
    assert np.array_equal(tiles, np.stack([bank.draw(c)[1] for c in codes]))


def test_map_from_a_bank_has_exact_truth_and_says_so(bank_path: Path, tmp_path: Path, ray_local, capsys) -> None:
    spec = MapSpec(
        size=512, chunk=256, workers=2, seed=9, tiles=f"bank:{bank_path}", model="/no/model/needed",
        placement=PlacementConfig(n_objects=10, margin_px=16), sampler=SamplerSpec(batch_size=4),
    )
    out = tmp_path / "map"
    manifest = run_make_map(spec, out, progress=False)
    assert "tile bank" in capsys.readouterr().err
    assert manifest["tiles"]["source"] == "bank" and manifest["tiles"]["entries"] == 6
    assert json.loads((out / "manifest.json").read_text())["tiles"]["path"] == str(bank_path)
    header = fits.getheader(out / "map.fits")
    assert header["TILESRC"] == "bank" and header["MODEL"] == "bank.npz"

    bank = TileBank.load(bank_path)
    drawn = [bank.draw(code) for code in range(len(bank) * N_TRANSFORMS)]
    ranks = list(range(manifest["counts"]["objects_placed"]))
    geometry, _, sigma = geometry_and_background(spec)  # the job's plan, made again from the spec alone
    planned = plan_map(spec.placement, geometry.shape, geometry.pixel_scale_arcsec, spec.seed, bank, sigma,
                       chunk=spec.chunk)
    masks = planned.masks[0 : len(ranks)]
    for mask in masks:  # every placed object wears a (transformed) bank entry
        assert any(np.array_equal(mask, m) for m, _ in drawn)
    assert not (out / "work" / "tiles.zarr").exists()  # tiles are read from the bank, not copied
    assert manifest["counts"]["tile_batches_sampled"] == 0

    with fits.open(out / "map.fits") as hdul:
        image = hdul[0].data.astype(np.float64)
    with fits.open(out / "labels.fits") as hdul:
        instance, classes = hdul["INSTANCE"].data.copy(), hdul["CLASS"].data.copy()
    table = pq.read_table(out / "catalogue.parquet").to_pylist()
    assert len(table) == manifest["counts"]["objects_placed"] > 0
    assert sorted(r["id"] for r in table) == sorted(np.unique(instance[instance > 0]).tolist())
    geometry = MapGeometry((512, 512), spec.pixel_scale_arcsec, spec.centre_ra_deg, spec.centre_dec_deg,
                           spec.beam, spec.freq_hz)
    residual = image - SyntheticBackground(geometry, spec.noise_rms_jy, spec.seed).read(0, 512, 0, 512)
    assert np.abs(residual[instance == 0]).max() < 1e-9
    area = spec.beam.area_pixels(spec.pixel_scale_arcsec)
    for row in table:
        pixels = instance == row["id"]
        assert np.all(classes[pixels] == row["class"])
        assert residual[pixels].sum() / area == pytest.approx(row["flux_jy"], rel=1e-3, abs=1e-12)


def test_a_missing_bank_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert make_map_main(["--out", str(out), "--quiet", "--tiles", f"bank:{tmp_path / 'nope.npz'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.npz" in err and "tile bank" in err and "\n" not in err
    assert not out.exists()
