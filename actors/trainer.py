"""Ray Train's side of the training job: one stage's TorchTrainer, and the loop's context in it.

The worker loop is :func:`radiff_scale.training.loop.run_worker`; here it learns its
rank, device and DDP wrap from Ray Train, and its metrics go back to Ray Train.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from torch import nn

from radiff_scale.training.loop import WorkerPlan, run_worker


def quiet_ray_train() -> None:
    """Settings Ray Train reads from the environment; call before Ray starts (workers inherit them).

    One copy of each worker's progress line (not two), and no preemption-watcher actor,
    whose only effect on a laptop is an error line at start-up.
    """
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")


@dataclass(frozen=True)
class RayTrainContext:
    """The loop's :class:`~radiff_scale.training.loop.WorkerContext` inside a Ray Train worker."""

    rank: int
    world_size: int
    device: torch.device

    @classmethod
    def current(cls) -> RayTrainContext:
        ctx = ray.train.get_context()
        return cls(ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device())

    def prepare_model(self, module: nn.Module) -> nn.Module:
        # The loop has already put the module on its device.
        return ray.train.torch.prepare_model(module, move_to_device=False)

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        # Metrics only: the job keeps its own checkpoints where a rerun resumes from
        # (DIR/checkpoints); a ray.train.Checkpoint would make Ray copy each one into DIR/ray.
        ray.train.report(metrics)


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    """One DDP worker of one stage (what each Ray Train worker process runs)."""
    arrays: Mapping[str, np.ndarray] = ray.get(config["arrays"])
    run_worker(config["plan"], arrays, RayTrainContext.current())


def fit_stage(plan: WorkerPlan, arrays: Mapping[str, np.ndarray], workers: int, use_gpu: bool, storage: Path) -> None:
    """Run ``plan`` on ``workers`` Ray Train workers (one GPU or one CPU each); Ray must be up.

    The arrays go into the object store once and every worker reads that one copy;
    Ray Train keeps its run records under ``storage``.
    """
    trainer = TorchTrainer(
        _train_loop_per_worker,
        train_loop_config={"plan": plan, "arrays": ray.put(dict(arrays))},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker=None if use_gpu else {"CPU": 1}
        ),
        run_config=RunConfig(name=f"{plan.stage}-{uuid.uuid4().hex[:8]}", storage_path=str(storage.resolve())),
    )
    trainer.fit()
