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

The job is the ``train`` command of radiff_scale/cli/train.py; its driver is
radiff_scale/pipelines/train_job.py and the library half radiff_scale/training/.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from radiff_scale.cli import job_main


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("train", "train", argv)


if __name__ == "__main__":
    sys.exit(main())
