"""SurveyCollectionDataset: tensors, cropping, transform, background policy, DataLoader batching."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from torch.utils.data import DataLoader

from radiff_scale.classes import SourceClass
from radiff_scale.data.dataset import SurveyCollectionDataset
from radiff_scale.data.sc_format import AnnotatedObject, Sample, write_sample
from radiff_scale.errors import RadiffError

SIZE = 20


def _sample(name: str, seed: int, size: int = SIZE, background: bool = True) -> Sample:
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
    m1 = np.zeros((size, size), bool)
    m1[2:8, 3:9] = True
    m2 = np.zeros((size, size), bool)
    m2[6 + seed : 14 + seed, 6:16] = True
    objects = [AnnotatedObject(SourceClass.COMPACT, m1), AnnotatedObject(SourceClass.EXTENDED, m2)]
    bg = rng.normal(0.0, 0.1, (size, size)).astype(np.float32) if background else None
    return Sample(name, image, objects, header={"BMAJ": 0.002}, background=bg)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for i in range(3):
        write_sample(tmp_path, _sample(f"s{i}", i))
    return tmp_path


def test_item_dtypes_shapes_and_values(root: Path) -> None:
    ds = SurveyCollectionDataset(root, size=SIZE, with_background=True)
    assert len(ds) == 3
    item = ds[1]
    want = _sample("s1", 1)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (1, SIZE, SIZE)
    assert item["mask"].dtype == torch.uint8 and item["mask"].shape == (SIZE, SIZE)
    assert item["background"].dtype == torch.float32 and item["background"].shape == (1, SIZE, SIZE)
    np.testing.assert_array_equal(item["image"][0].numpy(), want.image)
    np.testing.assert_array_equal(item["mask"].numpy(), want.class_mask())
    np.testing.assert_array_equal(item["background"][0].numpy(), want.background)
    assert item["name"] == "s1" and item["index"] == 1
    assert ds[-1]["name"] == "s2"
    assert "background" not in SurveyCollectionDataset(root, size=SIZE)[0]


def test_transform_applies_to_image_and_background(root: Path) -> None:
    ds = SurveyCollectionDataset(root, size=SIZE, with_background=True, transform=lambda a: np.tanh(a) * 2.0)
    want = _sample("s0", 0)
    item = ds[0]
    np.testing.assert_allclose(item["image"][0].numpy(), np.tanh(want.image) * 2.0, rtol=1e-6)
    np.testing.assert_allclose(item["background"][0].numpy(), np.tanh(want.background) * 2.0, rtol=1e-6)
    np.testing.assert_array_equal(item["mask"].numpy(), want.class_mask())  # masks are never transformed


def test_size_mismatch_and_centre_crop(root: Path) -> None:
    with pytest.raises(RadiffError, match=r"s0\.json.*20x20, expected 16x16.*crop=True"):
        SurveyCollectionDataset(root, size=16)[0]
    ds = SurveyCollectionDataset(root, size=16, crop=True, with_background=True)
    want = _sample("s2", 2)
    item = ds[2]
    np.testing.assert_array_equal(item["image"][0].numpy(), want.image[2:18, 2:18])
    np.testing.assert_array_equal(item["mask"].numpy(), want.class_mask()[2:18, 2:18])
    np.testing.assert_array_equal(item["background"][0].numpy(), want.background[2:18, 2:18])
    with pytest.raises(RadiffError, match="expected 32x32"):
        SurveyCollectionDataset(root, size=32, crop=True)[0]  # cannot crop up
    assert SurveyCollectionDataset(root, size=None)[0]["image"].shape == (1, SIZE, SIZE)


def test_missing_background_is_an_error_when_asked(tmp_path: Path) -> None:
    write_sample(tmp_path, _sample("bare", 0, background=False))
    assert SurveyCollectionDataset(tmp_path, size=SIZE)[0]["image"].shape == (1, SIZE, SIZE)
    with pytest.raises(RadiffError, match=r"bare\.json.*background"):
        SurveyCollectionDataset(tmp_path, size=SIZE, with_background=True)[0]


def test_dataloader_batches(root: Path) -> None:
    ds = SurveyCollectionDataset(root, size=SIZE, with_background=True)
    batches = list(DataLoader(ds, batch_size=2, shuffle=False))
    assert [b["image"].shape for b in batches] == [(2, 1, SIZE, SIZE), (1, 1, SIZE, SIZE)]
    assert batches[0]["mask"].shape == (2, SIZE, SIZE) and batches[0]["mask"].dtype == torch.uint8
    assert batches[0]["background"].shape == (2, 1, SIZE, SIZE)
    assert batches[0]["name"] == ["s0", "s1"] and batches[1]["name"] == ["s2"]
    assert batches[0]["index"].tolist() == [0, 1]


def test_list_of_json_paths_and_empty(root: Path) -> None:
    paths = [root / "annotations" / "s2.json", root / "annotations" / "s0.json"]
    ds = SurveyCollectionDataset(paths, size=SIZE)
    assert [ds[i]["name"] for i in range(len(ds))] == ["s2", "s0"]
    with pytest.raises(RadiffError, match="empty dataset"):
        SurveyCollectionDataset([], size=SIZE)
    empty = root / "nothing"
    (empty / "annotations").mkdir(parents=True)
    with pytest.raises(RadiffError, match="empty dataset"):
        SurveyCollectionDataset(empty)


def test_real_cutouts_crop_to_128_and_keep_nans(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "cutouts" / "galaxy0002.fits"
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "annotations").mkdir()
    shutil.copy(src, tmp_path / "images" / src.name)
    mask = np.zeros((132, 132), np.uint8)
    mask[60:70, 60:75] = 1
    fits.PrimaryHDU(mask).writeto(tmp_path / "masks" / "g_obj0.fits")
    doc = {"img": "../images/galaxy0002.fits", "objs": [{"class": "galaxy", "mask": "../masks/g_obj0.fits"}]}
    (tmp_path / "annotations" / "g.json").write_text(json.dumps(doc))

    with pytest.raises(RadiffError, match="132x132, expected 128x128"):
        SurveyCollectionDataset(tmp_path)[0]
    item = SurveyCollectionDataset(tmp_path, crop=True)[0]
    assert item["image"].shape == (1, 128, 128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's BLANK complaint about this real file
        raw = np.asarray(fits.getdata(src), dtype=np.float32)[2:130, 2:130]
    np.testing.assert_array_equal(np.isnan(item["image"][0].numpy()), np.isnan(raw))
    assert int(item["mask"].sum()) == 10 * 15 * int(SourceClass.EXTENDED)
    zeroed = SurveyCollectionDataset(tmp_path, crop=True, transform=np.nan_to_num)[0]
    assert not torch.isnan(zeroed["image"]).any()
