"""radiff-scale validate: region ownership, matching, metrics, report and CLI refusals without PyBDSF;
PyBDSF itself (skipped when bdsf is not installed, as in CI's ``.[test]``) on a small synthetic map
of point sources whose fluxes and positions are known exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from radiff_scale.beam import Beam, correlated_noise
from radiff_scale.cli import main as cli_main
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.validation import deps
from radiff_scale.validation.inputs import labels_at
from radiff_scale.validation.match import cross_match
from radiff_scale.validation.metrics import Targets, bin_index, evaluate
from radiff_scale.validation.plot import render, write_plot
from radiff_scale.validation.regions import plan_regions
from radiff_scale.validation.report import json_safe, write_report
from radiff_scale.validation.sdc1_score import sdc1_band, submission_columns

# --------------------------------------------------------------------------- regions


def test_region_cores_tile_the_map_once_and_boxes_add_the_margin() -> None:
    rows, cols, size, margin = 1000, 700, 300, 20
    plan = plan_regions((rows, cols), size, margin)
    regions = plan.regions
    assert len(regions) == math.ceil(rows / size) * math.ceil(cols / size)
    cover = np.zeros((rows, cols), dtype=np.int32)
    for r in regions:
        r0, r1, c0, c1 = r.core
        assert r1 - r0 <= size and c1 - c0 <= size
        cover[r0:r1, c0:c1] += 1
        assert r.box == (max(0, r0 - margin), min(rows, r1 + margin), max(0, c0 - margin), min(cols, c1 + margin))
    assert np.all(cover == 1)


def test_a_small_map_is_one_region_covering_it() -> None:
    plan = plan_regions((512, 400), 4096, 128)
    assert [r.core for r in plan.regions] == [(0, 512, 0, 400)] == [r.box for r in plan.regions]


def test_every_position_has_exactly_one_owner_the_core_holding_its_pixel() -> None:
    rows, cols = 900, 650
    plan = plan_regions((rows, cols), 256, 32)
    rng = np.random.default_rng(3)
    # Beyond the edges too: a fitted centre may land just outside the map.
    x, y = rng.uniform(-5, cols + 5, 4000), rng.uniform(-5, rows + 5, 4000)
    owners = np.stack([plan.owned_by(r, x, y) for r in plan.regions])
    assert np.all(owners.sum(axis=0) == 1)
    col, row = np.clip(np.floor(x + 0.5), 0, cols - 1), np.clip(np.floor(y + 0.5), 0, rows - 1)
    for k, r in enumerate(plan.regions):
        r0, r1, c0, c1 = r.core
        inside = (row >= r0) & (row < r1) & (col >= c0) & (col < c1)
        assert np.array_equal(owners[k], inside)


def test_sources_seen_by_several_overlapping_regions_are_kept_once() -> None:
    plan = plan_regions((600, 600), 200, 40)
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 599, 300), rng.uniform(0, 599, 300)
    kept = []
    for r in plan.regions:  # each region "finds" every source inside its box, margins included
        b0, b1, c0, c1 = r.box
        seen = (y >= b0 - 0.5) & (y < b1 - 0.5) & (x >= c0 - 0.5) & (x < c1 - 0.5)
        idx = np.flatnonzero(seen)
        kept.extend(idx[plan.owned_by(r, x[idx], y[idx])].tolist())
    assert sorted(kept) == list(range(300))


# --------------------------------------------------------------------------- matching


def _reference_greedy(t: np.ndarray, d: np.ndarray, radius: float) -> set[tuple[int, int]]:
    """All pairs by distance (ties by truth row, then detection row), neither side reused."""
    pairs = sorted((float(np.hypot(*(t[i] - d[j]))), i, j) for i in range(len(t)) for j in range(len(d)))
    used_t, used_d, out = set(), set(), set()
    for dist, i, j in pairs:
        if dist < radius and i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
            out.add((i, j))
    return out


def test_cross_match_hand_made_pairs() -> None:
    # truth 0 at (0, 0) and 1 at (1.5, 0); detection 0 at (1, 0) is nearer truth 1; detection 1 at
    # (0.2, 0) then takes truth 0; truth 2 at (10, 0) has its only detection 3 px away, outside r = 2.
    m = cross_match(np.array([0.0, 1.5, 10.0]), np.zeros(3), np.array([1.0, 0.2, 10.0]), np.array([0.0, 0.0, 3.0]), 2.0)
    assert m.truth.tolist() == [0, 1] and m.det.tolist() == [1, 0]
    assert np.allclose(m.distance, [0.2, 0.5])
    assert m.truth_partner().tolist() == [1, 0, -1] and m.det_partner().tolist() == [1, 0, -1]


def test_cross_match_radius_is_exclusive_and_empty_inputs_match_nothing() -> None:
    assert len(cross_match(np.array([0.0]), np.array([0.0]), np.array([2.0]), np.array([0.0]), 2.0).truth) == 0
    m = cross_match(np.zeros(0), np.zeros(0), np.array([1.0]), np.array([1.0]), 2.0)
    assert m.n_truth == 0 and m.det_partner().tolist() == [-1]


def test_cross_match_equals_brute_force_greedy_on_crowded_random_fields() -> None:
    rng = np.random.default_rng(11)
    for _ in range(5):
        t, d = rng.uniform(0, 30, (60, 2)), rng.uniform(0, 30, (70, 2))
        m = cross_match(t[:, 0], t[:, 1], d[:, 0], d[:, 1], 2.5)
        assert set(zip(m.truth.tolist(), m.det.tolist())) == _reference_greedy(t, d, 2.5)
        assert len(set(m.truth.tolist())) == len(m.truth) and len(set(m.det.tolist())) == len(m.det)


# --------------------------------------------------------------------------- metrics


def _constructed_case(rng: np.random.Generator):
    """Truth at known S/N per class; a known subset detected with known flux factors and offsets."""
    n = 400
    sigma = 1e-4
    snr = rng.uniform(0.5, 40.0, n)
    cls = rng.choice([1, 2, 3], n)
    found = rng.random(n) < np.clip(snr / 12.0, 0, 1)  # completeness rising with S/N
    factor = rng.normal(1.0, 0.1, n)
    truth = {"id": np.arange(1, n + 1), "class": cls, "x": np.arange(n) * 50.0, "y": np.zeros(n),
             "peak_jy_beam": snr * sigma, "sigma_local": np.full(n, sigma), "flux_jy": snr * sigma * 2.0}
    idx = np.flatnonzero(found)
    shift = rng.uniform(0.0, 1.5, len(idx))  # px, radius below is 3 px
    n_false = 37
    det = {"x": np.concatenate([truth["x"][idx] + shift, 1e6 + np.arange(n_false) * 50.0]),
           "y": np.zeros(len(idx) + n_false),
           "flux_jy": np.concatenate([truth["flux_jy"][idx] * factor[idx], np.full(n_false, 1e-4)]),
           "peak_jy_beam": np.concatenate([truth["peak_jy_beam"][idx], np.full(n_false, 6e-4)]),
           "rms_jy_beam": np.full(len(idx) + n_false, sigma)}
    return truth, det, found, factor, idx, shift, n_false


def test_metrics_bins_follow_the_constructed_truth() -> None:
    rng = np.random.default_rng(7)
    truth, det, found, factor, idx, shift, n_false = _constructed_case(rng)
    beam_px = 4.0
    m = cross_match(truth["x"], truth["y"], det["x"], det["y"], 3.0)
    assert np.array_equal(m.truth, idx)  # the construction keeps every pair unambiguous
    edges = (-math.inf, 2, 5, 10, 20, math.inf)
    out = evaluate(truth, det, m, beam_px, edges, Targets(snr_min=10.0))
    snr = truth["peak_jy_beam"] / truth["sigma_local"]
    for name, sel in (("all", np.ones(len(snr), bool)), ("compact", truth["class"] == 2)):
        block = out["classes"][name]
        assert block["n_truth"] == sel.sum() and block["n_matched"] == (found & sel).sum()
        for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            in_bin = sel & (snr >= lo) & (snr < hi)
            assert block["completeness_by_snr"][b]["n"] == in_bin.sum()
            assert block["completeness_by_snr"][b]["fraction"] == pytest.approx(found[in_bin].mean())
            q = block["flux_ratio_by_snr"][b]
            assert q["median"] == pytest.approx(np.median(factor[in_bin & found]))
            assert q["p16"] == pytest.approx(np.percentile(factor[in_bin & found], 16))
    offsets = np.zeros(len(snr))
    offsets[idx] = shift / beam_px
    sel = (truth["class"] == 2) & (snr > 10.0)
    h = out["headline"]
    assert h["n_truth"] == sel.sum()
    assert h["completeness"] == pytest.approx(found[sel].mean())
    assert h["median_flux_ratio"] == pytest.approx(np.median(factor[sel & found]))
    assert h["median_offset_beams"] == pytest.approx(np.median(offsets[sel & found]))
    assert h["pass"]["offset"] is True and h["pass"]["flux_ratio"] is True
    assert h["pass"]["completeness"] == (found[sel].mean() >= 0.9)
    rel = out["reliability"]
    assert rel["n_det"] == len(idx) + n_false and rel["reliability"] == pytest.approx(len(idx) / (len(idx) + n_false))
    false_bin = next(b for b in rel["by_snr"] if b["snr_lo"] == 5)  # the false detections sit at S/N 6
    assert false_bin["n"] - false_bin["n_matched"] == n_false
    assert sum(out["offset_histogram"]["counts"]["all"]) == np.sum(offsets[found] < 1.0)


def test_metrics_with_no_detections_have_nothing_to_pass() -> None:
    truth, det, *_ = _constructed_case(np.random.default_rng(4))
    none = {k: v[:0] for k, v in det.items()}
    out = evaluate(truth, none, cross_match(truth["x"], truth["y"], none["x"], none["y"], 3.0), 4.0)
    assert out["classes"]["all"]["completeness"] == 0.0 and out["reliability"]["reliability"] is None
    h = out["headline"]
    assert h["completeness"] == 0.0 and h["pass"] == {"completeness": False, "flux_ratio": None, "offset": None}


def test_unmatched_detections_are_split_by_the_labels_under_them(tmp_path) -> None:
    labels = np.zeros((40, 60), dtype=np.int32)
    labels[10:20, 5:15] = 7
    fits.HDUList([fits.PrimaryHDU(np.zeros((40, 60), np.uint8)), fits.ImageHDU(labels, name="INSTANCE")]).writeto(
        tmp_path / "labels.fits")
    x, y = np.array([5.0, 14.4, 14.6, 30.0, -3.0]), np.array([10.0, 19.4, 12.0, 30.0, 5.0])
    found = labels_at(tmp_path / "labels.fits", x, y)
    assert found.tolist() == [7, 7, 0, 0, -1]  # pixel centres round: 14.6 is column 15, outside the box
    assert labels_at(tmp_path / "absent.fits", x, y) is None
    truth = {"id": np.array([7]), "class": np.array([3]), "x": np.array([10.0]), "y": np.array([15.0]),
             "peak_jy_beam": np.array([1.0]), "sigma_local": np.array([0.1]), "flux_jy": np.array([1.0])}
    det = {"x": x, "y": y, "flux_jy": np.ones(5), "peak_jy_beam": np.ones(5), "rms_jy_beam": np.full(5, 0.1)}
    m = cross_match(truth["x"], truth["y"], det["x"], det["y"], 7.0)
    assert m.det.tolist() == [2]  # (14.6, 12) is the nearest, 5.5 px away; (5, 10) is 7.07 px, outside
    out = evaluate(truth, det, m, 4.0, det_label=found)
    rel = out["reliability"]
    assert rel["n_unmatched_on_object"] == 2 and rel["n_unmatched_on_background"] == 2
    assert out["classes"]["extended"]["footprint_completeness"] == 1.0  # found on its footprint, too
    assert evaluate(truth, det, m, 4.0)["classes"]["extended"]["footprint_completeness"] is None


def test_bins_are_half_open_and_nan_falls_outside() -> None:
    idx = bin_index(np.array([-1.0, 0.0, 1.0, 1.999, 2.0, np.nan, 5.0]), (0.0, 1.0, 2.0))
    assert idx.tolist() == [-1, 0, 1, 1, -1, -1, -1]


def test_report_json_has_no_nan_and_the_plot_renders(tmp_path) -> None:
    rng = np.random.default_rng(2)
    truth, det, *_ = _constructed_case(rng)
    m = cross_match(truth["x"], truth["y"], det["x"], det["y"], 3.0)
    metrics = evaluate(truth, det, m, 4.0)
    assert json_safe({"a": np.float32("nan"), "b": (np.int64(3), math.inf)}) == {"a": None, "b": [3, None]}
    path = write_report(tmp_path / "validation.json", {"metrics": metrics})
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    png = write_plot(tmp_path / "validation.png", metrics)
    from PIL import Image

    with Image.open(png) as img:
        assert img.size == render(metrics).size and img.format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["validation.json", "validation.png"]


def test_sdc1_band_only_near_the_challenge_frequencies() -> None:
    assert sdc1_band(1.4e9)[0] == 1400 and sdc1_band(5.6e8)[0] == 560 and sdc1_band(9.2e9)[0] == 9200
    assert sdc1_band(1.5e9)[0] == 1400  # 7% off
    band, why = sdc1_band(1.2e9)
    assert band is None and "1200 MHz" in why
    assert sdc1_band(None)[0] is None


def test_a_detection_equal_to_its_truth_object_gives_the_same_sdc1_row() -> None:
    from radiff_scale.compose.sdc1 import truth_to_sdc1

    truth = pa.table({"id": [7, 8], "class": [2, 3], "ra": [359.9, 0.1], "dec": [-30.0, -30.1],
                      "flux_jy": [1e-3, 2e-3], "major_arcsec": [9.0, 30.0], "minor_arcsec": [6.0, 10.0],
                      "pa_deg": [30.0, 120.0]})
    t = truth_to_sdc1(truth)
    det = {"ra": np.array([359.9]), "dec": np.array([-30.0]), "ra_max": np.array([359.9]), "dec_max": np.array([-30.0]),
           "flux_jy": np.array([1e-3]), "major_arcsec": np.array([9.0]), "minor_arcsec": np.array([6.0]),
           "pa_deg": np.array([30.0]), "s_code": np.array(["S"])}
    s = submission_columns(det, deconvolved=False)
    for name in ("ra_core", "dec_core", "ra_cent", "dec_cent", "flux", "b_maj", "b_min", "pa", "size", "class"):
        assert s[name][0] == pytest.approx(t[name][0]), name
    assert submission_columns({**det, "s_code": np.array(["M"])}, False)["class"][0] == t["class"][1]


# --------------------------------------------------------------------------- CLI refusals


def _fake_run(tmp_path):
    for name in ("manifest.json", "map.fits", "catalogue.parquet"):
        (tmp_path / name).write_text("{}")
    return tmp_path


def test_validate_without_bdsf_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(deps, "missing_packages", lambda: ["bdsf"])
    code = cli_main(["validate", str(_fake_run(tmp_path)), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "PyBDSF" in err and '.[validate]' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalogue.parquet", "manifest.json", "map.fits"]


def test_validate_has_help_and_a_job_entry_point(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["validate", "--help"])
    assert exit_info.value.code == 0 and "usage: radiff-scale validate" in capsys.readouterr().out
    from jobs.validate import main as job

    assert job([str(tmp_path / "nowhere"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("validate: error:") and len(err.strip().splitlines()) == 1


def test_an_unknown_bdsf_option_is_refused_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("bdsf")
    capsys.readouterr()  # bdsf's own import-time warning (no matplotlib), printed by importorskip's import
    monkeypatch.setattr(deps, "missing_packages", lambda: [])
    code = cli_main(["validate", str(_fake_run(tmp_path)), "--quiet", "--bdsf", "no_such_option=1"])
    err = capsys.readouterr().err
    assert code == 2 and "no_such_option" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("missing", ["manifest.json", "map.fits", None])
def test_validate_of_an_unfinished_run_is_one_line_and_exit_2(tmp_path, capsys, missing) -> None:
    target = tmp_path / "nowhere"
    if missing:
        target = _fake_run(tmp_path)
        (target / missing).unlink()
    code = cli_main(["validate", str(target), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert (missing or "no such folder") in err


# --------------------------------------------------------------------------- PyBDSF on a synthetic map

SIGMA, N_SRC, SHAPE = 1e-4, 30, (512, 512)
BEAM = Beam(9.8, 7.0, 30.0)


def _synthetic_run(root, rng: np.random.Generator):
    """A run folder: beam-correlated noise plus N_SRC beam-shaped point sources at S/N 10-100, with their truth."""
    geom = MapGeometry(SHAPE, 1.5, 0.0, -31.0, BEAM, 1.4e9)
    kernel = BEAM.kernel(geom.pixel_scale_arcsec)
    half = kernel.shape[0] // 2
    img = correlated_noise(rng.standard_normal((SHAPE[0] + 2 * half, SHAPE[1] + 2 * half)), kernel, SIGMA)
    img = img.astype(np.float64)
    beam_px = BEAM.bmaj_arcsec / geom.pixel_scale_arcsec
    xs: list[float] = []
    while len(xs) < 2 * N_SRC:  # positions at least 6 beams apart, 25 px from the edges
        p = rng.uniform(25, SHAPE[0] - 25, 2)
        if all(np.hypot(p[0] - a, p[1] - b) > 6 * beam_px for a, b in zip(xs[::2], xs[1::2])):
            xs.extend(p.tolist())
    x, y = np.array(xs[::2]), np.array(xs[1::2])
    amp = SIGMA * 10 ** rng.uniform(1, 2, N_SRC)
    s_maj, s_min = (v / geom.pixel_scale_arcsec / 2.3548 for v in (BEAM.bmaj_arcsec, BEAM.bmin_arcsec))
    theta = math.radians(BEAM.bpa_deg)
    flux = np.empty(N_SRC)
    for k in range(N_SRC):  # the beam at (x, y) on a cutout of +-25 px (> 5 sigma of the major axis)
        r0, c0 = int(y[k]) - 25, int(x[k]) - 25
        dr, dc = np.mgrid[r0:r0 + 51, c0:c0 + 51] - np.array([y[k], x[k]])[:, None, None]
        along, across = dr * math.cos(theta) - dc * math.sin(theta), dr * math.sin(theta) + dc * math.cos(theta)
        g = amp[k] * np.exp(-0.5 * ((along / s_maj) ** 2 + (across / s_min) ** 2))
        img[r0:r0 + 51, c0:c0 + 51] += g
        flux[k] = g.sum() / BEAM.area_pixels(geom.pixel_scale_arcsec)
    fits.writeto(root / "map.fits", img.astype(np.float32), geom.header())
    ra, dec = geom.wcs().all_pix2world(x, y, 0)
    truth = {"id": np.arange(1, N_SRC + 1), "class": np.full(N_SRC, 2, np.int16),
             "class_name": ["compact"] * N_SRC, "ra": ra, "dec": dec, "x": x, "y": y,
             "peak_jy_beam": amp, "flux_jy": flux, "k": amp / SIGMA, "sigma_local": np.full(N_SRC, SIGMA),
             "major_arcsec": np.full(N_SRC, BEAM.bmaj_arcsec), "minor_arcsec": np.full(N_SRC, BEAM.bmin_arcsec),
             "pa_deg": np.full(N_SRC, BEAM.bpa_deg)}
    pq.write_table(pa.table(truth), root / "catalogue.parquet")
    (root / "manifest.json").write_text(json.dumps({"seed": 0}))
    return root, beam_px


@pytest.fixture(scope="module")
def pybdsf_run(tmp_path_factory):
    pytest.importorskip("bdsf")
    pytest.importorskip("ska_sdc")
    if deps.missing_packages():
        pytest.skip(f"validate packages not importable: {deps.missing_packages()}")
    from radiff_scale.pipelines.validate_job import run_validate

    root, _ = _synthetic_run(tmp_path_factory.mktemp("validate-run"), np.random.default_rng(20))
    report = run_validate(root, workers=1, progress=False, use_ray=False)
    return root, report


def test_pybdsf_finds_every_bright_point_source_at_its_flux(pybdsf_run) -> None:
    root, report = pybdsf_run
    h = report["metrics"]["headline"]
    assert h["n_truth"] == N_SRC and h["completeness"] == 1.0
    assert abs(h["median_flux_ratio"] - 1.0) < 0.05
    assert h["median_offset_beams"] < 0.1
    assert all(h["pass"].values())
    assert report["metrics"]["reliability"]["reliability"] >= 0.9
    kwargs = report["parameters"]["finder"]["process_image_kwargs"]
    assert kwargs["beam"] == pytest.approx([9.8 / 3600, 7.0 / 3600, 30.0]) and kwargs["frequency"] == 1.4e9
    sdc1 = report["sdc1"]
    assert sdc1["scored"] and sdc1["band_mhz"] == 1400 and sdc1["n_match"] >= N_SRC - 2
    assert sdc1["component_means"]["flux"] > 0.5


def test_validate_writes_its_files_and_nothing_else(pybdsf_run) -> None:
    root, report = pybdsf_run
    names = sorted(p.name for p in root.iterdir())
    assert names == ["catalogue.parquet", "manifest.json", "map.fits", "validation.json",
                     "validation.png", "validation_detections.parquet"]
    on_disk = json.loads((root / "validation.json").read_text())
    assert on_disk["metrics"]["headline"] == json_safe(report["metrics"]["headline"])
    det = pq.read_table(root / "validation_detections.parquet")
    assert det.num_rows == report["counts"]["detections"]
    assert (np.asarray(det.column("truth_id")) > 0).sum() == report["counts"]["matched"]


def test_regions_of_a_split_map_give_the_same_sources_once(pybdsf_run, tmp_path) -> None:
    from radiff_scale.pipelines.validate_job import run_validate

    root, whole = pybdsf_run
    split = run_validate(root, out_json=tmp_path / "split.json", workers=1, progress=False, use_ray=False,
                         region_size=256, margin_px=64)
    assert split["parameters"]["regions"]["n_regions"] == 4
    det = pq.read_table(tmp_path / "split_detections.parquet")
    x, y = np.asarray(det.column("x")), np.asarray(det.column("y"))
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) + np.eye(len(x)) * 1e9
    assert d.min() > 2.0  # no source found twice
    assert split["metrics"]["headline"]["completeness"] == 1.0
    assert split["counts"]["matched"] == whole["counts"]["matched"]
