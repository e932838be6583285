"""radiff-scale sample: real masks -> synthetic images, written as a Survey-Collection dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from radiff_scale.classes import SourceClass
from radiff_scale.cli import main
from radiff_scale.data.mask_bank import MaskBank, object_masks
from radiff_scale.data.sc_format import AnnotatedObject, Sample, list_samples, read_sample, validate_dataset, write_sample
from radiff_scale.seeding import derive_seed

#: Two DDIM steps without guidance, two tiles per batch (several batches, so two actors share the work).
FAST = ["--set", "sampler.name=ddim", "--set", "sampler.steps=2", "--set", "sampler.guidance_mask=1.0",
        "--set", "sampler.batch_size=2"]


def _args(bundle: Path, masks: Path, out: Path, *extra: str) -> list[str]:
    return ["sample", "--masks", str(masks), "--out", str(out), "--model", str(bundle), "--quiet", *FAST, *extra]


@pytest.fixture(scope="module")
def npz_masks(tmp_path_factory) -> Path:
    bank = MaskBank.default()
    masks = np.stack([bank.mask(i) for i in range(5)])
    path = tmp_path_factory.mktemp("masks") / "masks.npz"
    np.savez(path, masks=masks, names=np.array([f"m{i}" for i in range(5)]))
    return path


def _dataset(root: Path, n: int, with_background: bool) -> Path:
    """``n`` 132x132 samples (cropped to 128 by the job) with two objects each."""
    rng = np.random.default_rng(1)
    for i in range(n):
        compact = np.zeros((132, 132), bool)
        compact[40 + i : 48 + i, 50:58] = True
        extended = np.zeros((132, 132), bool)
        extended[70:100, 30 + 5 * i : 90] = True
        background = rng.normal(1e-5, 2e-4, (132, 132)).astype(np.float32) if with_background else None
        image = rng.normal(0, 2e-4, (132, 132)).astype(np.float32)
        header = {"BMAJ": 0.002, "BMIN": 0.0015, "BPA": 10.0, "CDELT1": -0.0005, "CDELT2": 0.0005}
        objects = [AnnotatedObject(SourceClass.COMPACT, compact), AnnotatedObject(SourceClass.EXTENDED, extended)]
        write_sample(root, Sample(f"cut{i}", image, objects, header, background))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("ds"), 3, with_background=True)


@pytest.fixture(scope="module")
def npz_run(ray_local, tiny_bundle: Path, npz_masks: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "npz-w2"
    assert main(_args(tiny_bundle, npz_masks, out, "--workers", "2", "--seed", "3")) == 0
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_npz_masks_give_one_valid_image_per_mask(npz_run: Path, npz_masks: Path) -> None:
    masks = np.load(npz_masks)["masks"]
    counts = validate_dataset(npz_run)
    assert counts["n_samples"] == len(masks) and counts["n_with_background"] == 0
    assert not (npz_run / "_tiles.zarr").exists() and not list(npz_run.parent.glob(".*partial"))
    paths = list_samples(npz_run)
    for i, path in enumerate(paths):
        sample = read_sample(path)
        assert np.array_equal(sample.class_mask(), masks[i])
        assert len(sample.objects) == len(object_masks(masks[i]))
        assert sample.image.dtype == np.float32 and sample.image.shape == (128, 128) and np.isfinite(sample.image).all()
        assert sample.header["BUNIT"] == "JY/BEAM" and sample.header["RMS"] == 1.5e-4
        assert sample.header["BMAJ"] == pytest.approx(5.4 / 3600) and sample.header["CDELT2"] == pytest.approx(1.8 / 3600)
        prov = sample.meta["provenance"]
        assert prov["mask_source"] == {"kind": "npz", "path": str(npz_masks), "index": i, "name": f"m{i}"}
        assert prov["tile_seed"] == derive_seed(3, i, "sample-tile")
        assert prov["background"]["kind"] == "none" and prov["sampler"]["steps"] == 2
    summary = json.loads((npz_run / "sample.json").read_text())
    assert summary["n_samples"] == len(masks) and summary["workers"] == 2 and "total" in summary["seconds"]


def test_one_worker_gives_the_same_bytes(npz_run: Path, tiny_bundle: Path, npz_masks: Path, tmp_path: Path) -> None:
    out = tmp_path / "npz-w1"
    assert main(_args(tiny_bundle, npz_masks, out, "--workers", "1", "--seed", "3")) == 0
    a, b = _files(npz_run), _files(out)
    sa, sb = json.loads(a.pop("sample.json")), json.loads(b.pop("sample.json"))
    assert a == b  # every image, mask and annotation byte for byte
    for summary in (sa, sb):
        for key in ("seconds", "workers", "actors"):
            summary.pop(key)
    assert sa == sb


def test_dataset_masks_with_their_own_backgrounds(ray_local, tiny_bundle: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds-out"
    assert main(_args(tiny_bundle, dataset, out, "--workers", "1", "--limit", "2")) == 0  # background: dataset (auto)
    assert validate_dataset(out)["n_with_background"] == 2
    for i, path in enumerate(list_samples(out)):
        given, made = read_sample(dataset / "annotations" / f"cut{i}.json"), read_sample(path)
        assert [o.class_id for o in made.objects] == [o.class_id for o in given.objects]
        for a, b in zip(made.objects, given.objects):
            assert np.array_equal(a.mask, b.mask[2:130, 2:130])
        assert np.array_equal(made.background, given.background[2:130, 2:130])
        assert made.header["BMAJ"] == 0.002 and made.header["CDELT1"] == -0.0005
        prov = made.meta["provenance"]
        assert prov["mask_source"]["sample"] == f"cut{i}" and prov["background"]["kind"] == "dataset"
        assert made.header["RMS"] == pytest.approx(prov["background"]["rms_jy"])
        assert prov["background"]["rms_jy"] == pytest.approx(2e-4, rel=0.2)


@pytest.mark.slow
def test_fits_background_windows(ray_local, tiny_bundle: Path, npz_masks: Path, tmp_path: Path) -> None:
    path = tmp_path / "map.fits"
    header = fits.Header({"BMAJ": 0.0025, "BMIN": 0.0025, "BPA": 0.0, "CDELT1": -0.0004, "CDELT2": 0.0004})
    fits.PrimaryHDU(np.random.default_rng(2).normal(0, 3e-4, (200, 300)).astype(np.float32), header).writeto(path)
    out = tmp_path / "fits-out"
    assert main(_args(tiny_bundle, npz_masks, out, "--workers", "1", "--limit", "2", "--background", str(path))) == 0
    for path_json in list_samples(out):
        made = read_sample(path_json)
        bg = made.meta["provenance"]["background"]
        assert bg["kind"] == "fits" and 0 <= bg["row0"] <= 72 and 0 <= bg["col0"] <= 172
        assert bg["rms_jy"] == pytest.approx(3e-4, rel=0.2) and made.header["BMAJ"] == 0.0025


def _write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


BAD_INPUTS = {
    "missing masks": (lambda t: ["--masks", str(t / "nope.npz")], "no such file"),
    "unknown masks": (lambda t: ["--masks", str(_text(t / "masks.txt"))], "expected a Survey-Collection"),
    "npz without masks": (lambda t: ["--masks", str(_write_npz(t / "m.npz", other=np.zeros(3)))], "no 'masks'"),
    "npz wrong shape": (lambda t: ["--masks", str(_write_npz(t / "m.npz", masks=np.zeros((2, 64, 64), np.uint8)))],
                        "shape"),
    "npz wrong dtype": (lambda t: ["--masks", str(_write_npz(t / "m.npz", masks=np.zeros((2, 128, 128), np.float32)))],
                        "uint8"),
    "empty mask set": (lambda t: ["--masks", str(_write_npz(t / "m.npz", masks=np.zeros((0, 128, 128), np.uint8)))],
                       "no masks"),
    "empty dataset": (lambda t: ["--masks", str(_mkdir(t / "empty-ds"))], "empty dataset"),
    "background fits without an image": (
        lambda t: ["--masks", str(_write_npz(t / "m.npz", masks=np.zeros((2, 128, 128), np.uint8))),
                   "--background", str(_table_fits(t / "table.fits"))], "no image"),
    "background dataset without backgrounds": (
        lambda t: ["--masks", str(_dataset(t / "nobg", 2, with_background=False)), "--background", "dataset"],
        "no background"),
    "background dataset with an npz": (
        lambda t: ["--masks", str(_write_npz(t / "m.npz", masks=np.zeros((2, 128, 128), np.uint8))),
                   "--background", "dataset"], "dataset folder"),
    "not a sampler setting": (
        lambda t: ["--masks", str(_write_npz(t / "m.npz", masks=np.zeros((2, 128, 128), np.uint8))),
                   "--set", "steps=3"], "sampler.KEY"),
    "bad sampler value": (
        lambda t: ["--masks", str(_write_npz(t / "m.npz", masks=np.zeros((2, 128, 128), np.uint8))),
                   "--set", "sampler.steps=0"], "steps"),
}


def _text(path: Path) -> Path:
    path.write_text("not masks\n")
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _table_fits(path: Path) -> Path:
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]).writeto(path)
    return path


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_leaves_no_output(case: str, tmp_path: Path, tiny_bundle: Path, capsys) -> None:
    make, message = BAD_INPUTS[case]
    out = tmp_path / "out"
    argv = ["sample", *make(tmp_path), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and message in err, err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_existing_output_is_refused(tmp_path: Path, tiny_bundle: Path, npz_masks: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    assert main(_args(tiny_bundle, npz_masks, out)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not empty" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and not list(tmp_path.glob(".out*"))
