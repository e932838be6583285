"""The Ray Train job (jobs/train.py, radiff_scale/training/) on toy models: every stage end to end, kill-and-resume,
DDP equivalence (N workers x B/N == 1 worker x B) and one-line errors.

The Ray fits dominate the run time (each TorchTrainer starts a controller and its
worker processes), so one module-scoped run of all three stages with two workers
serves the bundle checks and is the two-worker side of the DDP comparisons.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.train import main as train_main
from radiff_scale.pipelines.train_job import run_stage
from radiff_scale.training.checkpoints import latest_checkpoint
from radiff_scale.training.stages import STAGES

REPO = Path(__file__).resolve().parents[1]
STEPS = 2


def _train_section() -> dict[str, Any]:
    stage = {"steps": STEPS, "batch_size": 4, "lr": 1.0e-3, "checkpoint_every": 1, "log_every": 1}
    return {
        "seed": 0,
        "mixed_precision": False,
        "data": {"simulate_n": 8, "simulate_seed": 0, "simulate": {"size": 32}},
        **{name: dict(stage) for name in STAGES},
    }


@pytest.fixture(autouse=True, scope="module")
def _no_preemption_watcher() -> Any:
    """Spare the preemption watcher actor that Ray Train starts with every fit (it polls
    node drain state, which a one-node local Ray never has): 2 cores do all the work here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
        yield


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy architecture (32x32 images) plus a 2-step ``train:`` section, as one job YAML."""
    from radiff_scale.config import to_dict
    from radiff_scale.models.config import tiny_models_config

    data = to_dict(tiny_models_config())
    data["train"] = _train_section()
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory: pytest.TempPathFactory, tiny_config: Path, ray_local: Any) -> dict[str, Any]:
    """ae, then ldm, then mask, then distil, each with two CPU workers, into one run folder."""
    out = tmp_path_factory.mktemp("train") / "w2"
    entries = {stage: run_stage(stage, str(tiny_config), {}, out, workers=2, progress=False) for stage in STAGES}
    return {"out": out, "entries": entries}


def _weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _checkpoint(out: Path, stage: str, step: int) -> Path:
    return out / "checkpoints" / stage / f"step_{step:08d}"


def _meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "meta.json").read_text())


def _update_mismatch(a: dict[str, Any], b: dict[str, Any], initial: dict[str, Any]) -> float:
    """|w_a - w_b| / |w_a - w_0| over all tensors: how far two runs' weight updates disagree.

    Elementwise closeness is the wrong test after AdamW: a parameter whose gradient is
    near Adam's eps moves by a sizeable fraction of lr on float rounding alone (seen: one
    element in 8192 off by 1.7% of lr), while the update as a whole agrees to ~1e-4 or better.
    """
    import torch

    assert a.keys() == b.keys() == initial.keys()
    diff = math.sqrt(sum(float(torch.sum((a[k].double() - b[k].double()) ** 2)) for k in a))
    moved = math.sqrt(sum(float(torch.sum((a[k].double() - initial[k].double()) ** 2)) for k in a))
    assert moved > 0, "the weights did not change at all"
    return diff / moved


# --------------------------------------------------------------------------- CLI


def test_train_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    from radiff_scale.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--stage", "--workers", "--gpu", "--out", "--set", "--config"):
        assert option in text
    assert "{ae,ldm,mask,distil}" in text


# --------------------------------------------------------------------------- smoke run of every stage


def test_every_stage_lands_in_one_loadable_bundle(two_worker_run: dict[str, Any]) -> None:
    from radiff_scale.models.io import RadiffModels

    out = two_worker_run["out"]
    models = RadiffModels.load(out / "bundle")
    assert models.autoencoder is not None and models.unet is not None and models.mask_prior is not None
    assert models.student is not None and models.student.config.unet == models.unet.config
    for component in ("autoencoder", "unet", "mask_prior", "student"):
        assert (out / "bundle" / component / "model.safetensors").is_file()
    assert not list(out.glob(".bundle.*")), "no half-written bundle may be left behind"

    stages = models.card["stages"]
    assert set(stages) == set(STAGES)
    for stage in STAGES:
        assert stages[stage]["steps"] == STEPS
        assert stages[stage]["workers"] == 2
        assert math.isfinite(stages[stage]["final_loss"]) and stages[stage]["final_loss"] > 0
        assert stages[stage]["final_loss"] == pytest.approx(_meta(_checkpoint(out, stage, STEPS))["metrics"]["loss"])
        assert two_worker_run["entries"][stage]["steps"] == STEPS
    assert models.card["stretch"]["kind"] == "asinh_sigma" and "preprocess_reference" not in models.card
    assert models.card["stages"]["ae"]["cutouts"] == {"simulated": 8}
    assert models.card["stages"]["ae"]["pixels_per_beam"]["simulated"] == pytest.approx((9.8 * 5.8) ** 0.5 / 1.5, abs=1e-3)
    assert models.card["pixels_per_beam"] == pytest.approx((9.8 * 5.8) ** 0.5 / 1.5, abs=1e-3)
    assert json.loads((out / "config.resolved.json").read_text())["train"]["ae"]["steps"] == STEPS


def test_bundle_holds_the_trained_weights_of_each_stage(two_worker_run: dict[str, Any]) -> None:
    """The bundle's tensors are the last checkpoint's (not fresh ones), and later stages leave the
    autoencoder untouched."""
    import torch

    from radiff_scale.models.config import tiny_models_config
    from radiff_scale.models.io import RadiffModels

    out = two_worker_run["out"]
    fresh = RadiffModels.from_config(tiny_models_config(), seed=0)
    for stage, component in (("ae", "autoencoder"), ("ldm", "unet"), ("mask", "mask_prior")):
        trained = _weights(_checkpoint(out, stage, STEPS) / "model.safetensors")
        in_bundle = _weights(out / "bundle" / component / "model.safetensors")
        assert trained.keys() == in_bundle.keys()
        assert all(torch.equal(trained[k], in_bundle[k]) for k in trained), component
        initial = getattr(fresh, component).state_dict()
        assert any(not torch.equal(trained[k], initial[k]) for k in trained), f"{stage} did not train"
    # The student starts as the bundle's teacher (plus a zero guidance projection) and moves away from it.
    student = _weights(_checkpoint(out, "distil", STEPS) / "model.safetensors")
    in_bundle = _weights(out / "bundle" / "student" / "model.safetensors")
    assert in_bundle.keys() == student.keys() and all(torch.equal(student[k], in_bundle[k]) for k in student)
    teacher = _weights(out / "bundle" / "unet" / "model.safetensors")
    assert set(student) == {f"net.{k}" for k in teacher} | {"net.unet.time_embedding.cond_proj.weight"}
    assert any(not torch.equal(student[f"net.{k}"], teacher[k]) for k in teacher), "distil did not train"
    assert student["net.unet.time_embedding.cond_proj.weight"].abs().sum() > 0, "the guidance input was not learnt"
    # Retraining the U-Net would make the student stale: the ldm stage starts without one.
    from radiff_scale.training.stages import get_stage

    restarted = get_stage("ldm").initial_models(tiny_models_config(), 0, out / "bundle")
    assert restarted.student is None and RadiffModels.load(out / "bundle").student is not None
    ae_config = json.loads((out / "bundle" / "autoencoder" / "config.json").read_text())
    assert len(ae_config["scaling_factor"]) == ae_config["latent_channels"], "latent scaling is measured after the ae stage"


# --------------------------------------------------------------------------- DDP equivalence


def _compare_runs(out_a: Path, out_b: Path, stage: str) -> None:
    from radiff_scale.models.config import tiny_models_config
    from radiff_scale.models.io import RadiffModels

    fresh = RadiffModels.from_config(tiny_models_config(), seed=0, with_mask_prior=False)
    initial = {"ae": fresh.autoencoder, "ldm": fresh.unet}[stage].state_dict()
    for step in range(1, STEPS + 1):
        loss_a = _meta(_checkpoint(out_a, stage, step))["metrics"]["loss"]
        loss_b = _meta(_checkpoint(out_b, stage, step))["metrics"]["loss"]
        assert loss_a == pytest.approx(loss_b, rel=1e-4), f"{stage} loss at step {step}"
        mismatch = _update_mismatch(
            _weights(_checkpoint(out_a, stage, step) / "model.safetensors"),
            _weights(_checkpoint(out_b, stage, step) / "model.safetensors"),
            initial,
        )
        print(f"{stage} step {step}: losses {loss_a:.8f} / {loss_b:.8f}, update mismatch {mismatch:.2e}")
        assert mismatch < 1e-3, f"{stage} weights after step {step} differ by {mismatch:.2e} of the update"
    # the measure tells different updates apart: one step against two
    off_by_one = _update_mismatch(
        _weights(_checkpoint(out_a, stage, 1) / "model.safetensors"),
        _weights(_checkpoint(out_b, stage, 2) / "model.safetensors"),
        initial,
    )
    assert off_by_one > 0.1


def test_two_workers_with_half_batches_match_one_worker_ae(
    two_worker_run: dict[str, Any], tiny_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "w1"
    run_stage("ae", str(tiny_config), {}, out, workers=1, progress=False)
    _compare_runs(out, two_worker_run["out"], "ae")
    # the losses of consecutive steps differ, so a step mix-up would not pass as agreement
    first, last = (_meta(_checkpoint(out, "ae", s))["metrics"]["loss"] for s in (1, STEPS))
    assert first != pytest.approx(last, rel=1e-4)


def test_two_workers_with_half_batches_match_one_worker_ldm(
    two_worker_run: dict[str, Any], tiny_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "w1"
    out.mkdir()
    # the same frozen autoencoder as the two-worker ldm stage saw
    shutil.copytree(two_worker_run["out"] / "bundle", out / "bundle")
    run_stage("ldm", str(tiny_config), {}, out, workers=1, progress=False)
    _compare_runs(out, two_worker_run["out"], "ldm")


# --------------------------------------------------------------------------- kill and resume


def _processes_with(marker: str) -> list[str]:
    """Processes whose environment carries ``marker`` (every process the killed job started)."""
    found = []
    needle = marker.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes():
                found.append(f"{proc.name} {(proc / 'cmdline').read_bytes()[:80]!r}")
        except OSError:
            continue
    return found


def _snapshot(folder: Path) -> dict[str, Any]:
    return {
        "mtime": (folder / "meta.json").stat().st_mtime_ns,
        "meta": (folder / "meta.json").read_text(),
        "weights": hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest(),
    }


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find orphan processes")
def test_killed_job_resumes_and_the_step_counter_goes_on(
    tiny_config: Path, tmp_path: Path, ray_local: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    steps, every = 20, 2  # ~18 steps of margin between the first checkpoint and the end
    out = tmp_path / "killed"
    overrides = {"train.ae.steps": steps, "train.ae.checkpoint_every": every, "train.ae.log_every": 100}
    token = uuid.uuid4().hex  # inherited by every process the job starts, its local Ray included
    ray_tmp = tempfile.mkdtemp(prefix="rsk")  # short: Ray's socket paths live under it
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, not ours
    env.update(PYTHONPATH=str(REPO), RAY_TMPDIR=ray_tmp, RADIFF_TRAIN_TEST_MARKER=token)
    args = [sys.executable, "-m", "jobs.train", "--config", str(tiny_config), "--stage", "ae", "--workers", "1",
            "--out", str(out), "--quiet", *(a for k, v in overrides.items() for a in ("--set", f"{k}={v}"))]
    log = tmp_path / "killed.log"  # a file, not a pipe: a full pipe would stall the job
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    folder = out / "checkpoints" / "ae"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and latest_checkpoint(folder) is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its whole local Ray
        proc.wait()
        deadline = time.monotonic() + 30
        while (left := _processes_with(f"RADIFF_TRAIN_TEST_MARKER={token}")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, f"processes survived the kill: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == -signal.SIGKILL, f"the job ended before it was killed:\n{log.read_text()[-2000:]}"

    before = {p.name: _snapshot(p) for p in folder.glob("step_*") if (p / "meta.json").is_file()}
    assert before, "no complete checkpoint was written before the kill"
    killed_at = _meta(latest_checkpoint(folder))["step"]
    assert 0 < killed_at < steps, "the kill must land mid-run"
    assert not (out / "bundle").exists(), "a killed run must not look finished"

    capsys.readouterr()
    entry = run_stage("ae", str(tiny_config), overrides, out, workers=1, progress=True)
    assert f"resuming from step_{killed_at:08d}" in capsys.readouterr().err

    after = sorted(p.name for p in folder.glob("step_*") if (p / "meta.json").is_file())
    assert after == [f"step_{s:08d}" for s in range(every, steps + 1, every)]
    for name, snapshot in before.items():
        assert _snapshot(folder / name) == snapshot, f"{name} was rewritten: training restarted from 0"
    assert _meta(latest_checkpoint(folder))["step"] == steps
    assert entry["steps"] == steps
    assert all(_meta(folder / name)["step"] > killed_at for name in after if name not in before)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "3"], "batch_size 4 must be divisible by --workers 3"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--set", "trian.ae.steps=2"], "unknown section(s) trian"),
        (["--set", "train.ae.stepz=2"], "unknown key(s) stepz"),
        (["--set", "autoencoder.base_chanels=8"], "unknown key(s) base_chanels"),
        (["--set", "train.ae.steps=0"], "steps, batch_size, checkpoint_every and log_every must be >= 1"),
        (["--set", "train.data.simulate.size=64"], "training cutouts are 64x64 but autoencoder.image_size is 32"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    extra: list[str], message: str, tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_main(["--config", str(tiny_config), "--stage", "ae", "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error:") and "\n" not in err and message in err, err
    assert not out.exists(), "a refused job must not write anything"


def test_later_stages_need_the_autoencoder_first(tiny_config: Path, tmp_path: Path, capsys) -> None:
    for stage in ("ldm", "mask"):
        assert train_main(["--config", str(tiny_config), "--stage", stage, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "run --stage ae first" in err, err


def test_mask_stage_needs_a_mask_prior_section(tiny_config: Path, tmp_path: Path, capsys) -> None:
    from radiff_scale.models.io import INDEX

    (tmp_path / "run" / "bundle").mkdir(parents=True)
    (tmp_path / "run" / "bundle" / INDEX).write_text("{}")  # past the "ae first" check; never read
    args = ["--config", str(tiny_config), "--stage", "mask", "--out", str(tmp_path / "run"), "--set", "mask_prior=null"]
    assert train_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "mask_prior is null" in err, err


def test_unknown_stage_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        train_main(["--stage", "vae", "--out", "unused"])
    assert exc.value.code == 2
    assert "invalid choice: 'vae'" in capsys.readouterr().err


def test_missing_config_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert train_main(["--config", str(missing), "--stage", "ae", "--out", str(tmp_path / "run")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_dihedral_views_are_the_eight_symmetries_and_depend_only_on_seed_step_and_position() -> None:
    import numpy as np

    from radiff_scale.training.batches import dihedral_codes
    from radiff_scale.training.data import dihedral

    image = np.arange(12.0).reshape(3, 4)
    views = [dihedral(image, code) for code in range(8)]
    assert np.array_equal(views[0], image)
    assert len({v.tobytes() + bytes(v.shape) for v in views}) == 8  # all different
    for code, view in enumerate(views):  # each is a rotation/flip, so it holds the same pixels
        assert sorted(view.ravel()) == sorted(image.ravel()), code
    codes = dihedral_codes(0, 5, "ldm", range(16))
    assert codes == dihedral_codes(0, 5, "ldm", range(16)) and set(codes) <= set(range(8))
    assert codes[8:] == dihedral_codes(0, 5, "ldm", range(8, 16))  # a worker's half of the batch
    assert codes != dihedral_codes(0, 6, "ldm", range(16))


def test_training_arrays_from_a_dataset_without_backgrounds_hide_the_objects(tmp_path: Path) -> None:
    """A cutout without a stored background is conditioned on itself with its objects set to the
    background level, never on itself whole (the condition would hand the model its answer)."""
    import numpy as np

    from radiff_scale.training.config import DataConfig
    from radiff_scale.training.data import build_training_arrays
    from radiff_scale.classes import SourceClass
    from radiff_scale.data.sc_format import AnnotatedObject, Sample, write_sample
    from radiff_scale.data.stretch import AsinhStretch

    rng = np.random.default_rng(0)
    image = rng.normal(0.0, 1e-4, (40, 40)).astype(np.float32)
    image[18:22, 18:22] += 5e-2
    mask = np.zeros((40, 40), bool)
    mask[17:23, 17:23] = True
    write_sample(tmp_path / "ds", Sample("a", image, [AnnotatedObject(SourceClass.COMPACT, mask)]))
    arrays = build_training_arrays(DataConfig(datasets=[str(tmp_path / "ds")], simulate_n=0), AsinhStretch(), 32,
                                   progress=False)
    assert arrays["images"].shape == (1, 32, 32) and arrays["counts"] == {str(tmp_path / "ds"): 1}
    assert arrays["masks"][0].max() == int(SourceClass.COMPACT)
    assert arrays["images"][0].max() > 0.8  # the 500-sigma source
    assert arrays["backgrounds"][0].max() < 0.5  # only noise is left in the condition
