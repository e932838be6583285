"""Every option of ``radiff-scale annotate``, checked once, and the fixed choices several stages share.

Options are validated when the config is built, so no stage re-checks them, and the
whole config goes into each sample's provenance. The constants below are not options
but are read by more than one stage (background estimate and windowing both switch on
the image size), so they sit here rather than in one stage the others would import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from radiff_scale.beam import Beam
from radiff_scale.constants import MAX_CUTOUT
from radiff_scale.errors import RadiffError

#: Recorded as the writer of every sample and of the dataset's summary.
TOOL = "radiff-scale annotate"
#: Images at most this factor larger than ``--cutout`` give one cutout centred on their objects;
#: larger ones are tiled. 1.5 keeps 160x160 FIRST cutouts single and tiles 1000x1000 maps.
SINGLE_WINDOW_FACTOR = 1.5


@dataclass(frozen=True)
class AnnotateConfig:
    """Every option of ``radiff-scale annotate``; all of it is recorded in each sample's provenance."""

    island_sigma: float = 3.0
    seed_sigma: float = 5.0
    cutout: int = 128
    overlap: int = 32
    group_gap: float = 1.5
    deblend: bool = False
    compact_beams: float = 3.0
    beam: tuple[float, ...] | None = None  # BMAJ[, BMIN[, BPA]] arcsec/arcsec/deg, for files without beam keywords
    pixel_scale: float | None = None  # arcsec, for files without a celestial WCS / CDELT
    include_names: str | None = None
    exclude_names: str | None = None
    spurious_names: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.island_sigma <= self.seed_sigma:
            raise RadiffError(f"--island-sigma must be > 0 and <= --seed-sigma, got {self.island_sigma} and {self.seed_sigma}")
        if not 8 <= self.cutout <= MAX_CUTOUT:
            raise RadiffError(f"--cutout must be in 8..{MAX_CUTOUT} pixels, got {self.cutout}")
        if not 0 <= self.overlap < self.cutout:
            raise RadiffError(f"--overlap must be >= 0 and < --cutout ({self.cutout}), got {self.overlap}")
        if self.group_gap < 0 or self.compact_beams <= 0:
            raise RadiffError("--group-gap must be >= 0 and --compact-beams > 0")
        if self.pixel_scale is not None and not (self.pixel_scale > 0 and math.isfinite(self.pixel_scale)):
            raise RadiffError(f"--pixel-scale must be > 0 arcsec, got {self.pixel_scale}")
        if self.beam is not None:
            if not 1 <= len(self.beam) <= 3 or not all(math.isfinite(v) for v in self.beam) or min(self.beam[:2]) <= 0:
                raise RadiffError(f"--beam must be BMAJ[,BMIN[,BPA]] with axes > 0 arcsec, got {self.beam}")

    def default_beam(self) -> Beam | None:
        """The ``--beam`` option as a Beam (BMIN defaults to BMAJ, BPA to 0)."""
        if self.beam is None:
            return None
        bmaj = self.beam[0]
        bmin = self.beam[1] if len(self.beam) > 1 else bmaj
        bpa = self.beam[2] if len(self.beam) > 2 else 0.0
        return Beam(bmaj, bmin, bpa)
