"""Spurious objects for the cutout simulator: sidelobe artefacts around a bright source.

Imaging artefacts are what the spurious class must teach: positive and negative ripples
(ring arcs, radial spokes) around a bright source, left by incomplete deconvolution.
A pattern is drawn once (:class:`SidelobeParams`) and rendered at any position, so the
placement loop can try many positions for the price of one draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from radiff_scale.beam import FWHM_TO_SIGMA, Beam
from radiff_scale.data.sim_convolution import smooth_by_beam

#: Artefact families: arcs of concentric rings (the dirty beam of a sparse array, left by
#: incomplete deconvolution), radial spokes (few long baselines, phase errors), or both.
ARTEFACT_KINDS: tuple[str, ...] = ("rings", "spokes", "both")
ARTEFACT_KIND_PROBS: tuple[float, ...] = (0.4, 0.3, 0.3)


@dataclass(frozen=True)
class SidelobeParams:
    """The random shape of one artefact, drawn once and rendered at any position.

    Lengths in pixels, angles in radians (PA-like: east of north). ``ring_wavelength`` is 0
    when there are no rings, ``spoke_angles`` empty when there are no spokes.
    """

    kind: str
    ring_wavelength: float = 0.0
    ring_decay: float = 0.0
    ring_phase: float = 0.0
    arc_m: int = 1
    arc_power: float = 1.0
    arc_angle: float = 0.0
    spoke_angles: tuple[float, ...] = ()
    spoke_signs: tuple[float, ...] = ()
    spoke_width: float = 1.0
    spoke_decay: float = 1.0
    spoke_weight: float = 1.0


def draw_sidelobe_params(rng: np.random.Generator, beam_fwhm_px: float, kind: str | None = None) -> SidelobeParams:
    """Draw an artefact's shape, scaled to the beam (``beam_fwhm_px``: major FWHM in pixels).

    Rings: cos of the radius over a wavelength of 3-5 beams, so positive and negative arcs
    alternate, decaying over 0.4-1 wavelength and cut into arcs by an azimuthal weight
    ((1 + cos(m (phi - phi0))) / 2)^p (m = 1..2, p = 2..5). Spokes: 2-4 radial streaks of
    Gaussian cross-section (sigma 1-1.5 beam sigmas), alternately positive and negative,
    fading over 2-5 beams, weighted 0.6-1.2 against the rings.
    """
    if kind is None:
        kind = str(rng.choice(ARTEFACT_KINDS, p=ARTEFACT_KIND_PROBS))
    if kind not in ARTEFACT_KINDS:
        raise ValueError(f"unknown artefact kind {kind!r}")
    b = beam_fwhm_px
    params: dict = {"kind": kind}
    if kind in ("rings", "both"):
        wavelength = b * rng.uniform(3.0, 5.0)
        params.update(
            ring_wavelength=wavelength,
            ring_decay=wavelength * rng.uniform(0.4, 1.0),
            ring_phase=rng.uniform(0, 2 * math.pi),
            arc_m=int(rng.integers(1, 3)),
            arc_power=rng.uniform(2.0, 5.0),
            arc_angle=rng.uniform(0, 2 * math.pi),
        )
    if kind in ("spokes", "both"):
        n_spokes = int(rng.integers(2, 5))
        angles = rng.uniform(0, 2 * math.pi) + np.arange(n_spokes) * (2 * math.pi / n_spokes)
        angles += rng.normal(0.0, 0.1, size=n_spokes)
        signs = np.where(np.arange(n_spokes) % 2 == 0, 1.0, -1.0) * rng.choice([-1.0, 1.0])
        params.update(
            spoke_angles=tuple(float(a) for a in angles),
            spoke_signs=tuple(float(x) for x in signs),
            spoke_width=b * FWHM_TO_SIGMA * rng.uniform(1.0, 1.5),
            spoke_decay=b * rng.uniform(2.0, 5.0),
            spoke_weight=rng.uniform(0.6, 1.2),
        )
    return SidelobeParams(**params)


def sidelobe_pattern(
    shape: tuple[int, int],
    row: float,
    col: float,
    params: SidelobeParams,
    beam: Beam,
    pixel_scale_arcsec: float,
    inner_radius_px: float,
) -> np.ndarray:
    """The artefact ``params`` around (row, col) on a ``shape`` grid, beam-convolved, in units of its amplitude.

    Evaluated on a grid padded by the beam kernel's half size and convolved periodically,
    then cropped, so the result equals a linear convolution of the infinite pattern. A
    taper 1 - exp(-(r / inner)^6) clears the bright source that causes the pattern. The
    raw ripple has amplitude 1; the caller scales it.
    """
    half = beam.kernel(pixel_scale_arcsec).shape[0] // 2
    padded = (shape[0] + 2 * half, shape[1] + 2 * half)
    dr = np.arange(padded[0], dtype=np.float64)[:, None] - (row + half)
    dc = np.arange(padded[1], dtype=np.float64)[None, :] - (col + half)
    radius = np.hypot(dr, dc)
    beyond = np.clip(radius - inner_radius_px, 0.0, None)
    pattern = np.zeros(padded, dtype=np.float64)
    if params.ring_wavelength > 0:
        # cos(m (phi - phi0)) from unit vectors (no arctan2): phi is east of north, so
        # (cos phi, sin phi) = (dr, -dc) / r.
        with np.errstate(invalid="ignore", divide="ignore"):
            cos_d = np.nan_to_num((dr * math.cos(params.arc_angle) - dc * math.sin(params.arc_angle)) / radius)
        cos_m = cos_d if params.arc_m == 1 else 2.0 * cos_d * cos_d - 1.0
        arcs = (0.5 * (1.0 + cos_m)) ** params.arc_power
        ripple = np.cos((2 * math.pi / params.ring_wavelength) * beyond + params.ring_phase)
        pattern += arcs * ripple * np.exp(-beyond / params.ring_decay)
    if params.spoke_angles:
        spokes = np.zeros(padded)
        for a, sign in zip(params.spoke_angles, params.spoke_signs):
            along = dr * math.cos(a) - dc * math.sin(a)
            across = dr * math.sin(a) + dc * math.cos(a)
            spokes += np.where(along > 0, sign * np.exp((-0.5 / params.spoke_width**2) * across * across), 0.0)
        pattern += params.spoke_weight * spokes * np.exp(-beyond / params.spoke_decay)
    pattern *= -np.expm1(-((radius / inner_radius_px) ** 6))
    return smooth_by_beam(pattern, beam, pixel_scale_arcsec)[half : half + shape[0], half : half + shape[1]]
