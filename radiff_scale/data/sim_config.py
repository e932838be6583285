"""Settings of the labelled cutout simulator, checked once so that no later stage has to.

A cutout is a pure function of ``(SimConfig, seed)`` (see :mod:`.simulate`), so this one
dataclass is everything a dataset's provenance needs to record; it is YAML-loadable
through :mod:`radiff_scale.config` and written, resolved, into ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from radiff_scale.beam import Beam
from radiff_scale.constants import MAX_CUTOUT
from radiff_scale.errors import RadiffError

BackgroundKind = Literal["noise", "noise+diffuse", "real"]


@dataclass
class SimConfig:
    """Settings of the cutout simulator (YAML-loadable through :mod:`radiff_scale.config`).

    Image and beam
        ``size`` (128): cutout side in pixels. ``pixel_scale_arcsec`` (1.5). Beam FWHM
        ``bmaj_arcsec`` x ``bmin_arcsec`` (9.8 x 5.8, ATCA Scorpio as in the paper's Table 1)
        at ``bpa_deg`` (0) east of north. With ``background: real`` each map's own header
        beam (BMAJ/BMIN/BPA) and pixel scale (CDELT2/CD2_2) win where present, because the
        simulated sources must look like that map's sources.
    Noise and labels
        ``rms_jy`` (1e-4 Jy/beam): noise rms; if ``rms_jy_max`` is set, each cutout draws
        its rms log-uniformly in [rms_jy, rms_jy_max]. ``mask_nsigma`` (3): masks are the
        model above ``mask_nsigma * rms``. ``min_gap_px`` (1): masks of different objects
        stay at least this many pixels apart (1 = never touching). ``max_tries`` (20):
        placement attempts per object before it is dropped.
    Background
        ``background``: ``"noise"``, ``"noise+diffuse"`` or ``"real"``. ``diffuse_nsigma``
        (2): rms of the diffuse field in units of the noise rms; ``diffuse_slope`` (3):
        its power spectrum P(k) ~ k^-slope. ``real_backgrounds``: FITS maps to cut
        patches from (required for ``"real"``).
    Objects per cutout
        Each class is present with probability ``p_compact`` (0.7), ``p_extended`` (0.35),
        ``p_spurious`` (0.2); when present, a cutout gets 1 + Poisson(mean - 1) objects, so
        the mean count when present is ``mean_compact`` (2.83) and ``mean_extended``
        (1.03), the paper's Table 2. For spurious the count drawn is of artefact systems
        (``mean_artefacts``, 1.2), each giving one compact bright source and its sidelobe
        pattern split into islands, one spurious object per island (islands smaller than
        half a beam join the nearest large one); with the defaults that gives about the
        paper's 3.76 spurious objects per cutout when present. ``p_spurious`` is raised
        from the Survey Collection's ~5% so that any 64 cutouts hold every class.
    Fluxes
        Peak signal-to-noise ratios follow dN/dS ~ S^-``flux_slope`` (1.6) between the two
        values of ``compact_snr`` (5, 1000) and ``extended_snr`` (10, 1000): S = [a + u (b - a)]
        ^(1/(1-slope)) with a = lo^(1-slope), b = hi^(1-slope), u ~ U(0, 1). An extended
        source whose mask covers fewer than ``extended_min_beams`` (5) beam areas, or that
        looks like a single Gaussian (one island, one peak, elliptical outline), is
        brightened by 1.5x steps up to the upper S/N (then redrawn), so that it does not
        pass for compact; this thins the faint end of the extended S/N distribution.
        ``compact_resolved_fraction`` (0.3) of compact sources are resolved, with intrinsic
        FWHM 0.3-1 beam major axis and axis ratio 0.4-1. Artefacts: ripple peak S/N
        log-uniform in ``artefact_snr`` (5, 15), and the sidelobe level (ripple / bright
        source peak) uniform in ``sidelobe_level`` (0.01, 0.05), which sets the peak of the
        bright source (S/N 100-1500).
    """

    size: int = 128
    pixel_scale_arcsec: float = 1.5
    bmaj_arcsec: float = 9.8
    bmin_arcsec: float = 5.8
    bpa_deg: float = 0.0
    rms_jy: float = 1e-4
    rms_jy_max: float | None = None
    mask_nsigma: float = 3.0
    min_gap_px: int = 1
    max_tries: int = 20
    background: BackgroundKind = "noise"
    diffuse_nsigma: float = 2.0
    diffuse_slope: float = 3.0
    real_backgrounds: list[str] = field(default_factory=list)
    p_compact: float = 0.7
    p_extended: float = 0.35
    p_spurious: float = 0.2
    mean_compact: float = 2.83
    mean_extended: float = 1.03
    mean_artefacts: float = 1.2
    flux_slope: float = 1.6
    compact_snr: tuple[float, float] = (5.0, 1000.0)
    extended_snr: tuple[float, float] = (10.0, 1000.0)
    extended_min_beams: float = 5.0
    compact_resolved_fraction: float = 0.3
    artefact_snr: tuple[float, float] = (5.0, 15.0)
    sidelobe_level: tuple[float, float] = (0.01, 0.05)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> RadiffError:
            return RadiffError(f"simulate config: {name} = {getattr(self, name)!r}: {why}")

        if not 32 <= self.size <= MAX_CUTOUT:
            raise bad("size", f"must be in 32..{MAX_CUTOUT} pixels (a cutout; radiff-scale make-map makes maps)")
        for name in ("pixel_scale_arcsec", "bmaj_arcsec", "bmin_arcsec", "rms_jy", "mask_nsigma"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0")
        if self.rms_jy_max is not None and self.rms_jy_max < self.rms_jy:
            raise bad("rms_jy_max", f"must be >= rms_jy ({self.rms_jy})")
        if self.min_gap_px < 0:
            raise bad("min_gap_px", "must be >= 0")
        if self.max_tries < 1:
            raise bad("max_tries", "must be >= 1")
        if self.background not in ("noise", "noise+diffuse", "real"):
            raise bad("background", "must be 'noise', 'noise+diffuse' or 'real'")
        if self.background == "real" and not self.real_backgrounds:
            raise bad("real_backgrounds", "background 'real' needs at least one FITS map")
        if self.diffuse_nsigma < 0:
            raise bad("diffuse_nsigma", "must be >= 0")
        for name in ("p_compact", "p_extended", "p_spurious", "compact_resolved_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "must be a probability in [0, 1]")
        for name in ("mean_compact", "mean_extended", "mean_artefacts"):
            if getattr(self, name) < 1.0:
                raise bad(name, "is the mean count when present, so it must be >= 1")
        if self.flux_slope == 1.0:
            raise bad("flux_slope", "1.0 is not supported (use e.g. 0.999 or 1.001)")
        for name in ("compact_snr", "extended_snr", "artefact_snr", "sidelobe_level"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise bad(name, "must be two values with 0 < low <= high")
        if self.sidelobe_level[1] >= 1.0:
            raise bad("sidelobe_level", "sidelobes must be fainter than their source (< 1)")
        if self.extended_min_beams < 0:
            raise bad("extended_min_beams", "must be >= 0")

    @property
    def beam(self) -> Beam:
        return Beam(self.bmaj_arcsec, self.bmin_arcsec, self.bpa_deg)
