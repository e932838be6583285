"""What a bundle's card says about its training: one entry per stage, and the bundle-wide facts.

The card is how a map job knows the stretch and the pixel scale its model expects, and
how a reader of a bundle knows which data, settings, commit and seed made each part.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from radiff_scale.config import to_dict
from radiff_scale.data.stretch import Stretch
from radiff_scale.training.config import TrainConfig
from radiff_scale.training.stages import Stage, StageData

#: The card's ``made_by``: the job that wrote the bundle (its entry point is still jobs/train.py).
MADE_BY = "radiff-scale train (jobs/train.py, Ray Train TorchTrainer)"


def git_commit() -> str:
    """The checkout's commit, so that a bundle names the code that trained it ('unknown' outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def stage_entry(
    stage: Stage, train: TrainConfig, data: StageData, meta: dict[str, Any], workers: int, use_gpu: bool,
    seconds: float,
) -> dict[str, Any]:
    """The card's record of one stage run, from its last checkpoint's ``meta``."""
    config = train.stage(stage.name)
    return {
        "steps": meta["step"], "final_loss": meta["metrics"]["loss"], "samples_per_s": meta["metrics"]["samples_per_s"],
        "workers": workers, "gpu": use_gpu, "batch_size": config.batch_size, "lr": config.lr,
        "seconds": round(seconds, 1), "commit": git_commit(), "config": to_dict(config),
        "data": to_dict(train.data), "cutouts": data.counts, "pixels_per_beam": data.pixels_per_beam, "seed": train.seed,
    }


def updated_card(
    card: dict[str, Any], stage: Stage, entry: dict[str, Any], stretch: Stretch, data: StageData
) -> dict[str, Any]:
    """``card`` with the stage's entry, and with the stretch and pixel scale of an image stage.

    An image stage's stretch replaces the published chain's ``preprocess_reference``: the
    bundle's images are encoded as the card's stretch says, not as that chain did.
    """
    card = dict(card)
    card.setdefault("stages", {})[stage.name] = entry
    if stage.records_stretch:
        card["stretch"] = stretch.to_card()
        if data.model_pixels_per_beam is not None:
            card["pixels_per_beam"] = data.model_pixels_per_beam
        card.pop("preprocess_reference", None)
    card["made_by"] = MADE_BY
    return card
