"""MapSpec: the one config object of the map job.

Loaded from YAML (``configs/*.yaml``) with dotted overrides from the CLI, validated here
before any heavy work, and written resolved into every run's manifest. Fields that
change the output bytes are the run's *identity* (see :meth:`MapSpec.identity`): a
``--resume`` is only allowed against an output folder made from the same identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiff_scale.atomic import check_output_path
from radiff_scale.beam import Beam
from radiff_scale.compose.planner import PlacementConfig
from radiff_scale.compose.sources import MaskSource, TileSource
from radiff_scale.config import to_dict
from radiff_scale.diffusion.settings import SamplerSpec
from radiff_scale.errors import RadiffError

#: Largest map side we accept: 2**20 pixels (far beyond SKA-sized 32768^2 maps).
MAX_SIDE = 1 << 20

#: Bytes a map costs on disk in the worst case (nothing compresses): Zarr image float32 +
#: class uint8 + instance int32, then map.fits float32 and labels.fits (uint8 + int32).
WORST_BYTES_PER_PIXEL = 4 + 1 + 4 + 4 + 1 + 4


@dataclass
class MapSpec:
    """Everything that defines a synthetic map.

    With ``background`` (a 2-D FITS map with a celestial WCS) the map takes that file's
    size, WCS, beam and frequency, and ``size``/geometry fields are ignored; without it
    the background is synthetic beam-correlated noise of ``noise_rms_jy`` on a
    ``size`` x ``size`` grid centred on ``centre_ra_deg``/``centre_dec_deg``.

    ``masks``: ``bank`` (the shipped real mask bank), ``bank:PATH`` (an .npz like it), or
    ``prior``: ``mask_pool`` masks invented by the model's mask prior on the sampler
    actors (seeded by the run seed), from which objects are picked exactly as from a bank.
    ``tiles``: ``model`` (sample with the diffusion model named by ``model``: ``demo``
    for the shipped weights or a bundle folder) or ``bank:PATH`` (copy flipped/rotated
    tiles from a pre-sampled tile bank, see radiff_scale.compose.tile_bank; the masks
    then come from the tile bank and ``masks``/``model`` are not used).
    """

    size: int = 4096
    background: str | None = None
    pixel_scale_arcsec: float = 1.5
    beam_bmaj_arcsec: float = 9.8
    beam_bmin_arcsec: float = 5.8
    beam_bpa_deg: float = 0.0
    centre_ra_deg: float = 0.0
    centre_dec_deg: float = -30.0
    freq_hz: float = 1.4e9
    noise_rms_jy: float = 1e-4
    placement: PlacementConfig = field(default_factory=lambda: PlacementConfig(n_objects=300))
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    seed: int = 0
    chunk: int = 2048
    workers: int = 2
    masks: str = "bank"
    mask_pool: int = 256
    tiles: str = "model"
    model: str = "demo"

    def __post_init__(self) -> None:
        if self.background is None and not (0 < self.size <= MAX_SIDE):
            raise RadiffError(f"size must be in 1..{MAX_SIDE}, got {self.size}")
        for name in ("pixel_scale_arcsec", "beam_bmaj_arcsec", "beam_bmin_arcsec", "freq_hz", "noise_rms_jy"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise RadiffError(f"{name} must be a finite number > 0, got {value}")
        if not (-90.0 <= self.centre_dec_deg <= 90.0):
            raise RadiffError(f"centre_dec_deg must be in [-90, 90], got {self.centre_dec_deg}")
        if self.seed < 0:
            raise RadiffError(f"seed must be >= 0, got {self.seed}")
        if self.workers < 1:
            raise RadiffError(f"workers must be >= 1, got {self.workers}")
        MaskSource.parse(self.masks)
        if self.mask_pool < 1:
            raise RadiffError(f"mask_pool must be >= 1, got {self.mask_pool}")
        TileSource.parse(self.tiles)
        if self.background is not None and not Path(self.background).is_file():
            raise RadiffError(f"background {self.background}: no such file")

    @property
    def tile_source(self) -> TileSource:
        return TileSource.parse(self.tiles)

    @property
    def mask_source(self) -> MaskSource:
        return MaskSource.parse(self.masks)

    @property
    def beam(self) -> Beam:
        return Beam(self.beam_bmaj_arcsec, self.beam_bmin_arcsec, self.beam_bpa_deg)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the output bytes (``workers`` does not)."""
        data = self.to_dict()
        data.pop("workers")
        if self.masks != "prior":
            data.pop("mask_pool")  # unused: a bank run's identity stays what it was
        return data


def preflight_disk(out: Path, shape: tuple[int, int]) -> int:
    """Refuse a map that cannot fit on the output disk (worst case: nothing compresses)."""
    need = shape[0] * shape[1] * WORST_BYTES_PER_PIXEL
    check_output_path(out, need, what=f"a {shape[0]}x{shape[1]} map (nothing compressed)")
    return need
