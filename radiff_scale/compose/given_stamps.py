"""A catalogue row's object: its cut moved so its flux centroid is where the row says, and,
when the row gives a size, stretched so its second moments are the row's.

Placement happens before any tile exists (the tile is sampled for the object's mask at
its place), so the planner can only reserve a *region* for a given object: its mask,
stretched by the mask's own moments towards the row's shape and grown by a few pixels
(radiff_scale.mapjob.plan). Here, with the tile in hand, the object's own flux decides:

* position: the flux-weighted centroid goes to the requested pixel. Without a shape the
  cut moves by whole pixels (its pixels untouched, centroid within half a pixel);
* shape: a linear map takes the cut's flux covariance to the target's (the row's size
  convolved with the beam, :mod:`radiff_scale.compose.moments`), applied by bilinear
  resampling about the centroid, refined on the resampled pixels themselves (the mask's
  edge and the interpolation shift the moments a little), then moved without re-shaping.

What leaves the region is cut off (the region is what the planner kept free of other
objects); the catalogue then measures what is left, so the truth stays the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radiff_scale.compose.moments import covariance, flux_moments, matching_map

#: Refinements of the shaping map on the resampled pixels (each one resamples the cut once).
REFINEMENTS = 5
#: Then tries that only move the best map (an object clipped by its region keeps a centroid
#: offset that re-shaping does not remove).
SHIFTS = 2
#: Added to both covariances a shaping map matches (a pixel's own spread, 1/12 px^2): an
#: object whose flux sits in one pixel, or one line of pixels, has a singular covariance.
PIXEL_VARIANCE = np.eye(2) / 12.0


@dataclass(frozen=True)
class Region:
    """The pixels of the map the planner reserved for one object: ``crop`` at (row0, col0)."""

    crop: np.ndarray
    row0: int
    col0: int


@dataclass(frozen=True)
class MovedCut:
    """A cut on the map: ``data`` (float64, zero outside ``mask``) with [0, 0] at map pixel (row0, col0)."""

    data: np.ndarray
    mask: np.ndarray
    row0: int
    col0: int


def _trimmed(data: np.ndarray, mask: np.ndarray, row0: int, col0: int, target_rc: tuple[float, float]) -> MovedCut:
    if not mask.any():
        # Nothing of the object is left (a size far below a pixel, or a cut that left its
        # region): the object becomes the one pixel at its position, so a catalogue row is
        # never lost to a rounding -- the truth then says what it became.
        r = min(max(int(np.floor(target_rc[0] + 0.5)) - row0, 0), mask.shape[0] - 1)
        c = min(max(int(np.floor(target_rc[1] + 0.5)) - col0, 0), mask.shape[1] - 1)
        mask = np.zeros_like(mask)
        mask[r, c] = True
        data = np.zeros(mask.shape)
        data[r, c] = 1.0
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    m = np.ascontiguousarray(mask[r0:r1, c0:c1])
    return MovedCut(np.where(m, data[r0:r1, c0:c1], 0.0), m, row0 + r0, col0 + c0)


def _weights(cut: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux moments of the cut, or of its mask when nothing in it is positive."""
    moments = flux_moments(cut)
    if moments is None:
        moments = flux_moments(mask.astype(np.float64))
    return moments


def move_cut(cut: np.ndarray, mask: np.ndarray, target_rc: tuple[float, float], region: Region) -> MovedCut:
    """Shift ``cut`` (on its own grid) by whole pixels so its flux centroid is nearest ``target_rc``."""
    centre, _ = _weights(cut, mask)
    row0 = int(np.floor(target_rc[0] - centre[0] + 0.5))
    col0 = int(np.floor(target_rc[1] - centre[1] + 0.5))
    return _clip_to_region(cut, mask, row0, col0, region, target_rc)


def _clip_to_region(cut: np.ndarray, mask: np.ndarray, row0: int, col0: int, region: Region,
                    target_rc: tuple[float, float]) -> MovedCut:
    h, w = region.crop.shape
    out_mask = np.zeros((h, w), dtype=bool)
    out = np.zeros((h, w), dtype=np.float64)
    r0, c0 = row0 - region.row0, col0 - region.col0
    ra, rb = max(r0, 0), min(r0 + cut.shape[0], h)
    ca, cb = max(c0, 0), min(c0 + cut.shape[1], w)
    if ra < rb and ca < cb:
        out_mask[ra:rb, ca:cb] = mask[ra - r0 : rb - r0, ca - c0 : cb - c0]
        out[ra:rb, ca:cb] = cut[ra - r0 : rb - r0, ca - c0 : cb - c0]
    out_mask &= region.crop
    return _trimmed(out, out_mask, region.row0, region.col0, target_rc)


#: Smoothing (sigma, output pixels) before a shrinking map: sampling a noisy cut sparsely
#: would alias, and the moments of what came out would jump with every refinement.
ANTIALIAS_SIGMA = 0.5


def _band_limited(cut: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """``cut`` smoothed, in its own pixels, by the Gaussian that becomes ANTIALIAS_SIGMA output
    pixels under the map whose inverse is ``inv``; unchanged where the map does not shrink."""
    cov = ANTIALIAS_SIGMA**2 * inv @ inv.T  # an output-pixel Gaussian seen in source pixels
    if np.linalg.eigvalsh(cov).max() < ANTIALIAS_SIGMA**2:
        return cut  # the map does not shrink: nothing to alias
    pad = int(np.ceil(3.0 * np.sqrt(np.linalg.eigvalsh(cov).max())))
    padded = np.pad(cut, pad)
    kr = np.fft.fftfreq(padded.shape[0])[:, None] * 2 * np.pi
    kc = np.fft.rfftfreq(padded.shape[1])[None, :] * 2 * np.pi
    transfer = np.exp(-0.5 * (cov[0, 0] * kr**2 + 2 * cov[0, 1] * kr * kc + cov[1, 1] * kc**2))
    smooth = np.fft.irfft2(np.fft.rfft2(padded) * transfer, s=padded.shape)
    return smooth[pad:-pad, pad:-pad]


def shape_cut(
    cut: np.ndarray, mask: np.ndarray, target_rc: tuple[float, float], target_cov: np.ndarray, region: Region
) -> MovedCut:
    """Resample ``cut`` so its flux centroid is ``target_rc`` and its flux covariance ``target_cov``.

    The map p = T (q - c) + target + d (q: pixel of the cut, c: its flux centroid) starts
    from the matching map of the cut's own moments and is refined on the resampled
    pixels: post-composing with the matching map of what came out (about what came out's
    centroid) corrects both T and the offset d.
    """
    from scipy import ndimage  # here: scipy.ndimage is not needed by maps without given shapes

    centre, cov = _weights(cut, mask)
    t = matching_map(cov + PIXEL_VARIANCE, target_cov + PIXEL_VARIANCE)
    target = np.asarray(target_rc, dtype=np.float64)
    d = np.zeros(2)
    origin = np.array([region.row0, region.col0], dtype=np.float64)
    shape = region.crop.shape
    cut = np.where(mask, cut, 0.0)
    mask_f = mask.astype(np.float64)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    scale = float(np.trace(target_cov))
    for step in range(REFINEMENTS + 1 + SHIFTS):
        inv = np.linalg.inv(t)
        offset = inv @ (origin - target - d) + centre
        out = ndimage.affine_transform(_band_limited(cut, inv), inv, offset=offset, output_shape=shape, order=1,
                                       mode="constant", cval=0.0)
        # The mask is the resampled mask's half level *and* wherever resampled flux is: a
        # threshold alone would drop and add edge pixels as the map changes and keep the
        # refinement of a small object from settling.
        out_mask = ((ndimage.affine_transform(mask_f, inv, offset=offset, output_shape=shape, order=1,
                                              mode="constant", cval=0.0) > 0.5) | (out != 0.0)) & region.crop
        out = np.where(out_mask, out, 0.0)
        moments = flux_moments(out)
        if moments is None:
            break
        got_centre, got_cov = moments
        got_centre = got_centre + origin
        # Keep the best try: an object its region clips can get worse as the refinement
        # pushes more of it against the region's edge.
        error = float(np.hypot(*(got_centre - target))) + 3.0 * float(np.abs(got_cov - target_cov).sum()) / scale
        if best is None or error < best[0]:
            best = (error, out, out_mask, t, d, got_centre)
        if step < REFINEMENTS:
            m = matching_map(got_cov + PIXEL_VARIANCE, target_cov + PIXEL_VARIANCE)
            t = m @ t
            d = m @ (target + d - got_centre)
        else:  # the last tries move the best map only: its centroid, not its shape, is what is off
            t, d = best[3], best[4] + (target - best[5])
    if best is not None:
        out, out_mask = best[1], best[2]
    return _trimmed(out, out_mask, region.row0, region.col0, target_rc)


#: Pixels a reserved region grows beyond the object's expected mask: room for its flux
#: centroid to sit off its mask centroid, which the planner cannot know before the tile.
GROW_PX = 4
#: Flux covariance of a generated object / covariance of its (uniform) mask, as planned: a
#: peaked source fills its mask's second moments only partly (0.5-0.8 for our tiles).
FLUX_TO_MASK = 0.6
#: The region's linear size beyond the expected mask: room for objects more peaked than planned.
GROW_SCALE = 1.5
#: And a growth in proportion to the object's extent: a lopsided object's flux centroid sits
#: off its mask centroid by a fraction of its size, and a stretch stretches that offset too.
GROW_FRACTION = 0.1


def target_covariance(shape_px: tuple[float, float, float], beam_cov: np.ndarray) -> np.ndarray:
    """The flux covariance an object of intrinsic FWHM (major, minor, PA) has on the map: its
    own plus the beam's (convolution adds covariances; a point source is the beam)."""
    major, minor, pa = shape_px
    return covariance(major, max(minor, 0.0), pa) + np.asarray(beam_cov, dtype=np.float64)


def reserve_region(crop: np.ndarray, target_cov: np.ndarray | None) -> np.ndarray:
    """The region (bool, on the map grid) the planner keeps free for an object with mask ``crop``.

    Without a shape: the mask grown by GROW_PX plus GROW_FRACTION of its extent. With
    one: the mask stretched about its centroid by the map taking its covariance (times
    FLUX_TO_MASK, what the flux will have) to ``target_cov``, times GROW_SCALE, then grown
    the same way.
    """
    from scipy import ndimage

    crop = np.asarray(crop, dtype=bool)
    if target_cov is not None:
        centre, cov = flux_moments(crop.astype(np.float64))  # a mask's moments: uniform flux
        t = GROW_SCALE * matching_map(FLUX_TO_MASK * (cov + PIXEL_VARIANCE), target_cov)
        corners = np.array([[-0.5, -0.5], [-0.5, crop.shape[1] - 0.5], [crop.shape[0] - 0.5, -0.5],
                            [crop.shape[0] - 0.5, crop.shape[1] - 0.5]]) - centre
        reach = np.abs(corners @ t.T).max(axis=0)
        half = np.ceil(reach).astype(int) + 1
        shape = (2 * half[0] + 1, 2 * half[1] + 1)
        inv = np.linalg.inv(t)
        offset = centre - inv @ half.astype(np.float64)
        crop = ndimage.affine_transform(crop.astype(np.float64), inv, offset=offset, output_shape=shape, order=1,
                                        mode="constant", cval=0.0) > 0.5
        if not crop.any():  # a target far below a pixel: keep the centre pixel
            crop[half[0], half[1]] = True
    grow = GROW_PX + int(np.ceil(GROW_FRACTION * max(crop.shape)))
    padded = np.pad(crop, grow)
    disk = np.hypot(*np.mgrid[-grow : grow + 1, -grow : grow + 1]) <= grow
    grown = ndimage.binary_dilation(padded, structure=disk)
    rows = np.flatnonzero(grown.any(axis=1))
    cols = np.flatnonzero(grown.any(axis=0))
    return np.ascontiguousarray(grown[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
