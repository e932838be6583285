"""Reading the FITS of a cutout tolerantly: real files' quirks accepted, anything unfaithful refused.

Real cutouts come with NaNs, a float image with an integer ``BLANK``, the unit stored in
``CTYPE1`` and degenerate FREQ/STOKES axes; the reader accepts those quietly and refuses,
with a one-line :class:`~radiff_scale.errors.RadiffError` naming the file, anything it
cannot read faithfully (a cube, no image, a file that is not FITS).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from radiff_scale.data.sc_sample import STRUCTURAL
from radiff_scale.errors import RadiffError
from radiff_scale.fits_header import fits_error_text


def _read_fits_array(path: Path) -> tuple[np.ndarray, fits.Header]:
    """The first image HDU's data (native byte order, degenerate axes squeezed) and a header copy.

    Every astropy warning is silenced: real files trip VerifyWarnings (a BLANK keyword on
    float data, non-standard cards) that say nothing the user can act on, and the data are
    read correctly regardless.
    """
    path = Path(path)
    if not path.is_file():
        raise RadiffError(f"{path}: FITS file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(path, memmap=False) as hdul:
                for hdu in hdul:
                    if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and hdu.data is not None:
                        data = np.array(hdu.data)
                        header = hdu.header.copy()
                        break
                else:
                    raise RadiffError(f"{path}: no image data in any HDU")
    except RadiffError:
        raise
    except Exception as exc:  # any failure to parse a user's file is the file's fault
        if isinstance(exc, ValueError) and "cannot reshape" in str(exc):  # fewer data bytes than NAXISn say
            raise RadiffError(f"{path}: cannot read FITS (the file is shorter than its header says: truncated?)") from None
        raise RadiffError(f"{path}: cannot read FITS ({type(exc).__name__}: {fits_error_text(exc)})") from None
    squeezed = np.squeeze(data)
    if squeezed.ndim != 2:
        raise RadiffError(f"{path}: image is not 2-D (shape {data.shape} after squeezing length-1 axes)")
    return squeezed.astype(squeezed.dtype.newbyteorder("=")), header


def _repair_header(header: fits.Header, data_is_float: bool) -> fits.Header:
    """Fix the header quirks seen in real cutouts so callers can trust BUNIT and ignore BLANK."""
    if data_is_float and "BLANK" in header:
        del header["BLANK"]  # only meaningful for integer data; astropy ignores it too
    if "BUNIT" not in header:
        for axis in range(1, int(header.get("NAXIS", 0) or 0) + 3):
            key = f"CTYPE{axis}"
            value = header.get(key)
            if isinstance(value, str) and "JY" in value.upper():
                header["BUNIT"] = value.strip()
                del header[key]
                break
    return header


def read_fits_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, fits.Header]:
    """Read a 2-D float32 image tolerantly: squeeze length-1 axes, keep NaNs, repair known header quirks.

    The returned header is a copy: ``BLANK`` is dropped for float data, and a unit found in a
    ``CTYPEn`` keyword (e.g. ``CTYPE1 = 'Jy/beam'``) is moved to ``BUNIT`` when BUNIT is absent.
    WCS keywords of squeezed axes are left as they are (build a WCS with ``naxis=2``).
    """
    data, header = _read_fits_array(Path(path))
    if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
        raise RadiffError(f"{path}: image data type {data.dtype} is not numeric")
    was_float = np.issubdtype(data.dtype, np.floating)
    return np.ascontiguousarray(data, dtype=np.float32), _repair_header(header, was_float)


def read_mask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A mask FITS as bool: any finite non-zero pixel is inside (INAF masks are 0/1 float or int)."""
    data, _ = _read_fits_array(path)
    if data.shape != shape:
        raise RadiffError(f"{path}: mask shape {data.shape} differs from image shape {shape}")
    if np.issubdtype(data.dtype, np.floating):
        return np.isfinite(data) & (data != 0)
    return data != 0


def header_to_dict(header: fits.Header) -> dict[str, Any]:
    """Keywords that describe the data (not its layout) as plain Python values."""
    out: dict[str, Any] = {}
    for card in header.cards:
        key = card.keyword
        if STRUCTURAL.match(key):
            continue
        value = card.value
        out[key] = None if isinstance(value, fits.card.Undefined) else value
    return out
