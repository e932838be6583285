"""The Python API: a whole map with objects at given positions, and reading catalogues.

Maps here use a hand-made tile bank whose tiles are flat inside their (ellipse) masks:
no model runs, and the flux-weighted centroid that positions are defined by (and the
truth catalogue reports) is then also the mask centroid, so both the catalogue and
labels.fits can be checked against the requested positions to the pixel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jobs.make_map import main as make_map_main
from radiff_scale import MapResult, MapSpec, PlacementConfig, Positions, SamplerSpec, make_map, positions_from_catalogue
from radiff_scale.compose.planner import plan_objects
from radiff_scale.compose.tile_bank import TileBank, TileBankMeta
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.data.stretch import AsinhStretch
from radiff_scale.errors import RadiffError

SIZE = 512

#: Requested objects: (x, y, class or None, k or None). Row 3 is outside the map, row 4
#: lands on row 1 (overlap), row 7 is inside the map but its footprint crosses the margin.
ROWS = [
    (100.3, 120.4, "compact", 5.0),
    (400.2, 80.6, 3, None),
    (-40.0, 200.0, None, 3.0),
    (101.0, 121.0, "compact", 4.0),
    (250.7, 260.2, "galaxy", None),
    (300.1, 420.9, None, 6.0),
    (505.0, 300.0, 2, 2.0),
    (180.6, 330.3, "spurious", 7.5),
]
PLACED_IDS = [1, 2, 5, 6, 8]


def _ellipse(a: float, b: float, class_id: int) -> np.ndarray:
    rows, cols = np.mgrid[0:128, 0:128]
    return ((((rows - 63.5) / a) ** 2 + ((cols - 61.2) / b) ** 2) <= 1).astype(np.uint8) * class_id


@pytest.fixture(scope="module")
def flat_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    masks = np.stack([_ellipse(3, 3, 2), _ellipse(2, 4, 2), _ellipse(12, 5, 3), _ellipse(8, 14, 3),
                      _ellipse(2, 9, 1), _ellipse(9, 2, 1)])
    classes = masks.reshape(len(masks), -1).max(axis=1).astype(np.int64)
    tiles = np.where(masks > 0, 0.9, 0.1).astype(np.float32)
    card = {"stretch": AsinhStretch().to_card()}
    path = tmp_path_factory.mktemp("flat-bank") / "bank.npz"
    TileBank(masks, tiles, classes, TileBankMeta("flat test tiles", card, {}, 0, "ellipses"), source=str(path)).save(path)
    return path


def _spec(bank: Path, workers: int = 2) -> MapSpec:
    return MapSpec(size=SIZE, chunk=256, workers=workers, seed=3, tiles=f"bank:{bank}",
                   placement=PlacementConfig(n_objects=50, margin_px=16), sampler=SamplerSpec(batch_size=4))


def _positions(**extra) -> Positions:
    x, y, classes, k = zip(*ROWS)
    return Positions(x=list(x), y=list(y), classes=list(classes), k=list(k), **extra)


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory, flat_bank: Path, ray_local) -> MapResult:
    return make_map(_spec(flat_bank), tmp_path_factory.mktemp("api") / "pixel", positions=_positions(), progress=False)


def _read(path: Path, ext: int | str = 0) -> np.ndarray:
    with fits.open(path) as hdul:
        return np.asarray(hdul[ext].data).copy()


def test_objects_land_at_the_given_pixels(pixel_run: MapResult) -> None:
    table = pq.read_table(pixel_run.catalogue).to_pylist()
    assert [r["id"] for r in table] == PLACED_IDS  # id = input row + 1, refused rows keep theirs
    instance = _read(pixel_run.labels, "INSTANCE")
    for row in table:
        x, y = ROWS[row["id"] - 1][:2]
        assert abs(row["x"] - x) <= 0.5 and abs(row["y"] - y) <= 0.5  # the documented convention: the flux centroid
        rr, cc = np.nonzero(instance == row["id"])  # flat objects: the mask centroid is the flux centroid
        assert abs(cc.mean() - x) <= 0.5 and abs(rr.mean() - y) <= 0.5


def test_given_classes_and_k_are_honoured_and_missing_ones_drawn_as_usual(pixel_run: MapResult, flat_bank: Path) -> None:
    table = {r["id"]: r for r in pq.read_table(pixel_run.catalogue).to_pylist()}
    classes = _read(pixel_run.labels, "CLASS")
    instance = _read(pixel_run.labels, "INSTANCE")
    spec = _spec(flat_bank)
    # What a random map of the same seed would draw for the same ids.
    drawn = {p.object_id: p for p in plan_objects(PlacementConfig(n_objects=len(ROWS)), (SIZE, SIZE), spec.seed)}
    expected_class = {1: 2, 2: 3, 5: 3, 6: drawn[6].class_id, 8: 1}
    expected_k = {1: 5.0, 2: drawn[2].k, 5: drawn[5].k, 6: 6.0, 8: 7.5}
    for object_id, row in table.items():
        assert row["class"] == expected_class[object_id]
        assert np.all(classes[instance == object_id] == expected_class[object_id])
        assert row["k"] == pytest.approx(expected_k[object_id], rel=1e-12)


def test_refused_positions_are_reported_not_dropped(pixel_run: MapResult) -> None:
    assert (pixel_run.placed, pixel_run.unplaced) == (5, 3)
    reasons = {u.object_id: u.reason for u in pixel_run.unplaced_objects}
    assert set(reasons) == {3, 4, 7}
    assert "outside the" in reasons[3] and "x=-40" in reasons[3]
    assert "overlap" in reasons[4] and "margin" in reasons[7]
    instance = _read(pixel_run.labels, "INSTANCE")
    assert not np.isin(instance, [3, 4, 7]).any()
    manifest = json.loads(pixel_run.outputs["manifest"].read_text())
    block = manifest["positions"]
    assert (block["rows"], block["placed"], block["unplaced"], block["coords"]) == (8, 5, 3, "pixel")
    assert block["unplaced_by_reason"] == {"footprint leaves the margin": 1, "outside the map": 1, "overlap": 1}
    assert {u["id"] for u in json.loads((pixel_run.out / manifest["unplaced"]).read_text())} == {3, 4, 7}


def test_same_inputs_give_the_same_bytes(pixel_run: MapResult, flat_bank: Path, tmp_path: Path) -> None:
    again = make_map(_spec(flat_bank, workers=1), tmp_path / "again", positions=_positions(), progress=False)
    assert np.array_equal(_read(again.map), _read(pixel_run.map))
    assert again.catalogue.read_bytes() == pixel_run.catalogue.read_bytes()
    assert again.outputs["catalogue_csv"].read_bytes() == pixel_run.outputs["catalogue_csv"].read_bytes()


def test_sky_positions_go_through_the_map_wcs(pixel_run: MapResult, flat_bank: Path, tmp_path: Path) -> None:
    spec = _spec(flat_bank)
    geometry = MapGeometry((SIZE, SIZE), spec.pixel_scale_arcsec, spec.centre_ra_deg, spec.centre_dec_deg,
                           spec.beam, spec.freq_hz)
    x, y, classes, k = (list(c) for c in zip(*ROWS))
    ra, dec = geometry.wcs().all_pix2world(np.array(x), np.array(y), 0)
    names = [None if c is None else str(c) for c in classes]
    table = pa.table({"RA_deg": ra, "DEC_deg": dec, "class_name": names, "k": [np.nan if v is None else v for v in k]})
    path = tmp_path / "sources.csv"
    pacsv.write_csv(table, path)
    positions = positions_from_catalogue(path)
    assert positions.coords == "sky" and len(positions) == len(ROWS)
    sky = make_map(spec, tmp_path / "sky", positions=positions, progress=False)
    # Same pixels after the WCS round trip, hence the same map and the same truth.
    assert np.array_equal(_read(sky.labels, "INSTANCE"), _read(pixel_run.labels, "INSTANCE"))
    assert np.array_equal(_read(sky.map), _read(pixel_run.map))
    cat = pq.read_table(sky.catalogue).to_pylist()
    ra_by_id = dict(zip(range(1, len(ROWS) + 1), ra))
    for row in cat:
        assert abs(row["ra"] - ra_by_id[row["id"]]) * 3600 * np.cos(np.radians(row["dec"])) < spec.pixel_scale_arcsec


def test_resume_refuses_other_positions(pixel_run: MapResult, flat_bank: Path) -> None:
    moved = Positions(x=[p[0] + 3 for p in ROWS], y=[p[1] for p in ROWS])
    with pytest.raises(RadiffError, match="positions"):
        make_map(_spec(flat_bank), pixel_run.out, positions=moved, resume=True, progress=False)
    assert MapResult.from_run(pixel_run.out).placed == 5  # the finished run is untouched


# ---- reading catalogues (no map) -------------------------------------------------------------


def test_catalogue_columns_are_found_tolerantly(tmp_path: Path) -> None:
    pq.write_table(pa.table({"X": [10.0, 20.0], "Y": [30.0, 40.0], "SNR": [2.0, None]}), tmp_path / "p.parquet")
    p = positions_from_catalogue(tmp_path / "p.parquet")
    assert p.coords == "pixel" and p.x.tolist() == [10.0, 20.0] and p.y.tolist() == [30.0, 40.0]
    assert p.k[0] == 2.0 and np.isnan(p.k[1]) and p.classes.tolist() == [-1, -1]
    columns = [fits.Column(name="RAJ2000", format="D", array=np.array([1.0, 2.0])),
               fits.Column(name="DEJ2000", format="D", array=np.array([-30.0, -31.0])),
               fits.Column(name="CLASS_NAME", format="8A", array=np.array([b"source", b"sidelobe"]))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(tmp_path / "c.fits")
    p = positions_from_catalogue(tmp_path / "c.fits")
    assert p.coords == "sky" and p.dec.tolist() == [-30.0, -31.0] and p.classes.tolist() == [2, 1]
    (tmp_path / "t.txt").write_text("# my sources\nXPIX YPIX K\n5 6 7\n8 9 10\n")
    p = positions_from_catalogue(tmp_path / "t.txt")
    assert p.x.tolist() == [5.0, 8.0] and p.y.tolist() == [6.0, 9.0] and p.k.tolist() == [7.0, 10.0]


def test_our_own_truth_catalogue_reads_back(pixel_run: MapResult) -> None:
    p = positions_from_catalogue(pixel_run.outputs["catalogue_fits"])
    table = pq.read_table(pixel_run.catalogue)
    assert p.coords == "sky" and np.array_equal(p.ra, table.column("ra").to_numpy())
    assert p.classes.tolist() == table.column("class").to_pylist()  # from class_name, not guessed codes
    assert np.array_equal(p.k, table.column("k").to_numpy())


def test_sdc1_text_catalogue(shared_data: Path) -> None:
    path = shared_data / "catalogues" / "TrainingSet_B1_v2_ML.txt"
    p = positions_from_catalogue(path)
    assert len(p) == 19222 and p.coords == "sky"
    assert p.ra[0] == pytest.approx(-0.64231591) and p.dec[0] == pytest.approx(-29.77521061)  # the centroid columns
    assert (p.classes == -1).all()  # SDC1's CLASS codes are not our ids: not read unless named
    mapped = positions_from_catalogue(path, class_column="CLASS", class_map={1: "extended", 2: "compact", 3: "compact"})
    assert np.bincount(mapped.classes, minlength=4).tolist() == [0, 0, 262 + 18814, 146]
    pixel = positions_from_catalogue(path, coords="pixel")
    assert pixel.x[0] == pytest.approx(19704.519) and pixel.y[0] == pytest.approx(17712.942)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("broken.fits", b"SIMPLE  = this is not a FITS file", "cannot read"),
        ("broken.parquet", b"PAR1 not really", "cannot read"),
        ("nocoords.csv", b"flux,size\n1,2\n", "no RA/Dec or x/y columns"),
        ("halfsky.csv", b"ra,flux\n1,2\n", "found only 'ra'"),
        ("badclass.csv", b"x,y,class\n1,2,quasar\n", "unknown class name 'quasar'"),
        ("badk.csv", b"x,y,k\n1,2,-3\n", "k must be a finite number >= 0"),
        ("cat.xlsx", b"whatever", "unknown format"),
        ("words.txt", b"x y class\n1 2 compact\n", "line 2 is not all numbers"),
        ("ragged.txt", b"x y\n1 2\n1 2 3\n", "line 3 has 3 values for 2 columns"),
    ],
)
def test_bad_catalogue_is_a_one_line_error(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RadiffError) as info:
        positions_from_catalogue(path)
    text = str(info.value)
    assert message in text and "\n" not in text and name in text


def test_named_column_that_is_absent_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("RA,DEC\n1,2\n")
    with pytest.raises(RadiffError, match="no column 'RA_centroid'"):
        positions_from_catalogue(tmp_path / "c.csv", ra="RA_centroid")


def test_cli_positions_flag_refuses_a_bad_catalogue_before_writing(tmp_path: Path, capsys, flat_bank: Path) -> None:
    out = tmp_path / "out"
    bad = tmp_path / "bad.csv"
    bad.write_text("flux\n1\n")
    code = make_map_main(["--out", str(out), "--quiet", "--size", "512", "--tiles", f"bank:{flat_bank}",
                          "--positions", str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "bad.csv" in err and "\n" not in err
    assert not out.exists()


def test_cli_positions_flag_makes_the_same_map_as_the_api(pixel_run: MapResult, flat_bank: Path, tmp_path: Path) -> None:
    x, y, classes, k = (list(c) for c in zip(*ROWS))
    path = tmp_path / "rows.csv"
    pacsv.write_csv(pa.table({"x": x, "y": y, "class": [None if c is None else str(c) for c in classes],
                              "k": [np.nan if v is None else v for v in k]}), path)
    out = tmp_path / "cli"
    args = ["--out", str(out), "--quiet", "--size", str(SIZE), "--seed", "3", "--workers", "1",
            "--tiles", f"bank:{flat_bank}", "--set", "chunk=256", "--set", "placement.n_objects=50",
            "--set", "placement.margin_px=16", "--set", "sampler.batch_size=4", "--positions", str(path)]
    assert make_map_main(args) == 0
    assert np.array_equal(_read(out / "map.fits"), _read(pixel_run.map))
    assert (out / "catalogue.csv").read_bytes() == pixel_run.outputs["catalogue_csv"].read_bytes()
