"""The truth catalogue: one row per placed object, measured from its stamp.

Everything is measured from what was actually added to the map (the stamp), so the
catalogue is the ground truth of the pixels, not of the plan. Column meanings, units and
conventions are in ``docs/truth.md``; the short version:

- positions: flux-weighted centroid, 0-based pixel (x = col, y = row) and RA/Dec from
  the map WCS with origin 0;
- flux: peak in Jy/beam, integrated = sum of stamp pixels / beam area in pixels (Jy);
- shape: FWHM of the Gaussian with the same second moments as the *mask*, position
  angle east of north with north = +row, east = -col (as :mod:`radiff_scale.beam`).

Writers produce byte-identical files for the same table (no timestamps, fixed float
formatting), each written under a temporary name and renamed only when complete, so a
killed job never leaves a half-written catalogue that looks finished.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from radiff_scale.beam import Beam
from radiff_scale.classes import class_from_id
from radiff_scale.atomic import replace_when_done
from radiff_scale.compose.moments import axes, beam_covariance, deconvolve, flux_moments
from radiff_scale.compose.stamps import Stamp


#: (name, arrow type, unit) of every column, in file order.
COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("id", pa.int64(), ""),
    ("class", pa.int16(), ""),
    ("class_name", pa.string(), ""),
    ("ra", pa.float64(), "deg"),
    ("dec", pa.float64(), "deg"),
    ("x", pa.float64(), "pix"),
    ("y", pa.float64(), "pix"),
    ("ra_peak", pa.float64(), "deg"),
    ("dec_peak", pa.float64(), "deg"),
    ("peak_jy_beam", pa.float64(), "Jy/beam"),
    ("flux_jy", pa.float64(), "Jy"),
    ("flux_req_jy", pa.float64(), "Jy"),
    ("k", pa.float64(), ""),
    ("sigma_local", pa.float64(), "Jy/beam"),
    ("major_arcsec", pa.float64(), "arcsec"),
    ("minor_arcsec", pa.float64(), "arcsec"),
    ("pa_deg", pa.float64(), "deg"),
    ("obs_major_arcsec", pa.float64(), "arcsec"),
    ("obs_minor_arcsec", pa.float64(), "arcsec"),
    ("obs_pa_deg", pa.float64(), "deg"),
    ("src_major_arcsec", pa.float64(), "arcsec"),
    ("src_minor_arcsec", pa.float64(), "arcsec"),
    ("src_pa_deg", pa.float64(), "deg"),
    ("bbox_row0", pa.int64(), "pix"),
    ("bbox_row1", pa.int64(), "pix"),
    ("bbox_col0", pa.int64(), "pix"),
    ("bbox_col1", pa.int64(), "pix"),
    ("n_pixels", pa.int64(), ""),
    ("seed", pa.int64(), ""),
)

SCHEMA = pa.schema([pa.field(name, typ, metadata={"unit": unit} if unit else None) for name, typ, unit in COLUMNS])


def mask_shape(mask: np.ndarray) -> tuple[float, float, float]:
    """(major FWHM px, minor FWHM px, PA deg east of north in [0, 180)) from the mask's second moments.

    Each pixel is treated as a uniform unit square, so 1/12 px^2 is added to both
    variances: a single-pixel mask then has a finite size instead of zero. A round mask
    has no defined PA and gets 0 (:func:`radiff_scale.compose.moments.axes`).
    """
    rows, cols = np.nonzero(mask)
    n = rows.size
    if n == 0:
        raise ValueError("empty mask has no shape")
    dr = rows - rows.mean()
    dc = cols - cols.mean()
    cov = float(dr @ dc) / n
    return axes(np.array([[float(dr @ dr) / n + 1.0 / 12.0, cov], [cov, float(dc @ dc) / n + 1.0 / 12.0]]))


def _centroid(stamp: Stamp) -> tuple[float, float]:
    """Flux-weighted centroid (row, col) within the stamp; positive flux only, mask centroid as fallback.

    Stamps are zero outside their mask (the :class:`Stamp` contract), so the positive part
    of the data is already the weight map; its row and column sums give both moments.
    """
    weights = np.maximum(np.asarray(stamp.data, dtype=np.float64), 0.0)
    total = weights.sum()
    if not total > 0:
        weights = np.asarray(stamp.mask, dtype=np.float64)
        total = weights.sum()
    rows = weights.sum(axis=1) @ np.arange(weights.shape[0], dtype=np.float64)
    cols = weights.sum(axis=0) @ np.arange(weights.shape[1], dtype=np.float64)
    return float(rows / total), float(cols / total)


def _flux_shapes(data: np.ndarray, beam: Beam, pixel_scale_arcsec: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(observed, intrinsic) (major FWHM px, minor FWHM px, PA) from the stamp's flux moments;
    intrinsic = observed minus the beam. NaN for a stamp with nothing positive."""
    moments = flux_moments(data)
    if moments is None:
        return (math.nan,) * 3, (math.nan,) * 3
    cov = moments[1]
    return axes(cov), axes(deconvolve(cov, beam_covariance(beam, pixel_scale_arcsec)))


def measure(
    stamp: Stamp,
    wcs: Any,
    beam: Beam,
    pixel_scale_arcsec: float,
    sigma_local: float,
    k: float,
    seed: int,
    flux_req_jy: float = math.nan,
) -> dict[str, Any]:
    """One catalogue row for ``stamp`` (see ``COLUMNS``); ``wcs`` None gives NaN RA/Dec.

    ``k`` NaN (an object scaled to a flux) is measured: the peak over ``sigma_local``.
    ``flux_req_jy``: what was asked for (NaN when the peak was set by k).
    """
    mask = np.asarray(stamp.mask).astype(bool, copy=False)
    values = np.asarray(stamp.data, dtype=np.float64)[mask]
    if values.size == 0:
        raise ValueError(f"object {stamp.object_id}: empty stamp mask")
    crow, ccol = _centroid(stamp)
    y = stamp.row0 + crow
    x = stamp.col0 + ccol
    data = np.asarray(stamp.data)
    prow, pcol = np.unravel_index(int(np.argmax(np.where(mask, data, -np.inf))), data.shape)
    ra = dec = ra_peak = dec_peak = math.nan
    if wcs is not None:
        celestial = wcs.celestial if getattr(wcs, "naxis", 2) > 2 else wcs
        world = celestial.all_pix2world(np.array([[x, y], [stamp.col0 + pcol, stamp.row0 + prow]], dtype=np.float64), 0)
        ra, dec, ra_peak, dec_peak = (float(v) for v in (world[0, 0], world[0, 1], world[1, 0], world[1, 1]))
    major_px, minor_px, pa_deg = mask_shape(mask)
    obs, src = _flux_shapes(data, beam, pixel_scale_arcsec)
    # The maximum; only an object with no positive pixel (flagged by the cutter) reports its minimum.
    peak = float(values.max()) if values.max() > 0 else float(values.min())
    if math.isnan(k):
        k = peak / sigma_local if sigma_local > 0 else math.nan
    return {
        "id": int(stamp.object_id),
        "class": int(stamp.class_id),
        "class_name": class_from_id(stamp.class_id).label,
        "ra": ra,
        "dec": dec,
        "x": float(x),
        "y": float(y),
        "ra_peak": ra_peak,
        "dec_peak": dec_peak,
        "peak_jy_beam": peak,
        "flux_jy": float(values.sum()) / beam.area_pixels(pixel_scale_arcsec),
        "flux_req_jy": float(flux_req_jy),
        "k": float(k),
        "sigma_local": float(sigma_local),
        "major_arcsec": major_px * pixel_scale_arcsec,
        "minor_arcsec": minor_px * pixel_scale_arcsec,
        "pa_deg": pa_deg,
        "obs_major_arcsec": obs[0] * pixel_scale_arcsec,
        "obs_minor_arcsec": obs[1] * pixel_scale_arcsec,
        "obs_pa_deg": obs[2],
        "src_major_arcsec": src[0] * pixel_scale_arcsec,
        "src_minor_arcsec": src[1] * pixel_scale_arcsec,
        "src_pa_deg": src[2],
        "bbox_row0": int(stamp.row0),
        "bbox_row1": int(stamp.row1),
        "bbox_col0": int(stamp.col0),
        "bbox_col1": int(stamp.col1),
        "n_pixels": int(values.size),
        "seed": int(seed),
    }


def build_catalogue(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """The catalogue table, sorted by id (so worker order never changes the bytes)."""
    rows = sorted(rows, key=lambda r: int(r["id"]))
    ids = [int(r["id"]) for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate object ids in catalogue rows")
    arrays = []
    for name, typ, _ in COLUMNS:
        try:
            arrays.append(pa.array([r[name] for r in rows], type=typ))
        except KeyError:
            raise ValueError(f"catalogue row lacks column {name!r}") from None
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _fits_format(typ: pa.DataType, width: int) -> str:
    if pa.types.is_string(typ):
        return f"{max(width, 1)}A"
    if typ == pa.int16():
        return "I"
    if pa.types.is_integer(typ):
        return "K"
    return "D"


def _write_fits(table: pa.Table, path: Path) -> None:
    from astropy.io import fits

    columns = []
    for name, typ, unit in COLUMNS:
        values = table.column(name).to_pylist()
        if pa.types.is_string(typ):
            width = max((len(v.encode()) for v in values), default=1)
            array = np.array(values, dtype=f"S{max(width, 1)}")
        else:
            width = 0
            array = np.array(values, dtype=typ.to_pandas_dtype())
        columns.append(fits.Column(name=name, format=_fits_format(typ, width), unit=unit or None, array=array))
    hdu = fits.BinTableHDU.from_columns(columns, name="TRUTH")
    hdu.writeto(path, overwrite=True)


def _csv_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # shortest text that round-trips exactly: same float, same bytes
    return str(value)


def _write_csv(table: pa.Table, path: Path) -> None:
    names = [name for name, _, _ in COLUMNS]
    columns = [table.column(name).to_pylist() for name in names]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(names)
        for row in zip(*columns):
            writer.writerow([_csv_value(v) for v in row])


def _astropy_metadata(table: pa.Table) -> dict[bytes, bytes]:
    """What astropy's Parquet reader needs to restore the units (its ``table_meta_yaml``, and the
    width of each string column): ``Table.read("catalogue.parquet")`` then has ``flux_jy`` in Jy.
    Built from the column list alone (plus string widths), so the bytes never depend on the rows."""
    from astropy.table import Table, meta

    empty = Table()
    for name, typ, unit in COLUMNS:
        empty[name] = np.zeros(0, dtype=str if pa.types.is_string(typ) else typ.to_pandas_dtype())
        if unit:
            empty[name].unit = unit
    out = {b"table_meta_yaml": "\n".join(meta.get_yaml_from_table(empty)).encode("utf-8")}
    for name, typ, _ in COLUMNS:
        if pa.types.is_string(typ):
            width = max((len(v) for v in table.column(name).to_pylist()), default=1)
            out[f"table::len::{name}".encode()] = str(max(width, 1)).encode()
    return out


def write_catalogue(table: pa.Table, out_dir: str | Path, stem: str = "catalogue") -> dict[str, Path]:
    """Write ``<stem>.parquet`` (units readable by astropy), ``<stem>.fits`` (units in TUNIT) and
    ``<stem>.csv``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = table.select([name for name, _, _ in COLUMNS]).cast(SCHEMA)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **_astropy_metadata(table)})
    paths = {
        "parquet": replace_when_done(
            out_dir / f"{stem}.parquet",
            lambda p: pq.write_table(table, p, compression="zstd", write_statistics=False, store_schema=True),
        ),
        "fits": replace_when_done(out_dir / f"{stem}.fits", lambda p: _write_fits(table, p)),
        "csv": replace_when_done(out_dir / f"{stem}.csv", lambda p: _write_csv(table, p)),
    }
    return paths
