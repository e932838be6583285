"""Map geometry headers and the streamed FITS export of a mosaic."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from radiff_scale.beam import Beam
from radiff_scale.classes import SourceClass
from radiff_scale.compose import fits_export
from radiff_scale.compose.mosaic import create_mosaic, open_mosaic
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.errors import RadiffError

SHAPE = (150, 200)


def export_fits(mosaic, out, header, array="image", overwrite=False, progress=None, labels=False):
    """The export stage's path in one process: lay the file out, write every chunk at its
    offsets (what each export task does), then rename it into place."""
    mosaic = open_mosaic(mosaic)
    layout = (fits_export.labels_layout(mosaic, out, header, overwrite) if labels
              else fits_export.image_layout(mosaic, out, header, array, overwrite))
    grid = mosaic.chunk_grid()
    try:
        for n, bounds in enumerate(grid, start=1):
            fits_export.write_chunk_into(layout, bounds, {s.array: mosaic.array(s.array)[bounds.slices]
                                                          for s in layout.slots})
            if progress is not None:
                progress(n, len(grid))
    except BaseException:
        fits_export.abandon(layout)
        raise
    return fits_export.finish(layout)


def export_labels_fits(mosaic, out, header, overwrite=False):
    return export_fits(mosaic, out, header, overwrite=overwrite, labels=True)

def _geometry(shape=SHAPE) -> MapGeometry:
    return MapGeometry(shape, 2.0, 150.0, 2.5, Beam(12.0, 8.0, 35.0), 8.875e8)


def _filled_mosaic(path, shape=SHAPE, chunk=64):
    """A mosaic with noise in the image and a few labelled boxes, written array-wide."""
    m = create_mosaic(path, shape, chunk=chunk)
    rng = np.random.default_rng(0)
    m.array("image", mode="r+")[:] = rng.standard_normal(shape).astype(np.float32)
    classes = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.int32)
    for oid, (r, c, cls) in enumerate([(10, 10, 1), (60, 120, 2), (100, 150, 3), (140, 190, 2)], start=1):
        classes[r : r + 9, c : c + 9] = cls
        instances[r : r + 9, c : c + 9] = oid * 1000003  # ids beyond 16 bits survive int32
    m.array("class", mode="r+")[:] = classes
    m.array("instance", mode="r+")[:] = instances
    return m


def _strict_open(path):
    """Open a FITS file and touch everything with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path) as hdul:
            hdul.verify("exception")
            out = [(hdu.header.copy(), hdu.data.copy()) for hdu in hdul]
            for header, _ in out:
                WCS(header)
    return out


# --- geometry ----------------------------------------------------------------------------


def test_geometry_header_keywords():
    h = _geometry().header()
    assert (h["NAXIS"], h["NAXIS1"], h["NAXIS2"]) == (2, 200, 150)
    assert (h["CTYPE1"], h["CTYPE2"]) == ("RA---SIN", "DEC--SIN")
    assert (h["CRPIX1"], h["CRPIX2"]) == (100.5, 75.5)  # centre of 200 x 150 in 1-based pixels
    assert (h["CRVAL1"], h["CRVAL2"]) == (150.0, 2.5)
    assert h["CDELT1"] == pytest.approx(-2.0 / 3600) and h["CDELT2"] == pytest.approx(2.0 / 3600)
    assert (h["CUNIT1"], h["CUNIT2"], h["RADESYS"], h["EQUINOX"]) == ("deg", "deg", "ICRS", 2000.0)
    assert h["BMAJ"] == pytest.approx(12.0 / 3600) and h["BMIN"] == pytest.approx(8.0 / 3600)
    assert h["BPA"] == 35.0
    assert h["RESTFRQ"] == 8.875e8 and h["BUNIT"] == "JY/BEAM"


def test_geometry_wcs_round_trip():
    geo = _geometry()
    w = geo.wcs()
    centre = w.pixel_to_world((200 - 1) / 2, (150 - 1) / 2)
    assert centre.ra.deg == pytest.approx(150.0) and centre.dec.deg == pytest.approx(2.5)
    x, y = w.world_to_pixel(w.pixel_to_world(17.0, 123.0))
    assert (float(x), float(y)) == pytest.approx((17.0, 123.0), abs=1e-8)
    right = w.pixel_to_world(100.5, 74.5)  # one column to the right of the centre: east is left
    assert right.ra.deg < 150.0
    assert centre.separation(right).arcsec == pytest.approx(2.0, rel=1e-3)


def test_geometry_rejects_bad_values():
    with pytest.raises(RadiffError, match="projection"):
        MapGeometry(SHAPE, 2.0, 150.0, 2.5, Beam(12.0, 8.0), 1e9, projection="NCP")
    with pytest.raises(RadiffError, match="frequency"):
        MapGeometry(SHAPE, 2.0, 150.0, 2.5, Beam(12.0, 8.0), 0.0)
    with pytest.raises(RadiffError, match="shape"):
        MapGeometry((0, 10), 2.0, 150.0, 2.5, Beam(12.0, 8.0), 1e9)


# --- image export ------------------------------------------------------------------------


def test_export_equals_zarr_and_is_clean(tmp_path):
    m = _filled_mosaic(tmp_path / "m.zarr")
    header = _geometry().header()
    header["RDSEED"] = (1234, "run seed")
    header["RDVERS"] = ("0.1.0", "radiff_scale version")
    out = export_fits(m, tmp_path / "map.fits", header)
    assert out == tmp_path / "map.fits"
    [(h, data)] = _strict_open(out)
    assert data.dtype == np.dtype(">f4") and h["BITPIX"] == -32
    np.testing.assert_array_equal(data, m.array("image")[:])
    for key in ("CTYPE1", "BUNIT", "RDSEED", "RDVERS"):
        assert h[key] == header[key]
    for key in ("CRPIX1", "CDELT2", "BMAJ", "BPA", "RESTFRQ"):  # FITS cards keep 16 significant digits
        assert h[key] == pytest.approx(header[key], rel=1e-14)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zarr", "m.zarr.done", "map.fits"]  # no .partial left
    assert WCS(h).has_celestial


def _data_bytes(path, hdu_index):
    """The raw bytes of one HDU's data, padding included, as stored in the file."""
    with fits.open(path) as hdul:
        info = hdul.fileinfo(hdu_index)
        start, size = info["datLoc"], info["datSpan"]
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(size)


def test_file_data_equal_astropys_own_writer_byte_for_byte(tmp_path):
    """Chunks written at computed offsets (ragged edge chunks included) must be exactly what
    astropy writes for the whole array, padding too."""
    m = _filled_mosaic(tmp_path / "m.zarr")
    header = _geometry().header()
    ours_map = export_fits(m, tmp_path / "map.fits", header)
    ours_labels = export_labels_fits(m, tmp_path / "labels.fits", header)
    fits.PrimaryHDU(m.array("image")[:], header=fits_export.hdu_header(header, SHAPE, "float32")).writeto(tmp_path / "ref.fits")
    ch, ih = fits_export.label_headers(header, SHAPE)
    fits.HDUList([fits.PrimaryHDU(m.array("class")[:], header=ch), fits.ImageHDU(m.array("instance")[:], header=ih)]
                 ).writeto(tmp_path / "refl.fits")
    assert _data_bytes(ours_map, 0) == _data_bytes(tmp_path / "ref.fits", 0)
    for k in (0, 1):
        assert _data_bytes(ours_labels, k) == _data_bytes(tmp_path / "refl.fits", k)
    assert ours_map.stat().st_size == (tmp_path / "ref.fits").stat().st_size


def test_chunks_written_in_any_order_give_the_same_file(tmp_path):
    m = _filled_mosaic(tmp_path / "m.zarr")
    header = _geometry().header()
    first = export_labels_fits(m, tmp_path / "a.fits", header)
    layout = fits_export.labels_layout(m, tmp_path / "b.fits", header)
    grid = m.chunk_grid()
    for k in np.random.default_rng(3).permutation(len(grid)):  # as workers would finish them
        b = grid[int(k)]
        fits_export.write_chunk_into(layout, b, {n: m.array(n)[b.slices] for n in ("class", "instance")})
    second = fits_export.finish(layout)
    assert first.read_bytes() == second.read_bytes()


def test_labels_file_has_two_named_hdus(tmp_path):
    m = _filled_mosaic(tmp_path / "m.zarr")
    out = export_labels_fits(m, tmp_path / "labels.fits", _geometry().header())
    hdus = _strict_open(out)
    assert len(hdus) == 2
    (ch, cdata), (ih, idata) = hdus
    assert (ch["EXTNAME"], ch["BITPIX"], ih["EXTNAME"], ih["BITPIX"]) == ("CLASS", 8, "INSTANCE", 32)
    assert cdata.dtype == np.uint8
    np.testing.assert_array_equal(fits.getdata(out, "CLASS"), m.array("class")[:])
    np.testing.assert_array_equal(fits.getdata(out, "INSTANCE"), m.array("instance")[:])
    np.testing.assert_array_equal(idata, m.array("instance")[:])
    for h in (ch, ih):
        assert "BUNIT" not in h
        assert WCS(h).has_celestial and h["CTYPE1"] == "RA---SIN"
    assert ch[f"CLASS{int(SourceClass.EXTENDED)}"] == SourceClass.EXTENDED.label
    assert not list(tmp_path.glob("*.partial"))


def test_export_refuses_mismatch_and_existing_output(tmp_path):
    m = _filled_mosaic(tmp_path / "m.zarr")
    with pytest.raises(RadiffError, match="NAXIS1"):
        export_fits(m, tmp_path / "map.fits", _geometry(shape=(150, 201)).header())
    export_fits(m, tmp_path / "map.fits", _geometry().header())
    with pytest.raises(RadiffError, match="already exists"):
        export_fits(m, tmp_path / "map.fits", _geometry().header())
    export_fits(m, tmp_path / "map.fits", _geometry().header(), overwrite=True)


def test_interrupted_export_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    m = _filled_mosaic(tmp_path / "m.zarr")
    real_write = fits_export.write_window
    calls = {"n": 0}

    def dying_write(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real_write(*args)

    monkeypatch.setattr(fits_export, "write_window", dying_write)
    with pytest.raises(KeyboardInterrupt):
        export_fits(m, tmp_path / "map.fits", _geometry().header())
    assert not (tmp_path / "map.fits").exists() and not (tmp_path / "map.fits.partial").exists()
    monkeypatch.undo()
    # A stale partial from a hard kill (longer than the file, junk in the data) is emptied, not reused.
    (tmp_path / "map.fits.partial").write_bytes(b"junk" * 100_000)
    out = export_fits(m, tmp_path / "map.fits", _geometry().header())
    np.testing.assert_array_equal(fits.getdata(out), m.array("image")[:])
    assert not (tmp_path / "map.fits.partial").exists()


def test_finish_refuses_a_partial_of_the_wrong_size(tmp_path):
    m = _filled_mosaic(tmp_path / "m.zarr")
    layout = fits_export.image_layout(m, tmp_path / "map.fits", _geometry().header())
    with open(layout.partial, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(RuntimeError, match="bytes"):
        fits_export.finish(layout)
    assert not (tmp_path / "map.fits").exists()


def test_export_memory_stays_far_below_the_map(tmp_path):
    n, chunk = 4096, 256
    m = create_mosaic(tmp_path / "big.zarr", (n, n), chunk=chunk)
    image = m.array("image", mode="r+")
    rng = np.random.default_rng(1)
    for r0 in range(0, n, 1024):  # fill in bands so the test itself stays small
        image[r0 : r0 + 1024, :] = rng.standard_normal((1024, n), dtype=np.float32)
    done = []
    tracemalloc.start()
    try:
        export_fits(m, tmp_path / "big.fits", _geometry(shape=(n, n)).header(), progress=lambda k, t: done.append((k, t)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    map_bytes = n * n * 4
    assert peak < map_bytes / 16, f"peak {peak / 2**20:.1f} MiB for a {map_bytes / 2**20:.0f} MiB map"
    n_chunks = (n // chunk) ** 2
    assert done == [(k, n_chunks) for k in range(1, n_chunks + 1)]  # one chunk at a time
    with fits.open(tmp_path / "big.fits", memmap=True) as hdul:
        data = hdul[0].data
        for r in (0, 1, 2047, 4095):
            np.testing.assert_array_equal(data[r], image[r, :])
        del data
