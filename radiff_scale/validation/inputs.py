"""What validate reads from a finished map run: the map's grid and beam, and the truth catalogue.

Everything is checked here, before PyBDSF or Ray start, so that a folder that is not a
finished run (no manifest.json: the map job writes it last) or a map without a beam is
one line and exit 2, not a traceback minutes later.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from radiff_scale.beam import Beam
from radiff_scale.compose.wcs import find_image_hdu, image_shape, open_fits
from radiff_scale.errors import RadiffError
from radiff_scale.fits_header import celestial_wcs, read_beam, read_freq

#: The products of a map run that validate reads.
MAP_FILE, TRUTH_FILE, MANIFEST_FILE, LABELS_FILE = "map.fits", "catalogue.parquet", "manifest.json", "labels.fits"

#: Truth columns the metrics and the SDC1 conversion need (docs/truth.md); others are ignored.
TRUTH_COLUMNS = ("id", "class", "ra", "dec", "x", "y", "peak_jy_beam", "flux_jy", "sigma_local",
                 "major_arcsec", "minor_arcsec", "pa_deg")


@dataclass(frozen=True)
class MapInfo:
    """The map's grid and instrument, as PyBDSF needs them (frequency may be unknown)."""

    path: str
    shape: tuple[int, int]
    header: fits.Header
    beam: Beam
    freq_hz: float | None
    pixel_scale_arcsec: float

    @property
    def beam_px(self) -> float:
        """The beam's FWHM in pixels, geometric mean of its axes: the unit of "beams" in the report."""
        return math.sqrt(self.beam.bmaj_arcsec * self.beam.bmin_arcsec) / self.pixel_scale_arcsec

    def wcs(self) -> WCS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            return celestial_wcs(self.header, self.path)

    def describe(self) -> dict[str, object]:
        return {"path": self.path, "shape": list(self.shape), "freq_hz": self.freq_hz,
                "pixel_scale_arcsec": self.pixel_scale_arcsec, "beam_fwhm_px": self.beam_px,
                "beam": {"bmaj_arcsec": self.beam.bmaj_arcsec, "bmin_arcsec": self.beam.bmin_arcsec,
                         "bpa_deg": self.beam.bpa_deg}}


def check_run_folder(out: str | Path) -> Path:
    """``out`` if it holds a finished map run (manifest, map, truth); else one line naming what is missing."""
    out = Path(out)
    if not out.is_dir():
        raise RadiffError(f"{out}: no such folder (give the --out folder of a finished make-map run)")
    for name in (MANIFEST_FILE, MAP_FILE, TRUTH_FILE):
        if not (out / name).is_file():
            what = "the map job writes it last" if name == MANIFEST_FILE else "a finished run has one"
            raise RadiffError(f"{out} is not a finished map run: no {name} ({what}; resume the run with make-map --resume)")
    return out


def read_map_info(path: str | Path) -> MapInfo:
    """Grid, beam (BMAJ/BMIN/BPA) and frequency (RESTFRQ, RESTFREQ, a FREQ axis) of a 2-D map."""
    path = Path(path)
    with open_fits(path) as hdul:
        header = hdul[find_image_hdu(hdul, path)].header.copy()
    shape = image_shape(header, path)
    if int(header.get("NAXIS", 0)) != 2:
        raise RadiffError(f"{path}: validate reads 2-D maps (NAXIS = 2), this one has NAXIS = {header.get('NAXIS')}")
    cel = celestial_wcs(header, path)
    scales = np.abs(proj_plane_pixel_scales(cel)) * 3600.0
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise RadiffError(f"{path}: celestial WCS has no valid pixel scale")
    return MapInfo(str(path), shape, header, read_beam(header, path), read_freq(header), float(np.mean(scales)))


def read_truth(path: str | Path) -> pa.Table:
    """The truth catalogue, every column (the SDC1 conversion reads optional ones), checked for :data:`TRUTH_COLUMNS`."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 -- a bad file, said in one line
        raise RadiffError(f"{path}: cannot read the truth catalogue ({type(exc).__name__}: {exc})") from None
    absent = [c for c in TRUTH_COLUMNS if c not in table.column_names]
    if absent:
        raise RadiffError(f"{path}: truth catalogue lacks columns {', '.join(absent)} (see docs/truth.md)")
    return table


def truth_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The truth columns the metrics use, as numpy arrays (one row per placed object)."""
    return {n: table.column(n).to_numpy(zero_copy_only=False) for n in TRUTH_COLUMNS}


def labels_at(path: str | Path, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The object id of labels.fits (its INSTANCE image) under each position, 0 for background, -1 off the map.

    Tells an unmatched detection on an object's footprint (a fragment, or a blend's second
    part) from one on empty sky (a noise peak). None when the run has no labels.fits.
    """
    path = Path(path)
    if not path.is_file():
        return None
    with open_fits(path) as hdul:
        try:
            image = hdul["INSTANCE"].data
        except KeyError:
            raise RadiffError(f"{path}: no INSTANCE image (the object ids of labels.fits)") from None
        rows, cols = image.shape
        r = np.rint(np.asarray(y, dtype=np.float64)).astype(np.int64)
        c = np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64)
        inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        out = np.full(len(r), -1, dtype=np.int64)
        out[inside] = np.asarray(image[r[inside], c[inside]], dtype=np.int64)
    return out
