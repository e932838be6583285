"""A stage's checkpoints: what makes a killed job resumable by running the same command again.

``DIR/checkpoints/<stage>/step_XXXXXXXX`` holds the weights, the optimiser state and
``meta.json`` (step and metrics). A folder is built under a temporary name and renamed
into place whole, so a kill leaves either a complete checkpoint or none; the newest
complete one is where a rerun continues (its step counter goes on from there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from radiff_scale.atomic import replace_dir_when_done
from radiff_scale.models.io import load_state

#: The file whose presence marks a checkpoint folder complete (it is written last).
META = "meta.json"


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint of a stage (a folder is complete once its meta.json exists)."""
    done = sorted(p for p in folder.glob("step_*") if (p / META).is_file())
    return done[-1] if done else None


def save_checkpoint(
    folder: Path, module: nn.Module, optimizer: torch.optim.Optimizer, step: int, metrics: dict[str, float]
) -> Path:
    """Write ``folder/step_XXXXXXXX`` (weights as safetensors, optimiser state, meta.json last)."""

    def write(tmp: Path) -> None:
        tmp.mkdir()
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / META).write_text(json.dumps({"step": step, "metrics": metrics}, indent=2))

    folder.mkdir(parents=True, exist_ok=True)
    return replace_dir_when_done(folder / f"step_{step:08d}", write)


def load_checkpoint(path: Path, module: nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Load a checkpoint's weights (and optimiser state, when given one); returns its step."""
    load_state(module, path / "model.safetensors")
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    return int(json.loads((path / META).read_text())["step"])


def read_meta(path: Path) -> dict[str, Any]:
    """A complete checkpoint's step and metrics."""
    meta: dict[str, Any] = json.loads((path / META).read_text())
    return meta
