"""Backgrounds read window by window, and real-map headers read tolerantly."""

from __future__ import annotations

import pickle
import zlib

import numpy as np
import pytest
from astropy.io import fits

from radiff_scale.beam import Beam, correlated_noise
from radiff_scale.compose.background import NOISE_TILE, BackgroundSource, FitsBackground, SyntheticBackground
from radiff_scale.compose.wcs import MapGeometry, read_map_header
from radiff_scale.errors import RadiffError
from radiff_scale.fits_header import read_map_unit

SCORPIO = "backgrounds/ScorpioFaintSNRField.fits"


def _geometry(shape=(300, 260), scale=1.5, beam=Beam(6.5, 6.5)) -> MapGeometry:
    return MapGeometry(shape, scale, 150.0, 2.0, beam, 1.4e9)


def _miriad_like_header(shape=(64, 80)) -> fits.Header:
    """A 4-D header in the style of the Scorpio maps: NCP, FREQ and STOKES axes, no BPA."""
    rows, cols = shape
    h = fits.Header()
    h["CTYPE1"], h["CRPIX1"], h["CRVAL1"], h["CDELT1"] = "RA---NCP", cols / 2, 200.0, -2.0 / 3600
    h["CTYPE2"], h["CRPIX2"], h["CRVAL2"], h["CDELT2"] = "DEC--NCP", rows / 2, -40.0, 2.0 / 3600
    h["CTYPE3"], h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = "FREQ-LSR", 2.0, 1.5e9, 1.0e7
    h["CTYPE4"], h["CRPIX4"], h["CRVAL4"], h["CDELT4"] = "STOKES", 1.0, 1.0, 1.0
    h["BMAJ"], h["BMIN"] = 10.0 / 3600, 8.0 / 3600
    return h


# --- real-map headers -------------------------------------------------------------------


def test_real_ncp_map_reads_as_sin_geometry(shared_data):
    geo = read_map_header(shared_data / SCORPIO)
    assert geo.projection == "SIN"
    assert geo.shape == (1000, 1000)
    assert geo.pixel_scale_arcsec == pytest.approx(1.5, rel=1e-5)
    assert geo.beam.bmaj_arcsec == pytest.approx(6.5, rel=1e-5)
    assert geo.beam.bmin_arcsec == pytest.approx(6.5, rel=1e-5)
    assert geo.beam.bpa_deg == 0.0  # no BPA in the file
    assert geo.freq_hz == pytest.approx(1.44746065140e9)  # the FREQ axis CRVAL3 (CRPIX3 = 1)
    # README: centre RA 257.12, Dec -43.21 (positions are copied from a parent mosaic, but consistent).
    assert geo.centre_ra_deg == pytest.approx(257.12, abs=0.01)
    assert geo.centre_dec_deg == pytest.approx(-43.21, abs=0.01)
    assert geo.header()["CTYPE1"] == "RA---SIN"


def test_degenerate_axes_freq_axis_and_defaults(tmp_path):
    path = tmp_path / "cube.fits"
    h = _miriad_like_header()
    fits.PrimaryHDU(np.ones((1, 1, 64, 80), dtype=np.float32), header=h).writeto(path)
    geo = read_map_header(path)
    assert geo.shape == (64, 80)
    assert geo.pixel_scale_arcsec == pytest.approx(2.0, rel=1e-6)
    assert geo.freq_hz == pytest.approx(1.5e9 - 1.0e7)  # value of the FREQ axis at pixel 1, CRPIX3 = 2
    assert (geo.beam.bmaj_arcsec, geo.beam.bmin_arcsec, geo.beam.bpa_deg) == pytest.approx((10.0, 8.0, 0.0))


def test_restfreq_spelling_and_aips_history_beam(tmp_path):
    h = _miriad_like_header()
    del h["BMAJ"], h["BMIN"]
    h["RESTFREQ"] = 8.9e8
    h.add_history("AIPS   CLEAN BMAJ=  2.7778E-03 BMIN=  1.3889E-03 BPA=  30.00")
    path = tmp_path / "aips.fits"
    fits.PrimaryHDU(np.ones((1, 1, 64, 80), dtype=np.float32), header=h).writeto(path)
    geo = read_map_header(path)
    assert geo.freq_hz == 8.9e8
    assert geo.beam.bmaj_arcsec == pytest.approx(10.0, rel=1e-3)
    assert geo.beam.bmin_arcsec == pytest.approx(5.0, rel=1e-3)
    assert geo.beam.bpa_deg == pytest.approx(30.0)


def test_header_errors_name_the_file(tmp_path, shared_data):
    with pytest.raises(RadiffError, match="sidelobe0001.fits"):  # unit in CTYPE1, no sky axes
        read_map_header(shared_data / "cutouts" / "sidelobe0001.fits")
    h = _miriad_like_header()
    for key in ("CTYPE3", "CRPIX3", "CRVAL3", "CDELT3"):
        del h[key]
    path = tmp_path / "nofreq.fits"
    fits.PrimaryHDU(np.ones((64, 80), dtype=np.float32), header=h).writeto(path)
    with pytest.raises(RadiffError, match="nofreq.fits.*frequency"):
        read_map_header(path)
    assert read_map_header(path, default_freq_hz=1e9).freq_hz == 1e9
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.ones((1, 3, 64, 80), dtype=np.float32), header=_miriad_like_header()).writeto(cube)
    with pytest.raises(RadiffError, match="cube.fits"):
        read_map_header(cube)


def test_unit_found_in_the_wrong_keyword(shared_data):
    assert read_map_unit(fits.getheader(shared_data / "cutouts" / "sidelobe0001.fits")) == "JY/BEAM"
    assert read_map_unit(fits.Header({"BUNIT": "mJy/beam"})) == "MJY/BEAM"
    assert read_map_unit(fits.Header({"OBJECT": "x"})) is None


# --- FITS background -------------------------------------------------------------------


def test_fits_background_window_matches_file(shared_data):
    path = shared_data / SCORPIO
    bg = FitsBackground(path)
    assert isinstance(bg, BackgroundSource)
    assert bg.shape == (1000, 1000) and bg.nan_count == 0
    window = bg.read(123, 456, 789, 1000)
    assert window.dtype == np.float32 and window.shape == (333, 211)
    np.testing.assert_array_equal(window, fits.getdata(path)[123:456, 789:1000])
    clone = pickle.loads(pickle.dumps(bg))  # a worker reopens the file
    np.testing.assert_array_equal(clone.read(0, 10, 0, 10), bg.read(0, 10, 0, 10))
    with pytest.raises(ValueError):
        bg.read(990, 1001, 0, 10)


def test_fits_background_blanks_units_and_degenerate_axes(tmp_path):
    data = np.arange(64 * 80, dtype=np.float32).reshape(64, 80)
    data[5:7, 10:13] = np.nan
    data[0, 0] = np.inf
    h = _miriad_like_header()
    h["BUNIT"] = "mJy/beam"
    path = tmp_path / "m.fits"
    fits.PrimaryHDU(data[None, None], header=h).writeto(path)
    bg = FitsBackground(path)
    assert bg.nan_count == 7
    window = bg.read(0, 64, 0, 80)
    expected = np.nan_to_num(data, nan=0.0, posinf=0.0) * np.float32(1e-3)
    np.testing.assert_allclose(window, expected, rtol=1e-6)
    assert window[5, 10] == 0.0 and window[0, 0] == 0.0


def test_fits_background_scaled_integers(tmp_path):
    raw = np.arange(-50, 50, dtype=np.int16).reshape(10, 10)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 0.5, 3.0, -50
    hdu.header["BUNIT"] = "JY/BEAM"
    path = tmp_path / "int.fits"
    hdu.writeto(path)
    bg = FitsBackground(path)
    expected = raw * 0.5 + 3.0
    expected[0, 0] = 0.0  # BLANK
    np.testing.assert_allclose(bg.read(0, 10, 0, 10), expected)
    assert bg.nan_count == 1


@pytest.mark.parametrize("kind", ["image extension", "tile-compressed"])
def test_fits_background_windows_of_extensions_and_compressed_images(tmp_path, kind):
    """Positioned reads start at the HDU's data, wherever it is in the file; compressed images
    are read through astropy. Any window (ragged columns too) equals the file's pixels."""
    data = np.random.default_rng(5).standard_normal((70, 90)).astype(np.float32)
    h = _miriad_like_header()
    image = fits.ImageHDU(data, header=h) if kind == "image extension" else fits.CompImageHDU(data, header=h)
    path = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), image]).writeto(path)
    stored = fits.getdata(path, ext=1)  # what astropy reads (compression quantises floats)
    bg = FitsBackground(path)
    assert bg.shape == (70, 90) and bg.nan_count == 0
    for window in [(0, 70, 0, 90), (3, 41, 17, 88), (69, 70, 89, 90), (10, 10, 0, 5)]:
        np.testing.assert_array_equal(bg.read(*window), stored[window[0] : window[1], window[2] : window[3]])
    bg.close()


def test_fits_background_rejects_all_blank_and_odd_units(tmp_path):
    path = tmp_path / "blank.fits"
    fits.PrimaryHDU(np.full((8, 8), np.nan, dtype=np.float32)).writeto(path)
    with pytest.raises(RadiffError, match="blank.fits"):
        FitsBackground(path)
    kelvin = tmp_path / "k.fits"
    hdu = fits.PrimaryHDU(np.ones((8, 8), dtype=np.float32))
    hdu.header["BUNIT"] = "K"
    hdu.writeto(kelvin)
    with pytest.raises(RadiffError, match="k.fits"):
        FitsBackground(kelvin)


# --- synthetic background --------------------------------------------------------------


def test_synthetic_windows_are_byte_identical_to_the_whole_map():
    geo = _geometry()
    bg = SyntheticBackground(geo, rms_jy=1e-4, seed=11, block=64)
    whole = bg.read(0, 300, 0, 260)
    windows = [
        (60, 70, 0, 260),  # across a block row boundary
        (63, 129, 127, 200),  # across two boundaries each way
        (64, 65, 64, 65),  # a single pixel at a block corner
        (250, 300, 200, 260),  # the ragged last blocks
    ]
    fresh = SyntheticBackground(geo, rms_jy=1e-4, seed=11, block=64, cache_blocks=0)
    clone = pickle.loads(pickle.dumps(bg))
    for r0, r1, c0, c1 in windows:
        for source in (bg, fresh, clone):
            window = source.read(r0, r1, c0, c1)
            assert window.dtype == np.float32
            assert window.tobytes() == whole[r0:r1, c0:c1].tobytes()
    other = SyntheticBackground(geo, rms_jy=1e-4, seed=12, block=64).read(0, 10, 0, 10)
    assert not np.array_equal(other, whole[:10, :10])


def test_synthetic_noise_has_rms_and_beam_correlation():
    geo = _geometry(shape=(512, 512))
    noise = SyntheticBackground(geo, rms_jy=2e-4, seed=3, block=128).read(0, 512, 0, 512).astype(np.float64)
    assert noise.std() == pytest.approx(2e-4, rel=0.03)
    # Gaussian beam of FWHM f px: correlation at 1 px lag is exp(-1 / (4 sigma^2)).
    sigma_px = 6.5 / 1.5 / (2 * np.sqrt(2 * np.log(2)))
    lag1 = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
    assert lag1 == pytest.approx(np.exp(-1 / (4 * sigma_px**2)), abs=0.02)


def test_synthetic_noise_is_the_documented_tiles_convolved_with_the_beam():
    """Pins the seeding scheme and the float32 FFT against a float64 'valid' convolution of
    white noise rebuilt independently from the class docstring (tiles of NOISE_TILE px, tile
    (ti, tj) drawn from PCG64DXSM(SeedSequence([seed, crc32("noise")])) advanced by
    pair(zigzag(ti), zigzag(tj)) << 40)."""
    geo = _geometry(shape=(200, 170), beam=Beam(9.0, 5.0, 30.0))
    bg = SyntheticBackground(geo, rms_jy=3e-4, seed=7, block=64)
    t, h = NOISE_TILE, bg.halo

    def zigzag(n):
        return 2 * n if n >= 0 else -2 * n - 1

    def pair(a, b):
        return a * a + a + b if a >= b else a + b * b

    lo, hi = -h, 200 + h  # rows and cols both fit in [-h, 200 + h)
    first, last = lo // t, (hi - 1) // t
    n = last - first + 1
    plane = np.empty((n * t, n * t))
    for i, ti in enumerate(range(first, last + 1)):
        for j, tj in enumerate(range(first, last + 1)):
            bits = np.random.PCG64DXSM(np.random.SeedSequence([7, zlib.crc32(b"noise")]))
            bits.advance(pair(zigzag(ti), zigzag(tj)) * 2**40)
            rng = np.random.Generator(bits)
            plane[i * t : (i + 1) * t, j * t : (j + 1) * t] = rng.standard_normal((t, t), dtype=np.float32)
    o = lo - first * t  # plane index of pixel -h
    white = plane[o : o + 200 + 2 * h, o : o + 170 + 2 * h]
    expected = correlated_noise(white, bg.kernel, 3e-4).astype(np.float64)
    got = bg.read(0, 200, 0, 170).astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=3e-4 * 1e-5)
    assert got.std() == pytest.approx(3e-4, rel=0.1)  # the analytic rms, not a renormalised one


def test_synthetic_rejects_bad_parameters():
    with pytest.raises(RadiffError):
        SyntheticBackground(_geometry(), rms_jy=0.0, seed=1)
    with pytest.raises(RadiffError, match="block"):
        SyntheticBackground(_geometry(), rms_jy=1e-4, seed=1, block=8)


def test_kernel_transforms_shared_between_backgrounds_respect_rms_and_stay_bounded():
    """Chunk owners unpickle a fresh background per task, so kernel transforms are shared per
    process; a transform made for one rms (or beam) must never serve another."""
    from radiff_scale.compose import background as bg_mod

    geo = _geometry(shape=(100, 90))
    one = SyntheticBackground(geo, rms_jy=1e-4, seed=4, block=64).read(0, 100, 0, 90).astype(np.float64)
    two = SyntheticBackground(geo, rms_jy=2e-4, seed=4, block=64).read(0, 100, 0, 90).astype(np.float64)
    np.testing.assert_allclose(two, 2 * one, rtol=1e-5, atol=1e-12)
    wider = SyntheticBackground(_geometry(shape=(100, 90), beam=Beam(12.0, 6.0, 40.0)), rms_jy=1e-4, seed=4, block=64)
    assert not np.allclose(wider.read(0, 100, 0, 90), one, rtol=0.1)
    again = pickle.loads(pickle.dumps(SyntheticBackground(geo, rms_jy=1e-4, seed=4, block=64)))
    assert again.read(0, 100, 0, 90).tobytes() == one.astype(np.float32).tobytes()
    for k in range(bg_mod._KERNEL_FT_CACHE_SIZE + 5):
        SyntheticBackground(geo, rms_jy=1e-4 * (1 + k), seed=4, block=64).read(0, 10, 0, 10)
    assert len(bg_mod._KERNEL_FT_CACHE) <= bg_mod._KERNEL_FT_CACHE_SIZE
