"""Survey-Collection I/O: round trips, canonical bytes, INAF layouts, real cutouts, and every refusal."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from radiff_scale.classes import SourceClass
from radiff_scale.data.sc_format import (
    AnnotatedObject,
    Sample,
    list_samples,
    read_fits_image,
    read_sample,
    validate_dataset,
    write_sample,
)
from radiff_scale.errors import RadiffError

SIZE = 12


def _box(r0: int, r1: int, c0: int, c1: int, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


def make_sample(name: str = "cut0", seed: int = 0, background: bool = True) -> Sample:
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 1e-3, (SIZE, SIZE)).astype(np.float32)
    image[0, 0] = np.nan  # real cutouts have NaN edges; the writer must keep them
    objects = [
        AnnotatedObject(SourceClass.COMPACT, _box(1, 5, 1, 5), {"snr": 12.5, "name": "S1", "nislands": 1}),
        AnnotatedObject(SourceClass.EXTENDED, _box(3, 9, 3, 9), {"tags": ["a", "b"], "flux": np.float32(0.25)}),
        AnnotatedObject(SourceClass.SPURIOUS, _box(9, 11, 0, 2)),
    ]
    header = {"BMAJ": 6.4 / 3600, "BMIN": 5.4 / 3600, "BPA": 12.0, "CDELT1": -0.0005, "CDELT2": 0.0005, "RMS": 1e-4}
    bg = rng.normal(0.0, 1e-4, (SIZE, SIZE)).astype(np.float32) if background else None
    return Sample(name, image, objects, header=header, background=bg, meta={"telescope": "askap", "rms": 1e-4})


def _write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _write_fits(path: Path, data: np.ndarray, header: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(data)
    for key, value in (header or {}).items():
        hdu.header[key] = value
    hdu.writeto(path, overwrite=True)
    return path


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- round trip


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    sample = make_sample()
    json_path = write_sample(tmp_path, sample)
    assert json_path == tmp_path / "annotations" / "cut0.json"
    back = read_sample(json_path)

    assert back.name == sample.name
    assert back.image.dtype == np.float32 and back.image.dtype.isnative
    np.testing.assert_array_equal(back.image, sample.image)  # NaN positions compare equal
    assert np.isnan(back.image[0, 0])
    np.testing.assert_array_equal(back.background, sample.background)
    assert [o.class_id for o in back.objects] == [o.class_id for o in sample.objects]
    for got, want in zip(back.objects, sample.objects):
        assert got.mask.dtype == bool
        np.testing.assert_array_equal(got.mask, want.mask)
    assert back.objects[0].meta == {"snr": 12.5, "name": "S1", "nislands": 1}
    assert back.objects[1].meta == {"tags": ["a", "b"], "flux": 0.25}
    assert back.objects[2].meta == {}
    assert back.meta == sample.meta
    assert back.header["BUNIT"] == "JY/BEAM"
    for key, value in sample.header.items():
        assert back.header[key] == pytest.approx(value, rel=1e-15)
    assert not {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1"} & set(back.header)


def test_written_json_uses_our_class_names_and_relative_paths(tmp_path: Path) -> None:
    json_path = write_sample(tmp_path, make_sample())
    doc = json.loads(json_path.read_text())
    assert [o["class"] for o in doc["objs"]] == ["compact", "extended", "spurious"]
    assert doc["img"] == "../images/cut0.fits"
    assert doc["objs"][1]["mask"] == "../masks/cut0_obj1.fits"
    assert doc["background"] == "../backgrounds/cut0.fits"
    assert (doc["nx"], doc["ny"]) == (SIZE, SIZE)
    with fits.open(tmp_path / "masks" / "cut0_obj0.fits") as hdul:
        assert hdul[0].data.dtype == np.uint8
        assert set(np.unique(hdul[0].data)) == {0, 1}
    with fits.open(tmp_path / "images" / "cut0.fits") as hdul:
        assert hdul[0].header["BITPIX"] == -32
        assert hdul[0].header["BUNIT"] == "JY/BEAM"


def test_sample_without_background_round_trips_as_none(tmp_path: Path) -> None:
    back = read_sample(write_sample(tmp_path, make_sample(background=False)))
    assert back.background is None
    assert not (tmp_path / "backgrounds" / "cut0.fits").exists()


def test_class_and_instance_masks_later_object_wins() -> None:
    sample = make_sample()
    cls = sample.class_mask()
    inst = sample.instance_mask()
    assert cls.dtype == np.uint8 and inst.dtype == np.int32
    assert cls[2, 2] == SourceClass.COMPACT and inst[2, 2] == 1  # only object 0
    assert cls[4, 4] == SourceClass.EXTENDED and inst[4, 4] == 2  # objects 0 and 1 overlap: 1 wins
    assert cls[10, 1] == SourceClass.SPURIOUS and inst[10, 1] == 3
    assert cls[11, 11] == SourceClass.BACKGROUND and inst[11, 11] == 0
    assert int((inst > 0).sum()) == int(np.logical_or.reduce([o.mask for o in sample.objects]).sum())


# --------------------------------------------------------------------------- determinism


def test_rewrite_is_byte_identical_anywhere(tmp_path: Path) -> None:
    write_sample(tmp_path / "a", make_sample())
    first = _digests(tmp_path / "a")
    write_sample(tmp_path / "a", make_sample())
    write_sample(tmp_path / "b", make_sample())
    assert _digests(tmp_path / "a") == first
    assert _digests(tmp_path / "b") == first
    assert len(first) == 6  # image, background, three masks, JSON
    for path in (tmp_path / "a").rglob("*.fits"):
        header = fits.getheader(path)
        assert not any(k.startswith(("DATE", "CHECKSUM", "DATASUM")) for k in header)


def test_rewrite_with_fewer_objects_removes_stale_files(tmp_path: Path) -> None:
    write_sample(tmp_path, make_sample())
    smaller = make_sample(background=False)
    smaller.objects = smaller.objects[:1]
    write_sample(tmp_path, smaller)
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["cut0_obj0.fits"]
    assert not (tmp_path / "backgrounds" / "cut0.fits").exists()
    assert len(read_sample(tmp_path / "annotations" / "cut0.json").objects) == 1


def _astropy_fits(data: np.ndarray, header: dict | None) -> bytes:
    """The reference: what astropy's own HDU writer makes of the same array and keywords."""
    hdu = fits.PrimaryHDU(data)
    if header is not None:
        hdu.header["BUNIT"] = "JY/BEAM"
        for key in sorted(k for k in header if k != "BUNIT"):
            value = header[key]
            hdu.header[key] = value.item() if isinstance(value, np.generic) else value
    buf = io.BytesIO()
    hdu.writeto(buf, output_verify="exception")
    return buf.getvalue()


# Keywords of every type and formatting corner: float repr longer than 20 characters
# (cut by astropy), exponents, negative zero, a big int, booleans, quotes, an empty
# string, a string long enough for CONTINUE cards, a numpy scalar and a commented card.
ODD_HEADER = {
    "BMAJ": 6.4 / 3600, "CDELT1": -1 / 3600, "RMS": 1.2345678901234567e-100, "TINY": 5e-324,
    "HUGE": 1.7976931348623157e308, "NEGZERO": -0.0, "ONE": 1.0, "SEED": 2**63 + 12345,
    "NEGINT": -7, "FLAG": True, "OFF": False, "NAME": "it's", "EMPTY": "", "SHORT": "a",
    "LONG": "x" * 100 + "'", "F32": np.float32(0.1), "I64": np.int64(-3), "NOTE": (2.5, "a comment"),
}


@pytest.mark.parametrize("shape", [(12, 12), (3, 7), (128, 128)])
def test_fits_files_are_byte_identical_to_astropy(tmp_path: Path, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[1])
    image = rng.normal(0.0, 1e-3, shape).astype(np.float32)
    image[0, -1] = np.nan
    mask = rng.random(shape) > 0.5
    header = dict(ODD_HEADER, BUNIT="Jy/beam")
    sample = Sample("odd", image, [AnnotatedObject(SourceClass.COMPACT, mask)], header=header, background=image * 2)
    write_sample(tmp_path, sample)
    assert (tmp_path / "images" / "odd.fits").read_bytes() == _astropy_fits(image, header)
    assert (tmp_path / "backgrounds" / "odd.fits").read_bytes() == _astropy_fits(image * 2, header)
    assert (tmp_path / "masks" / "odd_obj0.fits").read_bytes() == _astropy_fits(mask.astype(np.uint8), None)


def test_written_fits_read_back_exactly_without_any_warning(tmp_path: Path) -> None:
    sample = make_sample()
    sample.header = dict(ODD_HEADER)
    write_sample(tmp_path, sample)
    for path in sorted(tmp_path.rglob("*.fits")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path) as hdul:
                hdul.verify("exception")
                data, header = hdul[0].data, hdul[0].header
                assert len(hdul) == 1 and data.ndim == 2 and data.dtype.byteorder in ">|"  # FITS is big-endian
                if path.parent.name == "masks":
                    assert data.dtype == np.uint8 and "BUNIT" not in header
                    continue
                want = sample.image if path.parent.name == "images" else sample.background
                np.testing.assert_array_equal(data, want)
                assert list(header)[:7] == ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BUNIT"]
                assert header["BUNIT"] == "JY/BEAM"
                for key, value in ODD_HEADER.items():
                    value = value[0] if isinstance(value, tuple) else value
                    value = value.item() if isinstance(value, np.generic) else value
                    if isinstance(value, float) and len(repr(value)) <= 20:
                        assert header[key] == value and type(header[key]) is float  # short reprs are exact
                    elif isinstance(value, float):
                        assert header[key] == pytest.approx(value, rel=1e-13)  # astropy cuts the repr to 20 chars
                    else:
                        assert header[key] == value and type(header[key]) is type(value)
                assert header.comments["NOTE"] == "a comment"


def test_negative_zero_and_equal_values_of_other_types_are_written_apart(tmp_path: Path) -> None:
    # 0.0 == -0.0 and 1 == 1.0 == True hash alike; a formatting cache must still keep them apart.
    cards = {}
    for i, value in enumerate([0.0, -0.0, 1, 1.0, True, 0.0]):
        sample = make_sample(name=f"v{i}")
        sample.header = {"VAL": value}
        write_sample(tmp_path, sample)
        cards[i] = fits.getheader(tmp_path / "images" / f"v{i}.fits").cards["VAL"].image
    assert cards[0] == cards[5] and len({cards[0], cards[1], cards[2], cards[3], cards[4]}) == 5
    assert cards[1].split("=")[1].split()[0] == "-0.0" and cards[4].split("=")[1].split()[0] == "T"


def test_stale_removal_never_lists_the_masks_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Listing masks/ on every write made writing a dataset quadratic in its size.
    write_sample(tmp_path, make_sample())
    other = make_sample(name="cut00")
    write_sample(tmp_path, other)

    def refuse(*args, **kwargs):
        raise AssertionError("write_sample listed a folder")

    monkeypatch.setattr(Path, "iterdir", refuse)
    monkeypatch.setattr(Path, "glob", refuse)
    monkeypatch.setattr(os, "listdir", refuse)
    monkeypatch.setattr(os, "scandir", refuse)
    smaller = make_sample()
    smaller.objects = smaller.objects[:1]
    write_sample(tmp_path, smaller)
    monkeypatch.undo()
    names = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert names == ["cut00_obj0.fits", "cut00_obj1.fits", "cut00_obj2.fits", "cut0_obj0.fits"]


def test_header_value_astropy_cannot_write_is_refused_before_writing(tmp_path: Path) -> None:
    for value in ("caf\u00e9", "tab\there", (1.0, "c" * 80)):
        bad = make_sample()
        bad.header["WEIRD"] = value
        with pytest.raises(ValueError):
            write_sample(tmp_path, bad)
        assert not tmp_path.exists() or not any(tmp_path.rglob("*"))


def test_writer_refuses_bad_samples_before_writing(tmp_path: Path) -> None:
    bad = make_sample()
    bad.objects[2].mask = np.zeros((SIZE, SIZE + 1), dtype=bool)
    with pytest.raises(ValueError, match="objects\\[2\\]"):
        write_sample(tmp_path, bad)
    assert not tmp_path.exists() or not any(tmp_path.rglob("*.fits"))
    with pytest.raises(RadiffError, match="sample name"):
        write_sample(tmp_path, make_sample(name="../evil"))
    header_bad = make_sample()
    header_bad.header["NAXIS1"] = 3
    with pytest.raises(ValueError, match="NAXIS1"):
        write_sample(tmp_path, header_bad)


# --------------------------------------------------------------------------- INAF layouts and real data


def test_read_fits_image_real_cutouts_without_warnings(shared_data: Path) -> None:
    for name in ("galaxy0002.fits", "sidelobe0001.fits"):
        path = shared_data / "cutouts" / name
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image, header = read_fits_image(path)
        assert caught == [], [str(w.message) for w in caught]
        assert image.shape == (132, 132) and image.dtype == np.float32
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = fits.getdata(path)
        np.testing.assert_array_equal(np.isnan(image), np.isnan(raw))
        np.testing.assert_array_equal(image[~np.isnan(image)], raw[~np.isnan(raw)])
        assert header["BUNIT"].upper() == "JY/BEAM"
        assert "BLANK" not in header
    galaxy, _ = read_fits_image(shared_data / "cutouts" / "galaxy0002.fits")
    assert int(np.isnan(galaxy).sum()) == 288  # documented in shared/data/README.md
    _, side = read_fits_image(shared_data / "cutouts" / "sidelobe0001.fits")
    assert "CTYPE1" not in side  # the unit was stored there; it now lives in BUNIT


def _inaf_root(tmp_path: Path, shared_data: Path) -> Path:
    """INAF's own layout: ROOT/<sample>/imgs/<img>.fits, ROOT/<sample>/masks/{json, mask FITS}."""
    root = tmp_path / "inaf"
    for name, cls in (("galaxy0002", "galaxy"), ("sidelobe0001", "sidelobe")):
        src = shared_data / "cutouts" / f"{name}.fits"
        shutil.copy(src, _mkdir(root / name / "imgs") / src.name)
        mask = np.zeros((132, 132), dtype=np.float32)
        mask[40:90, 50:80] = 1.0
        _write_fits(root / name / "masks" / f"mask_{name}_obj1.fits", mask)
        _write_json(
            root / name / "masks" / f"mask_{name}.json",
            {
                "img": f"../imgs/{name}.fits",
                "nx": 132,
                "ny": 132,
                "telescope": "vla",
                "bmaj": 6.4,
                "objs": [{"class": cls, "mask": f"mask_{name}_obj1.fits", "sidelobe-mixed": 0, "nislands": 1}],
            },
        )
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_reads_inaf_layout_with_real_cutouts(tmp_path: Path, shared_data: Path) -> None:
    root = _inaf_root(tmp_path, shared_data)
    paths = list_samples(root)
    assert [p.name for p in paths] == ["mask_galaxy0002.json", "mask_sidelobe0001.json"]
    galaxy = read_sample(paths[0], root)
    assert galaxy.image.shape == (132, 132)
    assert int(np.isnan(galaxy.image).sum()) == 288
    assert galaxy.objects[0].class_id is SourceClass.EXTENDED
    assert galaxy.objects[0].meta == {"sidelobe-mixed": 0, "nislands": 1}
    assert int(galaxy.objects[0].mask.sum()) == 50 * 30
    assert galaxy.meta == {"telescope": "vla", "bmaj": 6.4}
    assert read_sample(paths[1], root).objects[0].class_id is SourceClass.SPURIOUS
    stats = validate_dataset(root)
    assert stats["n_samples"] == 2 and stats["shapes"] == {"132x132": 2}
    assert stats["objects_per_class"] == {"spurious": 1, "compact": 0, "extended": 1}


def test_paths_relative_to_root_are_accepted(tmp_path: Path, shared_data: Path) -> None:
    root = _inaf_root(tmp_path, shared_data)
    json_path = root / "galaxy0002" / "masks" / "mask_galaxy0002.json"
    doc = json.loads(json_path.read_text())
    doc["img"] = "galaxy0002/imgs/galaxy0002.fits"  # caesar-mrcnn joins paths to a root folder
    doc["objs"][0]["mask"] = "galaxy0002/masks/mask_galaxy0002_obj1.fits"
    _write_json(json_path, doc)
    assert read_sample(json_path, root).objects[0].mask.sum() == 50 * 30


def test_degenerate_axes_are_squeezed(tmp_path: Path) -> None:
    data = np.arange(2 * 3, dtype=np.float32).reshape(1, 1, 2, 3)
    image, _ = read_fits_image(_write_fits(tmp_path / "cube.fits", data))
    np.testing.assert_array_equal(image, data[0, 0])


def test_validate_dataset_counts(tmp_path: Path) -> None:
    for i in range(3):
        write_sample(tmp_path, make_sample(name=f"s{i}", seed=i, background=i != 1))
    stats = validate_dataset(tmp_path)
    assert stats["n_samples"] == 3 and stats["n_objects"] == 9
    assert stats["objects_per_class"] == {"spurious": 3, "compact": 3, "extended": 3}
    assert stats["n_with_background"] == 2 and stats["n_empty_masks"] == 0
    want = np.bincount(make_sample().class_mask().ravel(), minlength=4) * 3
    assert [stats["pixels_per_class"][c.label] for c in SourceClass] == want.tolist()


# --------------------------------------------------------------------------- refusals


@pytest.fixture()
def written(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "ds"
    return root, write_sample(root, make_sample())


def _edit(json_path: Path, **changes) -> None:
    doc = json.loads(json_path.read_text())
    for key, value in changes.items():
        if key.startswith("obj0_"):
            doc["objs"][0][key[5:]] = value
        else:
            doc[key] = value
    json_path.write_text(json.dumps(doc))


def _refused(json_path: Path, root: Path, needle: str) -> str:
    with pytest.raises(RadiffError) as info:
        read_sample(json_path, root)
    message = str(info.value)
    assert "\n" not in message
    assert needle in message, message
    return message


def test_missing_image_fits(written: tuple[Path, Path]) -> None:
    root, json_path = written
    (root / "images" / "cut0.fits").unlink()
    assert "not found" in _refused(json_path, root, "cut0.fits")


def test_corrupt_fits(written: tuple[Path, Path]) -> None:
    root, json_path = written
    (root / "masks" / "cut0_obj1.fits").write_bytes(b"this is not a FITS file" * 200)
    _refused(json_path, root, "cut0_obj1.fits")


def test_image_not_2d(written: tuple[Path, Path]) -> None:
    root, json_path = written
    _write_fits(root / "images" / "cut0.fits", np.zeros((2, SIZE, SIZE), np.float32))
    assert "not 2-D" in _refused(json_path, root, "cut0.fits")


def test_mask_shape_differs(written: tuple[Path, Path]) -> None:
    root, json_path = written
    _write_fits(root / "masks" / "cut0_obj2.fits", np.zeros((SIZE, SIZE + 2), np.uint8))
    assert "shape" in _refused(json_path, root, "cut0_obj2.fits")


def test_background_shape_differs(written: tuple[Path, Path]) -> None:
    root, json_path = written
    _write_fits(root / "backgrounds" / "cut0.fits", np.zeros((SIZE + 1, SIZE), np.float32))
    _refused(json_path, root, "backgrounds/cut0.fits")


@pytest.mark.parametrize("name", ["quasar", "background", "flagged"])
def test_unknown_or_non_object_class(written: tuple[Path, Path], name: str) -> None:
    root, json_path = written
    _edit(json_path, obj0_class=name)
    assert name in _refused(json_path, root, "cut0.json")


@pytest.mark.parametrize(
    "key, value",
    [
        ("obj0_mask", "../../etc/passwd"),
        ("obj0_mask", "/etc/passwd"),
        ("img", "../../../images/cut0.fits"),
        ("background", "../../outside.fits"),
    ],
)
def test_paths_outside_root_are_refused(written: tuple[Path, Path], key: str, value: str) -> None:
    root, json_path = written
    shutil.copy(root / "images" / "cut0.fits", root.parent / "outside.fits")  # exists, but outside
    _edit(json_path, **{key: value})
    message = _refused(json_path, root, "cut0.json")
    assert value in message


def test_symlink_pointing_out_is_refused(written: tuple[Path, Path]) -> None:
    root, json_path = written
    outside = root.parent / "secret.fits"
    shutil.copy(root / "masks" / "cut0_obj0.fits", outside)
    link = root / "masks" / "link.fits"
    try:
        os.symlink(outside, link)
    except OSError:
        pytest.skip("symlinks not supported here")
    _edit(json_path, obj0_mask="../masks/link.fits")
    assert "outside" in _refused(json_path, root, "cut0.json")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('{"objs": []}', "'img'"),
        ('{"img": "../images/cut0.fits"}', "'objs'"),
        ('{"img": "../images/cut0.fits", "objs": [{"mask": "../masks/cut0_obj0.fits"}]}', "'class'"),
        ('{"img": "../images/cut0.fits", "objs": [{"class": "compact"}]}', "'mask'"),
        ('{"img": "../images/cut0.fits", "nx": 99, "objs": []}', "'nx'"),
    ],
)
def test_malformed_json_or_missing_keys(written: tuple[Path, Path], text: str, needle: str) -> None:
    root, json_path = written
    json_path.write_text(text)
    message = _refused(json_path, root, "cut0.json")
    assert needle in message, message


def test_json_outside_given_root_is_refused(written: tuple[Path, Path], tmp_path: Path) -> None:
    root, json_path = written
    _refused(json_path, _mkdir(tmp_path / "other"), "cut0.json")


def test_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    with pytest.raises(RadiffError, match="empty dataset"):
        list_samples(tmp_path)
    with pytest.raises(RadiffError, match="empty dataset"):
        validate_dataset(tmp_path)
    with pytest.raises(RadiffError, match="not a folder"):
        list_samples(tmp_path / "missing")
