"""Finding a catalogue's columns by name: RA, Dec, x, y, class, k, flux and sizes.

Catalogues from different tools name the same quantity differently ("RA", "RA_deg",
"RA (centroid)", "RAJ2000"); names are compared after lower-casing and dropping
everything but letters and digits, against the candidate lists here, in order of
preference. What the columns then *mean* is :mod:`radiff_scale.compose.positions`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from radiff_scale.errors import RadiffError

#: Column names recognised, after lower-casing and dropping everything but letters and
#: digits ("RA_deg", "RA (centroid)" -> "radeg", "racentroid"), in order of preference.
#: SDC1's text catalogue has both core and centroid positions; its x/y are of the centroid.
RA_NAMES = ("ra", "radeg", "raj2000", "ra2000", "racentroid", "rightascension", "racore")
DEC_NAMES = ("dec", "decdeg", "dej2000", "decj2000", "dec2000", "deccentroid", "declination", "deccore")
X_NAMES = ("x", "xpix", "xpixel", "xcentroid", "xc")
Y_NAMES = ("y", "ypix", "ypixel", "ycentroid", "yc")
CLASS_NAMES = ("class", "classname", "classid", "objectclass")
K_NAMES = ("k", "snr", "peaksnr")
#: Flux in Jy (integrated; read as the peak in Jy/beam with ``placement.flux_mode: peak``).
FLUX_NAMES = ("flux", "fluxjy", "totalflux", "totalfluxjy", "sint", "stotal", "fluxdensity", "intflux")
#: Intrinsic FWHM sizes (arcsec) and PA (deg east of north). Our own truth's mask-moment
#: ``major_arcsec`` is deliberately not among them: its ``src_*`` columns are the sizes.
MAJOR_NAMES = ("bmaj", "srcmajorarcsec", "majaxis", "maj", "major")
MINOR_NAMES = ("bmin", "srcminorarcsec", "minaxis", "min", "minor")
PA_NAMES = ("pa", "srcpadeg", "positionangle")


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def find_column(data: Mapping[str, np.ndarray], explicit: str | None, candidates: Sequence[str], what: str,
          source: str) -> str | None:
    by_norm: dict[str, str] = {}
    for name in data:
        by_norm.setdefault(normalise(name), name)
    if explicit is not None:
        if explicit in data:
            return explicit
        found = by_norm.get(normalise(explicit))
        if found is None:
            raise RadiffError(f"{source}: no column {explicit!r} for {what} (columns: {listing(data)})")
        return found
    return next((by_norm[c] for c in candidates if c in by_norm), None)


def listing(data: Mapping[str, Any], limit: int = 12) -> str:
    names = list(data)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def is_text(values: np.ndarray) -> bool:
    if values.dtype.kind in "USO" and values.size:
        return any(isinstance(v, (str, bytes)) for v in values.tolist())
    return values.dtype.kind in "US"


def auto_class_column(data: Mapping[str, np.ndarray]) -> str | None:
    """A column of class names, else one explicitly called class_id; never other integer codes,
    which differ between catalogues (SDC1's CLASS 1..3 are SS-AGN, FS-AGN, SFG)."""
    names = [n for n in data if normalise(n) in CLASS_NAMES]
    names.sort(key=lambda n: CLASS_NAMES.index(normalise(n)))
    return next((n for n in names if is_text(data[n])), next((n for n in names if normalise(n) == "classid"), None))


def mapped_class(value: Any, class_map: Mapping[Any, Any], where: str) -> Any:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    for key in (value, str(value).strip()) + ((int(value),) if isinstance(value, float) and value.is_integer() else ()):
        if key in class_map:
            return class_map[key]
    raise RadiffError(f"{where}: value {value!r} is not in class_map (keys: {', '.join(map(repr, class_map))})")
