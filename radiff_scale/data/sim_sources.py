"""Gaussian sources through the beam: the simulator's compact sources and the building block of its galaxies.

Why analytic Gaussians: a Gaussian convolved with the Gaussian restoring beam is again a
Gaussian whose covariance is the sum of the two, so compact sources and every component
of a radio galaxy (:mod:`.sim_galaxies`) are rendered *exactly* convolved, with no FFT
and no kernel-edge error, and the integrated flux is known in closed form. Only the
imaging-artefact pattern (:mod:`.sim_artefacts`), which is not a sum of Gaussians, goes
through a numerical convolution (:mod:`.sim_convolution`).

Geometry: arrays are [row, col]; position angles are degrees east of north with north
along +row and east along -col, the convention of :mod:`radiff_scale.beam`.
Covariances are 2x2 in (row, col) pixel units.
"""

from __future__ import annotations

import math

import numpy as np

from radiff_scale.beam import FWHM_TO_SIGMA, Beam

#: Gaussians are evaluated out to this many sigma (of the convolved major axis); beyond it a
#: component is < 1.6e-8 of its peak, far below any mask threshold even at S/N 10^4.
WINDOW_SIGMA = 6.0


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
        half = int(math.ceil(WINDOW_SIGMA * math.sqrt(max(cov[0, 0], cov[1, 1]))))
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


def largest_variance(covs: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of each 2x2 covariance in ``covs`` (..., 2, 2), in closed form."""
    a, d, b = covs[..., 0, 0], covs[..., 1, 1], covs[..., 0, 1]
    return 0.5 * (a + d) + np.sqrt(0.25 * (a - d) ** 2 + b * b)


def support_radius(cov: np.ndarray) -> int:
    """Half size (px) of a window holding a Gaussian of covariance ``cov`` to +-6 sigma."""
    return int(math.ceil(WINDOW_SIGMA * math.sqrt(float(largest_variance(cov)))))


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
