"""The training driver: one stage, from a job config to its trained weights in the run's bundle.

Stages run one after the other into one model bundle ``DIR/bundle`` (``ae`` first: the
latent U-Net trains on the frozen autoencoder's latents). Each stage is a Ray Train
``TorchTrainer`` with one DDP worker per slot (actors/trainer.py) running the loop of
radiff_scale/training/loop.py; what differs between stages is read from the stage
table (radiff_scale/training/stages.py).

Every check of the user's input comes before anything is written. Checkpoints go to
``DIR/checkpoints/<stage>/step_XXXXXXXX``; a stage that is run again continues from its
latest checkpoint, so a killed job is resumed by running the same command. The bundle
is replaced whole, only once the stage has finished.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from actors.runtime import connect_ray
from actors.trainer import fit_stage, quiet_ray_train
from radiff_scale.data.stretch import Stretch, stretch_for_card, stretch_from_dict
from radiff_scale.errors import RadiffError
from radiff_scale.models.bundle import INDEX
from radiff_scale.models.config import ModelsConfig
from radiff_scale.models.io import read_bundle_index
from radiff_scale.training.card import stage_entry, updated_card
from radiff_scale.atomic import check_output_path, replace_dir_when_done
from radiff_scale.training.checkpoints import latest_checkpoint, load_checkpoint, read_meta
from radiff_scale.training.config import StageConfig, load_train_config
from radiff_scale.training.loop import WorkerPlan
from radiff_scale.training.stages import Stage, get_stage


def run_stage(
    stage: str, config_path: str | None, overrides: dict[str, Any], out: str | Path, workers: int = 1,
    use_gpu: bool = False, progress: bool = True,
) -> dict[str, Any]:
    """Train one stage into ``out/bundle``; returns the stage's card entry."""
    spec = get_stage(stage)
    if workers < 1:
        raise RadiffError(f"--workers must be >= 1, got {workers}")
    train, models_config, resolved = load_train_config(config_path, overrides)
    stretch: Stretch = stretch_from_dict(train.stretch)
    stage_config = train.stage(stage)
    out = Path(out).resolve()  # Ray Train workers run in their own working directory
    bundle = out / "bundle"
    _check_inputs(spec, stage_config, models_config, bundle, workers, config_path)
    if spec.stretch_from_bundle:  # the U-Net learns the latents of images stretched as the autoencoder saw them
        stretch = stretch_for_card(read_bundle_index(bundle)[0].get("card") or {})
    started = time.perf_counter()
    data = spec.build_data(train, models_config, stretch, progress)

    # The input is good: from here on the run folder is written.
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.resolved.json").write_text(json.dumps(resolved, indent=2, default=str) + "\n")
    checkpoints = out / "checkpoints" / stage
    resume_from = latest_checkpoint(checkpoints)
    if resume_from is not None and progress:
        print(f"[{stage}] resuming from {resume_from.name}", file=sys.stderr)
    plan = WorkerPlan(
        stage=stage, seed=train.seed, config=stage_config, models_config=models_config, bundle=bundle,
        checkpoints=checkpoints, resume_from=resume_from,
        threads=None if use_gpu else max(1, (os.cpu_count() or 1) // workers),
        autocast=train.mixed_precision, dihedral=train.data.dihedral,
    )
    quiet_ray_train()
    # The dashboard stays on: Ray Train's placement-group cleaner queries actor state through it.
    connect_ray(workers)
    fit_stage(plan, data.arrays, workers, use_gpu, out / "ray")

    latest = latest_checkpoint(checkpoints)
    if latest is None:
        raise RuntimeError(f"stage {stage} finished without a checkpoint in {checkpoints}")
    # Fold the trained weights into the bundle (on the driver, CPU).
    models = spec.initial_models(models_config, train.seed, bundle)
    load_checkpoint(latest, getattr(models, spec.component), None)
    if spec.finish is not None:
        spec.finish(models, data)
    entry = stage_entry(spec, train, data, read_meta(latest), workers, use_gpu, time.perf_counter() - started)
    models.card = updated_card(models.card, spec, entry, stretch, data)
    replace_dir_when_done(bundle, models.save)
    if progress:
        print(f"[{stage}] done: {entry['steps']} steps, final loss {entry['final_loss']:.5f}; bundle in {bundle}")
    return entry


def _check_inputs(
    spec: Stage, stage_config: StageConfig, models_config: ModelsConfig, bundle: Path, workers: int,
    config_path: str | None,
) -> None:
    """Refuse a run that cannot work before it writes anything or starts Ray."""
    check_output_path(bundle.parent)  # the run folder: not under a file, and writable
    if stage_config.batch_size % workers:
        raise RadiffError(
            f"train.{spec.name}.batch_size {stage_config.batch_size} must be divisible by --workers {workers}"
        )
    if spec.from_bundle and not (bundle / INDEX).is_file():
        raise RadiffError(f"stage {spec.name} needs a trained autoencoder in {bundle}: run --stage ae first")
    if spec.with_mask_prior and models_config.mask_prior is None:
        raise RadiffError(f"{config_path or 'config'}: mask_prior is null, there is no mask prior to train")
