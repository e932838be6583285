"""Noise-free source models for the cutout simulator, in Jy/beam, already seen through the beam.

Why analytic Gaussians: a Gaussian convolved with the Gaussian restoring beam is again a
Gaussian whose covariance is the sum of the two, so compact sources and every component
of a radio galaxy are rendered *exactly* convolved, with no FFT and no kernel-edge
error, and the integrated flux is known in closed form. Only the imaging-artefact
pattern, which is not a sum of Gaussians, goes through a numerical convolution.

Geometry: arrays are [row, col]; position angles are degrees east of north with north
along +row and east along -col, the convention of :mod:`radiff_scale.beam`.
Covariances are 2x2 in (row, col) pixel units.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

from radiff_scale.beam import FWHM_TO_SIGMA, Beam

#: Gaussians are evaluated out to this many sigma (of the convolved major axis); beyond it a
#: component is < 1.6e-8 of its peak, far below any mask threshold even at S/N 10^4.
_WINDOW_SIGMA = 6.0


def gaussian_covariance(fwhm_major_px: float, fwhm_minor_px: float, pa_deg: float) -> np.ndarray:
    """Covariance (row, col) of an elliptical Gaussian with the given FWHM axes and PA."""
    theta = math.radians(pa_deg)
    major = np.array([math.cos(theta), -math.sin(theta)])
    minor = np.array([math.sin(theta), math.cos(theta)])
    s_maj = fwhm_major_px * FWHM_TO_SIGMA
    s_min = fwhm_minor_px * FWHM_TO_SIGMA
    return s_maj**2 * np.outer(major, major) + s_min**2 * np.outer(minor, minor)


def beam_covariance(beam: Beam, pixel_scale_arcsec: float) -> np.ndarray:
    """The restoring beam's covariance in pixels."""
    return gaussian_covariance(
        beam.bmaj_arcsec / pixel_scale_arcsec, beam.bmin_arcsec / pixel_scale_arcsec, beam.bpa_deg
    )


def add_gaussians(
    image: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    sums: np.ndarray,
    covs: np.ndarray,
) -> None:
    """Add normalised Gaussians to ``image`` in place, each in a window of +-6 sigma.

    ``sums[i]`` is the integral of component ``i`` (its pixel sum when the window is not
    clipped by the image edge); ``covs`` has shape (n, 2, 2). Working in windows keeps a
    40-component galaxy at a few hundred microseconds.
    """
    height, width = image.shape
    for r0, c0, total, cov in zip(rows, cols, sums, covs):
        half = int(math.ceil(_WINDOW_SIGMA * math.sqrt(max(cov[0, 0], cov[1, 1]))))
        rlo, rhi = max(int(math.floor(r0)) - half, 0), min(int(math.ceil(r0)) + half + 1, height)
        clo, chi = max(int(math.floor(c0)) - half, 0), min(int(math.ceil(c0)) + half + 1, width)
        if rlo >= rhi or clo >= chi:
            continue
        det = cov[0, 0] * cov[1, 1] - cov[0, 1] * cov[1, 0]
        inv_rr, inv_cc, inv_rc = cov[1, 1] / det, cov[0, 0] / det, -cov[0, 1] / det
        dr = (np.arange(rlo, rhi) - r0)[:, None]
        dc = (np.arange(clo, chi) - c0)[None, :]
        quad = inv_rr * dr * dr + 2.0 * inv_rc * dr * dc + inv_cc * dc * dc
        image[rlo:rhi, clo:chi] += (total / (2.0 * math.pi * math.sqrt(det))) * np.exp(-0.5 * quad)


def source_covariance(beam: Beam, pixel_scale_arcsec: float, major_arcsec: float = 0.0,
                      minor_arcsec: float = 0.0, pa_deg: float = 0.0) -> np.ndarray:
    """Covariance (px) of a Gaussian source of intrinsic FWHM axes seen through the beam."""
    cov = beam_covariance(beam, pixel_scale_arcsec)
    if major_arcsec > 0:
        cov = cov + gaussian_covariance(
            major_arcsec / pixel_scale_arcsec, max(minor_arcsec, 1e-6) / pixel_scale_arcsec, pa_deg
        )
    return cov


def _largest_variance(covs: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of each 2x2 covariance in ``covs`` (..., 2, 2), in closed form."""
    a, d, b = covs[..., 0, 0], covs[..., 1, 1], covs[..., 0, 1]
    return 0.5 * (a + d) + np.sqrt(0.25 * (a - d) ** 2 + b * b)


def support_radius(cov: np.ndarray) -> int:
    """Half size (px) of a window holding a Gaussian of covariance ``cov`` to +-6 sigma."""
    return int(math.ceil(_WINDOW_SIGMA * math.sqrt(float(_largest_variance(cov)))))


def compact_source(
    shape: tuple[int, int],
    row: float,
    col: float,
    flux_jy: float,
    beam: Beam,
    pixel_scale_arcsec: float,
    major_arcsec: float = 0.0,
    minor_arcsec: float = 0.0,
    pa_deg: float = 0.0,
) -> np.ndarray:
    """A point (axes 0) or resolved elliptical Gaussian of integrated flux ``flux_jy``, in Jy/beam.

    Intrinsic axes are FWHM before the beam. The pixel sum divided by the beam area in
    pixels gives ``flux_jy`` back (to < 1e-6 when the source is well inside the image).
    """
    cov = source_covariance(beam, pixel_scale_arcsec, major_arcsec, minor_arcsec, pa_deg)
    image = np.zeros(shape, dtype=np.float64)
    total = flux_jy * beam.area_pixels(pixel_scale_arcsec)
    add_gaussians(image, np.array([row]), np.array([col]), np.array([total]), cov[None])
    return image


def peak_to_flux(peak_jy: float, beam: Beam, pixel_scale_arcsec: float, major_arcsec: float = 0.0,
                 minor_arcsec: float = 0.0, pa_deg: float = 0.0) -> float:
    """Integrated flux (Jy) of a Gaussian source whose analytic peak is ``peak_jy`` (Jy/beam).

    Peak and flux differ by the ratio of convolved to beam area: sqrt(det C_tot / det C_beam).
    """
    cov_b = beam_covariance(beam, pixel_scale_arcsec)
    cov = source_covariance(beam, pixel_scale_arcsec, major_arcsec, minor_arcsec, pa_deg)
    return peak_jy * math.sqrt(np.linalg.det(cov) / np.linalg.det(cov_b))


# --------------------------------------------------------------------------------------
# Extended sources: multi-component radio galaxies
# --------------------------------------------------------------------------------------

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
    widest = float(_largest_variance(comps.covs + beam_cov[None]).max())
    return int(math.ceil(comps.extent)) + int(math.ceil(_WINDOW_SIGMA * math.sqrt(widest)))


# --------------------------------------------------------------------------------------
# Beam convolution on a periodic grid
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _beam_transfer(shape: tuple[int, int], bmaj: float, bmin: float, bpa: float, scale: float) -> tuple[np.ndarray, float, float, int]:
    """rfft2 of the peak-1 beam kernel centred on pixel (0, 0) of a periodic ``shape`` grid.

    Cached because every cutout of a run shares it (a pure function of its arguments, so
    the cache can never change a result). Returns (transfer, sum k, sqrt(sum k^2), half size).
    """
    kernel = Beam(bmaj, bmin, bpa).kernel(scale)
    half = kernel.shape[0] // 2
    if kernel.shape[0] > min(shape):
        raise ValueError(f"beam kernel {kernel.shape} larger than grid {shape}")
    grid = np.zeros(shape)
    grid[: kernel.shape[0], : kernel.shape[1]] = kernel
    grid = np.roll(grid, (-half, -half), axis=(0, 1))
    transfer = sp_fft.rfft2(grid)
    transfer.setflags(write=False)
    return transfer, float(kernel.sum()), float(np.sqrt(np.sum(kernel * kernel))), half


def beam_noise(rng: np.random.Generator, shape: tuple[int, int], beam: Beam, pixel_scale_arcsec: float,
               rms: float) -> np.ndarray:
    """Beam-correlated Gaussian noise of exactly ``rms`` (in expectation), by periodic FFT convolution.

    A cutout needs no halo (unlike :func:`radiff_scale.beam.correlated_noise`, which keeps
    chunks of a mosaic seamless): white noise convolved circularly is just as stationary,
    and at 128^2 it is several times cheaper than a linear convolution of a padded field.
    The scale is analytic (rms / sqrt(sum k^2)), as in the mosaic code.
    """
    transfer, _, norm, _ = _beam_transfer(tuple(shape), beam.bmaj_arcsec, beam.bmin_arcsec, beam.bpa_deg,
                                          pixel_scale_arcsec)
    white = rng.standard_normal(shape)
    return sp_fft.irfft2(sp_fft.rfft2(white) * transfer, s=shape) * (rms / norm)


def _smooth_by_beam(image: np.ndarray, beam: Beam, pixel_scale_arcsec: float) -> np.ndarray:
    """Convolve with the unit-sum beam; ``image`` must already carry a halo it can lose.

    Periodic convolution wraps only within the kernel's half size of the edges, so callers
    evaluate on a grid padded by that much and crop it (see :func:`sidelobe_pattern`).
    """
    transfer, total, _, _ = _beam_transfer(image.shape, beam.bmaj_arcsec, beam.bmin_arcsec, beam.bpa_deg,
                                           pixel_scale_arcsec)
    return sp_fft.irfft2(sp_fft.rfft2(image) * transfer, s=image.shape) / total


# --------------------------------------------------------------------------------------
# Spurious: sidelobe artefacts around a bright source
# --------------------------------------------------------------------------------------

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
    return _smooth_by_beam(pattern, beam, pixel_scale_arcsec)[half : half + shape[0], half : half + shape[1]]
