"""One input image of ``radiff-scale annotate``, read and checked: Jy/beam data, beam, pixel scale, WCS.

Real cutouts often lack something (no beam keywords, no celestial WCS, a unit in the
wrong keyword); :func:`load_image` takes what the header says
(:mod:`radiff_scale.fits_header`), falls back to ``--beam`` / ``--pixel-scale``, and
refuses with a message naming the option that would fix it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from radiff_scale.beam import Beam
from radiff_scale.data.annotate_config import AnnotateConfig
from radiff_scale.data.annotate_inputs import is_fits_name
from radiff_scale.data.sc_format import read_fits_image
from radiff_scale.errors import RadiffError
from radiff_scale.fits_header import celestial_wcs, read_beam, read_map_unit, unit_scale


@dataclass
class InputImage:
    """One checked input: Jy/beam data (NaNs kept), beam, pixel scale and, if any, celestial WCS."""

    path: Path
    data: np.ndarray
    header: fits.Header
    beam: Beam
    pixel_scale_arcsec: float
    wcs: WCS | None

    @property
    def fwhm_px(self) -> float:
        return self.beam.bmaj_arcsec / self.pixel_scale_arcsec

    @property
    def beam_area_px(self) -> float:
        return self.beam.area_pixels(self.pixel_scale_arcsec)


def _pixel_scale(header: fits.Header, path: Path, config: AnnotateConfig) -> tuple[float, WCS | None]:
    """Pixel scale (arcsec) and celestial WCS; CDELT alone, then ``--pixel-scale``, are the fallbacks."""
    wcs: WCS | None
    try:
        wcs = celestial_wcs(header, path)
        scales = np.abs(proj_plane_pixel_scales(wcs)) * 3600.0
        if not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
            wcs = None
    except RadiffError:
        wcs = None
    if wcs is not None:
        return float(np.sqrt(scales[0] * scales[1])), wcs
    for key in ("CDELT2", "CDELT1"):
        value = header.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and value != 0 and abs(value) < 1:
            return abs(float(value)) * 3600.0, None
    if config.pixel_scale is not None:
        return float(config.pixel_scale), None
    raise RadiffError(f"{path}: no celestial WCS or CDELT keywords; give the pixel size with --pixel-scale ARCSEC")


def load_image(path: Path, config: AnnotateConfig) -> InputImage:
    """Read a 2-D image (degenerate axes squeezed), convert it to Jy/beam and check it is usable."""
    if not is_fits_name(path.name):
        raise RadiffError(f"{path}: not a FITS file name (.fits, .fits.gz, .fit)")
    data, header = read_fits_image(path)  # one-line RadiffError on non-FITS, truncated, cube, no image
    data = data * np.float32(unit_scale(read_map_unit(header), path))
    finite = np.isfinite(data)
    if not finite.any():
        raise RadiffError(f"{path}: every pixel is NaN or infinite")
    data[~finite] = np.nan  # infinities are as unusable as NaNs
    if float(np.nanmax(data)) == float(np.nanmin(data)):
        raise RadiffError(f"{path}: image is constant ({float(np.nanmax(data))!r}); nothing to segment")
    try:
        beam = read_beam(header, path)
    except RadiffError:
        beam = config.default_beam()
        if beam is None:
            raise RadiffError(f"{path}: no restoring beam (BMAJ/BMIN keywords); give it with --beam BMAJ[,BMIN[,BPA]] (arcsec)") from None
    scale, wcs = _pixel_scale(header, path, config)
    return InputImage(path, data, header, beam, scale, wcs)
