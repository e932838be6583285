"""What a real FITS header says about beam, frequency, brightness unit and celestial WCS.

Real radio maps arrive with the quirks of the packages that imaged them (Miriad's NCP
projection, degenerate FREQ/STOKES axes, the beam only in AIPS HISTORY cards, no BPA,
the unit written into the wrong keyword, Fortran ``D`` exponents). Both the compositor
(background maps) and the annotator (survey cutouts) read such headers, so the
tolerant reading lives here, below both, and neither has to import the other for it.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from radiff_scale.beam import Beam
from radiff_scale.errors import RadiffError

#: Jy/beam multiplier for the brightness units we understand (keys upper case, no spaces).
UNIT_SCALES = {"JY/BEAM": 1.0, "MJY/BEAM": 1e-3, "UJY/BEAM": 1e-6}

_UNIT_RE = re.compile(r"^\s*([mu]?)jy\s*/\s*beam\s*$", re.IGNORECASE)
_AIPS_BEAM_RE = re.compile(
    r"BMAJ\s*=\s*([-+0-9.EeDd]+)\s+BMIN\s*=\s*([-+0-9.EeDd]+)(?:\s+BPA\s*=\s*([-+0-9.EeDd]+))?"
)


def fits_error_text(exc: BaseException) -> str:
    """astropy's complaint about a file it cannot open, as one short clause for a user's message.

    Its "no SIMPLE card" error advises an astropy keyword the user cannot pass through us,
    so that one says plainly what the file is not; others are kept, on one line.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "No SIMPLE card found" in text:
        return "not a FITS file: it does not start with a SIMPLE card"
    return text


def read_map_unit(header: fits.Header) -> str | None:
    """The brightness unit of a real map, upper case without spaces, or None if absent.

    BUNIT first; otherwise any string keyword whose value *is* a Jy/beam unit (some
    pipelines write it into CTYPE1 or BTYPE), because a map whose unit we ignore by
    mistake would silently be off by 1000.
    """
    bunit = header.get("BUNIT")
    if isinstance(bunit, str) and bunit.strip():
        return bunit.replace(" ", "").upper()
    for key, value in header.items():
        if key in ("HISTORY", "COMMENT", ""):
            continue
        if isinstance(value, str):
            m = _UNIT_RE.match(value)
            if m:
                return f"{m.group(1).upper()}JY/BEAM"
    return None


def unit_scale(unit: str | None, path: str | Path) -> float:
    """Multiplier to Jy/beam for a unit from :func:`read_map_unit` (None: assume Jy/beam)."""
    if unit is None:
        return 1.0
    if unit in UNIT_SCALES:
        return UNIT_SCALES[unit]
    raise RadiffError(f"{path}: brightness unit {unit!r} is not a Jy/beam unit (expected one of {', '.join(UNIT_SCALES)})")


def _float(value: object) -> float | None:
    """A header number, Fortran ``1.0D-3`` included, or None if absent, unparsable or not finite."""
    try:
        out = float(str(value).replace("D", "E").replace("d", "e"))
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def read_beam(header: fits.Header, path: str | Path) -> Beam:
    """BMAJ/BMIN/BPA (deg) from keywords, else from an AIPS 'CLEAN BMAJ=' HISTORY card."""
    bmaj, bmin, bpa = _float(header.get("BMAJ")), _float(header.get("BMIN")), _float(header.get("BPA"))
    if bmaj is None or bmin is None:
        for card in reversed(list(header.get("HISTORY", []))):
            m = _AIPS_BEAM_RE.search(str(card))
            if m:
                bmaj, bmin = _float(m.group(1)), _float(m.group(2))
                bpa = _float(m.group(3)) if m.group(3) else bpa
                break
    if bmaj is None or bmin is None or bmaj <= 0 or bmin <= 0:
        raise RadiffError(f"{path}: no restoring beam (BMAJ/BMIN keywords or AIPS CLEAN history)")
    return Beam(bmaj * 3600.0, bmin * 3600.0, bpa if bpa is not None else 0.0)


def read_freq(header: fits.Header) -> float | None:
    """RESTFRQ / RESTFREQ, else the value of a FREQ axis at its (only) pixel, else FREQ/OBSFREQ."""
    for key in ("RESTFRQ", "RESTFREQ"):
        value = _float(header.get(key))
        if value is not None and value > 0:
            return value
    for i in range(1, 10):
        ctype = header.get(f"CTYPE{i}")
        if isinstance(ctype, str) and ctype.strip().upper().startswith("FREQ"):
            crval = _float(header.get(f"CRVAL{i}"))
            if crval is None:
                continue
            crpix = _float(header.get(f"CRPIX{i}")) or 1.0
            cdelt = _float(header.get(f"CDELT{i}")) or 0.0
            value = crval + (1.0 - crpix) * cdelt
            if value > 0:
                return value
    for key in ("FREQ", "OBSFREQ"):
        value = _float(header.get(key))
        if value is not None and value > 0:
            return value
    return None


def celestial_wcs(header: fits.Header, path: str | Path) -> WCS:
    """The celestial part of a real map's WCS, with WCSLIB's silent fixes (NCP->SIN, ...) kept quiet."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            full = WCS(header)
    except Exception as exc:  # WCSLIB raises a zoo of types on malformed headers
        raise RadiffError(f"{path}: no usable celestial WCS ({exc})") from None
    if not full.has_celestial:
        raise RadiffError(f"{path}: no celestial WCS (CTYPE1/CTYPE2 are {header.get('CTYPE1')!r}/{header.get('CTYPE2')!r})")
    if (full.wcs.lng, full.wcs.lat) not in ((0, 1), (1, 0)):
        raise RadiffError(f"{path}: the celestial axes must be the first two image axes")
    return full.celestial
