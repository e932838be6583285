"""radiff-scale annotate: real-image segmentation into a Survey-Collection dataset.

Synthetic images are built here with known sources (FIRST-like: 1.8" pixels, 5.4" beam,
so 3 pixels per FWHM), so every class, mask and window can be checked against the truth.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from radiff_scale.classes import SourceClass
from radiff_scale.cli import main
from radiff_scale.data.annotate import AnnotateConfig, annotate
from radiff_scale.data.annotate_background import estimate_background
from radiff_scale.data.annotate_image import load_image
from radiff_scale.data.annotate_inputs import sample_name
from radiff_scale.data.annotate_segment import detect_islands
from radiff_scale.data.annotate_windows import tile_starts
from radiff_scale.data.sc_format import list_samples, read_sample, validate_dataset

RMS = 1e-4  # Jy/beam
PIX_ARCSEC = 1.8
BEAM_ARCSEC = 5.4
SIGMA_PX = BEAM_ARCSEC / PIX_ARCSEC / 2.3548
FIRST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "first"


def _header(shape: tuple[int, int], wcs: bool = True, beam: bool = True) -> fits.Header:
    h = fits.Header()
    if wcs:
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
        h["CRPIX1"], h["CRPIX2"] = shape[1] / 2 + 0.5, shape[0] / 2 + 0.5
        h["CRVAL1"], h["CRVAL2"] = 150.0, 30.0
        h["CDELT1"], h["CDELT2"] = -PIX_ARCSEC / 3600, PIX_ARCSEC / 3600
        h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    if beam:
        h["BMAJ"] = h["BMIN"] = BEAM_ARCSEC / 3600
        h["BPA"] = 0.0
    h["BUNIT"] = "JY/BEAM"
    h["TELESCOP"] = "VLA"
    return h


def _gauss(shape: tuple[int, int], row: float, col: float, peak_snr: float, sr: float = SIGMA_PX, sc: float = SIGMA_PX) -> np.ndarray:
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    return peak_snr * RMS * np.exp(-0.5 * (((rr - row) / sr) ** 2 + ((cc - col) / sc) ** 2))


def _noise(shape: tuple[int, int], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, RMS, shape)


def _write(path: Path, data: np.ndarray, header: fits.Header | None = None) -> Path:
    fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header if header is not None else _header(data.shape[-2:])).writeto(path)
    return path


def _samples(root: Path) -> list:
    return [read_sample(p, root) for p in list_samples(root)]


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["annotate", *argv])
    return rc, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Detection, classes, masks
# ---------------------------------------------------------------------------------------------


def test_compact_source_is_one_compact_object_covered_by_its_mask(tmp_path: Path) -> None:
    shape = (160, 160)
    model = _gauss(shape, 60, 100, 40.0)
    (tmp_path / "in").mkdir()
    _write(tmp_path / "in" / "point.fits", model + _noise(shape))
    summary = annotate([tmp_path / "in"], tmp_path / "out", AnnotateConfig(), quiet=True)
    assert summary.images_read == 1 and summary.cutouts_written == 1
    (sample,) = _samples(tmp_path / "out")
    assert sample.image.shape == (128, 128)
    assert [o.class_id for o in sample.objects] == [SourceClass.COMPACT]
    row0, col0 = sample.meta["provenance"]["window"]
    assert 0 <= row0 <= 32 and 0 <= col0 <= 32
    truth = (model > 6 * RMS)[row0 : row0 + 128, col0 : col0 + 128]
    mask = sample.objects[0].mask
    assert truth.sum() > 5 and mask[truth].all()  # every pixel well above the noise is inside
    obj = sample.objects[0].meta
    assert obj["nislands"] == 1 and obj["npeaks"] == 1 and 30 < obj["peak_snr"] < 50
    # Flux of a point source = its peak in Jy/beam.
    assert obj["flux_jy"] == pytest.approx(40 * RMS, rel=0.15)
    assert sample.meta["rms"] == pytest.approx(RMS, rel=0.1)
    assert sample.meta["pixels_per_beam"] == pytest.approx(3.0)


def test_two_lobes_with_a_gap_are_grouped_into_one_extended_object(tmp_path: Path) -> None:
    shape = (160, 160)
    # Two lobes along a row whose 3-sigma islands are ~3.5 px (1.2 FWHM) apart: within the 1.5 FWHM gap.
    model = _gauss(shape, 80, 74, 25.0, sr=3.0, sc=2.0) + _gauss(shape, 80, 86, 25.0, sr=3.0, sc=2.0)
    path = _write(tmp_path / "lobes.fits", model + _noise(shape, 2))
    config = AnnotateConfig()
    image = load_image(path, config)
    bkg, rms, _ = estimate_background(image.data, config)
    snr = (np.nan_to_num(image.data) - bkg) / rms
    islands = detect_islands(snr, ~np.isfinite(image.data), image, config)
    assert islands.max() == 2  # really two disconnected islands
    annotate([path], tmp_path / "out", config, quiet=True)
    (sample,) = _samples(tmp_path / "out")
    assert len(sample.objects) == 1
    obj = sample.objects[0]
    assert obj.class_id == SourceClass.EXTENDED and obj.meta["nislands"] == 2
    row0, col0 = sample.meta["provenance"]["window"]
    lobe_peaks = [(80 - row0, 74 - col0), (80 - row0, 86 - col0)]
    assert all(obj.mask[r, c] for r, c in lobe_peaks)
    assert not obj.mask[80 - row0, 80 - col0]  # the mask is the union of islands, not the dilated area
    # Without grouping the lobes are two objects.
    annotate([path], tmp_path / "apart", AnnotateConfig(group_gap=0.0), quiet=True)
    (apart,) = _samples(tmp_path / "apart")
    assert len(apart.objects) == 2


def test_nan_edges_stay_nan_and_never_enter_masks(tmp_path: Path) -> None:
    shape = (160, 160)
    data = _noise(shape, 3) + _gauss(shape, 20, 80, 30.0) + _gauss(shape, 90, 90, 15.0, sr=4, sc=6)
    data[:12, :] = np.nan  # a source runs into the NaN edge
    data[:, -9:] = np.nan
    path = _write(tmp_path / "edges.fits", data)
    annotate([path], tmp_path / "out", AnnotateConfig(), quiet=True)
    (sample,) = _samples(tmp_path / "out")
    row0, col0 = sample.meta["provenance"]["window"]
    expected = data[row0 : row0 + 128, col0 : col0 + 128]
    np.testing.assert_array_equal(np.isnan(sample.image), np.isnan(expected))
    np.testing.assert_array_equal(sample.image[~np.isnan(expected)], expected[~np.isnan(expected)].astype(np.float32))
    assert np.isnan(sample.background).sum() == np.isnan(expected).sum()
    assert len(sample.objects) == 2
    for obj in sample.objects:
        assert not (obj.mask & np.isnan(sample.image)).any()
    assert sample.meta["rms"] == pytest.approx(RMS, rel=0.1)


def test_background_image_replaces_sources_with_noise_and_keeps_the_rest(tmp_path: Path) -> None:
    shape = (160, 160)
    data = _noise(shape, 4) + _gauss(shape, 80, 80, 200.0)
    annotate([_write(tmp_path / "bright.fits", data)], tmp_path / "out", AnnotateConfig(), quiet=True)
    (sample,) = _samples(tmp_path / "out")
    mask = sample.objects[0].mask
    bg = sample.background
    assert np.abs(bg[mask]).max() < 6 * RMS  # the 200-sigma source is gone
    assert 0.5 * RMS < np.std(bg[mask]) < 2 * RMS
    far = np.ones_like(mask)
    r, c = np.nonzero(mask)
    far[max(r.min() - 6, 0) : r.max() + 7, max(c.min() - 6, 0) : c.max() + 7] = False
    np.testing.assert_array_equal(bg[far], sample.image[far])  # untouched away from the object


def test_tiled_map_windows_overlap_and_every_source_is_labelled(tmp_path: Path) -> None:
    shape = (400, 400)
    truth = [(30, 30), (100, 300), (200, 200), (390, 15), (300, 120), (250, 385)]
    data = _noise(shape, 5) + sum(_gauss(shape, r, c, 30.0) for r, c in truth)
    path = _write(tmp_path / "big map+1.fits", data)
    summary = annotate([path], tmp_path / "out", AnnotateConfig(), quiet=True)
    assert tile_starts(400, 128, 32) == [0, 96, 192, 272]
    samples = _samples(tmp_path / "out")
    windows = {tuple(s.meta["provenance"]["window"]) for s in samples}
    assert windows <= {(r, c) for r in (0, 96, 192, 272) for c in (0, 96, 192, 272)}
    assert summary.cutouts_written == len(samples) and summary.windows_without_objects == 16 - len(samples)
    for s in samples:
        r0, c0 = s.meta["provenance"]["window"]
        assert s.name == f"big_map_1_r{r0}_c{c0}"
        assert s.image.shape == (128, 128)
        np.testing.assert_array_equal(s.image, data[r0 : r0 + 128, c0 : c0 + 128].astype(np.float32))
    for r, c in truth:  # each source is inside a mask of every window that holds its peak
        holders = [s for s in samples if 0 <= r - s.meta["provenance"]["window"][0] < 128 and 0 <= c - s.meta["provenance"]["window"][1] < 128]
        assert holders
        for s in holders:
            r0, c0 = s.meta["provenance"]["window"]
            assert s.class_mask()[r - r0, c - c0] == SourceClass.COMPACT


def test_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    shape = (160, 160)
    path = _write(tmp_path / "a.fits", _noise(shape, 6) + _gauss(shape, 70, 70, 20.0))

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

    annotate([path], tmp_path / "one", AnnotateConfig(seed=3), quiet=True)
    annotate([path], tmp_path / "two", AnnotateConfig(seed=3), quiet=True)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    annotate([path], tmp_path / "other", AnnotateConfig(seed=4), quiet=True)
    assert digest(tmp_path / "other")["backgrounds/a.fits"] != digest(tmp_path / "one")["backgrounds/a.fits"]
    assert digest(tmp_path / "other")["images/a.fits"] == digest(tmp_path / "one")["images/a.fits"]


def test_cli_options_lists_spurious_and_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shape = (160, 160)
    ind = tmp_path / "in"
    ind.mkdir()
    for k in range(3):
        _write(ind / f"img{k}.fits.gz", _noise(shape, 10 + k) + _gauss(shape, 60 + 10 * k, 80, 20.0))
    _write(ind / "empty.fits", _noise(shape, 20))
    (tmp_path / "skip.txt").write_text("# held out\nimg2.fits.gz\nnot-there.fits\n")
    (tmp_path / "spur.txt").write_text("img1\n")
    out = tmp_path / "out"
    argv = [str(ind), "--out", str(out), "--exclude-names", str(tmp_path / "skip.txt"),
            "--spurious-names", str(tmp_path / "spur.txt"), "--quiet"]
    rc = main(["annotate", *argv])
    captured = capsys.readouterr()
    assert rc == 0
    assert "not-there.fits" in captured.err and "warning" in captured.err  # unmatched name warns
    assert "3 images read, 2 cutouts written" in captured.out and "1 images without any object" in captured.out
    summary = json.loads((out / "annotate.json").read_text())
    assert summary["images_without_objects"] == ["empty.fits"] and summary["objects_per_class"]["spurious"] == 1
    classes = {s.name: s.objects[0].class_id for s in _samples(out)}
    assert classes == {"img0": SourceClass.COMPACT, "img1": SourceClass.SPURIOUS}
    assert validate_dataset(out)["n_samples"] == 2
    # A second run may overwrite a dataset annotate wrote.
    assert main(["annotate", *argv]) == 0
    capsys.readouterr()
    assert not list(tmp_path.glob(".out.annotate-*"))


def test_headerless_cutout_with_beam_and_pixel_scale_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shape = (132, 132)
    data = _noise(shape, 7) + _gauss(shape, 66, 66, 30.0)
    path = _write(tmp_path / "bare.fit", data[None, None], _header(shape, wcs=False, beam=False))  # degenerate axes
    rc = main(["annotate", str(path), "--out", str(tmp_path / "out"), "--beam", "5.4", "--pixel-scale", "1.8", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    (sample,) = _samples(tmp_path / "out")
    assert sample.header["BMAJ"] == pytest.approx(5.4 / 3600) and sample.header["CDELT2"] == pytest.approx(1.8 / 3600)
    assert "CTYPE1" not in sample.header and sample.objects[0].class_id == SourceClass.COMPACT


def test_sample_names_follow_the_format_rule() -> None:
    assert sample_name("100_016.236+000.073_0.2797.fits.gz") == "100_016.236_000.073_0.2797"
    assert sample_name(".hidden.fits") == "_.hidden"


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing left behind
# ---------------------------------------------------------------------------------------------


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    shape = (64, 64)
    good = _noise(shape) + _gauss(shape, 32, 32, 20.0)
    (tmp / "text.fits").write_text("this is not a FITS file\n" * 200)
    raw = _write(tmp / "full.fits", good).read_bytes()
    (tmp / "truncated.fits").write_bytes(raw[: len(raw) - 5000])
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.ones(3))])]).writeto(tmp / "table.fits")
    cube = np.stack([good, good])
    _write(tmp / "cube.fits", cube, _header(shape))
    _write(tmp / "nan.fits", np.full(shape, np.nan))
    _write(tmp / "const.fits", np.full(shape, 0.5))
    _write(tmp / "nowcs.fits", good, _header(shape, wcs=False))
    _write(tmp / "nobeam.fits", good, _header(shape, beam=False))
    (tmp / "names.txt").write_text("# nothing here\nother.fits\n")
    (tmp / "junk").mkdir()
    (tmp / "junk" / "x.txt").write_text("x")
    f = str(tmp / "full.fits")
    return {
        "not fits": ([str(tmp / "text.fits")], "cannot read FITS"),
        "truncated": ([str(tmp / "truncated.fits")], "cannot read FITS"),
        "no image": ([str(tmp / "table.fits")], "no image data"),
        "cube": ([str(tmp / "cube.fits")], "not 2-D"),
        "all nan": ([str(tmp / "nan.fits")], "NaN"),
        "constant": ([str(tmp / "const.fits")], "constant"),
        "no wcs": ([str(tmp / "nowcs.fits")], "--pixel-scale"),
        "no beam": ([str(tmp / "nobeam.fits")], "--beam"),
        "missing": ([str(tmp / "missing.fits")], "no such file"),
        "include none": ([f, "--include-names", str(tmp / "names.txt")], "none of its 1 names"),
        "exclude none": ([f, "--exclude-names", str(tmp / "names.txt")], "none of its 1 names"),
        "bad out": ([f, "--out-is", str(tmp / "junk")], "not empty"),
        "bad beam": ([f, "--beam", "five"], "--beam"),
    }


@pytest.mark.parametrize("case", ["not fits", "truncated", "no image", "cube", "all nan", "constant", "no wcs",
                                  "no beam", "missing", "include none", "exclude none", "bad out", "bad beam"])
def test_bad_input_is_one_line_exit_2_and_no_output(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, expected = _bad_inputs(tmp_path)[case]
    out = tmp_path / "dataset"
    if "--out-is" in args:
        i = args.index("--out-is")
        out = Path(args[i + 1])
        args = args[:i]
    rc, err = _run_cli([*args, "--out", str(out)], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and expected in lines[0], err
    if case == "bad out":
        assert sorted(p.name for p in out.iterdir()) == ["x.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".*annotate-*"))


def test_error_in_a_later_file_leaves_no_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shape = (64, 64)
    ind = tmp_path / "in"
    ind.mkdir()
    _write(ind / "a.fits", _noise(shape) + _gauss(shape, 32, 32, 20.0))
    _write(ind / "b.fits", np.full(shape, np.nan))
    rc, err = _run_cli([str(ind), "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and "b.fits" in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


# ---------------------------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------------------------


def test_five_real_first_cutouts(tmp_path: Path) -> None:
    if not FIRST_DIR.is_dir():
        pytest.skip("../shared/data/first is not present")
    files = sorted(FIRST_DIR.glob("*.fits.gz"))[::199][:5]
    ind = tmp_path / "first"
    ind.mkdir()
    for f in files:
        shutil.copy(f, ind / f.name)
    summary = annotate([ind], tmp_path / "out", AnnotateConfig(), quiet=True)
    assert summary.images_read == 5 and summary.cutouts_written == 5 and not summary.images_without_objects
    counts = validate_dataset(tmp_path / "out")
    assert counts["n_samples"] == 5 and counts["n_with_background"] == 5 and counts["n_empty_masks"] == 0
    for s in _samples(tmp_path / "out"):
        assert s.objects and s.meta["survey"] == "FIRST" and s.meta["telescope"] == "VLA"
        assert s.header["CTYPE1"] == "RA---TAN" and s.meta["provenance"]["file"].endswith(".fits.gz")
