"""The one sampler configuration: the ``sampler:`` section of a map spec, a tile bank, ``sample``.

Imports neither torch nor diffusers: the driver validates a spec long before any model
is loaded, and the settings travel to every sampler actor with each call.
"""

from __future__ import annotations

from dataclasses import dataclass

from radiff_scale.errors import RadiffError

#: Solvers of the guided teacher (and of the mask prior).
TEACHER_SAMPLERS = ("ddpm", "ddim", "dpm++", "unipc")
#: Samplers that run a bundle's distilled student (radiff_scale/models/student.py): guidance is
#: its input, so one evaluation per DPM-Solver++ step.
STUDENT_SAMPLERS = ("distilled",)
#: Sampler names accepted everywhere (specs, CLI, sample_tiles): radiff_scale.diffusion.schedule's schedulers.
SAMPLERS = TEACHER_SAMPLERS + STUDENT_SAMPLERS

#: What the mask prior (which has no student) samples with when tiles use a student sampler.
MASK_PRIOR_FALLBACK = ("dpm++", 20)

#: Arithmetic of GPU sampler actors (CPU actors always use fp32): see SamplerSpec.gpu_precision.
PRECISIONS = ("fp32", "bf16")

#: Most tiles in one batch: a batch is one chunk of the tile store (4096 tiles: 256 MiB of
#: float32) and one forward pass, far past what a GPU's memory takes at the paper's size.
MAX_BATCH = 4096


@dataclass
class SamplerSpec:
    """How tiles are sampled: solver, number of steps, guidance scales, batch size.

    ``batch_size`` fixes which objects share a batch (consecutive placed objects) and so
    the tile store's chunking; tiles never depend on it (per-object noise streams).

    ``gpu_precision``: GPU actors evaluate the networks in bf16 autocast by default. On an
    H200 the paper-size models then sample 28 tiles/s instead of 4.2 (fp32 attention takes
    a slow path); the demo model's tiles move by 0.005 on average (max 0.036, in [0, 1]
    units; docs/benchmarks.md). "fp32" gives tiles equal to a CPU run's to ~3e-6. CPU actors
    always sample in fp32: bf16 on a CPU is ~20x slower, so it has no effect there.
    """

    name: str = "dpm++"
    steps: int = 20
    guidance_mask: float = 3.0
    guidance_background: float = 1.0
    eta: float = 0.0
    batch_size: int = 16
    gpu_precision: str = "bf16"

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise RadiffError(f"sampler.name {self.name!r} is not one of {', '.join(SAMPLERS)}")
        if self.steps < 1:
            raise RadiffError(f"sampler.steps must be >= 1, got {self.steps}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise RadiffError(f"sampler.batch_size must be in 1..{MAX_BATCH}, got {self.batch_size}")
        if not (0.0 <= self.eta <= 1.0):
            raise RadiffError(f"sampler.eta must be in [0, 1], got {self.eta}")
        if self.gpu_precision not in PRECISIONS:
            raise RadiffError(f"sampler.gpu_precision {self.gpu_precision!r} is not one of {', '.join(PRECISIONS)}")
