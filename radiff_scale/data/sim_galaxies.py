"""Extended sources for the cutout simulator: two-sided radio galaxies as sums of Gaussians.

Why Gaussians: each component seen through the Gaussian beam is again a Gaussian
(:mod:`.sim_sources`), so a galaxy of a few dozen components is rendered exactly
convolved, with its integrated flux known, in a few hundred microseconds.
Sizes are drawn in units of the beam FWHM so the morphology survives any beam/pixel choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from radiff_scale.beam import FWHM_TO_SIGMA
from radiff_scale.data.sim_sources import WINDOW_SIGMA, add_gaussians, largest_variance

#: Morphology families and their probabilities. FR-I: brightest near the core, jets that
#: widen into plumes and fade outwards. FR-II: faint or absent core, lobes brightening
#: outwards to compact hotspots at the ends (their faint middles often split the source into
#: 2-3 islands). Tailed: FR-I jets swept back to one side by ram pressure (narrow/wide-angle tails).
GALAXY_KINDS: tuple[str, ...] = ("fr1", "fr2", "tailed")
GALAXY_KIND_PROBS: tuple[float, ...] = (0.35, 0.45, 0.20)


@dataclass(frozen=True)
class GalaxyComponents:
    """Intrinsic Gaussian components of one radio galaxy, relative to its core.

    ``weights`` sum to 1 (fractions of the integrated flux); ``covs`` are intrinsic (before
    the beam); ``extent`` bounds every component centre's distance from the core (px).
    """

    kind: str
    drow: np.ndarray
    dcol: np.ndarray
    weights: np.ndarray
    covs: np.ndarray
    extent: float


def _arm_path(
    length: float, angle: float, bend: float, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points along a jet that starts at the core in direction ``angle`` and turns by ``bend``.

    The heading turns linearly with distance, so the jet is a circular-ish arc: bent and
    tailed sources come out curved rather than kinked. Returns (t in (0,1], drow, dcol,
    heading), heading being the local direction as a PA in radians.
    """
    t = np.linspace(1.0 / n, 1.0, n)
    heading = angle + bend * t
    step = length / n
    drow = np.cumsum(step * np.cos(heading))
    dcol = np.cumsum(step * -np.sin(heading))
    return t, drow, dcol, heading


def _blob_covs(width_major: np.ndarray, width_minor: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Covariances of blobs elongated along the local jet heading (FWHM px; heading = PA in radians).

    The vectorised form of :func:`gaussian_covariance`.
    """
    s_maj2 = (width_major * FWHM_TO_SIGMA) ** 2
    s_min2 = (width_minor * FWHM_TO_SIGMA) ** 2
    cos, sin = np.cos(heading), np.sin(heading)
    out = np.empty((len(width_major), 2, 2))
    out[:, 0, 0] = s_maj2 * cos * cos + s_min2 * sin * sin
    out[:, 1, 1] = s_maj2 * sin * sin + s_min2 * cos * cos
    out[:, 0, 1] = out[:, 1, 0] = (s_min2 - s_maj2) * sin * cos
    return out


def radio_galaxy_components(rng: np.random.Generator, beam_fwhm_px: float, max_extent_px: float,
                            kind: str | None = None) -> GalaxyComponents:
    """Draw a two-sided radio galaxy as a few dozen intrinsic Gaussian components.

    Sizes are in units of the beam FWHM (``beam_fwhm_px``) so morphology survives any
    beam/pixel choice: total largest angular size 4-12 beams, capped by ``max_extent_px``
    (twice the longer arm). Arms are asymmetric (length ratio 0.6-1), slightly misaligned
    (+-20 deg) and bent (+-25 deg; tailed: both arms swept 70-160 deg to the same side).
    """
    if kind is None:
        kind = str(rng.choice(GALAXY_KINDS, p=GALAXY_KIND_PROBS))
    b = beam_fwhm_px
    las = min(b * rng.uniform(4.0, 12.0), max_extent_px)
    pa = rng.uniform(0.0, 2.0 * math.pi)
    arm_len = np.array([1.0, rng.uniform(0.6, 1.0)]) * las / 2.0
    rng.shuffle(arm_len)
    misalign = rng.uniform(-0.35, 0.35)
    if kind == "tailed":
        side = rng.choice([-1.0, 1.0])
        opening = rng.uniform(math.radians(60), math.radians(150))  # angle between the arms at the core
        angles = np.array([pa, pa + opening * side])
        sweep = rng.uniform(math.radians(40), math.radians(110))
        # Both arms turn towards the bisector's far side: a C/U-shaped tail.
        bends = np.array([-side * sweep, side * sweep]) * rng.uniform(0.5, 1.0, size=2)
    else:
        angles = np.array([pa, pa + math.pi + misalign])
        bends = rng.uniform(-0.45, 0.45, size=2)
        if rng.random() < 0.5:  # S/Z symmetry of precessing jets
            bends[1] = -bends[0] * rng.uniform(0.5, 1.0)

    drow, dcol, weights, major, minor, heads = [], [], [], [], [], []

    def add(r, c, w, a, bb, h) -> None:
        drow.append(np.atleast_1d(r)); dcol.append(np.atleast_1d(c)); weights.append(np.atleast_1d(w))
        major.append(np.atleast_1d(a)); minor.append(np.atleast_1d(bb)); heads.append(np.atleast_1d(h))

    if kind in ("fr1", "tailed"):
        core = rng.uniform(0.03, 0.15)
        add(0.0, 0.0, core, 0.05 * b, 0.05 * b, 0.0)
        arm_flux = (1.0 - core) * np.array([0.5, 0.5]) * rng.uniform(0.7, 1.3, size=2)
        for length, angle, bend, flux in zip(arm_len, angles, bends, arm_flux):
            n = max(int(length / (0.3 * b)), 4)
            t, r, c, h = _arm_path(length, angle, bend, n)
            # Surface brightness fades outwards (FR-I) with a few bright knots, while the jet
            # widens into a plume; a component's flux is its surface brightness times its area.
            surface = (1.0 - 0.75 * t) ** 1.2 * (1.0 + rng.random(n) ** 2)
            surface[rng.integers(0, n, size=2)] *= rng.uniform(1.5, 3.0, size=2)
            width = b * (0.15 + 0.9 * t**1.3) * rng.uniform(0.8, 1.2)
            bright = surface * width * width
            add(r, c, flux * bright / bright.sum(), width * 1.3, width, h)
    elif kind == "fr2":
        core = rng.uniform(0.0, 0.08) if rng.random() < 0.75 else 0.0
        if core > 0:
            add(0.0, 0.0, core, 0.05 * b, 0.05 * b, 0.0)
        arm_flux = (1.0 - core) * np.array([0.5, 0.5]) * rng.uniform(0.6, 1.4, size=2)
        for length, angle, bend, flux in zip(arm_len, angles, bends, arm_flux):
            n = max(int(length / (0.35 * b)), 4)
            t, r, c, h = _arm_path(length, angle, bend, n)
            hotspot = rng.uniform(0.1, 0.3)
            # Lobe: backflow material brightening towards the hotspot, broad and faint inside.
            lobe_start = rng.uniform(0.2, 0.6)
            bright = (np.clip(t - lobe_start, 0.0, None) / (1 - lobe_start)) ** 1.5
            bright += 0.03 * rng.random(n)  # faint jet / bridge: often below 3 sigma -> islands
            width = b * rng.uniform(0.8, 1.5) * (0.4 + 0.6 * t)
            add(r, c, flux * (1 - hotspot) * bright / bright.sum(), width * 1.2, width, h)
            add(r[-1], c[-1], flux * hotspot, 0.3 * b, 0.2 * b, h[-1])
    else:  # pragma: no cover - guarded by GALAXY_KINDS
        raise ValueError(f"unknown galaxy kind {kind!r}")

    drow_a = np.concatenate(drow)
    dcol_a = np.concatenate(dcol)
    w = np.concatenate(weights)
    covs = _blob_covs(np.concatenate(major), np.concatenate(minor), np.concatenate(heads))
    extent = float(np.max(np.hypot(drow_a, dcol_a)))
    return GalaxyComponents(kind, drow_a, dcol_a, w / w.sum(), covs, extent)


def render_galaxy(shape: tuple[int, int], row: float, col: float, comps: GalaxyComponents,
                  beam_cov: np.ndarray) -> np.ndarray:
    """The galaxy seen through the beam with its core at (row, col), unit integral (scale it afterwards)."""
    image = np.zeros(shape, dtype=np.float64)
    add_gaussians(image, row + comps.drow, col + comps.dcol, comps.weights, comps.covs + beam_cov[None])
    return image


def galaxy_support_radius(comps: GalaxyComponents, beam_cov: np.ndarray) -> int:
    """Half size (px) of a window centred on the core that holds the whole galaxy to +-6 sigma."""
    widest = float(largest_variance(comps.covs + beam_cov[None]).max())
    return int(math.ceil(comps.extent)) + int(math.ceil(WINDOW_SIGMA * math.sqrt(widest)))
