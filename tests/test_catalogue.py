"""Truth catalogue: measurements, the three file formats, and DS9 regions."""

from __future__ import annotations

import csv
import math
import re
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from radiff_scale.beam import Beam, gaussian_kernel
from radiff_scale.classes import CLASS_COLOURS, SourceClass
from radiff_scale.compose.catalogue import COLUMNS, build_catalogue, mask_shape, measure, write_catalogue
from radiff_scale.compose.regions import write_ds9_regions
from radiff_scale.compose.stamps import Stamp

PIX = 1.5  # arcsec per pixel
BEAM = Beam(6.5, 6.5)


def make_wcs() -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [257.12, -43.21]
    w.wcs.crpix = [2048.5, 2048.5]
    w.wcs.cdelt = [-PIX / 3600, PIX / 3600]
    return w


def gaussian_stamp(object_id: int, class_id: int, row0: int, col0: int, pa: float = 30.0) -> Stamp:
    prof = gaussian_kernel(12.0, 6.0, pa, 41)
    mask = prof > 0.05
    return Stamp(object_id, class_id, row0, col0, np.where(mask, 2e-3 * prof, 0).astype(np.float32), mask)


def sample_rows() -> list[dict]:
    wcs = make_wcs()
    rows = []
    for i, (cls, r0, c0, pa) in enumerate([(2, 100, 200, 10.0), (3, 1500, 900, 80.0), (1, 3000, 3500, 150.0)]):
        stamp = gaussian_stamp(i, cls, r0, c0, pa)
        rows.append(measure(stamp, wcs, BEAM, PIX, sigma_local=1e-4, k=3.0 + i, seed=1000 + i))
    return rows


def test_flux_peak_and_pixel_counts():
    stamp = gaussian_stamp(5, 2, 10, 20)
    row = measure(stamp, make_wcs(), BEAM, PIX, 1e-4, 2.5, 77)
    assert row["flux_jy"] == pytest.approx(float(stamp.data.astype(np.float64).sum()) / BEAM.area_pixels(PIX))
    assert row["peak_jy_beam"] == pytest.approx(float(stamp.data.max()))
    assert row["n_pixels"] == int(stamp.mask.sum())
    assert (row["bbox_row0"], row["bbox_row1"], row["bbox_col0"], row["bbox_col1"]) == (10, 51, 20, 61)
    assert (row["id"], row["class"], row["class_name"], row["k"], row["seed"]) == (5, 2, "compact", 2.5, 77)


def test_centroid_and_radec_round_trip_through_the_wcs():
    wcs = make_wcs()
    stamp = gaussian_stamp(0, 3, 1234, 567)
    row = measure(stamp, wcs, BEAM, PIX, 1e-4, 1.0, 0)
    # The profile is symmetric about the stamp centre (20, 20).
    assert row["y"] == pytest.approx(1234 + 20, abs=1e-6)
    assert row["x"] == pytest.approx(567 + 20, abs=1e-6)
    x, y = wcs.all_world2pix([[row["ra"], row["dec"]]], 0)[0]
    assert x == pytest.approx(row["x"], abs=1e-6) and y == pytest.approx(row["y"], abs=1e-6)
    # East is to the left: a larger column means a smaller RA.
    right = measure(gaussian_stamp(0, 3, 1234, 600), wcs, BEAM, PIX, 1e-4, 1.0, 0)
    assert right["ra"] < row["ra"]


def test_no_wcs_gives_nan_sky_position():
    row = measure(gaussian_stamp(0, 2, 0, 0), None, BEAM, PIX, 1e-4, 1.0, 0)
    assert math.isnan(row["ra"]) and math.isnan(row["dec"])


@pytest.mark.parametrize("pa", [0.0, 30.0, 100.0, 150.0])
def test_rotated_ellipse_mask_gives_axis_ratio_and_pa(pa):
    # Half-maximum contour of a 60 x 20 px FWHM Gaussian = uniform ellipse with full axes 60 and 20.
    mask = gaussian_kernel(60.0, 20.0, pa, 151) >= 0.5
    major, minor, got_pa = mask_shape(mask)
    assert minor / major == pytest.approx(20.0 / 60.0, rel=0.02)
    # A uniform ellipse of full axis A has sigma A/4 along it.
    assert major == pytest.approx(math.sqrt(8 * math.log(2)) * 60.0 / 4, rel=0.01)
    assert abs((got_pa - pa + 90.0) % 180.0 - 90.0) < 0.5


def test_pa_is_east_of_north():
    line = np.zeros((21, 21), bool)
    for t in range(-8, 9):
        line[10 + t, 10] = True
    assert mask_shape(line)[2] == pytest.approx(0.0, abs=1e-9)  # along rows = north-south
    diag = np.zeros((21, 21), bool)
    for t in range(-8, 9):
        diag[10 + t, 10 - t] = True  # north (+row) and east (-col) together
    assert mask_shape(diag)[2] == pytest.approx(45.0, abs=1e-9)
    single = np.zeros((3, 3), bool)
    single[1, 1] = True
    major, minor, _ = mask_shape(single)
    assert major == pytest.approx(minor) and major > 0


def test_closed_form_shape_agrees_with_an_eigendecomposition_of_the_moments():
    """mask_shape diagonalises the 2x2 moment matrix by hand; numpy's eigh is the reference."""
    rng = np.random.default_rng(12)
    for _ in range(200):
        mask = rng.random((int(rng.integers(1, 12)), int(rng.integers(1, 12)))) > rng.uniform(0.2, 0.9)
        if not mask.any():
            continue
        rows, cols = np.nonzero(mask)
        cov = np.cov(np.vstack([rows, cols]).astype(float), bias=True).reshape(2, 2) + np.eye(2) / 12.0
        evals, evecs = np.linalg.eigh(cov)
        major, minor, pa = mask_shape(mask)
        assert major == pytest.approx(math.sqrt(8 * math.log(2) * evals[1]), rel=1e-9)
        assert minor == pytest.approx(math.sqrt(8 * math.log(2) * max(evals[0], 0.0)), rel=1e-9, abs=1e-12)
        if evals[1] - evals[0] > 1e-6 * evals[1]:
            want = math.degrees(math.atan2(-evecs[1, 1], evecs[0, 1])) % 180.0
            assert abs((pa - want + 90.0) % 180.0 - 90.0) < 1e-6


def test_build_catalogue_sorts_by_id_and_refuses_duplicates():
    rows = sample_rows()
    table = build_catalogue(rows[::-1])
    assert table.column("id").to_pylist() == [0, 1, 2]
    assert table.column_names == [name for name, _, _ in COLUMNS]
    with pytest.raises(ValueError, match="duplicate"):
        build_catalogue(rows + rows[:1])


def test_writers_produce_matching_readable_deterministic_files(tmp_path):
    table = build_catalogue(sample_rows())
    paths = write_catalogue(table, tmp_path / "a")
    again = write_catalogue(table, tmp_path / "b")
    for fmt in ("parquet", "fits", "csv"):
        assert paths[fmt].read_bytes() == again[fmt].read_bytes(), fmt
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["catalogue.csv", "catalogue.fits", "catalogue.parquet"]

    parquet = pq.read_table(paths["parquet"])
    assert parquet.schema.remove_metadata().equals(table.schema.remove_metadata())
    for name in table.column_names:  # NaN (a k-scaled object's requested flux) is not equal to itself
        got, want = parquet.column(name).to_pylist(), table.column(name).to_pylist()
        assert _nan_as_none(got) == _nan_as_none(want), name
    assert parquet.schema.field("flux_jy").metadata[b"unit"] == b"Jy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy warns when a string column's width is unknown
        from_parquet = Table.read(paths["parquet"])
    assert str(from_parquet["flux_jy"].unit) == "Jy" and str(from_parquet["peak_jy_beam"].unit) == "Jy / beam"
    assert str(from_parquet["ra"].unit) == "deg" and from_parquet["id"].unit is None
    assert from_parquet["class_name"].tolist() == table.column("class_name").to_pylist()

    fits_table = Table.read(paths["fits"])
    header = fits.getheader(paths["fits"], 1)
    units = {header[f"TTYPE{i}"]: header.get(f"TUNIT{i}") for i in range(1, header["TFIELDS"] + 1)}
    assert units["peak_jy_beam"] == "Jy/beam" and units["ra"] == "deg" and units["major_arcsec"] == "arcsec"

    with open(paths["csv"], newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(fits_table) == len(csv_rows) == table.num_rows == 3
    for name, _, _ in COLUMNS:
        expected = table.column(name).to_pylist()
        got_fits = [v.decode() if isinstance(v, bytes) else v for v in fits_table[name].tolist()]
        assert _nan_as_none(got_fits) == _nan_as_none(expected), name
        parsed = [type(e)(v) for e, v in zip(expected, (r[name] for r in csv_rows))]
        assert _nan_as_none(parsed) == _nan_as_none(expected), name


def _nan_as_none(values):
    """NaN (e.g. the requested flux of a k-scaled object) compares unequal to itself."""
    return [None if isinstance(v, float) and v != v else v for v in values]


def test_empty_catalogue_writes(tmp_path):
    paths = write_catalogue(build_catalogue([]), tmp_path)
    assert pq.read_table(paths["parquet"]).num_rows == 0
    assert len(Table.read(paths["fits"])) == 0


def test_ds9_regions_parse(tmp_path):
    table = build_catalogue(sample_rows())
    path = write_ds9_regions(table, tmp_path / "truth.reg")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# Region file format: DS9")
    assert "icrs" in lines
    pattern = re.compile(
        r'^ellipse\(([-\d.]+),([-\d.]+),([\d.]+)",([\d.]+)",([\d.]+)\) # color=(#[0-9a-f]{6}) text=\{(\d+)\} tag=\{(\w+)\}$'
    )
    shapes = [pattern.match(line) for line in lines if line.startswith("ellipse")]
    assert len(shapes) == table.num_rows and all(shapes)
    for m, row in zip(shapes, table.to_pylist()):
        ra, dec, r1, r2, angle = map(float, m.groups()[:5])
        assert ra == pytest.approx(row["ra"], abs=1e-7) and dec == pytest.approx(row["dec"], abs=1e-7)
        assert r1 == pytest.approx(row["major_arcsec"] / 2, abs=1e-3)
        assert r2 == pytest.approx(row["minor_arcsec"] / 2, abs=1e-3)
        assert angle == pytest.approx((row["pa_deg"] + 90.0) % 360.0, abs=1e-3)
        assert m.group(6) == "#{:02x}{:02x}{:02x}".format(*CLASS_COLOURS[SourceClass(row["class"])])
        assert int(m.group(7)) == row["id"]
        assert m.group(8) == row["class_name"]


def test_plan_place_cut_measure_agree():
    from radiff_scale.compose.placement import place_objects
    from radiff_scale.compose.planner import PlacementConfig, plan_objects
    from radiff_scale.compose.stamps import cut_stamp

    cfg = PlacementConfig(n_objects=6, margin_px=8)
    shape = (400, 400)
    plans = plan_objects(cfg, shape, seed=21)
    rows, cols = np.mgrid[0:128, 0:128].astype(float)
    tiles, fps = [], []
    for p in plans:
        blob = np.exp(-(((rows - 60 - p.object_id) / 5.0) ** 2 + ((cols - 64) / 8.0) ** 2) / 2)
        tiles.append((0.1 + 0.8 * blob).astype(np.float32))
        fps.append(blob > 0.2)
    placement = place_objects(plans, fps, shape, cfg, seed=21)
    assert len(placement.placed) == 6
    sigma = 1e-4
    table = build_catalogue(
        measure(cut_stamp(o, tiles[o.object_id - 1], fps[o.object_id - 1], sigma), make_wcs(), BEAM, PIX, sigma, o.k, o.seed)
        for o in placement.placed
    )
    for row, o in zip(table.to_pylist(), placement.placed):
        assert row["peak_jy_beam"] == pytest.approx(o.k * sigma, rel=1e-6)
        assert row["seed"] == o.seed and row["class"] == o.class_id
        assert cfg.margin_px <= row["bbox_row0"] <= row["y"] < row["bbox_row1"] <= shape[0] - cfg.margin_px
        assert cfg.margin_px <= row["bbox_col0"] <= row["x"] < row["bbox_col1"] <= shape[1] - cfg.margin_px
        assert row["n_pixels"] == int(fps[o.object_id - 1].sum())
