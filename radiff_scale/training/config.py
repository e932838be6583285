"""What a training job is told: the ``train:`` section of a job YAML, next to the model sections.

The stages' names live here (not with the stage table) so that the command line can
offer them as ``--stage`` choices without importing torch: ``radiff-scale --help``
builds every command's parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from radiff_scale.config import from_dict, merge_overrides, read_yaml
from radiff_scale.errors import RadiffError

if TYPE_CHECKING:
    from radiff_scale.models.config import ModelsConfig

#: The stages in the order they must first run (``ae`` first: the others need its autoencoder;
#: ``distil`` after ``ldm``: it distils that U-Net).
STAGE_NAMES = ("ae", "ldm", "mask", "distil")


@dataclass
class StageConfig:
    """Optimisation of one stage. ``batch_size`` is the *global* batch (split over workers)."""

    steps: int = 200
    batch_size: int = 8
    lr: float = 5e-5
    weight_decay: float = 0.0
    checkpoint_every: int = 50
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise RadiffError("train: steps, batch_size, checkpoint_every and log_every must be >= 1")
        if not self.lr > 0:
            raise RadiffError(f"train: lr must be > 0, got {self.lr}")


@dataclass
class DataConfig:
    """Where training cutouts come from: Survey-Collection folders and/or the simulator.

    Real images come annotated (``radiff-scale annotate``); the simulator adds what real
    sets lack (sidelobe rings and arcs, faint compact sources), in the beam and pixel
    scale its ``simulate`` settings give. Both go through the same stretch.
    """

    #: Survey-Collection dataset folders, read in order (cutouts larger than the model's
    #: image size are centre-cropped).
    datasets: list[str] = field(default_factory=list)
    #: Simulated labelled cutouts added to the datasets' (0: none).
    simulate_n: int = 1000
    simulate_seed: int = 0
    simulate: dict[str, Any] = field(default_factory=dict)
    #: Masks for the mask prior: ``bank`` (shipped real masks) or an .npz path like it.
    mask_bank: str = "bank"
    #: Each draw sees its cutout (image, mask and background alike) through one of the 8
    #: rotations/flips, chosen from the per-sample seed: real galaxies have no preferred
    #: orientation, and a few hundred real cutouts become a few thousand views.
    dihedral: bool = True

    def __post_init__(self) -> None:
        if self.simulate_n < 0:
            raise RadiffError(f"train.data.simulate_n must be >= 0, got {self.simulate_n}")
        if not self.datasets and self.simulate_n == 0:
            raise RadiffError("train.data: no datasets and simulate_n is 0, there is nothing to train on")


@dataclass
class TrainConfig:
    """The whole ``train:`` section; one StageConfig per stage, under the stage's name."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    ae: StageConfig = field(default_factory=lambda: StageConfig(lr=1e-4))
    ldm: StageConfig = field(default_factory=StageConfig)
    mask: StageConfig = field(default_factory=lambda: StageConfig(lr=2e-4))
    distil: StageConfig = field(default_factory=lambda: StageConfig(lr=5e-5))
    #: bf16 autocast on GPU workers (ignored on CPU).
    mixed_precision: bool = True
    #: Flux <-> [0, 1] stretch, recorded in the bundle card (radiff_scale/data/stretch.py).
    stretch: dict[str, Any] = field(default_factory=dict)

    def stage(self, name: str) -> StageConfig:
        """The optimisation settings of stage ``name`` (one of STAGE_NAMES)."""
        config: StageConfig = getattr(self, name)
        return config


def load_train_config(path: str | None, overrides: dict[str, Any]) -> tuple[TrainConfig, ModelsConfig, dict[str, Any]]:
    """(train config, models config, the whole resolved file) from one YAML job config.

    One file holds both, so that a run folder's ``config.resolved.json`` says everything
    the bundle was made from; a section that is neither is a typo and refused.
    """
    # Imported here: the models' config module imports torch, and this module must not
    # (the command line reads STAGE_NAMES from it to build its parser).
    from radiff_scale.models.config import SECTIONS, models_config_from_dict

    data = merge_overrides(read_yaml(path) if path else {}, overrides)
    where = path or "config"
    models = models_config_from_dict(data, where=where)
    train_data = {k: v for k, v in data.items() if k not in SECTIONS}
    unknown = sorted(set(train_data) - {"train"})
    if unknown:
        raise RadiffError(f"{where}: unknown section(s) {', '.join(unknown)} (known: train, {', '.join(SECTIONS)})")
    train = from_dict(TrainConfig, train_data.get("train") or {}, where=f"{where}:train")
    return train, models, data
