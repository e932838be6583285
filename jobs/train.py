"""Fit the RADiff models with Ray Train: the same code on a laptop CPU and on GPU nodes.

    radiff-scale train --config configs/demo.yaml --stage ae|ldm|mask --workers N [--gpu] --out DIR
    ray job submit --working-dir . -- python -m jobs.train --config configs/paper.yaml --stage ldm --workers 8 --gpu --out DIR

Stages run one after the other into one model bundle ``DIR/bundle`` (``ae`` first: the
latent U-Net trains on the frozen autoencoder's latents). Each stage is a
``TorchTrainer`` with one DDP worker per slot; every worker draws its slice of the same
global batch, and every per-sample random draw (posterior sample, timestep, noise,
condition dropout) comes from a generator seeded by (seed, step, sample index), so N
workers with batch B/N compute the same update as one worker with batch B.

Checkpoints (weights, optimiser, step) go to ``DIR/checkpoints/<stage>/step_XXXXXXXX`` every
``checkpoint_every`` steps; a stage that is run again continues from its latest
checkpoint (the step counter goes on, it does not restart from 0), so a killed job is
resumed by running the same command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiff_scale.errors import RadiffError

STAGES = ("ae", "ldm", "mask")
#: Bundle component trained by each stage.
COMPONENT = {"ae": "autoencoder", "ldm": "unet", "mask": "mask_prior"}


@dataclass
class StageConfig:
    """Optimisation of one stage. ``batch_size`` is the *global* batch (split over workers)."""

    steps: int = 200
    batch_size: int = 8
    lr: float = 5e-5
    weight_decay: float = 0.0
    checkpoint_every: int = 50
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise RadiffError("train: steps, batch_size, checkpoint_every and log_every must be >= 1")
        if not self.lr > 0:
            raise RadiffError(f"train: lr must be > 0, got {self.lr}")


@dataclass
class DataConfig:
    """Where training cutouts come from: Survey-Collection folders and/or the simulator.

    Real images come annotated (``radiff-scale annotate``); the simulator adds what real
    sets lack (sidelobe rings and arcs, faint compact sources), in the beam and pixel
    scale its ``simulate`` settings give. Both go through the same stretch.
    """

    #: Survey-Collection dataset folders, read in order (cutouts larger than the model's
    #: image size are centre-cropped).
    datasets: list[str] = field(default_factory=list)
    #: Simulated labelled cutouts added to the datasets' (0: none).
    simulate_n: int = 1000
    simulate_seed: int = 0
    simulate: dict[str, Any] = field(default_factory=dict)
    #: Masks for the mask prior: ``bank`` (shipped real masks) or an .npz path like it.
    mask_bank: str = "bank"
    #: Each draw sees its cutout (image, mask and background alike) through one of the 8
    #: rotations/flips, chosen from the per-sample seed: real galaxies have no preferred
    #: orientation, and a few hundred real cutouts become a few thousand views.
    dihedral: bool = True

    def __post_init__(self) -> None:
        if self.simulate_n < 0:
            raise RadiffError(f"train.data.simulate_n must be >= 0, got {self.simulate_n}")
        if not self.datasets and self.simulate_n == 0:
            raise RadiffError("train.data: no datasets and simulate_n is 0, there is nothing to train on")


@dataclass
class TrainConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    ae: StageConfig = field(default_factory=lambda: StageConfig(lr=1e-4))
    ldm: StageConfig = field(default_factory=StageConfig)
    mask: StageConfig = field(default_factory=lambda: StageConfig(lr=2e-4))
    #: bf16 autocast on GPU workers (ignored on CPU).
    mixed_precision: bool = True
    #: Flux <-> [0, 1] stretch, recorded in the bundle card (radiff_scale/data/stretch.py).
    stretch: dict[str, Any] = field(default_factory=dict)


def load_train_config(path: str | None, overrides: dict[str, Any]) -> tuple[TrainConfig, Any, dict[str, Any]]:
    """(train config, models config, the whole resolved file) from one YAML job config."""
    from radiff_scale.config import from_dict, merge_overrides, read_yaml
    from radiff_scale.models.config import SECTIONS, models_config_from_dict

    data = merge_overrides(read_yaml(path) if path else {}, overrides)
    where = path or "config"
    models = models_config_from_dict(data, where=where)
    train_data = {k: v for k, v in data.items() if k not in SECTIONS}
    unknown = sorted(set(train_data) - {"train"})
    if unknown:
        raise RadiffError(f"{where}: unknown section(s) {', '.join(unknown)} (known: train, {', '.join(SECTIONS)})")
    train = from_dict(TrainConfig, train_data.get("train") or {}, where=f"{where}:train")
    return train, models, data


# --------------------------------------------------------------------------- data (driver)


def build_training_arrays(config: DataConfig, stretch: Any, size: int, progress: bool = True) -> dict[str, Any]:
    """Stretched cutouts, their class masks and background images, and how many came from where.

    Every image and background is encoded with its own background level and rms, as the
    map job encodes the background window an object lands on. A cutout without a stored
    background image gets itself with its objects' pixels set to its background level
    (never the cutout itself: the condition would hand the model its answer).
    """
    import numpy as np

    from radiff_scale.data.stretch import background_stats

    images, masks, backgrounds, sources, beams = [], [], [], [], {}
    for image, mask, background, source, ppb in _cutouts(config, size, progress):
        try:
            encoded = stretch.encode(image)
        except RadiffError:
            continue  # a constant cutout carries nothing to learn
        if background is None:
            centre, _ = background_stats(image)
            background = np.where(mask > 0, centre, np.nan_to_num(image, nan=centre))
        try:
            encoded_background = stretch.encode(background)
        except RadiffError:
            encoded_background = np.zeros_like(encoded)  # flat: the model's null background
        images.append(encoded)
        masks.append(mask)
        backgrounds.append(encoded_background)
        sources.append(source)
        if ppb is not None:
            beams.setdefault(source, []).append(ppb)
    if not images:
        raise RadiffError("no usable training cutouts (every cutout was constant)")
    counts = {name: sources.count(name) for name in dict.fromkeys(sources)}
    return {
        "images": np.stack(images).astype(np.float32),
        "masks": np.stack(masks).astype(np.uint8),
        "backgrounds": np.stack(backgrounds).astype(np.float32),
        "counts": counts,
        # What the model learned a beam to be, per source: docs/models.md (pixels per beam).
        "pixels_per_beam": {name: round(float(np.median(v)), 3) for name, v in beams.items()},
        # The scale the model works at: the median over all cutouts (map jobs resample to and from it).
        "model_pixels_per_beam": round(float(np.median([x for v in beams.values() for x in v])), 3) if beams else None,
    }


def _cutouts(config: DataConfig, size: int, progress: bool):
    """(image, class mask, background or None, source name, beam FWHM in pixels or None) per training cutout."""
    import numpy as np
    from tqdm import tqdm

    from radiff_scale.config import from_dict
    from radiff_scale.data.dataset import centre_crop
    from radiff_scale.data.sc_format import list_samples, read_sample
    from radiff_scale.data.simulate import SimConfig, simulate_cutout
    from radiff_scale.seeding import derive_seed

    for folder in config.datasets:
        root = Path(folder)
        for path in tqdm(list_samples(root), desc=f"reading {root.name}", disable=not progress):
            sample = read_sample(path, root)
            image = centre_crop(sample.image, size, str(path))
            background = None if sample.background is None else centre_crop(sample.background, size, str(path))
            ppb = sample.meta.get("pixels_per_beam")
            ppb = float(ppb) if isinstance(ppb, (int, float)) and not isinstance(ppb, bool) else None
            yield image, centre_crop(sample.class_mask(), size), background, str(folder), ppb
    if config.simulate_n:
        sim = from_dict(SimConfig, config.simulate, where="train.data.simulate")
        ppb = (sim.bmaj_arcsec * sim.bmin_arcsec) ** 0.5 / sim.pixel_scale_arcsec
        for i in tqdm(range(config.simulate_n), desc="simulating cutouts", disable=not progress):
            cut = simulate_cutout(sim, derive_seed(config.simulate_seed, i, "simulate"))
            yield cut.image, cut.class_mask(), cut.background, "simulated", ppb


def dihedral(array: Any, code: int) -> Any:
    """One of the 8 rotations/flips of the last two axes (code 0 is the identity)."""
    import numpy as np

    out = np.rot90(array, k=code % 4, axes=(-2, -1))
    return np.flip(out, axis=-1) if code >= 4 else out


def mask_prior_arrays(config: DataConfig, size: int) -> dict[str, Any]:
    """The bank's masks at the mask prior's ``mask_size`` (the bank serves 128x128 masks)."""
    from radiff_scale.data.mask_bank import BANK_SIZE, MaskBank, crop_or_resize

    bank = MaskBank.default() if config.mask_bank == "bank" else MaskBank.from_npz(config.mask_bank)
    import numpy as np

    masks = np.stack([bank.mask(i) for i in range(len(bank))]).astype(np.uint8)
    return {"masks": masks if size == BANK_SIZE else crop_or_resize(masks, size)}


# --------------------------------------------------------------------------- checkpoints


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint of a stage (a folder is complete once its meta.json exists)."""
    done = sorted(p for p in folder.glob("step_*") if (p / "meta.json").is_file())
    return done[-1] if done else None


def save_checkpoint(folder: Path, module: Any, optimizer: Any, step: int, metrics: dict[str, float]) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step_{step:08d}"
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}"
    tmp.mkdir()
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "meta.json").write_text(json.dumps({"step": step, "metrics": metrics}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load_checkpoint(path: Path, module: Any, optimizer: Any | None) -> int:
    import torch

    from radiff_scale.models.io import load_state

    load_state(module, path / "model.safetensors")
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    return int(json.loads((path / "meta.json").read_text())["step"])


# --------------------------------------------------------------------------- worker loop


def _per_sample_generators(seed: int, step: int, stage: str, indices: Sequence[int], device: Any) -> list:
    import torch

    from radiff_scale.seeding import derive_seed

    return [
        torch.Generator(device=device).manual_seed(derive_seed(seed, step * 1_000_003 + int(i), f"train-{stage}"))
        for i in indices
    ]


def _dihedral_codes(seed: int, step: int, stage: str, positions: Sequence[int]) -> list[int]:
    """The rotation/flip of each position of the step's global batch (from seed, step and position only)."""
    from radiff_scale.seeding import derive_seed

    return [derive_seed(seed, step * 1_000_003 + int(i), f"dihedral-{stage}") % 8 for i in positions]


def global_batch(seed: int, step: int, stage: str, n: int, batch_size: int) -> Any:
    """The step's global batch: sample indices drawn from (seed, step) only."""
    from radiff_scale.seeding import derive_rng

    return derive_rng(seed, step, f"batch-{stage}").choice(n, size=batch_size, replace=batch_size > n)


def train_loop_per_worker(loop: dict[str, Any]) -> None:
    """One DDP worker of one stage (runs inside Ray Train)."""
    import numpy as np
    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    from radiff_scale.diffusion.loss import ldm_loss, mask_prior_loss
    from radiff_scale.models.autoencoder import ae_loss
    from radiff_scale.models.config import models_config_from_dict
    from radiff_scale.models.io import RadiffModels

    stage, seed, cfg = loop["stage"], loop["seed"], StageConfig(**loop["stage_config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if cfg.batch_size % world:
        raise RadiffError(f"batch_size {cfg.batch_size} must be divisible by the {world} workers")
    if loop.get("threads"):
        torch.set_num_threads(int(loop["threads"]))
    device = ray.train.torch.get_device()
    arrays = ray.get(loop["data_ref"])
    n = len(arrays["masks"])

    if stage == "ae":
        models = RadiffModels.from_config(models_config_from_dict(loop["models_config"]), seed=seed, with_mask_prior=False)
    else:
        models = RadiffModels.load(loop["bundle"], device="cpu")
        fresh = RadiffModels.from_config(
            models_config_from_dict(loop["models_config"]), seed=seed, with_mask_prior=stage == "mask"
        )
        if stage == "ldm":
            models.unet = fresh.unet
        else:
            models.mask_prior = fresh.mask_prior
    models.to(device)
    trained = getattr(models, COMPONENT[stage])
    for module in models.modules().values():
        module.requires_grad_(module is trained)
        module.train(module is trained)
    optimizer = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    resume_from = loop.get("resume_from")
    if resume_from:
        start = load_checkpoint(Path(resume_from), trained, optimizer)
    wrapped = ray.train.torch.prepare_model(trained, move_to_device=False) if world > 1 else trained
    setattr(models, COMPONENT[stage], wrapped)
    autocast = loop.get("autocast") and device.type == "cuda"
    per_worker = cfg.batch_size // world
    tic, seen = time.perf_counter(), 0
    for step in range(start, cfg.steps):
        idx = global_batch(seed, step, stage, n, cfg.batch_size)
        local = idx[rank * per_worker : (rank + 1) * per_worker]
        positions = range(rank * per_worker, (rank + 1) * per_worker)
        gens = _per_sample_generators(seed, step, stage, positions, "cpu")
        codes = _dihedral_codes(seed, step, stage, positions) if loop["dihedral"] else [0] * len(local)

        def take(name: str) -> Any:
            return np.stack([dihedral(arrays[name][i], c) for i, c in zip(local, codes)])

        masks = torch.from_numpy(take("masks").astype(np.int64)).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bool(autocast)):
            if stage == "ae":
                images = torch.from_numpy(take("images")).unsqueeze(1).to(device)
                loss, logs = ae_loss(wrapped, images, generator=gens)
            elif stage == "ldm":
                batch = {
                    "images": torch.from_numpy(take("images")).unsqueeze(1).to(device),
                    "masks": masks,
                    "backgrounds": torch.from_numpy(take("backgrounds")).unsqueeze(1).to(device),
                }
                loss, logs = ldm_loss(models, batch, generator=gens)
            else:
                loss, logs = mask_prior_loss(wrapped, masks, generator=gens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += cfg.batch_size
        mean_loss = loss.detach().float().reshape(1)
        if world > 1 and dist.is_initialized():
            dist.all_reduce(mean_loss)
            mean_loss /= world
        done = step + 1
        metrics = {
            "step": done, "loss": float(mean_loss), "lr": cfg.lr,
            "samples_per_s": seen / max(time.perf_counter() - tic, 1e-9),
        }
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            if rank == 0:
                save_checkpoint(Path(loop["checkpoints"]), trained, optimizer, done, metrics)
            if world > 1 and dist.is_initialized():
                dist.barrier()
            ray.train.report(metrics)
        elif done % cfg.log_every == 0:
            ray.train.report(metrics)
        if rank == 0 and (done % cfg.log_every == 0 or done == cfg.steps or done == start + 1):
            print(
                f"[{stage}] step {done}/{cfg.steps} loss {metrics['loss']:.5f} "
                f"{metrics['samples_per_s']:.1f} samples/s", flush=True,
            )


# --------------------------------------------------------------------------- driver


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_stage(
    stage: str, config_path: str | None, overrides: dict[str, Any], out: str | Path, workers: int = 1,
    use_gpu: bool = False, progress: bool = True,
) -> dict[str, Any]:
    """Train one stage into ``out/bundle``; returns the stage's card entry."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from radiff_scale.config import to_dict
    from radiff_scale.models.io import INDEX, RadiffModels

    if stage not in STAGES:
        raise RadiffError(f"unknown stage {stage!r} (expected one of {', '.join(STAGES)})")
    if workers < 1:
        raise RadiffError(f"--workers must be >= 1, got {workers}")
    from radiff_scale.data.stretch import stretch_from_dict

    train, models_config, resolved = load_train_config(config_path, overrides)
    stretch = stretch_from_dict(train.stretch)
    stage_cfg: StageConfig = getattr(train, stage)
    if stage_cfg.batch_size % workers:
        raise RadiffError(f"train.{stage}.batch_size {stage_cfg.batch_size} must be divisible by --workers {workers}")
    out = Path(out)
    bundle = out / "bundle"
    if stage != "ae" and not (bundle / INDEX).is_file():
        raise RadiffError(f"stage {stage} needs a trained autoencoder in {bundle}: run --stage ae first")
    if stage == "ldm":  # the U-Net learns the latents of images stretched as the autoencoder saw them
        from radiff_scale.data.stretch import stretch_for_card
        from radiff_scale.models.io import read_bundle_index

        stretch = stretch_for_card(read_bundle_index(bundle)[0].get("card") or {})

    started = time.perf_counter()
    if stage == "mask":
        if models_config.mask_prior is None:
            raise RadiffError(f"{config_path or 'config'}: mask_prior is null, there is no mask prior to train")
        arrays = mask_prior_arrays(train.data, models_config.mask_prior.mask_size)
        counts, beams, native_beam = {train.data.mask_bank: len(arrays["masks"])}, {}, None
    else:
        size = models_config.autoencoder.image_size
        arrays = build_training_arrays(train.data, stretch, size, progress=progress)
        counts = arrays.pop("counts")
        beams = arrays.pop("pixels_per_beam")
        native_beam = arrays.pop("model_pixels_per_beam")
        if arrays["images"].shape[-2:] != (size, size):
            got = "x".join(map(str, arrays["images"].shape[-2:]))
            raise RadiffError(
                f"train.data: training cutouts are {got} but autoencoder.image_size is {size} "
                "(set train.data.simulate.size to the model's image size)"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.resolved.json").write_text(json.dumps(resolved, indent=2, default=str) + "\n")
    checkpoints = out / "checkpoints" / stage
    resume_from = latest_checkpoint(checkpoints)
    if resume_from is not None and progress:
        print(f"[{stage}] resuming from {resume_from.name}", file=sys.stderr)

    # One copy of each worker's progress line (not two), and no preemption-watcher actor,
    # whose only effect on a laptop is an error line at start-up.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    from jobs._entry import connect_ray

    # The dashboard stays on: Ray Train's placement-group cleaner queries actor state through it.
    connect_ray(workers)
    threads = None if use_gpu else max(1, (os.cpu_count() or 1) // workers)
    loop = {
        "stage": stage, "seed": train.seed, "stage_config": to_dict(stage_cfg),
        "models_config": to_dict(models_config), "data_ref": ray.put(arrays), "bundle": str(bundle),
        "checkpoints": str(checkpoints), "resume_from": str(resume_from) if resume_from else None,
        "threads": threads, "autocast": train.mixed_precision, "dihedral": train.data.dihedral,
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=None if use_gpu else {"CPU": 1}),
        run_config=RunConfig(name=f"{stage}-{uuid.uuid4().hex[:8]}", storage_path=str((out / "ray").resolve())),
    )
    trainer.fit()
    latest = latest_checkpoint(checkpoints)
    if latest is None:
        raise RuntimeError(f"stage {stage} finished without a checkpoint in {checkpoints}")
    meta = json.loads((latest / "meta.json").read_text())

    # Fold the trained weights into the bundle (on the driver, CPU).
    if stage == "ae":
        models = RadiffModels.from_config(models_config, seed=train.seed, with_mask_prior=False)
        load_checkpoint(latest, models.autoencoder, None)
        import torch

        sample = torch.from_numpy(arrays["images"][: min(512, len(arrays["images"]))]).unsqueeze(1)
        models.autoencoder.config = _measure_latents(models.autoencoder, sample)
        models.card = {}
    else:
        models = RadiffModels.load(bundle)
        fresh = RadiffModels.from_config(models_config, seed=train.seed, with_mask_prior=stage == "mask")
        if stage == "ldm":
            models.unet = fresh.unet
            load_checkpoint(latest, models.unet, None)
        else:
            models.mask_prior = fresh.mask_prior
            load_checkpoint(latest, models.mask_prior, None)
    entry = {
        "steps": meta["step"], "final_loss": meta["metrics"]["loss"], "samples_per_s": meta["metrics"]["samples_per_s"],
        "workers": workers, "gpu": use_gpu, "batch_size": stage_cfg.batch_size, "lr": stage_cfg.lr,
        "seconds": round(time.perf_counter() - started, 1), "commit": _git_commit(), "config": to_dict(stage_cfg),
        "data": to_dict(train.data), "cutouts": counts, "pixels_per_beam": beams, "seed": train.seed,
    }
    card = dict(models.card)
    card.setdefault("stages", {})[stage] = entry
    if stage != "mask":
        card["stretch"] = stretch.to_card()
        if native_beam is not None:
            card["pixels_per_beam"] = native_beam
        card.pop("preprocess_reference", None)  # the published chain's; this bundle uses the stretch above
    card["made_by"] = "radiff-scale train (jobs/train.py, Ray Train TorchTrainer)"
    models.card = card
    tmp = out / f".bundle.{uuid.uuid4().hex}"
    models.save(tmp)
    if bundle.exists():
        shutil.rmtree(bundle)
    os.replace(tmp, bundle)
    if progress:
        print(f"[{stage}] done: {entry['steps']} steps, final loss {entry['final_loss']:.5f}; bundle in {bundle}")
    return entry


def _measure_latents(autoencoder: Any, images: Any) -> Any:
    from radiff_scale.models.autoencoder import measure_latent_stats

    autoencoder.eval()
    return measure_latent_stats(autoencoder, images)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="job YAML with model sections and a train: section")
    parser.add_argument("--stage", required=True, choices=STAGES, help="which model to fit (ae first)")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (DDP ranks)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker, bf16 autocast")
    parser.add_argument("--out", default="runs/model", help="run folder: bundle/, checkpoints/, ray/")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.ae.steps=2 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run_from_args(args: argparse.Namespace) -> int:
    from radiff_scale.config import parse_override

    overrides = dict(parse_override(o) for o in args.overrides)
    run_stage(args.stage, args.config, overrides, args.out, args.workers, args.gpu, progress=not args.quiet)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from jobs._entry import job_main

    return job_main("train", __doc__, add_arguments, run_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
