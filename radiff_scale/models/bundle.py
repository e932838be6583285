"""Where a model bundle is: ``demo`` (the one shipped in the package) or a folder.

Kept apart from :mod:`radiff_scale.models.io` so that finding a bundle does not import
torch (seconds, and ~300 MB on a driver that never runs a network).
"""

from __future__ import annotations

from pathlib import Path

from radiff_scale.errors import RadiffError

#: The bundle index file (radiff_scale.models.io writes and reads it).
INDEX = "radiff_models.json"

#: Where the shipped demo model lives inside the package.
DEMO_MODEL = Path(__file__).resolve().parents[1] / "assets" / "demo"


def resolve_model_dir(model: str) -> Path:
    """``demo`` is the shipped bundle; anything else is a bundle folder (checked to exist)."""
    if model == "demo":
        if not (DEMO_MODEL / INDEX).is_file():
            raise RadiffError(f"the shipped demo model is missing from {DEMO_MODEL} (reinstall the package)")
        return DEMO_MODEL
    path = Path(model)
    if not path.is_dir():
        raise RadiffError(f"model {model}: no such folder (expected 'demo' or a model bundle folder)")
    return path


def check_sampler_fits(index: dict, sampler: str, model: str | Path) -> None:
    """Refuse a student sampler ("distilled") for a bundle without a distilled student, in one line,
    on the driver (the actors would each fail on it otherwise)."""
    from radiff_scale.diffusion.settings import STUDENT_SAMPLERS

    if sampler in STUDENT_SAMPLERS and "student" not in (index.get("components") or []):
        raise RadiffError(
            f"sampler {sampler!r} needs a distilled student in model {model} "
            "(radiff-scale train --stage distil); sample this bundle with dpm++"
        )
