"""Drawing and placing the objects of a simulated cutout: compact sources, radio galaxies, artefacts.

Each ``place_*`` function draws one object from its own random stream, renders it once,
and tries it at up to ``max_tries`` integer positions until its mask fits the
:class:`~.sim_scene.Scene` (no touching, no border for real sources); an object that never
fits is dropped, never emitted.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from radiff_scale.beam import Beam
from radiff_scale.classes import SourceClass
from radiff_scale.data import sim_artefacts, sim_galaxies
from radiff_scale.data import sim_sources as src
from radiff_scale.data.sim_config import SimConfig
from radiff_scale.data.sim_scene import Scene, grow, paste


def _power_law(rng: np.random.Generator, lo: float, hi: float, slope: float) -> float:
    """One draw from dN/dS ~ S^-slope on [lo, hi] by inverting the CDF."""
    e = 1.0 - slope
    a, b = lo**e, hi**e
    return float((a + rng.random() * (b - a)) ** (1.0 / e))


def draw_count(rng: np.random.Generator, p_present: float, mean: float) -> int:
    """0 with probability 1 - p, else 1 + Poisson(mean - 1) (mean ``mean`` when present)."""
    if rng.random() >= p_present:
        return 0
    return 1 + int(rng.poisson(mean - 1.0))


def _compact_stamp(beam: Beam, scale: float, flux: float, axes: tuple[float, float, float],
                   frac: np.ndarray) -> tuple[np.ndarray, int]:
    """A compact source rendered once in its own window, core at (half + frac); returns (stamp, half)."""
    half = src.support_radius(src.source_covariance(beam, scale, *axes))
    size = 2 * half + 1
    return src.compact_source((size, size), half + frac[0], half + frac[1], flux, beam, scale, *axes), half


def place_compact(scene: Scene, rng: np.random.Generator, config: SimConfig, beam: Beam,
                  scale: float, rms: float) -> None:
    """One compact source; rendered once at a random sub-pixel phase, then tried at integer positions."""
    n = config.size
    peak = _power_law(rng, *config.compact_snr, config.flux_slope) * rms
    axes = (0.0, 0.0, 0.0)
    kind = "point"
    if rng.random() < config.compact_resolved_fraction:
        major = beam.bmaj_arcsec * rng.uniform(0.3, 1.0)
        axes = (major, major * rng.uniform(0.4, 1.0), rng.uniform(0.0, 180.0))
        kind = "resolved"
    flux = src.peak_to_flux(peak, beam, scale, *axes)
    stamp, half = _compact_stamp(beam, scale, flux, axes, rng.random(2))
    stamp32 = stamp.astype(np.float32)
    for _ in range(config.max_tries):
        row, col = (int(v) for v in rng.integers(1, n - 2, size=2))
        if scene.claimed[row, col]:
            continue
        model = paste(scene.shape, stamp32, row - half, col - half)
        mask = scene.mask_of(model)
        if scene.fits(mask):
            scene.accept(SourceClass.COMPACT, model, mask, kind)
            return


def _looks_like_one_gaussian(stamp: np.ndarray, mask: np.ndarray) -> bool:
    """Whether a galaxy's visible part is one island with one peak and an elliptical outline.

    Such a source would be indistinguishable from a resolved compact one, which is not
    what the extended class must teach. The outline test compares the mask with the
    uniform ellipse of the same second moments (intersection over union above 0.85).
    """
    if ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))[1] > 1:
        return False
    peaks = (stamp == ndimage.maximum_filter(stamp, size=5)) & mask
    if int(peaks.sum()) > 1:
        return False
    rows, cols = np.nonzero(mask)
    if rows.size < 6:
        return True
    dr, dc = rows - rows.mean(), cols - cols.mean()
    cov = np.cov(np.vstack([dr, dc]))
    if np.linalg.det(cov) <= 0:
        return False  # a line: certainly not a Gaussian blob
    inv = np.linalg.inv(cov)
    rr, cc = np.indices(mask.shape)
    er, ec = rr - rows.mean(), cc - cols.mean()
    ellipse = inv[0, 0] * er * er + 2 * inv[0, 1] * er * ec + inv[1, 1] * ec * ec <= 4.0
    iou = (ellipse & mask).sum() / max((ellipse | mask).sum(), 1)
    return bool(iou > 0.85)


def place_extended(scene: Scene, rng: np.random.Generator, config: SimConfig, beam: Beam,
                   scale: float, rms: float) -> None:
    """One radio galaxy, scaled to its drawn peak S/N, then tried at integer positions.

    A galaxy whose mask covers fewer than ``extended_min_beams`` beams, or that looks like
    one Gaussian (see :func:`_looks_like_one_gaussian`), is brightened by 1.5x steps up to
    the top of ``extended_snr``; if it still does, a new galaxy is drawn (at most 4).
    """
    n = config.size
    beam_cov = src.beam_covariance(beam, scale)
    peak_max = config.extended_snr[1] * rms
    min_pixels = config.extended_min_beams * scene.area
    for _ in range(4):
        comps = sim_galaxies.radio_galaxy_components(rng, beam.bmaj_arcsec / scale, max_extent_px=0.7 * n)
        half = sim_galaxies.galaxy_support_radius(comps, beam_cov)
        frac = rng.random(2)
        unit = sim_galaxies.render_galaxy((2 * half + 1, 2 * half + 1), half + frac[0], half + frac[1], comps, beam_cov)
        target = _power_law(rng, *config.extended_snr, config.flux_slope) * rms
        top = float(unit.max())
        while True:
            stamp = (unit * (target / top)).astype(np.float32)
            mask = scene.mask_of(stamp)
            compact_like = mask.sum() < min_pixels or _looks_like_one_gaussian(stamp, mask)
            if not compact_like or target >= peak_max:
                break
            target = min(target * 1.5, peak_max)
        if not compact_like:
            break
    lo = int(min(comps.extent + 1, n / 2))
    for _ in range(config.max_tries):
        row, col = (int(v) for v in rng.integers(lo, n - lo, size=2))
        model = paste(scene.shape, stamp, row - half, col - half)
        mask = scene.mask_of(model)
        if scene.fits(mask):
            scene.accept(SourceClass.EXTENDED, model, mask, comps.kind)
            return


def place_artefact(scene: Scene, rng: np.random.Generator, config: SimConfig, beam: Beam,
                   scale: float, rms: float) -> None:
    """A bright point source plus its sidelobe pattern, one spurious object per island.

    The pattern's shape is drawn once and rendered at each tried position. Islands
    (8-connected pixels with |model| above threshold) smaller than half a beam join, whole,
    their nearest large island, and every other pattern pixel goes to its nearest large
    island, so the island models add up to the whole pattern (image = background + models).
    """
    n = config.size
    amplitude = math.exp(rng.uniform(*np.log(config.artefact_snr))) * rms
    flux = amplitude / rng.uniform(*config.sidelobe_level)  # a point source: flux (Jy) == peak (Jy/beam)
    params = sim_artefacts.draw_sidelobe_params(rng, beam.bmaj_arcsec / scale)
    frac = rng.random(2)
    bright, half = _compact_stamp(beam, scale, flux, (0.0, 0.0, 0.0), frac)
    bright32 = bright.astype(np.float32)
    rr, cc = np.nonzero(bright32 >= scene.threshold)
    inner = float(np.sqrt(((rr - half - frac[0]) ** 2 + (cc - half - frac[1]) ** 2).max())) if rr.size else 0.0
    inner += scene.gap + 0.5 * beam.bmaj_arcsec / scale
    min_island = max(0.5 * scene.area, 4.0)
    eight = np.ones((3, 3), dtype=bool)
    for _ in range(config.max_tries):
        row, col = (int(v) for v in rng.integers(int(0.2 * n), int(0.8 * n) + 1, size=2))
        bright_model = paste(scene.shape, bright32, row - half, col - half)
        bright_mask = scene.mask_of(bright_model)
        if not scene.fits(bright_mask):
            continue
        raw = sim_artefacts.sidelobe_pattern(scene.shape, row + frac[0], col + frac[1], params, beam, scale, inner)
        pattern = (raw * (amplitude / max(float(np.abs(raw).max()), 1e-300))).astype(np.float32)
        # Keep the artefact's masks off the bright source and its gap, exactly.
        pattern[grow(bright_mask, scene.gap + 1)] = 0.0
        above = scene.mask_of(pattern, signed=True)
        if (above & scene.claimed).any():
            continue
        scene.accept(SourceClass.COMPACT, bright_model, bright_mask, "bright")
        labels, n_islands = ndimage.label(above, structure=eight)
        if n_islands == 0:
            return  # nothing above the threshold: the ripple is left out of the image entirely
        sizes = np.bincount(labels.ravel(), minlength=n_islands + 1)[1:]
        big = np.flatnonzero(sizes >= min_island) + 1
        if big.size == 0:
            big = np.array([int(np.argmax(sizes)) + 1])
        big_labels = np.where(np.isin(labels, big), labels, 0)
        distance, (ir, ic) = ndimage.distance_transform_edt(big_labels == 0, return_indices=True)
        owner = big_labels[ir, ic]
        for small in np.setdiff1d(np.arange(1, n_islands + 1), big):
            # A small island joins one large island whole (the one nearest to it), so that two
            # objects' masks never share a border.
            where = np.flatnonzero(labels.ravel() == small)
            owner.flat[where] = owner.flat[where[np.argmin(distance.flat[where])]]
        for label in big:
            model = np.where(owner == label, pattern, np.float32(0.0))
            scene.accept(SourceClass.SPURIOUS, model, scene.mask_of(model, signed=True), params.kind)
        return
