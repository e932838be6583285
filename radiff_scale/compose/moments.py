"""Second-moment shapes: the one description of an object's size that catalogues, the beam and
our stamps share.

A source finder reports a source as an elliptical Gaussian (major and minor FWHM, PA);
an elliptical Gaussian *is* its 2x2 covariance, and convolving with the beam adds the
beam's covariance. So sizes are handled here as covariances in pixels^2 on the
(row, col) grid: built from (FWHM, FWHM, PA), measured from a stamp's flux, deconvolved
by subtracting the beam's, and turned back into (FWHM, FWHM, PA). PA is degrees east of
north in [0, 180) with north = +row and east = -col, as in :mod:`radiff_scale.beam`.
"""

from __future__ import annotations

import math

import numpy as np

from radiff_scale.beam import Beam

#: sqrt(8 ln 2): FWHM of a Gaussian in units of its sigma.
SIGMA_TO_FWHM = math.sqrt(8.0 * math.log(2.0))


def covariance(major_px: float, minor_px: float, pa_deg: float) -> np.ndarray:
    """The (row, col) covariance of an elliptical Gaussian of FWHM ``major_px`` x ``minor_px`` at ``pa_deg``."""
    theta = math.radians(pa_deg)
    along = np.array([math.cos(theta), -math.sin(theta)])  # north towards east: +row, then -col
    across = np.array([math.sin(theta), math.cos(theta)])
    s_maj, s_min = major_px / SIGMA_TO_FWHM, minor_px / SIGMA_TO_FWHM
    return s_maj**2 * np.outer(along, along) + s_min**2 * np.outer(across, across)


def beam_covariance(beam: Beam, pixel_scale_arcsec: float) -> np.ndarray:
    """The restoring beam's covariance in pixels^2."""
    return covariance(beam.bmaj_arcsec / pixel_scale_arcsec, beam.bmin_arcsec / pixel_scale_arcsec, beam.bpa_deg)


def axes(cov: np.ndarray) -> tuple[float, float, float]:
    """(major FWHM, minor FWHM, PA deg in [0, 180)) of a covariance; a round one gets PA 0.
    Negative eigenvalues (a deconvolution below the beam) count as 0. Closed form: a
    catalogue measures tens of thousands of objects, and ``eigh`` plus a dozen small
    reductions cost more than everything else about a row."""
    var_r, var_c, c = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    mean, half_gap = (var_r + var_c) / 2.0, math.hypot((var_r - var_c) / 2.0, c)
    lam_maj, lam_min = max(mean + half_gap, 0.0), max(mean - half_gap, 0.0)
    major, minor = SIGMA_TO_FWHM * math.sqrt(lam_maj), SIGMA_TO_FWHM * math.sqrt(lam_min)
    if 2.0 * half_gap <= 1e-9 * lam_maj:  # round (to 1e-9): no defined PA
        return major, minor, 0.0
    a = (c, mean + half_gap - var_r)
    b = (mean + half_gap - var_c, c)
    v_row, v_col = a if math.hypot(*a) >= math.hypot(*b) else b
    pa_deg = math.degrees(math.atan2(-v_col, v_row)) % 180.0
    return major, minor, (0.0 if pa_deg >= 180.0 else pa_deg)


def flux_moments(data: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(centroid (row, col), covariance) of the positive part of ``data``; None if nothing is positive.

    Only positive pixels weigh, as a finder fitting the emission would see it (noise or
    a negative bowl inside a mask is not the source). Each pixel counts as a point: the
    stamp is already sampled at the map's pixels, so no 1/12 px^2 is added here.
    """
    w = np.maximum(np.asarray(data, dtype=np.float64), 0.0)
    total = w.sum()
    if not total > 0:
        return None
    rows = np.arange(w.shape[0], dtype=np.float64)
    cols = np.arange(w.shape[1], dtype=np.float64)
    wr, wc = w.sum(axis=1), w.sum(axis=0)
    mr, mc = float(wr @ rows) / total, float(wc @ cols) / total
    dr, dc = rows - mr, cols - mc
    var_r = float(wr @ (dr * dr)) / total
    var_c = float(wc @ (dc * dc)) / total
    cov_rc = float(dr @ w @ dc) / total
    return np.array([mr, mc]), np.array([[var_r, cov_rc], [cov_rc, var_c]])


def deconvolve(observed: np.ndarray, beam: np.ndarray) -> np.ndarray:
    """The intrinsic covariance: ``observed`` minus the beam's, with negative axes set to 0
    (an object no larger than the beam along an axis is unresolved along it)."""
    values, vectors = np.linalg.eigh(np.asarray(observed, dtype=np.float64) - np.asarray(beam, dtype=np.float64))
    return (vectors * np.maximum(values, 0.0)) @ vectors.T


def sqrtm(cov: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite 2x2 matrix."""
    values, vectors = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


def matching_map(source: np.ndarray, target: np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
    """A linear map ``T`` with ``T @ source @ T.T == target`` (both positive definite).

    Such maps differ by a rotation in between; the rotation is the orthogonal Procrustes
    answer for ``near`` (default: the identity), which is exact when either covariance is
    round and close otherwise: the object is stretched along its own axes and turned
    little more than it has to be, so its texture and its mask stay recognisable.
    """
    s_half = sqrtm(source)
    s_inv = np.linalg.inv(s_half)
    t_half = sqrtm(target)
    ref = np.eye(2) if near is None else np.asarray(near, dtype=np.float64)
    # T = t_half @ U @ s_inv; minimise |T - ref| over rotations U: U = polar(t_half.T @ ref @ s_inv.T).
    m = t_half.T @ ref @ s_inv.T
    u, _, vt = np.linalg.svd(m)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])  # a rotation, not a reflection (no mirrored sky)
    return t_half @ (u @ d @ vt) @ s_inv
