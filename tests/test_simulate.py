"""The labelled cutout simulator: determinism, exact labels, source physics, dataset writing."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from radiff_scale.beam import Beam
from radiff_scale.classes import OBJECT_CLASSES, SourceClass
from radiff_scale.config import load_config
from radiff_scale.data import sim_galaxies
from radiff_scale.data import sim_sources as src
from radiff_scale.data.sim_background import load_real_maps
from radiff_scale.data.simulate import (
    SUMMARY_FILE,
    SimConfig,
    simulate_cutout,
    simulate_dataset,
)
from radiff_scale.errors import RadiffError
from radiff_scale.seeding import derive_seed

REPO = Path(__file__).resolve().parents[1]
EIGHT = np.ones((3, 3), dtype=bool)


@pytest.fixture(scope="module")
def cutouts():
    """64 cutouts with the default config, as a dataset of 64 would hold them."""
    config = SimConfig()
    return [simulate_cutout(config, derive_seed(7, i, "simulate")) for i in range(64)]


def _threshold(cutout) -> np.float32:
    return np.float32(3.0 * cutout.rms_jy)


def test_same_seed_same_arrays_and_different_seed_differs() -> None:
    config = SimConfig(p_spurious=1.0, p_extended=1.0)
    a, b = simulate_cutout(config, 123), simulate_cutout(config, 123)
    c = simulate_cutout(config, 124)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.background, b.background)
    assert len(a.objects) == len(b.objects) > 0
    for oa, ob in zip(a.objects, b.objects):
        assert oa.class_id == ob.class_id and oa.kind == ob.kind
        assert np.array_equal(oa.mask, ob.mask) and np.array_equal(oa.model, ob.model)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.class_mask(), c.class_mask())


def test_every_class_appears_in_64_cutouts_with_paper_like_counts(cutouts) -> None:
    holders = {cls: 0 for cls in OBJECT_CLASSES}
    counts = {cls: 0 for cls in OBJECT_CLASSES}
    for cutout in cutouts:
        present = {obj.class_id for obj in cutout.objects}
        for cls in present:
            holders[cls] += 1
        for obj in cutout.objects:
            counts[obj.class_id] += 1
    assert all(holders[cls] > 0 for cls in OBJECT_CLASSES), holders
    # Objects per cutout-with-the-class, loosely around the paper's Table 2 (2.83, 1.03, 3.76).
    per = {cls: counts[cls] / holders[cls] for cls in OBJECT_CLASSES}
    assert 1.5 < per[SourceClass.COMPACT] < 4.5
    assert 1.0 <= per[SourceClass.EXTENDED] < 1.5
    assert 1.5 < per[SourceClass.SPURIOUS] < 7.0


def test_masks_nonempty_disjoint_apart_and_exact(cutouts) -> None:
    n_objects = 0
    for cutout in cutouts:
        claimed = np.zeros(cutout.image.shape, dtype=bool)
        thr = _threshold(cutout)
        for obj in cutout.objects:
            n_objects += 1
            assert obj.mask.dtype == bool and obj.mask.shape == cutout.image.shape
            assert obj.model.dtype == np.float32
            assert obj.mask.any()
            # Never within one pixel (min_gap_px=1) of another object's mask.
            grown = ndimage.binary_dilation(obj.mask, EIGHT)
            assert not (grown & claimed).any()
            claimed |= obj.mask
            # The label is the thresholded noise-free model, exactly.
            signed = np.abs(obj.model) if obj.class_id == SourceClass.SPURIOUS else obj.model
            assert np.array_equal(obj.mask, signed >= thr)
            if obj.class_id != SourceClass.SPURIOUS:
                assert obj.model.min() >= 0
                edges = np.concatenate([obj.mask[0], obj.mask[-1], obj.mask[:, 0], obj.mask[:, -1]])
                assert not edges.any(), "compact/extended objects are never cropped by the border"
            assert obj.flux_jy == pytest.approx(
                obj.model.sum(dtype=np.float64) / cutout.beam.area_pixels(cutout.pixel_scale_arcsec), rel=1e-6
            )
            assert abs(obj.peak_jy) == pytest.approx(float(np.abs(obj.model).max()))
    assert n_objects > 100


def test_class_and_instance_masks_match_objects(cutouts) -> None:
    for cutout in cutouts[:16]:
        classes, instances = cutout.class_mask(), cutout.instance_mask()
        assert classes.dtype == np.uint8 and instances.dtype == np.int32
        union = np.zeros(classes.shape, dtype=bool)
        for i, obj in enumerate(cutout.objects):
            assert (instances[obj.mask] == i + 1).all()
            assert (classes[obj.mask] == int(obj.class_id)).all()
            union |= obj.mask
        assert (classes[~union] == 0).all() and (instances[~union] == 0).all()
        assert set(np.unique(instances)) == set(range(len(cutout.objects) + 1)) or not cutout.objects


def test_image_is_background_plus_models(cutouts) -> None:
    for cutout in cutouts[:16]:
        total = cutout.background.astype(np.float64)
        for obj in cutout.objects:
            total += obj.model
        np.testing.assert_allclose(cutout.image, total, rtol=1e-5, atol=1e-3 * cutout.rms_jy)


def test_noise_rms_and_diffuse_background() -> None:
    rms = 2e-4
    quiet = SimConfig(rms_jy=rms, p_compact=0.0, p_extended=0.0, p_spurious=0.0)
    stds = [simulate_cutout(quiet, s).background.std() for s in range(6)]
    assert np.mean(stds) == pytest.approx(rms, rel=0.15)
    # Beam-correlated: neighbouring pixels along the major axis (north = rows) are correlated.
    bg = simulate_cutout(quiet, 0).background
    assert np.corrcoef(bg[:-1].ravel(), bg[1:].ravel())[0, 1] > 0.5
    diffuse = SimConfig(rms_jy=rms, background="noise+diffuse", diffuse_nsigma=3.0,
                        p_compact=0.0, p_extended=0.0, p_spurious=0.0)
    d = simulate_cutout(diffuse, 0)
    assert d.rms_jy == rms and d.background.std() > 2.0 * rms
    # Same seed, same sources whatever the background (streams are split by purpose).
    busy = SimConfig(p_extended=1.0)
    a = simulate_cutout(busy, 5)
    b = simulate_cutout(SimConfig(p_extended=1.0, background="noise+diffuse"), 5)
    assert [o.kind for o in a.objects] == [o.kind for o in b.objects]


def test_compact_source_flux_and_peak() -> None:
    beam = Beam(9.8, 5.8, 30.0)
    scale = 1.5
    area = beam.area_pixels(scale)
    point = src.compact_source((64, 64), 31.3, 32.6, 0.01, beam, scale)
    assert point.sum() / area == pytest.approx(0.01, rel=1e-3)
    resolved = src.compact_source((96, 96), 47.5, 48.2, 0.02, beam, scale, 8.0, 4.0, 70.0)
    assert resolved.sum() / area == pytest.approx(0.02, rel=1e-3)
    # A point source's peak in Jy/beam is its flux in Jy; a resolved one is fainter per beam.
    centred = src.compact_source((64, 64), 32.0, 32.0, 0.01, beam, scale)
    assert centred.max() == pytest.approx(0.01, rel=1e-6)
    flux = src.peak_to_flux(0.005, beam, scale, 8.0, 4.0, 70.0)
    assert flux > 0.005
    resolved_peak = src.compact_source((96, 96), 48.0, 48.0, flux, beam, scale, 8.0, 4.0, 70.0)
    assert resolved_peak.max() == pytest.approx(0.005, rel=1e-6)


def test_simulated_compact_sources_follow_the_flux_law(cutouts) -> None:
    snrs = []
    for cutout in cutouts:
        for obj in cutout.objects:
            if obj.class_id == SourceClass.COMPACT and obj.kind in ("point", "resolved"):
                snrs.append(cutout.snr(obj))
                edge = max(obj.model[0].max(), obj.model[-1].max(), obj.model[:, 0].max(), obj.model[:, -1].max())
                if edge < 1e-4 * obj.peak_jy:  # not cropped: integrated flux >= peak for a Gaussian
                    assert obj.flux_jy >= obj.peak_jy * 0.999
    snrs = np.array(snrs)
    assert snrs.min() >= 4.0 and snrs.max() <= 1000.0
    # dN/dS ~ S^-1.6 on [5, 1000]: the median is 5 * 2^(1/0.6) ~ 16 before sampling losses.
    assert 8.0 < np.median(snrs) < 30.0


def test_spurious_artefacts_have_negative_ripples_and_a_bright_cause(cutouts) -> None:
    n_neg = n_pos = 0
    for cutout in cutouts:
        spurious = [o for o in cutout.objects if o.class_id == SourceClass.SPURIOUS]
        if not spurious:
            continue
        thr = _threshold(cutout)
        for obj in spurious:
            n_neg += bool((obj.model[obj.mask] <= -thr).any())
            n_pos += bool((obj.model[obj.mask] >= thr).any())
        bright = [o for o in cutout.objects if o.class_id == SourceClass.COMPACT and o.kind == "bright"]
        assert bright, "every artefact comes with the bright compact source that causes it"
        assert max(o.peak_jy for o in bright) > 10 * max(abs(o.peak_jy) for o in spurious)
    assert n_neg > 0 and n_pos > 0
    assert n_neg >= 0.2 * (n_neg + n_pos)


def _looks_like_single_gaussian(obj) -> bool:
    """Independent check: one island, one local maximum, and a mask close to its moment ellipse."""
    islands = ndimage.label(obj.mask, EIGHT)[1]
    peaks = ((obj.model == ndimage.maximum_filter(obj.model, size=3)) & obj.mask).sum()
    rows, cols = np.nonzero(obj.mask)
    cov = np.cov(np.vstack([rows, cols]).astype(float))
    inv = np.linalg.inv(cov)
    rr, cc = np.indices(obj.mask.shape)
    dr, dc = rr - rows.mean(), cc - cols.mean()
    ellipse = inv[0, 0] * dr * dr + 2 * inv[0, 1] * dr * dc + inv[1, 1] * dc * dc <= 4.0
    iou = (ellipse & obj.mask).sum() / (ellipse | obj.mask).sum()
    return islands == 1 and peaks == 1 and iou > 0.9


def test_extended_sources_are_not_single_gaussians() -> None:
    config = SimConfig(p_extended=1.0, p_compact=0.0, p_spurious=0.0)
    kinds = set()
    n = 0
    for seed in range(30):
        cutout = simulate_cutout(config, seed)
        for obj in cutout.objects:
            assert obj.class_id == SourceClass.EXTENDED
            assert not _looks_like_single_gaussian(obj), (seed, obj.kind)
            assert obj.mask.sum() >= 5 * cutout.beam.area_pixels(cutout.pixel_scale_arcsec) * 0.999 or \
                cutout.snr(obj) >= 999.0
            kinds.add(obj.kind)
            n += 1
    assert n >= 25 and kinds == set(sim_galaxies.GALAXY_KINDS)


def test_fr2_hotspots_and_multi_island_galaxies() -> None:
    rng = np.random.default_rng(3)
    beam = Beam(9.8, 5.8, 0.0)
    cov = src.beam_covariance(beam, 1.5)
    comps = sim_galaxies.radio_galaxy_components(rng, 9.8 / 1.5, 80.0, kind="fr2")
    image = sim_galaxies.render_galaxy((128, 128), 64.0, 64.0, comps, cov)
    # Brightest pixels sit near the arm ends (hotspots), not at the core.
    peak = np.unravel_index(np.argmax(image), image.shape)
    assert math.hypot(peak[0] - 64.0, peak[1] - 64.0) > 0.5 * comps.extent
    islands = 0
    for seed in range(40):
        cutout = simulate_cutout(SimConfig(p_extended=1.0, p_compact=0.0, p_spurious=0.0), seed)
        islands = max([islands] + [ndimage.label(o.mask, EIGHT)[1] for o in cutout.objects])
    assert islands >= 2


def test_objects_with_empty_masks_are_dropped() -> None:
    # At 40 sigma most S/N 5-60 compact sources have no pixel above the threshold.
    config = SimConfig(mask_nsigma=40.0, compact_snr=(5.0, 60.0), p_compact=1.0, mean_compact=6.0,
                       p_extended=0.0, p_spurious=0.0)
    total = 0
    for seed in range(10):
        cutout = simulate_cutout(config, seed)
        for obj in cutout.objects:
            assert obj.mask.any()
            assert np.array_equal(obj.mask, obj.model >= np.float32(40.0 * cutout.rms_jy))
        total += len(cutout.objects)
    assert total < 0.5 * 10 * 6


def test_config_yaml_and_validation(tmp_path: Path) -> None:
    loaded = load_config(SimConfig, REPO / "configs" / "simulate.yaml")
    assert loaded == SimConfig()
    over = load_config(SimConfig, None, {"mask_nsigma": 5, "compact_snr": [10, 100]})
    assert over.mask_nsigma == 5.0 and over.compact_snr == (10.0, 100.0)
    with pytest.raises(RadiffError, match="mask_nsigma"):
        load_config(SimConfig, None, {"mask_nsigma": -1})
    with pytest.raises(RadiffError, match="real_backgrounds"):
        SimConfig(background="real")
    with pytest.raises(RadiffError, match="unknown"):
        load_config(SimConfig, None, {"mask_sigma": 3})
    bad = tmp_path / "bad.fits"
    bad.write_text("not a fits file")
    with pytest.raises(RadiffError, match="bad.fits"):
        load_real_maps([str(bad)])


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != SUMMARY_FILE
    }


def test_simulate_dataset_is_byte_identical_and_readable(tmp_path: Path) -> None:
    sc = pytest.importorskip("radiff_scale.data.sc_format")
    config = SimConfig(p_spurious=0.5)
    first = simulate_dataset(4, tmp_path / "a", seed=11, config=config)
    simulate_dataset(4, tmp_path / "b", seed=11, config=config, workers=2)  # process count never matters
    simulate_dataset(4, tmp_path / "c", seed=12, config=config)
    a, b, c = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert a == b and len(a) >= 4 * 3
    assert a != c
    summary = json.loads((tmp_path / "a" / SUMMARY_FILE).read_text())
    assert summary["n_cutouts"] == 4 and summary["config"]["p_spurious"] == 0.5
    assert summary["objects_per_class"] == first.objects_per_class
    assert "compact" in first.describe()

    # What was written is what simulate_cutout gives for the derived seed.
    paths = sc.list_samples(tmp_path / "a")
    assert len(paths) == 4
    sample = sc.read_sample(paths[2])
    cutout = simulate_cutout(config, derive_seed(11, 2, "simulate"))
    np.testing.assert_array_equal(sample.image, cutout.image)
    np.testing.assert_array_equal(sample.background, cutout.background)
    assert [o.class_id for o in sample.objects] == [o.class_id for o in cutout.objects]
    for read, made in zip(sample.objects, cutout.objects):
        np.testing.assert_array_equal(read.mask, made.mask)
        assert read.meta["flux_jy"] == pytest.approx(made.flux_jy)
        assert read.meta["snr"] == pytest.approx(cutout.snr(made))
    assert sample.header["BMAJ"] == pytest.approx(9.8 / 3600)
    assert sample.header["RMS"] == pytest.approx(cutout.rms_jy)

    with pytest.raises(RadiffError, match="not an empty folder"):
        simulate_dataset(2, tmp_path / "a", seed=1)


def test_failed_run_leaves_no_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("radiff_scale.data.sc_format")
    import radiff_scale.data.simulate as sim

    real = sim.simulate_cutout
    calls = {"n": 0}

    def flaky(config, seed, real_maps=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(config, seed, real_maps)

    monkeypatch.setattr(sim, "simulate_cutout", flaky)
    with pytest.raises(RuntimeError):
        sim.simulate_dataset(5, tmp_path / "x", seed=0, workers=1)
    assert (tmp_path / "x").is_dir() and not (tmp_path / "x" / SUMMARY_FILE).exists()


def test_real_background(shared_data: Path) -> None:
    path = shared_data / "backgrounds" / "ScorpioS17Field.fits"
    config = SimConfig(background="real", real_backgrounds=[str(path)], p_spurious=1.0)
    maps = load_real_maps(config.real_backgrounds)
    cutout = simulate_cutout(config, 99, maps)
    again = simulate_cutout(config, 99)  # opening the maps itself gives the same cutout
    assert np.array_equal(cutout.image, again.image)

    r0, c0 = cutout.meta["background_row0"], cutout.meta["background_col0"]
    patch = np.nan_to_num(np.asarray(maps[0].data[r0 : r0 + 128, c0 : c0 + 128], dtype=np.float64))
    np.testing.assert_array_equal(cutout.background, patch.astype(np.float32))
    robust = 1.4826 * np.median(np.abs(patch - np.median(patch)))
    assert cutout.rms_jy == pytest.approx(robust, rel=1e-9)
    assert 5e-5 < cutout.rms_jy < 1e-3  # README: ~0.19 mJy/beam
    # Sources are seen through the map's own 6.5" beam at its 1.5" pixels.
    assert cutout.beam.bmaj_arcsec == pytest.approx(6.5, rel=1e-3)
    assert cutout.pixel_scale_arcsec == pytest.approx(1.5, rel=1e-3)
    assert cutout.objects
    for obj in cutout.objects:
        signed = np.abs(obj.model) if obj.class_id == SourceClass.SPURIOUS else obj.model
        assert np.array_equal(obj.mask, signed >= np.float32(3.0 * cutout.rms_jy))
