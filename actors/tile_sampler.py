"""The tile-sampler actor: loads the models once, then turns batches of masks into tiles.

One actor per GPU on a cluster (``num_gpus=1``), one per CPU slot here. Tiles depend
only on each object's (mask, background, seed), never on the batch or the actor, so a
batch retried on another actor after a crash gives the same tiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radiff_scale.diffusion.settings import SamplerSpec


class TileSampler:
    """Holds a model bundle on its device; the pool calls ``sample`` (tiles) or ``sample_masks`` (mask prior)."""

    def __init__(self, model_dir: str, settings: SamplerSpec, device: str = "cpu", threads: int | None = None) -> None:
        import torch

        from radiff_scale.models.io import RadiffModels

        if threads:
            torch.set_num_threads(int(threads))
        self.settings = settings
        self.models = RadiffModels.load(model_dir, device=device)

    def _precision(self, settings: SamplerSpec) -> str:
        """The settings' GPU precision on a GPU; always fp32 on a CPU (where bf16 is only slower)."""
        return settings.gpu_precision if self.models.device.type == "cuda" else "fp32"

    def sample(
        self,
        batch: int,
        masks: np.ndarray,
        backgrounds: np.ndarray | None,
        seeds: list[int],
        settings: SamplerSpec | None = None,
        zoom: float = 1.0,
    ) -> tuple[int, np.ndarray]:
        """Tiles of one batch. ``settings`` overrides the actor's own for this call: it travels
        with the call, so a call Ray retries on a restarted actor keeps them. ``zoom`` is map
        pixels per beam over the model's: masks and backgrounds are resampled by 1 / zoom
        before sampling and tiles by zoom after (radiff_scale/compose/resample.py)."""
        from radiff_scale.compose.resample import images_to_model, masks_to_model, tiles_to_map
        from radiff_scale.diffusion.sampling import sample_tiles

        s = settings or self.settings
        if zoom != 1.0:
            masks = masks_to_model(masks, zoom)
            backgrounds = None if backgrounds is None else images_to_model(backgrounds, zoom)
        tiles = sample_tiles(
            self.models, masks, backgrounds, seeds, steps=s.steps,
            guidance=(s.guidance_mask, s.guidance_background), sampler=s.name, eta=s.eta,
            precision=self._precision(s),
        )
        return batch, tiles if zoom == 1.0 else tiles_to_map(tiles, zoom)

    def sample_masks(self, batch: int, seeds: list[int], settings: SamplerSpec | None = None) -> tuple[int, np.ndarray]:
        """Masks invented by the bundle's mask prior for one batch of seeds (uint8 class ids)."""
        from radiff_scale.diffusion.sampling import sample_masks
        from radiff_scale.errors import RadiffError

        if self.models.mask_prior is None:
            raise RadiffError("the model bundle has no mask prior; use the real mask bank (masks: bank)")
        s = settings or self.settings
        return batch, sample_masks(self.models.mask_prior, seeds, steps=s.steps, sampler=s.name, eta=s.eta)

    def ping(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        """Where and how this actor samples (diagnostics: process, device, torch threads)."""
        import os

        import torch

        return {"pid": os.getpid(), "device": str(self.models.device), "threads": torch.get_num_threads(),
                "precision": self._precision(self.settings), "settings": self.settings}


def make_sampler_pool(
    n: int, model_dir: str, settings: SamplerSpec, use_gpu: bool, threads: int | None, max_restarts: int = 3
) -> list[Any]:
    """Start ``n`` sampler actors that restart after a crash and retry their in-flight calls.

    The sampling stage's own calls opt out of Ray's retries (actors/sampling_stage.py:
    the pool's driver resends a lost call to another live actor, actors.scheduler); other
    calls (``describe``, a test's) wait for a restarting actor as usual.

    ``threads``: torch threads per actor. CPU pools use 1: reductions split over a
    different number of threads round differently, and tiles must be bit-identical
    whatever the number of actors (and one thread per actor is also the fastest way to
    use the cores).
    """
    import ray

    remote = ray.remote(TileSampler).options(
        num_gpus=1 if use_gpu else 0,
        num_cpus=0 if use_gpu else 1,
        max_restarts=max_restarts,
        max_task_retries=max_restarts,
    )
    device = "cuda" if use_gpu else "cpu"
    return [remote.remote(model_dir, settings, device, threads) for _ in range(n)]
