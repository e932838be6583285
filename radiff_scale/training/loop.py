"""The body of one training worker, free of any launcher: Ray Train runs it (actors/trainer.py),
and so could a test or another launcher, through a :class:`WorkerContext`.

Every rank draws its slice of the same global batch (radiff_scale/training/batches.py),
so the update does not depend on how many workers share it; rank 0 alone writes the
checkpoints, and the others wait for it before going on, so that a checkpoint on
disk always comes before any later step's report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from radiff_scale.errors import RadiffError
from radiff_scale.models.config import ModelsConfig
from radiff_scale.training.batches import WorkerBatch
from radiff_scale.training.checkpoints import load_checkpoint, save_checkpoint
from radiff_scale.training.config import StageConfig
from radiff_scale.training.stages import STAGES


class WorkerContext(Protocol):
    """What the loop needs from whoever launched it; the only place a launcher shows through."""

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def prepare_model(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped for gradient synchronisation (only called with more than one worker)."""
        ...

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        """Hand the launcher a step's metrics; ``checkpoint_dir`` is the checkpoint rank 0 just
        wrote at this step (None on other ranks and between checkpoints). Every rank calls it."""
        ...


@dataclass(frozen=True)
class WorkerPlan:
    """Everything a worker is told besides the arrays (which travel once, through the launcher)."""

    stage: str
    seed: int
    config: StageConfig
    models_config: ModelsConfig
    #: The run's bundle (the frozen autoencoder of the later stages).
    bundle: Path
    #: This stage's checkpoint folder, and the checkpoint to continue from (None: from step 0).
    checkpoints: Path
    resume_from: Path | None
    #: torch threads per worker (None: torch's default; CPU workers share the cores).
    threads: int | None
    #: bf16 autocast, taken up on CUDA devices only.
    autocast: bool
    dihedral: bool


def run_worker(plan: WorkerPlan, arrays: Mapping[str, np.ndarray], ctx: WorkerContext) -> None:
    """Train ``plan.stage`` from its start step to ``plan.config.steps`` as rank ``ctx.rank``."""
    stage, cfg, seed = STAGES[plan.stage], plan.config, plan.seed
    rank, world = ctx.rank, ctx.world_size
    if cfg.batch_size % world:
        raise RadiffError(f"batch_size {cfg.batch_size} must be divisible by the {world} workers")
    if plan.threads:
        torch.set_num_threads(int(plan.threads))
    device = ctx.device

    models = stage.initial_models(plan.models_config, seed, plan.bundle)
    models.to(device)
    trained = getattr(models, stage.component)
    for module in models.modules().values():
        module.requires_grad_(module is trained)
        module.train(module is trained)
    optimizer = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = load_checkpoint(plan.resume_from, trained, optimizer) if plan.resume_from else 0
    wrapped = ctx.prepare_model(trained) if world > 1 else trained
    setattr(models, stage.component, wrapped)
    autocast = plan.autocast and device.type == "cuda"
    distributed = world > 1 and dist.is_initialized()

    tic, seen = time.perf_counter(), 0
    for step in range(start, cfg.steps):
        batch = WorkerBatch.draw(arrays, seed, step, plan.stage, cfg.batch_size, rank, world, plan.dihedral, device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bool(autocast)):
            loss, _ = stage.loss(models, wrapped, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += cfg.batch_size
        mean_loss = loss.detach().float().reshape(1)
        if distributed:
            dist.all_reduce(mean_loss)
            mean_loss /= world
        done = step + 1
        metrics = {
            "step": done, "loss": float(mean_loss), "lr": cfg.lr,
            "samples_per_s": seen / max(time.perf_counter() - tic, 1e-9),
        }
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            written = save_checkpoint(plan.checkpoints, trained, optimizer, done, metrics) if rank == 0 else None
            if distributed:
                dist.barrier()
            ctx.report(metrics, written)
        elif done % cfg.log_every == 0:
            ctx.report(metrics, None)
        if rank == 0 and (done % cfg.log_every == 0 or done == cfg.steps or done == start + 1):
            print(
                f"[{plan.stage}] step {done}/{cfg.steps} loss {metrics['loss']:.5f} "
                f"{metrics['samples_per_s']:.1f} samples/s", flush=True,
            )
