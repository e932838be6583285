"""The map job end to end on a small map: outputs, truth, determinism across workers, resume."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jobs.make_map import main as make_map_main
from radiff_scale.cli.make_map import add_arguments, spec_from_args
from radiff_scale.pipelines.map_job import run_make_map
from radiff_scale.compose.background import SyntheticBackground
from radiff_scale.compose.spec import MapSpec
from radiff_scale.diffusion.settings import SamplerSpec
from radiff_scale.compose.planner import PlacementConfig
from radiff_scale.compose.wcs import MapGeometry

REPO = Path(__file__).resolve().parents[1]


def small_spec(bundle: Path, workers: int, size: int = 768, n: int = 14) -> MapSpec:
    return MapSpec(
        size=size, chunk=256, workers=workers, model=str(bundle), seed=3,
        placement=PlacementConfig(n_objects=n, margin_px=16),
        sampler=SamplerSpec(name="ddim", steps=2, batch_size=4),
    )


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory, tiny_bundle, ray_local) -> Path:
    out = tmp_path_factory.mktemp("map") / "w2"
    run_make_map(small_spec(tiny_bundle, workers=2), out, progress=False)
    return out


def _read(path: Path, ext: int | str = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the products must open without any warning
        with fits.open(path) as hdul:
            return np.asarray(hdul[ext].data).copy()


def test_every_output_is_written_with_the_contracted_header(two_worker_run: Path) -> None:
    for name in ("map.fits", "labels.fits", "catalogue.parquet", "catalogue.fits", "catalogue.csv",
                 "regions.reg", "quicklook.png", "manifest.json", "map.zarr"):
        assert (two_worker_run / name).exists(), name
    assert not list(two_worker_run.glob("*.partial"))
    header = fits.getheader(two_worker_run / "map.fits")
    assert (header["CTYPE1"], header["CTYPE2"]) == ("RA---SIN", "DEC--SIN")
    assert header["BUNIT"] == "JY/BEAM" and header["BITPIX"] == -32
    assert header["BMAJ"] == pytest.approx(9.8 / 3600) and header["BMIN"] == pytest.approx(5.8 / 3600)
    assert header["RESTFRQ"] == pytest.approx(1.4e9) and header["SEED"] == 3
    manifest = json.loads((two_worker_run / "manifest.json").read_text())
    assert manifest["spec"]["seed"] == 3 and manifest["versions"]["radiff_scale"]
    assert manifest["counts"]["objects_placed"] + manifest["counts"]["objects_unplaced"] == 14


def test_catalogue_is_the_truth_of_the_pixels(two_worker_run: Path, tiny_bundle: Path) -> None:
    image = _read(two_worker_run / "map.fits").astype(np.float64)
    instance = _read(two_worker_run / "labels.fits", "INSTANCE")
    classes = _read(two_worker_run / "labels.fits", "CLASS")
    table = pq.read_table(two_worker_run / "catalogue.parquet").to_pylist()
    assert sorted(r["id"] for r in table) == sorted(np.unique(instance[instance > 0]).tolist())
    spec = small_spec(tiny_bundle, 2)
    geometry = MapGeometry((spec.size, spec.size), spec.pixel_scale_arcsec, spec.centre_ra_deg,
                           spec.centre_dec_deg, spec.beam, spec.freq_hz)
    residual = image - SyntheticBackground(geometry, spec.noise_rms_jy, spec.seed).read(0, spec.size, 0, spec.size)
    assert np.abs(residual[instance == 0]).max() < 1e-9  # nothing outside the objects' masks
    area = spec.beam.area_pixels(spec.pixel_scale_arcsec)
    for row in table:
        pixels = instance == row["id"]
        assert np.all(classes[pixels] == row["class"])
        measured = residual[pixels].sum() / area
        assert measured == pytest.approx(row["flux_jy"], rel=1e-3, abs=1e-12)


def test_one_worker_gives_the_same_bytes(two_worker_run: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "w1"
    run_make_map(small_spec(tiny_bundle, workers=1), out, progress=False)
    assert np.array_equal(_read(out / "map.fits"), _read(two_worker_run / "map.fits"))
    assert (out / "catalogue.csv").read_bytes() == (two_worker_run / "catalogue.csv").read_bytes()
    assert np.array_equal(_read(out / "labels.fits", "INSTANCE"), _read(two_worker_run / "labels.fits", "INSTANCE"))


def test_killed_run_resumes_to_the_same_bytes(two_worker_run: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    args = ["--out", str(out), "--size", "768", "--seed", "3", "--workers", "1", "--quiet",
            "--set", "chunk=256", "--set", f"model={tiny_bundle}", "--set", "placement.n_objects=14",
            "--set", "placement.margin_px=16", "--set", "sampler.name=ddim", "--set", "sampler.steps=2",
            "--set", "sampler.batch_size=4"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "jobs.make_map", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    done_dir = out / "work" / "chunks_done"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if done_dir.is_dir() and len(list(done_dir.glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    # A chunk task already running in a Ray worker may still finish; let the count settle.
    written_before, settled = -1, 0
    while settled < 3:
        time.sleep(1.0)
        now = len(list(done_dir.glob("*.json")))
        settled = settled + 1 if now == written_before else 0
        written_before = now
    assert not (out / "manifest.json").exists(), "a killed run must not look finished"
    assert 0 < written_before < 9
    assert make_map_main([*args, "--resume"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["chunks_written"] == 9 - written_before
    assert manifest["counts"]["tile_batches_sampled"] == 0
    assert manifest["counts"]["stamp_batches_cut"] == 0  # stamps were all cut before the chunk stage
    assert np.array_equal(_read(out / "map.fits"), _read(two_worker_run / "map.fits"))
    assert (out / "catalogue.csv").read_bytes() == (two_worker_run / "catalogue.csv").read_bytes()


def test_run_killed_in_the_export_redoes_only_the_missing_files(two_worker_run: Path, tiny_bundle: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "export-killed"
    shutil.copytree(two_worker_run, out)
    for name in ("manifest.json", "labels.fits", "quicklook.png"):
        (out / name).unlink()
    (out / "labels.fits.partial").write_bytes(b"half a file" * 1000)  # left by the killed export
    kept = (out / "map.fits").stat().st_mtime_ns
    manifest = run_make_map(small_spec(tiny_bundle, workers=2), out, resume=True, progress=False)
    assert manifest["counts"]["chunks_written"] == 0
    assert (out / "map.fits").stat().st_mtime_ns == kept  # complete: not redone
    assert (out / "labels.fits").read_bytes() == (two_worker_run / "labels.fits").read_bytes()
    assert (out / "quicklook.png").read_bytes() == (two_worker_run / "quicklook.png").read_bytes()
    assert not list(out.glob("*.partial"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "placement.overlap_fraction=1.5"], "overlap_fraction must be in [0, 1]"),
        (["--set", "placement.k_cap=-1"], "k_cap must be >= 0"),
        (["--set", "tiles=magic"], "unknown tile source 'magic'"),
        (["--size", "0"], "size must be in"),
        (["--set", "chunk=100"], "chunk"),
        (["--background", "/nonexistent.fits"], "no such file"),
        (["--set", "model=/nonexistent-bundle"], "no such folder"),
        (["--set", "sampler.name=euler"], "sampler.name"),
        (["--set", "sampler.gpu_precision=fp16"], "sampler.gpu_precision 'fp16' is not one of fp32, bf16"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert make_map_main(["--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists(), "nothing may be written before the input is validated"


def test_existing_output_is_refused_unless_resumed_or_overwritten(tmp_path: Path, capsys, tiny_bundle: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["--out", str(out), "--quiet", "--size", "512", "--set", f"model={tiny_bundle}"]
    assert make_map_main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert make_map_main([*args, "--resume"]) == 2
    assert "no readable spec.json" in capsys.readouterr().err
    assert make_map_main([*args, "--overwrite"]) == 2
    assert "not a radiff-scale run folder" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_a_run_left_by_an_older_work_layout_is_not_resumed(tmp_path: Path, capsys, tiny_bundle: Path) -> None:
    """Its work folder (ranks, stamps, catalogue parts) means something else: finishing it would mix layouts."""
    out = tmp_path / "old"
    args = ["--out", str(out), "--quiet", "--size", "512", "--set", f"model={tiny_bundle}"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out.mkdir()
    (out / "spec.json").write_text(json.dumps(spec_from_args(parser.parse_args(args)).identity()))  # no run_layout
    assert make_map_main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "different spec" in err and "run_layout" in err


def test_background_without_celestial_wcs_is_refused(tmp_path: Path, capsys, tiny_bundle: Path) -> None:
    path = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.ones((64, 64), np.float32)).writeto(path)
    args = ["--out", str(tmp_path / "o"), "--quiet", "--background", str(path), "--set", f"model={tiny_bundle}"]
    assert make_map_main(args) == 2
    err = capsys.readouterr().err
    assert "plain.fits" in err and "WCS" in err.upper()



@pytest.fixture(scope="module")
def prior_bundle(tmp_path_factory, tiny_bundle: Path) -> Path:
    """The tiny bundle plus a mask prior of the demo architecture (random weights: its masks are blotches)."""
    from radiff_scale.models import RadiffModels, load_models_config

    models = RadiffModels.load(tiny_bundle)
    models.mask_prior = RadiffModels.from_config(load_models_config(REPO / "configs" / "demo.yaml"), seed=1).mask_prior
    return models.save(tmp_path_factory.mktemp("prior") / "bundle")


def test_masks_from_the_mask_prior(prior_bundle: Path, tmp_path: Path, ray_local) -> None:
    import dataclasses

    import zarr

    spec = dataclasses.replace(small_spec(prior_bundle, workers=2, size=512, n=6), masks="prior", mask_pool=6)
    out = tmp_path / "prior"
    manifest = run_make_map(spec, out, progress=False)
    assert manifest["counts"]["mask_pool_batches_sampled"] == 2  # 6 masks in batches of 4
    pool = zarr.open_array(str(out / "work" / "mask_pool.zarr"), mode="r")[:]
    assert pool.shape == (6, 128, 128) and pool.dtype == np.uint8
    # Every placed object's mask is one object of a pool mask (as from a bank): one class, and some pool
    # mask holds at least as many pixels of that class (overlap 0: an instance's pixels are its mask's).
    instance, classes = _read(out / "labels.fits", "INSTANCE"), _read(out / "labels.fits", "CLASS")
    ids = np.unique(instance[instance > 0])
    assert len(ids) == manifest["counts"]["objects_placed"] > 0
    for object_id in ids:
        (cls,) = np.unique(classes[instance == object_id])
        assert max((m == cls).sum() for m in pool) >= (instance == object_id).sum()
    # Resuming a finished run samples nothing again, and the map is unchanged.
    before = (out / "map.fits").read_bytes()
    again = run_make_map(spec, out, resume=True, progress=False)
    assert again["counts"]["mask_pool_batches_sampled"] == 0 and (out / "map.fits").read_bytes() == before


def test_masks_prior_needs_a_bundle_with_a_mask_prior(tmp_path: Path, capsys, tiny_bundle: Path) -> None:
    args = ["--out", str(tmp_path / "x"), "--size", "512", "--masks", "prior", "--set", f"model={tiny_bundle}"]
    assert make_map_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no mask prior" in err, err
    assert not (tmp_path / "x").exists()


def test_a_bundle_that_cannot_map_tiles_to_flux_is_refused_before_any_work(
    tmp_path: Path, capsys, tiny_bundle: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    index = json.loads((bundle / "radiff_models.json").read_text())
    index["card"].pop("preprocess_reference", None)
    index["card"].pop("stretch", None)
    (bundle / "radiff_models.json").write_text(json.dumps(index))
    out = tmp_path / "x"
    assert make_map_main(["--out", str(out), "--size", "512", "--set", f"model={bundle}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no stretch" in err, err
    assert not out.exists()


@pytest.mark.parametrize("damage", ["pickle", "architecture"])
def test_a_broken_bundle_is_one_line_on_the_driver_before_any_actor_starts(
    tmp_path: Path, capsys, tiny_bundle: Path, damage: str
) -> None:
    """A pickle renamed model.safetensors, or weights of another architecture, used to kill every
    sampler actor and reach the user as a traceback with a half-made run folder."""
    import pickle

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    weights = bundle / "unet" / "model.safetensors"
    if damage == "pickle":
        weights.write_bytes(pickle.dumps({"unet": [1.0, 2.0]}))
    else:
        config = json.loads((bundle / "unet" / "config.json").read_text())
        config["base_channels"] = 2 * config["base_channels"]
        (bundle / "unet" / "config.json").write_text(json.dumps(config))
    out = tmp_path / "x"
    assert make_map_main(["--out", str(out), "--size", "512", "--set", f"model={bundle}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "unet" in err, err
    assert ("not a readable safetensors file" if damage == "pickle" else "shape") in err, err
    assert not out.exists()


def _zero_background(path: Path) -> Path:
    h = fits.Header()
    h["CTYPE1"], h["CRPIX1"], h["CRVAL1"], h["CDELT1"] = "RA---SIN", 32.0, 150.0, -1.5 / 3600
    h["CTYPE2"], h["CRPIX2"], h["CRVAL2"], h["CDELT2"] = "DEC--SIN", 32.0, 2.0, 1.5 / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = 6.5 / 3600, 6.5 / 3600, 0.0
    fits.PrimaryHDU(np.zeros((256, 256), np.float32), header=h).writeto(path)
    return path


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t: ["--size", "512", "--background", str(_zero_background(t / "bg.fits"))], "exclude each other"),
        (lambda t: ["--size", "512", "--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
        (lambda t: ["--size", "512", "--resume"], "nothing to --resume"),
        (lambda t: ["--background", str(_zero_background(t / "bg.fits"))], "no usable pixels"),
    ],
)
def test_contradictory_options_and_an_empty_background_leave_nothing_behind(
    tmp_path: Path, capsys, tiny_bundle: Path, make_args, message: str
) -> None:
    """Each used to be silent (--size ignored, --resume starting afresh) or refused only after
    spec.json and work/ were written, so that the same command was then refused as 'not empty'."""
    out = tmp_path / "out"
    assert make_map_main(["--out", str(out), "--quiet", "--set", f"model={tiny_bundle}", *make_args(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_truncated_background_is_one_line_without_astropy_warnings(tmp_path: Path, capsys) -> None:
    path = _zero_background(tmp_path / "bg.fits")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert make_map_main(["--out", str(out), "--quiet", "--background", str(path)]) == 2
    captured = capsys.readouterr()
    assert "truncated" in captured.err and captured.err.strip().count("\n") == 0, captured.err
    assert "WARNING" not in captured.out + captured.err
    assert not out.exists()


def test_an_output_path_under_a_file_is_one_line(tmp_path: Path, capsys, tiny_bundle: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "map"
    assert make_map_main(["--out", str(out), "--quiet", "--size", "512", "--set", f"model={tiny_bundle}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file, not a folder" in err and "\n" not in err and "Traceback" not in err, err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_mosaic_opens_in_xarray_and_dask_without_a_warning(two_worker_run: Path) -> None:
    """The ecosystem's readers see three arrays with dimensions (y, x), and nothing else in the
    hierarchy: the chunk done markers live in work/chunks_done."""
    import dask.array as da
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(two_worker_run / "map.zarr", consolidated=False)
        image = da.from_zarr(str(two_worker_run / "map.zarr"), component="image")
    assert set(ds.data_vars) == {"image", "class", "instance"} and ds["image"].dims == ("y", "x")
    assert np.array_equal(ds["image"].values, _read(two_worker_run / "map.fits"))
    assert np.array_equal(image.compute(), ds["image"].values)
