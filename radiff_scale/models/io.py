"""Saving and loading the trained models as one bundle folder (safetensors + JSON, never pickle).

Folder layout written by :meth:`RadiffModels.save`::

    <dir>/
      radiff_models.json          format tag and version, the latent-diffusion schedule,
                                  the list of components, and the model card
      autoencoder/config.json     AutoencoderConfig (incl. measured shift/scaling factors)
      autoencoder/model.safetensors
      unet/config.json            UNetConfig (incl. the background-encoder head)
      unet/model.safetensors      U-Net and background head weights
      mask_prior/config.json      MaskPriorConfig (optional component)
      mask_prior/model.safetensors
      student/config.json         StudentConfig (optional: the few-step distilled U-Net)
      student/model.safetensors

Every problem a user can cause (not a bundle, missing or corrupt file, config of an
unknown version, weights that do not fit the architecture) is a one-line
:class:`RadiffError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radiff_scale.config import from_dict, to_dict
from radiff_scale.ddp import unwrap_ddp
from radiff_scale.diffusion.schedule import ScheduleConfig
from radiff_scale.errors import RadiffError
from radiff_scale.models.bundle import INDEX
from radiff_scale.models.autoencoder import AutoencoderConfig, RadioAutoencoder
from radiff_scale.models.config import ModelsConfig
from radiff_scale.models.mask_prior import MaskPrior, MaskPriorConfig
from radiff_scale.models.student import GuidedStudent, StudentConfig
from radiff_scale.models.unet import ConditionalLatentUNet, UNetConfig

FORMAT = "radiff-models"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"

_COMPONENTS: dict[str, tuple[type, type]] = {
    "autoencoder": (AutoencoderConfig, RadioAutoencoder),
    "unet": (UNetConfig, ConditionalLatentUNet),
    "mask_prior": (MaskPriorConfig, MaskPrior),
    "student": (StudentConfig, GuidedStudent),
}


def save_module(module: nn.Module, directory: str | Path) -> None:
    """Write ``module.config`` as config.json and its weights as model.safetensors into ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG).write_text(json.dumps(to_dict(module.config), indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(directory / WEIGHTS), metadata={"format": FORMAT, "version": str(VERSION)})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RadiffError(f"{path}: missing") from None
    except OSError as exc:
        raise RadiffError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise RadiffError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise RadiffError(f"{path}: expected a JSON object")
    return data


def _shape(shape: Any) -> str:
    return str(tuple(int(s) for s in shape))


def _open_error(path: Path, exc: BaseException) -> RadiffError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return RadiffError(f"{path}: not a readable safetensors file ({first})")


def _check_shapes(path: Path, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> None:
    """Refuse weights that do not fit the architecture, naming the first tensor that does not."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        raise RadiffError(f"{path}: parameter {missing[0]} is missing ({len(missing)} missing in all); wrong architecture?")
    if unexpected:
        raise RadiffError(f"{path}: unexpected parameter {unexpected[0]} ({len(unexpected)} in all); wrong architecture?")
    for name, shape in found.items():
        if tuple(shape) != tuple(expected[name]):
            raise RadiffError(f"{path}: parameter {name} has shape {_shape(shape)}, expected {_shape(expected[name])}")


def load_state(module: nn.Module, path: str | Path) -> None:
    """Load safetensors weights into ``module``; any mismatch is a RadiffError naming the file and tensor."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RadiffError(f"{path}: missing")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _open_error(path, exc) from None
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    _check_shapes(path, expected, {k: tuple(v.shape) for k, v in state.items()})
    module.load_state_dict(state)


def check_component(kind: str, directory: str | Path) -> None:
    """What :func:`load_module` would refuse, found without reading a weight: the config, the
    safetensors header and every tensor's name and shape against the architecture (built on
    torch's meta device, so a 400M-parameter U-Net costs no memory). The map job calls this on
    the driver, so a broken bundle is one line before any actor starts."""
    from safetensors import SafetensorError, safe_open

    config_cls, module_cls = _COMPONENTS[kind]
    directory = Path(directory)
    config_path = directory / CONFIG
    config = from_dict(config_cls, _read_json(config_path), where=str(config_path))
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise RadiffError(f"{weights}: missing")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            found = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _open_error(weights, exc) from None
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in module_cls(config).state_dict().items()}
    _check_shapes(weights, expected, found)


def load_module(kind: str, directory: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Build component ``kind`` ("autoencoder", "unet", "mask_prior") from its folder and load its weights."""
    config_cls, module_cls = _COMPONENTS[kind]
    directory = Path(directory)
    config_path = directory / CONFIG
    config = from_dict(config_cls, _read_json(config_path), where=str(config_path))
    module = module_cls(config)
    load_state(module, directory / WEIGHTS)
    return module.to(device).eval()


def read_bundle_index(directory: str | Path) -> tuple[dict[str, Any], list[str]]:
    """A bundle's index and its component names, checked (format, version, known components,
    the two that every bundle needs); reads no weights."""
    directory = Path(directory)
    index_path = directory / INDEX
    if not directory.is_dir():
        raise RadiffError(f"{directory}: not a directory (expected a model bundle)")
    if not index_path.is_file():
        raise RadiffError(f"{directory}: not a model bundle ({INDEX} missing)")
    index = _read_json(index_path)
    if index.get("format") != FORMAT:
        raise RadiffError(f"{index_path}: format is {index.get('format')!r}, expected {FORMAT!r}")
    if index.get("version") != VERSION:
        raise RadiffError(f"{index_path}: bundle version {index.get('version')!r} is not supported (expected {VERSION})")
    components = index.get("components", [])
    unknown = sorted(set(components) - set(_COMPONENTS)) if isinstance(components, list) else ["?"]
    if unknown:
        raise RadiffError(f"{index_path}: unknown component(s) {', '.join(map(str, unknown))}")
    for required in ("autoencoder", "unet"):
        if required not in components:
            raise RadiffError(f"{index_path}: component {required!r} missing")
    return index, list(components)


def check_bundle(directory: str | Path) -> dict[str, Any]:
    """Every check :meth:`RadiffModels.load` makes, without reading a weight; returns the index."""
    directory = Path(directory)
    index, components = read_bundle_index(directory)
    for name in components:
        check_component(name, directory / name)
    return index


@dataclass
class RadiffModels:
    """Everything needed to sample tiles and masks: the three models, the schedule and a model card.

    ``card`` is free-form JSON-safe metadata the training job fills (how the models
    were made, data, the stretch between flux and [0, 1]). The mask prior is optional.
    During training a caller may put a DDP-wrapped module in ``unet``/``mask_prior``
    (``dataclasses.replace``); the loss functions unwrap it for its config.
    """

    autoencoder: RadioAutoencoder
    unet: ConditionalLatentUNet
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    mask_prior: MaskPrior | None = None
    card: dict[str, Any] = field(default_factory=dict)
    #: The few-step student distilled from ``unet`` (radiff_scale/models/student.py); optional.
    student: GuidedStudent | None = None

    @classmethod
    def from_config(
        cls, config: ModelsConfig, seed: int = 0, device: str | torch.device = "cpu", with_mask_prior: bool = True
    ) -> "RadiffModels":
        """Freshly initialised models; the mask prior only if ``with_mask_prior`` and ``config.mask_prior``.

        Initial weights depend only on ``seed``; the global RNG is left untouched.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            autoencoder = RadioAutoencoder(config.autoencoder)
            unet = ConditionalLatentUNet(config.unet)
            prior = MaskPrior(config.mask_prior) if with_mask_prior and config.mask_prior is not None else None
        models = cls(autoencoder, unet, config.schedule, prior)
        return models.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.autoencoder.parameters()).device

    def modules(self) -> dict[str, nn.Module]:
        """The present components by folder name."""
        found = {"autoencoder": self.autoencoder, "unet": self.unet}
        if self.mask_prior is not None:
            found["mask_prior"] = self.mask_prior
        if self.student is not None:
            found["student"] = self.student
        return found

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "RadiffModels":
        for module in self.modules().values():
            module.to(device=device, dtype=dtype)
        return self

    def eval(self) -> "RadiffModels":
        for module in self.modules().values():
            module.eval()
        return self

    def save(self, directory: str | Path) -> Path:
        """Write the bundle folder (layout in the module docstring); returns its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, module in self.modules().items():
            save_module(unwrap_ddp(module), directory / name)
        index = {
            "format": FORMAT,
            "version": VERSION,
            "components": sorted(self.modules()),
            "schedule": to_dict(self.schedule),
            "card": self.card,
        }
        (directory / INDEX).write_text(json.dumps(index, indent=2, default=str) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> "RadiffModels":
        """Read a bundle folder written by :meth:`save`; models come back in eval mode on ``device``."""
        directory = Path(directory)
        index, components = read_bundle_index(directory)
        index_path = directory / INDEX
        schedule = from_dict(ScheduleConfig, index.get("schedule") or {}, where=f"{index_path}:schedule")
        modules = {name: load_module(name, directory / name, device) for name in components}
        models = cls(
            autoencoder=modules["autoencoder"],
            unet=modules["unet"],
            schedule=schedule,
            mask_prior=modules.get("mask_prior"),
            card=dict(index.get("card") or {}),
            student=modules.get("student"),
        )
        models.config  # checks that the components fit together
        return models

    @property
    def config(self) -> ModelsConfig:
        """The architecture as one ModelsConfig (``mask_prior`` None when absent)."""
        try:
            return ModelsConfig(
                autoencoder=unwrap_ddp(self.autoencoder).config,
                unet=unwrap_ddp(self.unet).config,
                mask_prior=unwrap_ddp(self.mask_prior).config if self.mask_prior is not None else None,
                schedule=self.schedule,
                student=unwrap_ddp(self.student).config if self.student is not None else None,
            )
        except ValueError as exc:
            raise RadiffError(f"models do not fit together: {exc}") from None
