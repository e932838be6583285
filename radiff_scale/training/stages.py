"""The stage table: everything that differs between ``ae``, ``ldm``, ``mask`` and ``distil``, in one place.

The driver and the worker loop are written once for every stage and read what a stage
needs from its :class:`Stage` entry: which bundle component it fits, what it starts
from, which arrays it trains on, its loss, and what it records in the bundle card.
Adding a stage is adding a row here (and its StageConfig to TrainConfig).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from radiff_scale.data.stretch import Stretch
from radiff_scale.diffusion.distillation import guidance_distillation_loss
from radiff_scale.diffusion.loss import ldm_loss, mask_prior_loss
from radiff_scale.errors import RadiffError
from radiff_scale.models.autoencoder import ae_loss, measure_latent_stats
from radiff_scale.models.config import ModelsConfig
from radiff_scale.models.io import RadiffModels
from radiff_scale.models.student import GuidedStudent, StudentConfig
from radiff_scale.training.batches import WorkerBatch
from radiff_scale.training.config import STAGE_NAMES, TrainConfig
from radiff_scale.training.data import build_training_arrays, mask_prior_arrays

#: Cutouts the autoencoder's latent statistics are measured on once it is trained.
LATENT_SAMPLE = 512


@dataclass(frozen=True)
class StageData:
    """A stage's training arrays (shared by all workers) and where they came from (for the card)."""

    arrays: dict[str, np.ndarray]
    #: Cutouts per source (dataset folder, ``simulated`` or the mask bank).
    counts: dict[str, int]
    #: Median beam FWHM in pixels per source (image stages).
    pixels_per_beam: dict[str, float]
    #: The scale the model works at, over all cutouts (image stages; None when unknown).
    model_pixels_per_beam: float | None


Loss = Callable[[RadiffModels, nn.Module, WorkerBatch], tuple[torch.Tensor, dict[str, float]]]
BuildData = Callable[[TrainConfig, ModelsConfig, Stretch, bool], StageData]
Finish = Callable[[RadiffModels, StageData], None]
Start = Callable[[RadiffModels, ModelsConfig], nn.Module]


@dataclass(frozen=True)
class Stage:
    """One row of the stage table."""

    name: str
    #: The RadiffModels attribute (and bundle folder) the stage fits; every other one is frozen.
    component: str
    #: Starts from the run's bundle (the trained autoencoder) rather than from nothing.
    from_bundle: bool
    #: Builds the mask prior; a config whose ``mask_prior`` is null cannot run the stage.
    with_mask_prior: bool
    #: Stretches images as the bundle's autoencoder saw them (not as ``train.stretch`` says).
    stretch_from_bundle: bool
    #: Records the stretch and the model's pixels per beam in the card (the image stages).
    records_stretch: bool
    build_data: BuildData
    #: ``loss(models, trained, batch)``: ``trained`` is the (maybe DDP-wrapped) component,
    #: also set on ``models``; only a wrapper's forward synchronises gradients.
    loss: Loss
    #: Run on the driver once the trained weights are in the models, before they are saved.
    finish: Finish | None = None
    #: Builds the component from the bundle's trained ones instead of fresh weights (the
    #: student starts as a copy of the teacher).
    start: Start | None = None
    #: Components made from this one, dropped when it is retrained (they would be stale).
    derived: tuple[str, ...] = ()

    def initial_models(self, config: ModelsConfig, seed: int, bundle: Path) -> RadiffModels:
        """The models a run starts from: the trained ones of earlier stages, this stage's fresh.

        Fresh weights depend on ``seed`` only (or, with ``start``, on the bundle only), so the
        driver rebuilds exactly what the workers started from before it loads the trained
        weights into it.
        """
        fresh = RadiffModels.from_config(config, seed=seed, with_mask_prior=self.with_mask_prior)
        if not self.from_bundle:
            return fresh
        models = RadiffModels.load(bundle, device="cpu")
        component = self.start(models, config) if self.start else getattr(fresh, self.component)
        setattr(models, self.component, component)
        for name in self.derived:
            setattr(models, name, None)
        return models


def _image_data(train: TrainConfig, models: ModelsConfig, stretch: Stretch, progress: bool) -> StageData:
    size = models.autoencoder.image_size
    arrays = build_training_arrays(train.data, stretch, size, progress=progress)
    counts, beams, native = arrays.pop("counts"), arrays.pop("pixels_per_beam"), arrays.pop("model_pixels_per_beam")
    if arrays["images"].shape[-2:] != (size, size):
        got = "x".join(map(str, arrays["images"].shape[-2:]))
        raise RadiffError(
            f"train.data: training cutouts are {got} but autoencoder.image_size is {size} "
            "(set train.data.simulate.size to the model's image size)"
        )
    return StageData(arrays, counts, beams, native)


def _mask_data(train: TrainConfig, models: ModelsConfig, stretch: Stretch, progress: bool) -> StageData:
    assert models.mask_prior is not None  # the driver refuses a null mask_prior first
    arrays = mask_prior_arrays(train.data, models.mask_prior.mask_size)
    return StageData(arrays, {train.data.mask_bank: len(arrays["masks"])}, {}, None)


def _ae_loss(models: RadiffModels, trained: nn.Module, batch: WorkerBatch) -> tuple[torch.Tensor, dict[str, float]]:
    return ae_loss(trained, batch.images(), generator=batch.generators)


def _ldm_loss(models: RadiffModels, trained: nn.Module, batch: WorkerBatch) -> tuple[torch.Tensor, dict[str, float]]:
    tensors = {"images": batch.images(), "masks": batch.masks(), "backgrounds": batch.backgrounds()}
    return ldm_loss(models, tensors, generator=batch.generators)


def _distil_loss(models: RadiffModels, trained: nn.Module, batch: WorkerBatch) -> tuple[torch.Tensor, dict[str, float]]:
    tensors = {"images": batch.images(), "masks": batch.masks(), "backgrounds": batch.backgrounds()}
    return guidance_distillation_loss(models, trained, tensors, generator=batch.generators)


def _student_from_teacher(models: RadiffModels, config: ModelsConfig) -> nn.Module:
    return GuidedStudent.from_teacher(models.unet, config.student or StudentConfig())


def _mask_loss(models: RadiffModels, trained: nn.Module, batch: WorkerBatch) -> tuple[torch.Tensor, dict[str, float]]:
    return mask_prior_loss(trained, batch.masks(), generator=batch.generators)


def _measure_latents(models: RadiffModels, data: StageData) -> None:
    """Give the autoencoder its latent shift/scale (the U-Net then sees unit-variance latents);
    the card starts afresh, since a new autoencoder invalidates whatever was trained on the old."""
    images = data.arrays["images"]
    sample = torch.from_numpy(images[: min(LATENT_SAMPLE, len(images))]).unsqueeze(1)
    models.autoencoder.eval()
    models.autoencoder.config = measure_latent_stats(models.autoencoder, sample)
    models.card = {}


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("ae", "autoencoder", from_bundle=False, with_mask_prior=False, stretch_from_bundle=False,
              records_stretch=True, build_data=_image_data, loss=_ae_loss, finish=_measure_latents),
        Stage("ldm", "unet", from_bundle=True, with_mask_prior=False, stretch_from_bundle=True,
              records_stretch=True, build_data=_image_data, loss=_ldm_loss, derived=("student",)),
        Stage("mask", "mask_prior", from_bundle=True, with_mask_prior=True, stretch_from_bundle=False,
              records_stretch=False, build_data=_mask_data, loss=_mask_loss),
        Stage("distil", "student", from_bundle=True, with_mask_prior=False, stretch_from_bundle=True,
              records_stretch=False, build_data=_image_data, loss=_distil_loss, start=_student_from_teacher),
    )
}
assert tuple(STAGES) == STAGE_NAMES, "the stage table and the config's stage names must agree"


def get_stage(name: str) -> Stage:
    """The stage called ``name``; any other name is the user's mistake."""
    if name not in STAGES:
        raise RadiffError(f"unknown stage {name!r} (expected one of {', '.join(STAGES)})")
    return STAGES[name]
