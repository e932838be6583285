"""PyBDSF on a map or one piece of it, as a plain source table.

Why these choices:

- **The beam and frequency are passed, not left to PyBDSF's header reading.** The beam
  comes from BMAJ/BMIN/BPA through :func:`radiff_scale.fits_header.read_beam` (the one
  tolerant reader), so PyBDSF's Gaussians and the truth's beam area are the same beam;
  the frequency from RESTFRQ (or RESTFREQ, a FREQ axis) through ``read_freq``: PyBDSF
  itself reads a FREQ axis or the RESTFREQ/FREQ keywords, not RESTFRQ, and stops without one.
- **PyBDSF writes beside its input** (``<image>.pybdsf.log``, and its catalogues where it
  is told), so every piece is cut into a temporary folder and PyBDSF runs there; nothing
  reaches the run folder but validate's final files.
- **The source list is read from PyBDSF's own FITS catalogue** (``write_catalog(format="fits",
  catalog_type="srl")``): the documented, versioned output format, not PyBDSF's internal
  ``img.sources`` objects. Pixel positions are recomputed from RA/Dec with the full map's
  WCS, so a piece's detections land on the map's pixel grid exactly.
- Thresholds default to PyBDSF's own (``thresh_isl=3``, ``thresh_pix=5``); anything else
  passes through ``FinderParams.options`` unchanged and is recorded in the report.
"""

from __future__ import annotations

import contextlib
import gc
import io
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from astropy.io import fits
from astropy.wcs import FITSFixedWarning

from radiff_scale.compose.wcs import find_image_hdu, open_fits
from radiff_scale.errors import RadiffError
from radiff_scale.validation.deps import quiet_import
from radiff_scale.validation.inputs import MapInfo
from radiff_scale.validation.regions import Region, RegionPlan

#: The detection table: one row per PyBDSF source, positions on the full map's grid. ``ra``/``dec``
#: (and ``x``/``y``) are PyBDSF's centroid, ``ra_max``/``dec_max`` its brightest point; sizes are
#: fitted FWHM, ``dc_*`` deconvolved from the beam; PA east of north. ``flux_jy`` is the integral of the
#: fitted Gaussians (what the metrics use), ``isl_flux_jy`` the sum of the island's pixels / beam area.
DETECTION_SCHEMA = pa.schema([
    ("region_row", pa.int32()), ("region_col", pa.int32()), ("source_id", pa.int64()),
    ("ra", pa.float64()), ("dec", pa.float64()), ("x", pa.float64()), ("y", pa.float64()),
    ("ra_max", pa.float64()), ("dec_max", pa.float64()),
    ("flux_jy", pa.float64()), ("flux_err_jy", pa.float64()), ("isl_flux_jy", pa.float64()),
    ("peak_jy_beam", pa.float64()),
    ("major_arcsec", pa.float64()), ("minor_arcsec", pa.float64()), ("pa_deg", pa.float64()),
    ("dc_major_arcsec", pa.float64()), ("dc_minor_arcsec", pa.float64()), ("dc_pa_deg", pa.float64()),
    ("rms_jy_beam", pa.float64()),
    ("s_code", pa.string()),
])

#: PyBDSF source-list column -> (our column, multiplier): degrees to arcsec for sizes.
_SRL_COLUMNS = {
    "RA": ("ra", 1.0), "DEC": ("dec", 1.0), "RA_max": ("ra_max", 1.0), "DEC_max": ("dec_max", 1.0),
    "Total_flux": ("flux_jy", 1.0), "E_Total_flux": ("flux_err_jy", 1.0), "Isl_Total_flux": ("isl_flux_jy", 1.0),
    "Peak_flux": ("peak_jy_beam", 1.0), "Maj": ("major_arcsec", 3600.0), "Min": ("minor_arcsec", 3600.0),
    "PA": ("pa_deg", 1.0), "DC_Maj": ("dc_major_arcsec", 3600.0), "DC_Min": ("dc_minor_arcsec", 3600.0),
    "DC_PA": ("dc_pa_deg", 1.0), "Isl_rms": ("rms_jy_beam", 1.0),
}


@dataclass(frozen=True)
class FinderParams:
    """What PyBDSF is asked: island and peak thresholds (in rms) plus any other process_image option."""

    thresh_isl: float = 3.0
    thresh_pix: float = 5.0
    options: dict[str, Any] = field(default_factory=dict)

    def process_kwargs(self, info: MapInfo, ncores: int) -> dict[str, Any]:
        """Keyword arguments for ``bdsf.process_image`` (beam in degrees, frequency in Hz)."""
        b = info.beam
        kwargs: dict[str, Any] = {
            "beam": (b.bmaj_arcsec / 3600.0, b.bmin_arcsec / 3600.0, b.bpa_deg),
            "thresh_isl": float(self.thresh_isl), "thresh_pix": float(self.thresh_pix),
            "quiet": True, "ncores": int(ncores),
        }
        if info.freq_hz is not None:
            kwargs["frequency"] = float(info.freq_hz)
        kwargs.update(self.options)
        return kwargs

    def describe(self) -> dict[str, Any]:
        return {"thresh_isl": self.thresh_isl, "thresh_pix": self.thresh_pix, "options": dict(self.options)}


def check_options(params: FinderParams) -> None:
    """Refuse, before any work, an option name ``bdsf.process_image`` does not know (it would fail per region)."""
    known = set(quiet_import("bdsf.opts").Opts().get_names())
    unknown = sorted(set(params.options) - known)
    if unknown:
        raise RadiffError(f"PyBDSF has no option {', '.join(map(repr, unknown))} (see PyBDSF's process_image "
                          "documentation for its option names)")


def empty_detections() -> pa.Table:
    return DETECTION_SCHEMA.empty_table()


def cut_region(info: MapInfo, region: Region, path: Path) -> bool:
    """Write ``region.box`` of the map to ``path`` as a FITS file with the same WCS (CRPIX shifted).

    Returns False (and writes nothing) when the box has no finite pixel: PyBDSF would fail on it.
    """
    r0, r1, c0, c1 = region.box
    with open_fits(info.path) as hdul:
        data = np.asarray(hdul[find_image_hdu(hdul, info.path)].data[r0:r1, c0:c1], dtype=np.float32)
    if not np.isfinite(data).any():
        return False
    header = info.header.copy()
    header["NAXIS1"], header["NAXIS2"] = c1 - c0, r1 - r0
    header["CRPIX1"] = float(header["CRPIX1"]) - c0
    header["CRPIX2"] = float(header["CRPIX2"]) - r0
    fits.PrimaryHDU(data, header).writeto(path)
    return True


def run_pybdsf(image: Path, kwargs: dict[str, Any], catalogue: Path) -> bool:
    """PyBDSF on ``image``, its source list written to ``catalogue`` (FITS); False if it found nothing.

    PyBDSF prints even when quiet ("--> Wrote FITS file"); that goes nowhere. It also runs a
    full ``gc.collect()`` after each of its ~16 steps, and each one walks every object of the
    process (astropy, scipy, PyBDSF itself: ~0.3 s apiece on the 2-core dev machine, 5 of
    the 7 s of a 512^2 image); the objects that exist before the call are frozen out of those
    collections (``gc.freeze``), which leaves PyBDSF's own garbage collected as before.
    """
    bdsf = quiet_import("bdsf")
    gc.collect()
    gc.freeze()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            img = bdsf.process_image(str(image), **kwargs)
            if int(getattr(img, "nsrc", 0) or 0) == 0:
                return False
            return bool(img.write_catalog(outfile=str(catalogue), format="fits", catalog_type="srl", clobber=True))
    finally:
        gc.unfreeze()


def read_source_list(catalogue: Path, info: MapInfo, region: Region) -> pa.Table:
    """PyBDSF's FITS source list as a :data:`DETECTION_SCHEMA` table, on the full map's pixel grid."""
    with fits.open(catalogue) as hdul:
        srl = hdul[1].data
        cols: dict[str, Any] = {ours: np.asarray(srl[theirs], dtype=np.float64) * scale
                                for theirs, (ours, scale) in _SRL_COLUMNS.items()}
        source_id = np.asarray(srl["Source_id"], dtype=np.int64)
        s_code = [str(s).strip() for s in srl["S_Code"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        x, y = info.wcs().all_world2pix(cols["ra"], cols["dec"], 0)
    n = len(source_id)
    cols.update(
        region_row=np.full(n, region.index[0], dtype=np.int32), region_col=np.full(n, region.index[1], dtype=np.int32),
        source_id=source_id, x=np.asarray(x, dtype=np.float64), y=np.asarray(y, dtype=np.float64), s_code=s_code,
    )
    return pa.table({name: cols[name] for name in DETECTION_SCHEMA.names}, schema=DETECTION_SCHEMA)


def find_sources(info: MapInfo, region: Region, params: FinderParams, ncores: int = 1,
                 workdir: str | Path | None = None) -> pa.Table:
    """Every source PyBDSF finds in ``region.box`` (margins included), in a temporary folder under ``workdir``."""
    with tempfile.TemporaryDirectory(prefix="radiff-validate-", dir=workdir) as tmp:
        image, catalogue = Path(tmp) / "region.fits", Path(tmp) / "region.srl.fits"
        if not cut_region(info, region, image):
            return empty_detections()
        if not run_pybdsf(image, params.process_kwargs(info, ncores), catalogue):
            return empty_detections()
        return read_source_list(catalogue, info, region)


def find_owned_sources(info: MapInfo, plan: RegionPlan, region: Region, params: FinderParams,
                       ncores: int = 1, workdir: str | Path | None = None) -> pa.Table:
    """The sources of ``region`` that it owns (centre in its core): what one piece contributes to the map's list."""
    table = find_sources(info, region, params, ncores, workdir)
    if table.num_rows == 0:
        return table
    keep = plan.owned_by(region, table.column("x").to_numpy(), table.column("y").to_numpy())
    return table.filter(pa.array(keep))
