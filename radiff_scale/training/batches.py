"""Which samples a step trains on, and every per-sample random draw, from seeds alone.

The global batch of a step is drawn from (seed, step); each position in it gets its
own generator and its own rotation/flip from (seed, step, position). A worker takes
the contiguous slice of positions its rank owns, so N workers with batch B/N compute
the same update as one worker with batch B, and a resumed run draws what an
uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from radiff_scale.seeding import derive_rng, derive_seed
from radiff_scale.training.data import dihedral

#: Spreads (step, position) over seed space so that no two pairs share a seed index.
_STEP_STRIDE = 1_000_003


def global_batch(seed: int, step: int, stage: str, n: int, batch_size: int) -> np.ndarray:
    """The step's global batch: sample indices drawn from (seed, step) only."""
    return derive_rng(seed, step, f"batch-{stage}").choice(n, size=batch_size, replace=batch_size > n)


def per_sample_generators(
    seed: int, step: int, stage: str, positions: Sequence[int], device: str | torch.device
) -> list[torch.Generator]:
    """One generator per batch position, for the losses' posterior, timestep, noise and dropout draws."""
    return [
        torch.Generator(device=device).manual_seed(derive_seed(seed, step * _STEP_STRIDE + int(i), f"train-{stage}"))
        for i in positions
    ]


def dihedral_codes(seed: int, step: int, stage: str, positions: Sequence[int]) -> list[int]:
    """The rotation/flip of each position of the step's global batch (from seed, step and position only)."""
    return [derive_seed(seed, step * _STEP_STRIDE + int(i), f"dihedral-{stage}") % 8 for i in positions]


@dataclass(frozen=True)
class WorkerBatch:
    """One worker's share of a step's global batch, each sample seen through its own view.

    The losses ask it for tensors by what they are, so one loss signature serves every
    stage whatever arrays the stage has.
    """

    arrays: Mapping[str, np.ndarray]
    indices: Sequence[int]
    codes: Sequence[int]
    generators: list[torch.Generator]
    device: torch.device

    @classmethod
    def draw(
        cls, arrays: Mapping[str, np.ndarray], seed: int, step: int, stage: str, batch_size: int, rank: int,
        world_size: int, use_dihedral: bool, device: torch.device,
    ) -> WorkerBatch:
        """Rank ``rank``'s contiguous slice of the step's ``batch_size`` positions."""
        per_worker = batch_size // world_size
        idx = global_batch(seed, step, stage, len(arrays["masks"]), batch_size)
        local = idx[rank * per_worker : (rank + 1) * per_worker]
        positions = range(rank * per_worker, (rank + 1) * per_worker)
        # Drawn on the CPU whatever the device: the same seeds must give the same numbers everywhere.
        generators = per_sample_generators(seed, step, stage, positions, "cpu")
        codes = dihedral_codes(seed, step, stage, positions) if use_dihedral else [0] * len(local)
        return cls(arrays, [int(i) for i in local], codes, generators, device)

    def take(self, name: str) -> np.ndarray:
        """Array ``name`` of this batch's samples, each in its rotation/flip."""
        return np.stack([dihedral(self.arrays[name][i], c) for i, c in zip(self.indices, self.codes)])

    def images(self) -> torch.Tensor:
        """(B, 1, H, W) float32 stretched images."""
        return torch.from_numpy(self.take("images")).unsqueeze(1).to(self.device)

    def backgrounds(self) -> torch.Tensor:
        """(B, 1, H, W) float32 stretched background images."""
        return torch.from_numpy(self.take("backgrounds")).unsqueeze(1).to(self.device)

    def masks(self) -> torch.Tensor:
        """(B, H, W) int64 class masks."""
        return torch.from_numpy(self.take("masks").astype(np.int64)).to(self.device)
