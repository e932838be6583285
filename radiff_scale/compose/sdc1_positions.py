"""An SDC1 truth (or submission) catalogue as the objects of a map: positions, classes,
fluxes and sizes, in our conventions.

SDC1 files carry everything a sky model needs, in their own conventions
(:mod:`radiff_scale.compose.sdc1`): sizes are a largest angular scale (size code 1), a
Gaussian FWHM (2) or an exponential scale (3), PA is measured from the RA axis, classes
are AGN/SFG types. Converting here, once, with the scorer's own factors, means a map made
from an SDC1 file and its truth written back as SDC1 agree with the file in its own terms:
the official scorer gives an exact copy of the rows full marks for size and PA.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radiff_scale.compose.positions import Positions
from radiff_scale.compose.sdc1 import (
    CLASS_FS_AGN,
    CLASS_SFG,
    CLASS_SS_AGN,
    GAUSS_TO_LAS,
    SIZE_EXPONENTIAL,
    SIZE_LAS,
    read_sdc1,
)

#: SDC1 class -> ours: steep-spectrum AGN are the lobed radio galaxies; flat-spectrum AGN
#: (cores) and star-forming galaxies are compact (their sizes still come from their rows).
SDC1_TO_OURS = {CLASS_SS_AGN: "extended", CLASS_FS_AGN: "compact", CLASS_SFG: "compact"}
#: An exponential disc's scale length -> the FWHM of the Gaussian the scorer equates it with.
EXPO_TO_GAUSS = 2.0 ** 0.5


def fwhm_from_sdc1(size: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Sizes of SDC1 size codes (1 LAS, 2 Gaussian FWHM, 3 exponential) as Gaussian FWHM."""
    size = np.asarray(size, dtype=np.float64)
    code = np.asarray(code)
    return np.where(code == SIZE_LAS, size / GAUSS_TO_LAS, np.where(code == SIZE_EXPONENTIAL, size * EXPO_TO_GAUSS,
                                                                    size))


def positions_from_sdc1(path: str | Path, *, centroid: bool = True) -> Positions:
    """The rows of an SDC1 catalogue as :class:`Positions` in our conventions.

    Position: the centroid (``ra_cent``/``dec_cent``; ``centroid=False`` takes the core),
    where the object's flux centroid goes. Flux: integrated Jy. Size: intrinsic Gaussian
    FWHM from the row's size code; PA east of north = (90 - SDC1 PA) mod 180. Class:
    :data:`SDC1_TO_OURS`. Every bad value is refused by :func:`read_sdc1`, one line naming
    the file, the column and the row.
    """
    columns = read_sdc1(path)
    ra, dec = (columns["ra_cent"], columns["dec_cent"]) if centroid else (columns["ra_core"], columns["dec_core"])
    classes = [SDC1_TO_OURS[int(c)] for c in columns["class"]]
    return Positions(
        ra=np.mod(ra, 360.0), dec=dec, classes=classes, flux=columns["flux"],
        major=fwhm_from_sdc1(columns["b_maj"], columns["size"]), minor=fwhm_from_sdc1(columns["b_min"], columns["size"]),
        pa=np.mod(90.0 - columns["pa"], 180.0), source=f"{path} (SDC1)",
        columns={"ra": "ra_cent" if centroid else "ra_core", "dec": "dec_cent" if centroid else "dec_core",
                 "flux": "flux", "major": "b_maj", "minor": "b_min", "pa": "pa", "class": "class"},
    )
