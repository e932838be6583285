"""Map geometry: the sky grid of a composed map, written clean, and read tolerantly from real maps.

Real radio maps arrive with the quirks of the packages that imaged them (Miriad's NCP
projection, degenerate FREQ/STOKES axes, beam only in AIPS HISTORY cards, no BPA,
the unit written into the wrong keyword). :mod:`radiff_scale.fits_header` reads such
headers tolerantly and :func:`read_map_header` turns them into one :class:`MapGeometry`,
so the rest of the compositor never sees a quirk; what we write is always a plain 2-D
RA---SIN/DEC--SIN header that source finders (PyBDSF) accept.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from radiff_scale.beam import Beam
from radiff_scale.errors import RadiffError
from radiff_scale.fits_header import celestial_wcs, fits_error_text, read_beam, read_freq

#: Projections we are willing to write (WCSLIB codes). NCP is read, but written as SIN.
WRITABLE_PROJECTIONS = ("SIN", "TAN", "ARC", "ZEA", "STG")


@dataclass(frozen=True)
class MapGeometry:
    """The pixel grid and instrument of one map: enough to write its FITS header.

    ``shape`` is (rows, cols) = (NAXIS2, NAXIS1). The reference pixel is the map centre,
    so the projection distortion is symmetric over the map.
    """

    shape: tuple[int, int]
    pixel_scale_arcsec: float
    centre_ra_deg: float
    centre_dec_deg: float
    beam: Beam
    freq_hz: float
    projection: str = "SIN"

    def __post_init__(self) -> None:
        try:
            rows, cols = (int(v) for v in self.shape)
        except (TypeError, ValueError):
            raise RadiffError(f"map shape must be two integers (rows, cols), got {self.shape!r}") from None
        if rows <= 0 or cols <= 0:
            raise RadiffError(f"map shape must be positive, got {self.shape!r}")
        object.__setattr__(self, "shape", (rows, cols))
        if not (self.pixel_scale_arcsec > 0 and math.isfinite(self.pixel_scale_arcsec)):
            raise RadiffError(f"pixel scale must be > 0 arcsec, got {self.pixel_scale_arcsec!r}")
        if not (self.freq_hz > 0 and math.isfinite(self.freq_hz)):
            raise RadiffError(f"observing frequency must be > 0 Hz, got {self.freq_hz!r}")
        if not -90.0 <= self.centre_dec_deg <= 90.0:
            raise RadiffError(f"centre declination must be within [-90, 90] deg, got {self.centre_dec_deg!r}")
        object.__setattr__(self, "centre_ra_deg", float(self.centre_ra_deg) % 360.0)
        proj = str(self.projection).upper()
        if proj not in WRITABLE_PROJECTIONS:
            raise RadiffError(f"projection {self.projection!r} is not supported (use one of {', '.join(WRITABLE_PROJECTIONS)})")
        object.__setattr__(self, "projection", proj)

    @property
    def crpix(self) -> tuple[float, float]:
        """FITS (1-based) reference pixel (CRPIX1, CRPIX2): the centre of the map."""
        rows, cols = self.shape
        return (cols + 1) / 2.0, (rows + 1) / 2.0

    def header(self) -> fits.Header:
        """A clean 2-D float32 primary header: WCS, beam, frequency and unit."""
        rows, cols = self.shape
        scale_deg = self.pixel_scale_arcsec / 3600.0
        crpix1, crpix2 = self.crpix
        h = fits.Header()
        h["SIMPLE"] = (True, "conforms to FITS standard")
        h["BITPIX"] = (-32, "IEEE single precision")
        h["NAXIS"] = 2
        h["NAXIS1"] = (cols, "columns (RA axis)")
        h["NAXIS2"] = (rows, "rows (Dec axis)")
        h["EXTEND"] = True
        h["BUNIT"] = ("JY/BEAM", "brightness unit")
        h["CTYPE1"] = f"RA---{self.projection}"
        h["CTYPE2"] = f"DEC--{self.projection}"
        h["CRPIX1"] = (crpix1, "reference pixel: map centre")
        h["CRPIX2"] = (crpix2, "reference pixel: map centre")
        h["CRVAL1"] = (float(self.centre_ra_deg), "[deg] RA at reference pixel")
        h["CRVAL2"] = (float(self.centre_dec_deg), "[deg] Dec at reference pixel")
        h["CDELT1"] = (-scale_deg, "[deg] pixel size, RA increases to the left")
        h["CDELT2"] = (scale_deg, "[deg] pixel size")
        h["CUNIT1"] = "deg"
        h["CUNIT2"] = "deg"
        h["RADESYS"] = "ICRS"
        h["EQUINOX"] = 2000.0
        h["BMAJ"] = (self.beam.bmaj_arcsec / 3600.0, "[deg] restoring beam FWHM major axis")
        h["BMIN"] = (self.beam.bmin_arcsec / 3600.0, "[deg] restoring beam FWHM minor axis")
        h["BPA"] = (float(self.beam.bpa_deg), "[deg] beam position angle, east of north")
        h["RESTFRQ"] = (float(self.freq_hz), "[Hz] observing frequency")
        # The older AIPS name too: PyBDSF (and other finders) look for RESTFREQ, FREQ or a
        # spectral axis, never RESTFRQ, and a map should open in them with no extra argument.
        h["RESTFREQ"] = (float(self.freq_hz), "[Hz] = RESTFRQ, the name PyBDSF reads")
        return h

    def wcs(self) -> WCS:
        """The celestial WCS of :meth:`header`."""
        return WCS(self.header())


def open_fits(path: str | Path, **kwargs: object) -> fits.HDUList:
    """Open a real FITS file memory-mapped, keeping astropy's complaints about its quirks quiet.

    Header oddities of real maps (a BLANK keyword on float data, non-standard cards)
    are expected, not the user's fault; a file that is not FITS at all is.
    """
    path = Path(path)
    if not path.is_file():
        raise RadiffError(f"{path}: no such FITS file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            # astropy only warns (once per open, and we open a map a few times) about a file
            # shorter than its header says; that is the user's broken file: one line, once.
            warnings.filterwarnings("error", message=".*may have been truncated.*")
            hdul = fits.open(path, memmap=True, **kwargs)
            try:
                len(hdul)  # every HDU's header now, under this guard: not a warning or an OSError later
            except BaseException:
                hdul.close()
                raise
            return hdul
    except UserWarning:
        raise RadiffError(f"{path}: the file is shorter than its header says (truncated FITS?)") from None
    except (OSError, ValueError) as exc:
        raise RadiffError(f"{path}: cannot read as FITS ({fits_error_text(exc)})") from None


def find_image_hdu(hdul: fits.HDUList, path: str | Path) -> int:
    """Index of the first HDU holding an image of at least two axes."""
    for idx, hdu in enumerate(hdul):
        if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)) and int(hdu.header.get("NAXIS", 0)) >= 2:
            return idx
    raise RadiffError(f"{path}: no image HDU with two or more axes")


def image_shape(header: fits.Header, path: str | Path) -> tuple[int, int]:
    """(rows, cols) of the celestial plane; any further axis must be degenerate (length 1)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis < 2:
        raise RadiffError(f"{path}: image has {naxis} axes, need at least 2")
    extra = [int(header.get(f"NAXIS{i}", 1)) for i in range(3, naxis + 1)]
    if any(n != 1 for n in extra):
        raise RadiffError(f"{path}: image has non-degenerate axes beyond the sky plane (NAXIS3.. = {extra}); cubes are not supported")
    return int(header["NAXIS2"]), int(header["NAXIS1"])


def read_map_header(path: str | Path, default_freq_hz: float | None = None) -> MapGeometry:
    """The geometry of a real map: shape, pixel scale, centre (ICRS), beam, frequency.

    The result describes the map we will *write* (SIN projection, reference at the
    centre), taking the centre's sky position from the real WCS. ``default_freq_hz`` is
    used only when the header carries no frequency at all.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        header = hdul[find_image_hdu(hdul, path)].header.copy()
    shape = image_shape(header, path)
    cel = celestial_wcs(header, path)
    scales = np.abs(proj_plane_pixel_scales(cel)) * 3600.0
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise RadiffError(f"{path}: celestial WCS has no valid pixel scale")
    if abs(scales[0] - scales[1]) > 1e-3 * max(scales):
        raise RadiffError(f"{path}: non-square pixels ({scales[0]:.4g}\" x {scales[1]:.4g}\") are not supported")
    rows, cols = shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        centre = cel.pixel_to_world((cols - 1) / 2.0, (rows - 1) / 2.0).icrs
    freq = read_freq(header)
    if freq is None:
        if default_freq_hz is None:
            raise RadiffError(f"{path}: no observing frequency (RESTFRQ, RESTFREQ or a FREQ axis); give one explicitly")
        freq = float(default_freq_hz)
    return MapGeometry(
        shape=shape,
        pixel_scale_arcsec=float(np.mean(scales)),
        centre_ra_deg=float(centre.ra.deg),
        centre_dec_deg=float(centre.dec.deg),
        beam=read_beam(header, path),
        freq_hz=freq,
        projection="SIN",
    )
