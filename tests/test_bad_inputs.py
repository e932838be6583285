"""Wrong inputs across every command and the Python API (issue 17): each is refused with exit code 2 (or a
RadiffError from the API), one line on stderr that names the file or option at fault, no traceback, no
warnings, and nothing left behind: the folder the command was run in holds exactly what it held before.

Every refusal must come before any work, so no case here may reach Ray: the drivers' Ray entry points are
replaced by a tripwire (``_no_ray``), and a case that got that far fails on it. The cases run in-process
(``radiff_scale.cli.main``, capsys); one case runs ``python -m jobs.make_map`` in a real process to see
what the interpreter itself prints.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from astropy.io import fits

from radiff_scale.cli import main
from radiff_scale.errors import RadiffError

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "radiff_scale" / "assets" / "demo"


# --------------------------------------------------------------------------- shared inputs


@dataclass(frozen=True)
class Inputs:
    """What the cases are built from: good inputs made once per module, and the case's own folder."""

    bundle: Path  # tiny_bundle: random weights in the demo architecture
    pickled: Path  # a copy of the shipped demo bundle whose unet weights are a pickle
    foreign: Path  # a copy of the demo bundle whose unet weights come from another architecture
    dataset: Path  # two simulated cutouts (Survey-Collection layout), read only
    train_config: Path  # toy models (32x32) and a 2-step train: section
    tmp: Path  # the case's own folder: everything it writes goes here

    @property
    def out(self) -> str:
        """The default output path of a case: new, in the case's folder."""
        return str(self.tmp / "o")

    def file(self, name: str, content: str) -> str:
        return str(text(self.tmp / name, content))

    def under_a_file(self, name: str = "o") -> str:
        """An output path below a file the user keeps."""
        return str(text(self.tmp / "notes.txt", "mine") / name)

    def copy_dataset(self, name: str = "ds") -> Path:
        return Path(shutil.copytree(self.dataset, self.tmp / name))

    # One command line per command, with good values for everything but what a case sets.

    def make_map(self, *extra: str, out: str | None = None) -> list[str]:
        return ["make-map", "--quiet", "--set", f"model={self.bundle}", "--out", out or self.out, *extra]

    def simulate(self, *extra: str, n: int = 1, out: str | None = None) -> list[str]:
        return ["simulate-dataset", "--n", str(n), "--out", out or self.out, *extra]

    def annotate(self, image: Path, *extra: str, out: str | None = None) -> list[str]:
        return ["annotate", str(image), "--out", out or self.out, "--quiet", *extra]

    def train(self, *extra: str, stage: str = "ae", config: str | None = None, out: str | None = None) -> list[str]:
        return ["train", "--config", config or str(self.train_config), "--stage", stage, "--quiet",
                "--out", out or self.out, *extra]

    def tile_bank(self, *extra: str, model: Path | None = None, n: int = 2, out: str | None = None) -> list[str]:
        return ["make-tile-bank", "--quiet", "--model", str(model or self.bundle), "--n", str(n),
                "--out", out or str(self.tmp / "bank.npz"), *extra]

    def sample(self, *extra: str, model: Path | None = None, masks: Path | None = None,
               out: str | None = None) -> list[str]:
        return ["sample", "--quiet", "--model", str(model or self.bundle), "--masks", str(masks or self.dataset),
                "--out", out or self.out, *extra]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path) -> dict[str, Path]:
    from radiff_scale.config import to_dict
    from radiff_scale.models.config import tiny_models_config
    from radiff_scale.models.io import RadiffModels

    root = tmp_path_factory.mktemp("bad-inputs")
    pickled = Path(shutil.copytree(DEMO, root / "pickled"))
    (pickled / "unet" / "model.safetensors").write_bytes(pickle.dumps({"unet.weight": [1.0, 2.0, 3.0]}))
    # Weights of the same component from another config: the toy U-Net's safetensors in the demo's place.
    toy = RadiffModels.from_config(tiny_models_config(), seed=0, with_mask_prior=False).save(root / "toy")
    foreign = Path(shutil.copytree(DEMO, root / "foreign"))
    shutil.copy(toy / "unet" / "model.safetensors", foreign / "unet" / "model.safetensors")
    dataset = root / "dataset"
    assert main(["simulate-dataset", "--n", "2", "--out", str(dataset), "--seed", "2"]) == 0
    config = to_dict(tiny_models_config())
    stage = {"steps": 2, "batch_size": 4, "lr": 1.0e-3, "checkpoint_every": 1, "log_every": 1}
    config["train"] = {"seed": 0, "mixed_precision": False,
                       "data": {"simulate_n": 8, "simulate_seed": 0, "simulate": {"size": 32}},
                       "ae": dict(stage), "ldm": dict(stage), "mask": dict(stage)}
    train_config = root / "tiny.yaml"
    train_config.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"bundle": tiny_bundle, "pickled": pickled, "foreign": foreign, "dataset": dataset,
            "train_config": train_config}


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tripwire on every driver's way into Ray: a refused input must never start a worker or an actor."""

    def tripped(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a bad input reached Ray: it must be refused on the driver before any work")

    import radiff_scale.pipelines.map_job as map_job
    import radiff_scale.pipelines.sample_job as sample_job
    import radiff_scale.pipelines.train_job as train_job

    monkeypatch.setattr(map_job, "connect_ray", tripped)
    monkeypatch.setattr(train_job, "connect_ray", tripped)
    monkeypatch.setattr(sample_job, "_sample", tripped)


# --------------------------------------------------------------------------- bad files


def _sky_header() -> fits.Header:
    h = fits.Header()
    h["CTYPE1"], h["CRPIX1"], h["CRVAL1"], h["CDELT1"] = "RA---SIN", 128.0, 150.0, -1.5 / 3600
    h["CTYPE2"], h["CRPIX2"], h["CRVAL2"], h["CDELT2"] = "DEC--SIN", 128.0, 2.0, 1.5 / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = 6.5 / 3600, 6.5 / 3600, 0.0
    return h


def _image(path: Path, data: np.ndarray, sky: bool = True) -> Path:
    fits.PrimaryHDU(data, header=_sky_header() if sky else None).writeto(path)
    return path


def noise(path: Path, sky: bool = True) -> Path:
    return _image(path, np.random.default_rng(0).normal(0, 1e-4, (256, 256)).astype(np.float32), sky)


def corrupt_fits(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    return path


def truncated_fits(path: Path) -> Path:
    data = noise(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def all_nan_fits(path: Path, sky: bool = True) -> Path:
    return _image(path, np.full((256, 256), np.nan, np.float32), sky)


def cube_fits(path: Path, sky: bool = True) -> Path:
    return _image(path, np.zeros((3, 256, 256), np.float32), sky)


def bad_bitpix_fits(path: Path) -> Path:
    """16-bit pixels declared BITPIX = -16 (a half float, which FITS does not have): same size on disk."""
    _image(path, np.ones((256, 256), np.int16))
    data = path.read_bytes()
    card = b"BITPIX  =                   16"
    assert card in data
    path.write_bytes(data.replace(card, b"BITPIX  =                  -16"))
    return path


def strings_fits(path: Path) -> Path:
    """No image at all: a table of strings and booleans."""
    columns = [fits.Column("name", "10A", array=np.array(["a", "b"])), fits.Column("ok", "L", array=[True, False])]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(path)
    return path


def npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def only_extended_masks() -> np.ndarray:
    masks = np.zeros((4, 128, 128), np.uint8)
    masks[:, 40:80, 40:80] = 3
    return masks


def text(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def traversal(dataset: Path) -> Path:
    """The dataset with its first annotation's first mask path climbing out of the root."""
    annotation = sorted((dataset / "annotations").glob("*.json"))[0]
    data = json.loads(annotation.read_text())
    data["objs"][0]["mask"] = "../../etc/passwd"
    annotation.write_text(json.dumps(data))
    return dataset


def damaged(dataset: Path, folder: str, make: Callable[[Path], Path]) -> Path:
    """The dataset with the first file of ``folder`` replaced by ``make(path)``."""
    target = sorted((dataset / folder).glob("*.fits"))[0]
    target.unlink()
    make(target)
    return dataset


def spec_json_of_another_seed(i: Inputs) -> Path:
    """A run folder left by the same command with --seed 1 (only its spec.json: enough to be resumed)."""
    import argparse

    from radiff_scale.cli.make_map import add_arguments, spec_from_args
    from radiff_scale.pipelines.map_job import run_identity

    out = i.tmp / "run"
    out.mkdir()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    spec = spec_from_args(parser.parse_args(["--out", str(out), "--size", "512", "--seed", "1",
                                             "--set", f"model={i.bundle}"]))
    (out / "spec.json").write_text(json.dumps(run_identity(spec, None)))
    return out


def trained_ae(i: Inputs) -> Path:
    """A run folder past the mask stage's "ae first" check (its bundle index is never read)."""
    (i.tmp / "o" / "bundle").mkdir(parents=True)
    (i.tmp / "o" / "bundle" / "radiff_models.json").write_text("{}")
    return i.tmp / "o"


def read_only_folder(i: Inputs) -> Path:
    folder = i.tmp / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


# --------------------------------------------------------------------------- in-process patches


def deny_writes_in(folder: Path) -> Callable[[pytest.MonkeyPatch], None]:
    """os.access says no write permission in ``folder`` (what chmod 0o500 does for anyone but root)."""
    real = os.access

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
            if mode & os.W_OK and Path(path).resolve() == folder.resolve():
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)

    return patch


def tiny_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every disk has 1 MiB free."""
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: shutil._ntuple_diskusage(2**40, 2**40 - 2**20, 2**20))


# --------------------------------------------------------------------------- the cases

#: argv(inputs) -> the command line; expect: substrings of the one-line message (the culprit's name among
#: them); patch: in-process changes (monkeypatch) made after the inputs exist; root_only_skip: chmod
#: cannot stop root.
Case = namedtuple("Case", "id argv expect patch root_only_skip", defaults=(None, False))

CASES = [
    # make-map: the background
    Case("map-corrupt-fits", lambda i: i.make_map("--background", str(corrupt_fits(i.tmp / "corrupt.fits"))),
         ["corrupt.fits", "not a FITS file"]),
    Case("map-truncated-fits", lambda i: i.make_map("--background", str(truncated_fits(i.tmp / "cut.fits"))),
         ["cut.fits", "truncated"]),
    Case("map-background-without-celestial-wcs",
         lambda i: i.make_map("--background", str(noise(i.tmp / "plain.fits", sky=False))),
         ["plain.fits", "celestial WCS"]),
    Case("map-all-nan-background", lambda i: i.make_map("--background", str(all_nan_fits(i.tmp / "blank.fits"))),
         ["blank.fits", "blank (NaN)"]),
    Case("map-cube-background", lambda i: i.make_map("--background", str(cube_fits(i.tmp / "cube.fits"))),
         ["cube.fits", "cubes are not supported"]),
    Case("map-background-bitpix-not-a-fits-type",
         lambda i: i.make_map("--background", str(bad_bitpix_fits(i.tmp / "half.fits"))),
         ["half.fits", "BITPIX = -16"]),
    Case("map-background-table-of-strings", lambda i: i.make_map("--background", str(strings_fits(i.tmp / "names.fits"))),
         ["names.fits", "no image HDU"]),
    Case("map-size-with-background", lambda i: i.make_map("--size", "512", "--background", str(noise(i.tmp / "bg.fits"))),
         ["--size and --background exclude each other"]),
    # make-map: mask banks and catalogues
    Case("map-float-mask-bank",
         lambda i: i.make_map("--size", "512", "--masks",
                              f"bank:{npz(i.tmp / 'soft.npz', masks=np.full((4, 128, 128), 0.5))}"),
         ["soft.npz", "integer class ids", "float64"]),
    Case("map-bool-mask-bank",
         lambda i: i.make_map("--size", "512", "--masks",
                              f"bank:{npz(i.tmp / 'yes.npz', masks=np.ones((4, 128, 128), bool))}"),
         ["yes.npz", "dtype bool"]),
    Case("map-mask-bank-without-a-class-the-map-draws",
         lambda i: i.make_map("--size", "512", "--masks", f"bank:{npz(i.tmp / 'ext.npz', masks=only_extended_masks())}"),
         ["ext.npz", "holds no spurious object", "class_fractions.spurious=0"]),
    Case("map-positions-without-position-columns",
         lambda i: i.make_map("--size", "512", "--positions", i.file("cat.csv", "name,flux\na,1\nb,2\n")),
         ["cat.csv", "no RA/Dec or x/y columns"]),
    Case("map-positions-with-nan-coordinates",
         lambda i: i.make_map("--size", "512", "--positions", i.file("cat.csv", "ra,dec\n0.0,-30.0\nnan,-30.0\n")),
         ["cat.csv", "row 1", "ra is nan"]),
    Case("map-positions-with-a-blank-cell",
         lambda i: i.make_map("--size", "512", "--positions", i.file("cat.csv", "x,y\n100,100\n200,\n")),
         ["cat.csv", "row 1", "y is nan"]),
    Case("map-positions-with-a-negative-flux",
         lambda i: i.make_map("--size", "512", "--positions", i.file("cat.csv", "ra,dec,flux\n0.0,-30.0,0.1\n0.0,-30.0,-1\n")),
         ["cat.csv", "row 1", "column 'flux'", "> 0 Jy"]),
    Case("map-positions-with-a-nan-flux",
         lambda i: i.make_map("--size", "512", "--positions", i.file("cat.csv", "ra,dec,S_int\n0.0,-30.0,nan\n")),
         ["cat.csv", "row 0", "column 'S_int'"]),
    Case("map-positions-with-a-negative-size",
         lambda i: i.make_map("--size", "512", "--positions", i.file("cat.csv", "ra,dec,BMAJ\n0.0,-30.0,-3\n")),
         ["cat.csv", "row 0", "column 'BMAJ'", ">= 0 arcsec"]),
    Case("map-positions-with-an-unparseable-ra",
         lambda i: i.make_map("--size", "512", "--positions", i.file("cat.csv", "ra,dec\n0.0,-30.0\n12h30m,-30.0\n")),
         ["cat.csv", "row 1", "column 'ra'", "'12h30m', not a number"]),
    Case("map-positions-binary-file",
         lambda i: i.make_map("--size", "512", "--positions", i.file("cat.txt", "\x00\x01PK\x03\x04" * 50)),
         ["cat.txt", "binary"]),
    Case("map-positions-sdc1-with-a-negative-flux",
         lambda i: i.make_map("--size", "512", "--positions-format", "sdc1", "--positions", i.file(
             "sdc1.txt", "id ra_core dec_core ra_cent dec_cent flux core_frac b_maj b_min pa size class\n"
                         "1 0.0 -30.0 0.0 -30.0 -0.001 0.0 2.0 1.0 10.0 2 3\n")),
         ["sdc1.txt", "flux", "row 1"]),
    Case("map-positions-format-without-positions",
         lambda i: i.make_map("--size", "512", "--positions-format", "sdc1"),
         ["--positions-format needs --positions"]),
    # make-map: config, --set and sizes
    Case("map-yaml-wrong-type", lambda i: i.make_map("--config", i.file("spec.yaml", "size: big\n")),
         ["spec.yaml", "size", "expected a number"]),
    Case("map-yaml-wrong-type-nested",
         lambda i: i.make_map("--config", i.file("spec.yaml", "placement:\n  n_objects: [1]\n")),
         ["spec.yaml", "placement.n_objects", "expected a number"]),
    Case("map-yaml-not-a-mapping", lambda i: i.make_map("--config", i.file("spec.yaml", "- size\n- 512\n")),
         ["spec.yaml", "must be a mapping"]),
    Case("map-unknown-set-key", lambda i: i.make_map("--set", "placement.n_objectz=3"), ["unknown key(s) n_objectz"]),
    Case("map-size-0", lambda i: i.make_map("--size", "0"), ["size must be in", "got 0"]),
    Case("map-size-2**30", lambda i: i.make_map("--size", str(2**30)), ["size must be in", f"got {2**30}"]),
    Case("map-sampler-batch-2**30", lambda i: i.make_map("--size", "512", "--set", f"sampler.batch_size={2**30}"),
         ["sampler.batch_size must be in"]),
    Case("map-workers-not-a-number", lambda i: i.make_map("--workers", "two"),
         ["--workers", "invalid int value: 'two'", "--help"]),
    # make-map: bundles
    Case("map-pickle-renamed-safetensors",
         lambda i: ["make-map", "--quiet", "--out", i.out, "--size", "512", "--set", f"model={i.pickled}"],
         ["pickled/unet/model.safetensors", "not a readable safetensors file"]),
    Case("map-weights-of-another-architecture",
         lambda i: ["make-map", "--quiet", "--out", i.out, "--size", "512", "--set", f"model={i.foreign}"],
         ["foreign/unet/model.safetensors", "architecture"]),
    # make-map: the output folder
    Case("map-output-is-a-file", lambda i: i.make_map("--size", "512", out=i.file("notes.txt", "mine")),
         ["notes.txt", "is a file, not a folder"]),
    Case("map-output-under-a-file", lambda i: i.make_map("--size", "512", out=i.under_a_file()),
         ["notes.txt", "is a file, not a folder"]),
    Case("map-parent-not-writable-chmod", lambda i: i.make_map("--size", "512", out=str(read_only_folder(i) / "map")),
         ["ro/map", "no write permission"], root_only_skip=True),
    Case("map-parent-not-writable", lambda i: i.make_map("--size", "512"),
         ["/o", "no write permission"], lambda i: deny_writes_in(i.tmp)),
    Case("map-disk-too-small", lambda i: i.make_map("--size", "512"),
         ["a 512x512 map", "needs 4.5 MiB", "only 1.0 MiB are free"], lambda i: tiny_disk),
    Case("map-resume-of-another-spec",
         lambda i: i.make_map("--size", "512", "--seed", "2", "--resume", out=str(spec_json_of_another_seed(i))),
         ["different spec", "changed: seed"]),
    Case("map-resume-without-a-run", lambda i: i.make_map("--size", "512", "--resume", out=str(i.tmp / "never")),
         ["nothing to --resume", "never"]),
    Case("map-resume-and-overwrite", lambda i: i.make_map("--size", "512", "--resume", "--overwrite"),
         ["--resume and --overwrite exclude each other"]),
    # demo
    Case("demo-output-is-a-file", lambda i: ["demo", "--quiet", "--out", i.file("notes.txt", "mine")],
         ["notes.txt", "is a file, not a folder"]),
    Case("demo-resume-and-overwrite", lambda i: ["demo", "--quiet", "--out", i.out, "--resume", "--overwrite"],
         ["--resume and --overwrite exclude each other"]),
    Case("demo-workers-0", lambda i: ["demo", "--quiet", "--out", i.out, "--workers", "0"], ["workers must be >= 1"]),
    # simulate-dataset
    Case("simulate-n-0", lambda i: i.simulate(n=0), ["argument --n", "must be > 0"]),
    Case("simulate-n-2**30-does-not-fit", lambda i: i.simulate(n=2**30),
         [f"a dataset of {2**30} cutouts of 128x128", "TiB in", "are free"]),
    Case("simulate-size-2**30", lambda i: i.simulate("--set", f"size={2**30}"), ["size", "must be in 32..8192"]),
    Case("simulate-unknown-set-key", lambda i: i.simulate("--set", "sise=64"), ["unknown key(s) sise"]),
    Case("simulate-yaml-wrong-type", lambda i: i.simulate("--config", i.file("sim.yaml", "rms_jy: lots\n")),
         ["sim.yaml", "rms_jy", "expected a number"]),
    Case("simulate-yaml-missing-key", lambda i: i.simulate("--config", i.file("sim.yaml", "background: real\n")),
         ["real_backgrounds", "needs at least one FITS map"]),
    Case("simulate-corrupt-real-background", lambda i: i.simulate(
        "--set", "background=real", "--set", f"real_backgrounds=[{corrupt_fits(i.tmp / 'field.fits')}]"),
         ["field.fits", "not a FITS file"]),
    Case("simulate-output-under-a-file", lambda i: i.simulate(out=i.under_a_file()),
         ["notes.txt", "is a file, not a folder"]),
    Case("simulate-parent-not-writable", lambda i: i.simulate(), ["/o", "no write permission"],
         lambda i: deny_writes_in(i.tmp)),
    Case("simulate-disk-too-small", lambda i: i.simulate(n=1000), ["1000 cutouts", "MiB in", "only 1.0 MiB are free"],
         lambda i: tiny_disk),
    # validate-dataset
    Case("validate-mask-path-traversal", lambda i: ["validate-dataset", str(traversal(i.copy_dataset()))],
         ["sim000000.json", "../../etc/passwd", "outside the dataset root"]),
    Case("validate-truncated-image",
         lambda i: ["validate-dataset", str(damaged(i.copy_dataset(), "images", truncated_fits))],
         ["images/sim000000.fits", "truncated"]),
    Case("validate-corrupt-mask", lambda i: ["validate-dataset", str(damaged(i.copy_dataset(), "masks", corrupt_fits))],
         ["masks/sim000000_obj0.fits", "not a FITS file"]),
    Case("validate-cube-image",
         lambda i: ["validate-dataset", str(damaged(i.copy_dataset(), "images", lambda p: cube_fits(p, sky=False)))],
         ["images/sim000000.fits", "not 2-D"]),
    Case("validate-image-without-pixels",
         lambda i: ["validate-dataset", str(damaged(i.copy_dataset(), "images", strings_fits))],
         ["images/sim000000.fits", "no image data"]),
    Case("validate-missing-root", lambda i: ["validate-dataset", str(i.tmp / "nowhere")], ["nowhere", "not a folder"]),
    # annotate
    Case("annotate-corrupt-fits", lambda i: i.annotate(corrupt_fits(i.tmp / "field.fits")),
         ["field.fits", "not a FITS file"]),
    Case("annotate-all-nan", lambda i: i.annotate(all_nan_fits(i.tmp / "blank.fits")), ["blank.fits", "NaN"]),
    Case("annotate-cube", lambda i: i.annotate(cube_fits(i.tmp / "cube.fits")), ["cube.fits", "not 2-D"]),
    Case("annotate-truncated", lambda i: i.annotate(truncated_fits(i.tmp / "cut.fits")), ["cut.fits", "truncated"]),
    Case("annotate-cutout-2**30", lambda i: i.annotate(noise(i.tmp / "field.fits"), "--cutout", str(2**30)),
         ["--cutout must be in 8..8192"]),
    Case("annotate-output-under-a-file", lambda i: i.annotate(noise(i.tmp / "field.fits"), out=i.under_a_file()),
         ["notes.txt", "is a file, not a folder"]),
    Case("annotate-parent-not-writable", lambda i: i.annotate(noise(i.tmp / "field.fits")), ["/o", "no write permission"],
         lambda i: deny_writes_in(i.tmp)),
    # train
    Case("train-dataset-mask-path-traversal", lambda i: i.train(
        "--set", f"train.data.datasets=[{traversal(i.copy_dataset())}]", "--set", "train.data.simulate_n=0"),
         ["sim000000.json", "../../etc/passwd", "outside the dataset root"]),
    Case("train-dataset-image-without-pixels", lambda i: i.train(
        "--set", f"train.data.datasets=[{damaged(i.copy_dataset(), 'images', strings_fits)}]",
        "--set", "train.data.simulate_n=0"),
         ["images/sim000000.fits", "no image data"]),
    Case("train-yaml-wrong-type", lambda i: i.train(config=i.file("t.yaml", "train:\n  ae:\n    steps: many\n")),
         ["t.yaml", "train.ae.steps", "expected a number"]),
    Case("train-yaml-missing-data", lambda i: i.train(config=i.file("t.yaml", "train:\n  data:\n    simulate_n: 0\n")),
         ["train.data", "nothing to train on"]),
    Case("train-unknown-set-key", lambda i: i.train("--set", "train.ae.lr_max=3"), ["tiny.yaml", "unknown key(s) lr_max"]),
    Case("train-image-size-0", lambda i: i.train("--set", "autoencoder.image_size=0"),
         ["autoencoder", "image_size must be in 8..8192"]),
    Case("train-mask-stage-float-mask-bank", lambda i: i.train(
        "--set", f"train.data.mask_bank={npz(i.tmp / 'soft.npz', masks=np.full((4, 32, 32), 0.5))}",
        stage="mask", out=str(trained_ae(i))),
         ["soft.npz", "integer class ids", "float64"]),
    Case("train-output-is-a-file", lambda i: i.train(out=i.file("notes.txt", "mine")), ["notes.txt", "is a file"]),
    Case("train-parent-not-writable", lambda i: i.train(), ["/o", "no write permission"], lambda i: deny_writes_in(i.tmp)),
    # make-tile-bank
    Case("tile-bank-n-2**30", lambda i: i.tile_bank(n=2**30), [f"--n {2**30}", "built in memory"]),
    Case("tile-bank-pickle-renamed-safetensors", lambda i: i.tile_bank(model=i.pickled),
         ["pickled/unet/model.safetensors", "not a readable safetensors file"]),
    Case("tile-bank-output-under-a-file", lambda i: i.tile_bank(out=i.under_a_file("bank.npz")),
         ["notes.txt", "is a file, not a folder"]),
    Case("tile-bank-disk-too-small", lambda i: i.tile_bank(n=100),
         ["a bank of 100 tiles", "needs 7.8 MiB", "only 1.0 MiB are free"], lambda i: tiny_disk),
    # sample
    Case("sample-float-masks", lambda i: i.sample(masks=npz(i.tmp / "soft.npz", masks=np.full((2, 128, 128), 0.5))),
         ["--masks", "soft.npz", "uint8"]),
    Case("sample-all-nan-background", lambda i: i.sample("--background", str(all_nan_fits(i.tmp / "blank.fits"))),
         ["blank.fits", "blank (NaN)"]),
    Case("sample-cube-background", lambda i: i.sample("--background", str(cube_fits(i.tmp / "cube.fits"))),
         ["cube.fits", "cubes are not supported"]),
    Case("sample-dataset-mask-path-traversal", lambda i: i.sample(masks=traversal(i.copy_dataset())),
         ["sim000000.json", "../../etc/passwd"]),
    Case("sample-unknown-set-key", lambda i: i.sample("--set", "sampler.stepz=3"), ["unknown key(s) stepz"]),
    Case("sample-batch-2**30", lambda i: i.sample("--set", f"sampler.batch_size={2**30}"),
         ["sampler.batch_size must be in"]),
    Case("sample-pickle-renamed-safetensors", lambda i: i.sample(model=i.pickled),
         ["pickled/unet/model.safetensors", "not a readable safetensors file"]),
    Case("sample-weights-of-another-architecture", lambda i: i.sample(model=i.foreign),
         ["foreign/unet/model.safetensors", "architecture"]),
    Case("sample-output-under-a-file", lambda i: i.sample(out=i.under_a_file()), ["notes.txt", "is a file, not a folder"]),
    Case("sample-parent-not-writable", lambda i: i.sample(), ["/o", "no write permission"], lambda i: deny_writes_in(i.tmp)),
]


def _tree(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (folders 0): what a refused command must leave unchanged."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else 0) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_one_line_exit_code_2_and_leaves_nothing(
    case: Case, shared: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if case.root_only_skip and os.geteuid() == 0:
        pytest.skip("running as root: chmod 0o500 does not stop root from writing (the os.access case covers it)")
    inputs = Inputs(tmp=tmp_path, **shared)
    argv = case.argv(inputs)
    if case.patch is not None:
        case.patch(inputs)(monkeypatch)
    before = _tree(tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's refusals
        code = exc.code
    captured = capsys.readouterr()
    for folder in tmp_path.rglob("ro"):
        folder.chmod(0o700)  # so that pytest can clean up
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, f"not one line:\n{captured.err}"
    assert lines[0].startswith("radiff-scale") and ": error: " in lines[0], lines[0]
    for word in case.expect:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert "Traceback" not in captured.err and "WARNING" not in captured.out + captured.err
    assert captured.out == "", captured.out
    assert _tree(tmp_path) == before, "a refused command changed its folder"


# --------------------------------------------------------------------------- the Python API


def test_api_positions_from_a_catalogue_without_position_columns(tmp_path: Path) -> None:
    from radiff_scale import positions_from_catalogue

    with pytest.raises(RadiffError) as exc:
        positions_from_catalogue(text(tmp_path / "cat.csv", "name,flux\na,1\n"))
    assert "cat.csv" in str(exc.value) and "no RA/Dec or x/y columns" in str(exc.value) and "\n" not in str(exc.value)


def test_api_positions_from_a_catalogue_with_nan_coordinates(tmp_path: Path) -> None:
    from radiff_scale import positions_from_catalogue

    with pytest.raises(RadiffError) as exc:
        positions_from_catalogue(text(tmp_path / "cat.csv", "ra,dec\n10.0,-30.0\n11.0,nan\n"))
    assert "cat.csv row 1: dec is nan" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(("positions", "message"), [
    ({"x": [10.0, float("nan")], "y": [10.0, 20.0]}, "row 1: x is nan"),
    ({"x": [10.0, 20.0]}, "no RA/Dec or x/y columns"),
    (42, "positions must be a Positions"),
])
def test_api_make_map_refuses_bad_positions_before_any_folder(
    tmp_path: Path, tiny_bundle: Path, positions: Any, message: str
) -> None:
    from radiff_scale import MapSpec, make_map

    out = tmp_path / "map"
    with pytest.raises(RadiffError) as exc:
        make_map(MapSpec(size=512, model=str(tiny_bundle)), out, positions=positions, progress=False)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not out.exists()


def test_api_make_map_refuses_a_spec_file_that_is_not_there(tmp_path: Path) -> None:
    from radiff_scale import make_map

    with pytest.raises(RadiffError) as exc:
        make_map(tmp_path / "nope.yaml", tmp_path / "map")
    assert "nope.yaml" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- a real process


def test_a_pickled_bundle_through_ray_job_submit_entry_is_one_line(shared: dict[str, Path], tmp_path: Path) -> None:
    """What ``ray job submit -- python -m jobs.make_map`` prints: the interpreter's own stderr, no traceback."""
    out = tmp_path / "map"
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.make_map", "--out", str(out), "--size", "512", "--quiet",
         "--set", f"model={shared['pickled']}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "default"},  # warnings shown, so that a stray one fails here
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("make_map: error: "), proc.stderr
    assert "model.safetensors" in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not out.exists()
