"""Fluxes in Jy and shapes from a catalogue (issue 15, parts 1-2): the pieces, then whole maps.

The map tests use a hand-made tile bank of *peaked* objects (Gaussian blobs and uneven
doubles in noise, masks cut at a threshold), so an object's flux moments and flux
centroid differ from its mask's, as a generated object's do: shaping and positioning
have real work to do, and no model has to run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import ndimage

from radiff_scale import MapSpec, PlacementConfig, Positions, SamplerSpec, make_map
from radiff_scale.beam import Beam, gaussian_kernel
from radiff_scale.compose.given_stamps import Region, move_cut, reserve_region, shape_cut, target_covariance
from radiff_scale.compose.moments import axes, beam_covariance, covariance, deconvolve, flux_moments, matching_map
from radiff_scale.compose.placement import mask_bbox
from radiff_scale.compose.planner import draw_flux, plan_given, plan_objects
from radiff_scale.compose.sdc1 import GAUSS_TO_LAS
from radiff_scale.compose.stamps import NORM_FLUX, NORM_POSITIVE, Brightness, linear_cut, scale_cut
from radiff_scale.compose.tile_bank import TileBank, TileBankMeta
from radiff_scale.data.stretch import AsinhStretch
from radiff_scale.errors import RadiffError

BEAM = Beam(9.8, 5.8, 20.0)
SCALE = 1.5


def _angle_gap(a: float, b: float) -> float:
    return abs((a - b + 90.0) % 180.0 - 90.0)


# ---- moments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("major, minor, pa", [(10.0, 4.0, 0.0), (7.0, 6.0, 33.0), (20.0, 2.0, 171.0), (5.0, 5.0, 0.0)])
def test_covariance_and_axes_are_inverse(major: float, minor: float, pa: float) -> None:
    got = axes(covariance(major, minor, pa))
    assert got[0] == pytest.approx(major) and got[1] == pytest.approx(minor)
    assert _angle_gap(got[2], pa) < 1e-6


def test_flux_moments_of_a_sampled_gaussian_match_the_kernel() -> None:
    kernel = gaussian_kernel(12.0, 5.0, 30.0, 101)
    centre, cov = flux_moments(kernel)
    assert centre == pytest.approx([50.0, 50.0])
    major, minor, pa = axes(cov)
    assert major == pytest.approx(12.0, rel=1e-3) and minor == pytest.approx(5.0, rel=1e-2)
    assert _angle_gap(pa, 30.0) < 0.1
    assert flux_moments(-kernel) is None


def test_deconvolution_removes_the_beam_and_clips_below_it() -> None:
    beam = beam_covariance(BEAM, SCALE)
    src = covariance(8.0, 3.0, 70.0)
    got = axes(deconvolve(src + beam, beam))
    assert got[0] == pytest.approx(8.0) and got[1] == pytest.approx(3.0) and _angle_gap(got[2], 70.0) < 1e-6
    assert axes(deconvolve(0.5 * beam, beam))[:2] == (0.0, 0.0)


def test_matching_map_takes_one_covariance_to_the_other() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = covariance(*rng.uniform(1, 20, 2), rng.uniform(0, 180))
        b = covariance(*rng.uniform(1, 20, 2), rng.uniform(0, 180))
        t = matching_map(a, b)
        assert np.allclose(t @ a @ t.T, b) and np.linalg.det(t) > 0  # a rotation in between, never a mirror


# ---- one object: brightness, position, shape -------------------------------------------------


def _peaked_tile(rng: np.random.Generator, double: bool) -> tuple[np.ndarray, np.ndarray]:
    """(linear tile, mask): a blob or an uneven double in unit noise, mask = the island above 3."""
    tile = rng.standard_normal((128, 128))
    if double:
        sep, pa = rng.uniform(12, 30), rng.uniform(0, math.pi)
        for sign, peak in ((1, 40.0), (-1, 40.0 * rng.uniform(0.3, 0.8))):
            dr, dc = sign * sep / 2 * math.cos(pa), -sign * sep / 2 * math.sin(pa)
            blob = gaussian_kernel(rng.uniform(5, 9), rng.uniform(4, 6), rng.uniform(0, 180), 129)[:128, :128]
            tile += peak * ndimage.shift(blob, (dr, dc), order=1)
    else:
        tile += rng.uniform(10, 80) * gaussian_kernel(rng.uniform(4, 7), rng.uniform(3, 5), rng.uniform(0, 180),
                                                      129)[:128, :128]
    islands, _ = ndimage.label(ndimage.gaussian_filter(tile, 1.0) > 3.0)
    mask = islands == islands[64, 64] if islands[64, 64] else islands == np.argmax(np.bincount(islands.ravel())[1:]) + 1
    return tile, mask


def test_integrated_brightness_gives_the_requested_flux() -> None:
    rng = np.random.default_rng(2)
    tile, mask = _peaked_tile(rng, double=True)
    cut, m = linear_cut(1, tile, mask, mask_bbox(mask), None, False)
    area = BEAM.area_pixels(SCALE)
    data, norm = scale_cut(cut, m, Brightness("integrated", 3.2e-3, area))
    assert norm == NORM_FLUX and data.dtype == np.float32
    assert float(data.astype(np.float64).sum()) / area == pytest.approx(3.2e-3, rel=1e-6)
    peak, _ = scale_cut(cut, m, Brightness("peak", 0.5))
    assert float(peak.max()) == pytest.approx(0.5, rel=1e-6)


def test_a_flux_asked_of_a_darker_than_background_cut_keeps_its_positive_part() -> None:
    cut = np.array([[0.5, -2.0], [-1.0, 0.25]])
    mask = np.ones_like(cut, dtype=bool)
    data, norm = scale_cut(cut, mask, Brightness("integrated", 2.0, 1.5))
    assert norm == NORM_POSITIVE and float(data.sum()) / 1.5 == pytest.approx(2.0) and data.min() == 0.0
    assert scale_cut(-np.abs(cut), mask, Brightness("integrated", 2.0, 1.5))[1] == "abs_peak"


def test_move_cut_puts_the_flux_centroid_on_the_pixel_without_touching_pixels() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        tile, mask = _peaked_tile(rng, double=True)
        cut, m = linear_cut(1, tile, mask, mask_bbox(mask), None, False)
        region = reserve_region(m, None)
        target = (500.0 + rng.uniform(), 700.0 + rng.uniform())
        rr, cc = np.nonzero(region)
        origin = (int(round(target[0] - rr.mean())), int(round(target[1] - cc.mean())))
        moved = move_cut(cut, m, target, Region(region, *origin))
        centre, _ = flux_moments(moved.data)
        assert abs(centre[0] + moved.row0 - target[0]) <= 0.5 and abs(centre[1] + moved.col0 - target[1]) <= 0.5
        assert sorted(moved.data[moved.mask].tolist()) == pytest.approx(sorted(cut[m].tolist()))


def test_shape_cut_gives_the_requested_intrinsic_size_pa_and_centroid() -> None:
    rng = np.random.default_rng(4)
    beam = beam_covariance(BEAM, SCALE)
    for trial in range(8):
        tile, mask = _peaked_tile(rng, double=bool(trial % 2))
        cut, m = linear_cut(1, tile, mask, mask_bbox(mask), None, False)
        major = rng.uniform(8, 60)
        want = (major / SCALE, major * rng.uniform(0.2, 1.0) / SCALE, rng.uniform(0, 180))
        cov = target_covariance(want, beam)
        region = reserve_region(m, cov)
        target = (1000.0 + rng.uniform(), 2000.0 + rng.uniform())
        rr, cc = np.nonzero(region)
        region_at = Region(region, int(round(target[0] - rr.mean())), int(round(target[1] - cc.mean())))
        moved = shape_cut(cut, m, target, cov, region_at)
        centre, got_cov = flux_moments(moved.data)
        got = axes(deconvolve(got_cov, beam))
        assert got[0] == pytest.approx(want[0], rel=0.03) and got[1] == pytest.approx(want[1], rel=0.1, abs=0.3)
        assert _angle_gap(got[2], want[2]) < 2.0
        assert np.hypot(centre[0] + moved.row0 - target[0], centre[1] + moved.col0 - target[1]) < 0.1
        # The stamp stays in its region: the planner kept only that free of other objects.
        r0, c0 = moved.row0 - region_at.row0, moved.col0 - region_at.col0
        inside = region[r0 : r0 + moved.mask.shape[0], c0 : c0 + moved.mask.shape[1]]
        assert not (moved.mask & ~inside).any()


def test_degenerate_objects_are_shaped_not_crashed() -> None:
    """A one-pixel object (singular covariance) takes the beam's size; an object that cannot
    stay in its region becomes one pixel at its position instead of failing the map."""
    beam = beam_covariance(BEAM, SCALE)
    dot = np.zeros((5, 5))
    dot[2, 2] = 1.0
    target = target_covariance((0.0, 0.0, 0.0), beam)  # a point source: the beam
    region = reserve_region(dot > 0, target)
    rr, cc = np.nonzero(region)
    moved = shape_cut(dot, dot > 0, (300.0, 400.0), target,
                      Region(region, int(round(300 - rr.mean())), int(round(400 - cc.mean()))))
    centre, cov = flux_moments(moved.data)
    assert moved.mask.sum() > 5 and axes(cov)[0] == pytest.approx(axes(beam)[0], rel=0.15)
    lost = shape_cut(dot, dot > 0, (300.0, 400.0), target, Region(np.ones((3, 3), bool), 10, 10))
    assert lost.mask.sum() == 1 and (lost.row0, lost.col0) == (12, 12)  # the region's pixel nearest the target


# ---- drawing fluxes --------------------------------------------------------------------------


def test_flux_law_has_its_slope_and_bounds() -> None:
    config = PlacementConfig(flux_mode="integrated", flux_min_jy=1e-4, flux_max_jy=1e4, flux_slope=2.6)
    flux = np.array([draw_flux(config, u) for u in np.random.default_rng(5).random(20000)])
    assert flux.min() >= 1e-4 and flux.max() <= 1e4
    slope = 1.0 + flux.size / np.log(flux / 1e-4).sum()  # maximum likelihood, the upper bound far away
    assert slope == pytest.approx(2.6, abs=0.05)
    flat = PlacementConfig(flux_mode="integrated", flux_min_jy=1.0, flux_max_jy=10.0, flux_slope=1.0)
    assert draw_flux(flat, 0.5) == pytest.approx(math.sqrt(10.0))


def test_flux_mode_plans_fluxes_and_a_given_flux_wins() -> None:
    k_plans = plan_objects(PlacementConfig(n_objects=20), (1024, 1024), seed=3)
    flux_plans = plan_objects(PlacementConfig(n_objects=20, flux_mode="integrated"), (1024, 1024), seed=3)
    assert all(math.isnan(p.flux_jy) for p in k_plans) and all(math.isnan(p.k) for p in flux_plans)
    assert [p.seed for p in k_plans] == [p.seed for p in flux_plans]  # the same tiles, other brightness
    assert [p.class_id for p in k_plans] == [p.class_id for p in flux_plans]
    given = plan_given(PlacementConfig(), 3, [-1, -1, -1], [2.0, np.nan, 2.0], [np.nan, np.nan, 0.01])
    assert (given[0].k, given[2].flux_jy) == (2.0, 0.01) and math.isnan(given[2].k)
    assert given[1].k == k_plans[1].k
    with pytest.raises(RadiffError, match="flux"):
        PlacementConfig(flux_mode="jansky")


# ---- catalogue columns -----------------------------------------------------------------------


def test_positions_read_flux_and_shape_columns(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text("ra,dec,S_int,BMAJ,BMIN,PA\n1.0,-30.0,0.002,12.0,4.0,200.0\n1.1,-30.1,0.001,3.0,5.0,10.0\n")
    from radiff_scale import positions_from_catalogue

    p = positions_from_catalogue(path)
    assert p.flux.tolist() == [0.002, 0.001]
    assert p.major.tolist() == [12.0, 5.0] and p.minor.tolist() == [4.0, 3.0]  # minor > major: turned by 90
    assert p.pa.tolist() == [20.0, 100.0]
    assert p.columns["flux"] == "S_int" and p.columns["major"] == "BMAJ"


@pytest.mark.parametrize("text, match", [
    ("ra,dec,flux\n1,-30,0.1\n1,-30,nan\n", r"row 1: column 'flux' is nan"),
    ("ra,dec,flux\n1,-30,-0.1\n", r"row 0: column 'flux' is -0.1"),
    ("ra,dec,flux,bmaj\n1,-30,0.1,-2\n", r"row 0: column 'bmaj' is -2.0 \(sizes must be >= 0"),
    ("ra,dec\n1,-30\nabc,-30\n", r"row 1: column 'ra' is 'abc', not a number"),
])
def test_bad_catalogue_rows_are_refused_naming_file_column_and_row(tmp_path: Path, text: str, match: str) -> None:
    from radiff_scale import positions_from_catalogue

    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(RadiffError, match=match) as info:
        positions_from_catalogue(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_binary_file_is_refused_in_one_line(tmp_path: Path) -> None:
    from radiff_scale import positions_from_catalogue

    path = tmp_path / "cat.txt"
    path.write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    with pytest.raises(RadiffError, match="binary") as info:
        positions_from_catalogue(path)
    assert str(path) in str(info.value)


# ---- whole maps ------------------------------------------------------------------------------

SDC1_BEAM_ARCSEC = 1.5
SDC1_PIXEL_ARCSEC = 0.6


@pytest.fixture(scope="module")
def peaked_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Blobs (compact) and uneven doubles (extended) in noise, encoded like model tiles."""
    rng = np.random.default_rng(11)
    stretch = AsinhStretch()
    masks, tiles, classes = [], [], []
    for i in range(24):
        double = i % 2 == 1
        tile, mask = _peaked_tile(rng, double)
        class_id = 3 if double else 2
        masks.append(mask.astype(np.uint8) * class_id)
        tiles.append(stretch.forward(tile).astype(np.float32))
        classes.append(class_id)
    path = tmp_path_factory.mktemp("peaked-bank") / "bank.npz"
    card = {"stretch": stretch.to_card()}
    TileBank(np.stack(masks), np.stack(tiles), np.asarray(classes), TileBankMeta("peaked test tiles", card, {}, 0,
             "blobs and doubles"), source=str(path)).save(path)
    return path


def _sdc1_subset(shared_data: Path, out: Path, n: int) -> tuple[Path, np.ndarray]:
    """The ``n`` brightest rows of the SDC1 B1 training catalogue, in its own text format."""
    source = shared_data / "catalogues" / "TrainingSet_B1_v2_ML.txt"
    lines = source.read_text().splitlines()
    first_row = next(i for i, line in enumerate(lines) if line.split() and line.split()[0].isdigit())
    rows = np.array([[float(v) for v in line.split()] for line in lines[first_row:] if line.strip()])
    chosen = rows[np.argsort(-rows[:, 5], kind="stable")[:n]]
    out.write_text("\n".join(lines[:first_row]) + "\n" + "\n".join(
        " ".join(repr(float(v)) for v in row) for row in chosen) + "\n")
    return out, chosen


@pytest.fixture(scope="module")
def sdc1_run(tmp_path_factory, shared_data: Path, peaked_bank: Path, ray_local):
    from radiff_scale import positions_from_sdc1

    folder = tmp_path_factory.mktemp("sdc1")
    path, rows = _sdc1_subset(shared_data, folder / "sdc1_500.txt", 500)
    positions = positions_from_sdc1(path)
    ra = np.where(positions.ra > 180.0, positions.ra - 360.0, positions.ra)
    spec = MapSpec(size=4096, chunk=2048, workers=2, seed=5, tiles=f"bank:{peaked_bank}",
                   pixel_scale_arcsec=SDC1_PIXEL_ARCSEC, beam_bmaj_arcsec=SDC1_BEAM_ARCSEC,
                   beam_bmin_arcsec=SDC1_BEAM_ARCSEC, freq_hz=560e6, noise_rms_jy=2e-7,
                   centre_ra_deg=float((ra.min() + ra.max()) / 2 % 360.0),
                   centre_dec_deg=float((positions.dec.min() + positions.dec.max()) / 2),
                   placement=PlacementConfig(margin_px=16, flux_mode="integrated"), sampler=SamplerSpec(batch_size=16))
    result = make_map(spec, folder / "map", positions=positions, progress=False)
    return result, positions, rows


@pytest.mark.slow
def test_sdc1_rows_land_with_their_flux_position_and_shape(sdc1_run) -> None:
    result, positions, rows = sdc1_run
    truth = {r["id"]: r for r in pq.read_table(result.catalogue).to_pylist()}
    refused = {u.object_id: u for u in result.unplaced_objects}
    assert len(truth) + len(refused) == 500 and len(truth) >= 425  # real-sky neighbours overlap: refused, reported
    assert all(u.reason for u in refused.values())
    from astropy.io import fits
    from astropy.wcs import WCS

    wcs = WCS(fits.getheader(result.map))
    x, y = wcs.wcs_world2pix(positions.ra, positions.dec, 0)
    resolved = 0
    for object_id, row in truth.items():
        i = object_id - 1
        assert abs(row["x"] - x[i]) <= 0.5 and abs(row["y"] - y[i]) <= 0.5, object_id
        assert row["flux_jy"] == pytest.approx(rows[i, 5], rel=0.02) and row["flux_req_jy"] == rows[i, 5]
        if positions.major[i] > 2 * SDC1_BEAM_ARCSEC:  # resolved by more than two beams (FWHM)
            resolved += 1
            # The row's size in its own convention (size code 1 LAS, 2 FWHM, 3 exponential).
            as_row = row["src_major_arcsec"] * {1: GAUSS_TO_LAS, 2: 1.0, 3: 1 / 2**0.5}[int(rows[i, 10])]
            assert as_row == pytest.approx(rows[i, 7], rel=0.2), object_id
            if rows[i, 8] < 0.8 * rows[i, 7]:  # a PA is only defined for an elongated source
                assert _angle_gap(row["src_pa_deg"], (90.0 - rows[i, 9]) % 180.0) < 15.0, object_id
    assert resolved >= 100
    assert result.manifest["positions"]["fluxes_given"] == 500 and result.manifest["positions"]["shapes_given"] == 500
