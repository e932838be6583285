"""Invertible preprocessing: round trips on real data, the published chain, scaling, degenerate input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from radiff_scale.config import from_dict
from radiff_scale.data.preprocess import (
    PreprocessConfig,
    PreprocessParams,
    fit_params,
    inverse_preprocess,
    preprocess,
    preprocess_image,
    reference_params,
)
from radiff_scale.errors import RadiffError

PATCH = 128


def _read(path: Path) -> np.ndarray:
    import warnings

    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    with warnings.catch_warnings():
        # A real field's header quirk (see the data README): BLANK on float data, which astropy ignores.
        warnings.filterwarnings("ignore", "Invalid 'BLANK' keyword", VerifyWarning)
        with fits.open(path) as hdul:
            return np.asarray(hdul[0].data, dtype=np.float64)


def _synthetic(seed: int, size: int = 64, peak: float = 40.0) -> np.ndarray:
    """Unit-rms noise plus one bright Gaussian source, so both clip ends matter."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    source = peak * np.exp(-((yy - size / 2) ** 2 + (xx - size / 3) ** 2) / (2 * 3.0**2))
    return rng.normal(size=(size, size)) + source


@pytest.fixture(scope="module")
def real_images(shared_data: Path) -> dict[str, np.ndarray]:
    """Two real cutouts, plus per field the patch holding its brightest pixel and two fixed ones."""
    images = {p.name: _read(p) for p in sorted((shared_data / "cutouts").glob("*.fits"))}
    for path in sorted((shared_data / "backgrounds").glob("*.fits")):
        field = _read(path)
        r, c = np.unravel_index(np.nanargmax(field), field.shape)
        r0 = int(np.clip(r - PATCH // 2, 0, field.shape[0] - PATCH))
        c0 = int(np.clip(c - PATCH // 2, 0, field.shape[1] - PATCH))
        for rr, cc in ((r0, c0), (100, 700), (600, 250)):
            images[f"{path.stem}[{rr},{cc}]"] = field[rr : rr + PATCH, cc : cc + PATCH].copy()
    assert len(images) == 8
    return images


def _unclipped(x: np.ndarray, p: PreprocessParams) -> tuple[np.ndarray, np.ndarray]:
    """z of each pixel (NaN read as 0) and the mask of pixels strictly inside the clip bounds."""
    z = (np.nan_to_num(x, nan=0.0) - p.zmin) / (p.zmax - p.zmin)
    return z, (z > p.clip_lo) & (z < p.clip_hi)


def test_float64_round_trip_on_real_images(real_images: dict[str, np.ndarray]) -> None:
    """Error is measured in units of the ZScale width W = zmax - zmin (never larger than the
    dynamic range of the unclipped pixels), on every pixel strictly inside the clip bounds."""
    bright_seen = False
    for name, image in real_images.items():
        y, p = preprocess_image(image, dtype=np.float64)
        x = np.nan_to_num(image, nan=0.0)
        z, inside = _unclipped(x, p)
        assert inside.mean() > 0.99, name
        back = inverse_preprocess(y, p)
        assert back.dtype == np.float64
        err = np.abs(back - x)[inside].max() / (p.zmax - p.zmin)
        assert err < 1e-5, (name, err)
        bright_seen |= bool(z.max() > p.clip_hi)
        # pixels that were clipped come back exactly at their bound
        width = p.zmax - p.zmin
        np.testing.assert_allclose(back[z >= p.clip_hi], p.zmin + p.clip_hi * width, rtol=1e-9)
        np.testing.assert_allclose(back[z <= p.clip_lo], p.zmin + p.clip_lo * width, rtol=1e-9, atol=1e-9 * width)
    assert bright_seen, "no test image reached the upper clip: the bright-source path went untested"


def test_float32_output_precision_follows_tanh_conditioning(real_images: dict[str, np.ndarray]) -> None:
    """Storing y as float32 rounds it by at most 2**-25 (half an ulp below 1); arctanh then
    amplifies that by 1 / (1 - tanh(z)**2). Background pixels (z <= 1) stay below 1e-6 W."""
    for name, image in real_images.items():
        y32, p = preprocess_image(image)
        assert y32.dtype == np.float32
        x = np.nan_to_num(image, nan=0.0)
        z, inside = _unclipped(x, p)
        err = np.abs(inverse_preprocess(y32, p) - x) / (p.zmax - p.zmin)
        bound = 2.0**-25 * (p.tmax - p.tmin) / (1.0 - np.tanh(np.clip(z, p.clip_lo, p.clip_hi)) ** 2)
        assert np.all(err[inside] <= 1.01 * bound[inside] + 1e-12), name
        assert err[inside & (z <= 1.0)].max() < 1e-6, name


def test_output_spans_unit_interval() -> None:
    image = _synthetic(1)
    y, p = preprocess_image(image)
    assert y.dtype == np.float32 and y.shape == image.shape
    assert y.min() == 0.0 and y.max() == 1.0
    # another image through the same params is still confined to [0, 1]
    other = preprocess(_synthetic(2, peak=400.0) - 30.0, p)
    assert other.min() >= 0.0 and other.max() <= 1.0


def test_matches_published_chain_up_to_the_upper_clip(real_images: dict[str, np.ndarray]) -> None:
    """With the lower clip off, only the z_max clip separates us from RADiff's
    NaN->0, ZScale, tanh, min-max; that costs at most (1 - tanh(z_max)) / (tmax - tmin) in y."""
    from astropy.visualization import ZScaleInterval

    config = PreprocessConfig(sigma=None)
    for name, image in real_images.items():
        x = np.nan_to_num(image, nan=0.0)
        lo, hi = ZScaleInterval(contrast=0.15).get_limits(x)
        t = np.tanh((x - lo) / (hi - lo))
        published = (t - t.min()) / (t.max() - t.min())
        y, p = preprocess_image(image, config, dtype=np.float64)
        allowed = (1.0 - math.tanh(config.z_max)) / (p.tmax - p.tmin) + 1e-12
        assert np.abs(y - published).max() <= allowed, name


def test_lower_clip_limits_the_damage_of_one_deep_pixel() -> None:
    """Through the min-max, one deep negative artefact lifts the whole background in y;
    the 5-sigma lower clip caps that at the clip bound."""
    clean = _synthetic(3)
    spoiled = clean.copy()
    spoiled[5, 5] = -60.0
    keep = np.ones(clean.shape, bool)
    keep[5, 5] = False
    shifts = {}
    for sigma in (5.0, None):
        config = PreprocessConfig(sigma=sigma)
        y_clean, _ = preprocess_image(clean, config, dtype=np.float64)
        y_spoiled, _ = preprocess_image(spoiled, config, dtype=np.float64)
        shifts[sigma] = np.median(np.abs(y_spoiled - y_clean)[keep])
    assert shifts[5.0] < shifts[None] / 3, shifts
    # the clean image has no 5-sigma outlier: the clip changes nothing there
    unclipped = fit_params(clean, PreprocessConfig(sigma=None))
    np.testing.assert_array_equal(
        preprocess(clean, fit_params(clean), np.float64), preprocess(clean, unclipped, np.float64)
    )
    # with the clip on, everything but the artefact still round-trips
    y, p = preprocess_image(spoiled, dtype=np.float64)
    back = inverse_preprocess(y, p)
    np.testing.assert_allclose(back[keep], spoiled[keep], rtol=0, atol=1e-9 * (p.zmax - p.zmin))
    assert back[5, 5] > -60.0 + 1.0


def test_scaled_params_describe_the_scaled_image() -> None:
    image = _synthetic(4)
    p = fit_params(image)
    for factor in (1e-4, 3.7, 250.0):
        q = fit_params(image * factor)
        expected = p.scaled(factor)
        for key, value in expected.to_dict().items():
            assert getattr(q, key) == pytest.approx(value, rel=1e-9, abs=1e-12), (factor, key)
        np.testing.assert_allclose(
            preprocess(image * factor, expected, np.float64), preprocess(image, p, np.float64), atol=1e-12
        )
        y = preprocess(image, p, np.float64)
        tolerance = 1e-12 * factor * (p.zmax - p.zmin)
        np.testing.assert_allclose(
            inverse_preprocess(y, expected), factor * inverse_preprocess(y, p), rtol=1e-12, atol=tolerance
        )
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(RadiffError, match="scale factor"):
            p.scaled(bad)


def test_params_json_round_trip_and_validation() -> None:
    p = fit_params(_synthetic(5))
    again = PreprocessParams.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p
    assert all(type(v) is float for v in p.to_dict().values())
    data = p.to_dict()
    with pytest.raises(RadiffError, match="missing tmax"):
        PreprocessParams.from_dict({k: v for k, v in data.items() if k != "tmax"})
    with pytest.raises(RadiffError, match="unknown extra"):
        PreprocessParams.from_dict({**data, "extra": 1.0})
    with pytest.raises(RadiffError, match="zmax > zmin"):
        PreprocessParams.from_dict({**data, "zmax": data["zmin"]})
    with pytest.raises(RadiffError, match="tmax < 1"):
        PreprocessParams.from_dict({**data, "tmax": 1.0})
    with pytest.raises(RadiffError, match="finite"):
        PreprocessParams.from_dict({**data, "zmin": float("nan")})


def test_inverse_guards_out_of_range_model_output() -> None:
    p = fit_params(_synthetic(6))
    y = np.array([-0.3, 0.0, 1.0, 1.4])
    back = inverse_preprocess(y, p)
    assert np.all(np.isfinite(back))
    assert back[0] == back[1] == pytest.approx(p.zmin + p.clip_lo * (p.zmax - p.zmin))
    assert back[3] == back[2] == pytest.approx(p.zmin + p.clip_hi * (p.zmax - p.zmin))


def test_degenerate_images() -> None:
    with pytest.raises(RadiffError, match=r"cutout_7\.fits is constant"):
        fit_params(np.full((16, 16), 2.5), source="cutout_7.fits")
    with pytest.raises(RadiffError, match="constant"):
        fit_params(np.full((16, 16), np.nan))
    with pytest.raises(RadiffError, match="nothing to normalise"):
        fit_params(np.ones(1))
    with pytest.raises(RadiffError, match="not a numeric array"):
        fit_params([["a", "b"]])
    # mostly NaN: ZScale collapses onto the zeros; the data range takes over and it still inverts
    image = np.full((32, 32), np.nan)
    image[10:14, 10:14] = np.arange(16.0).reshape(4, 4) + 1.0
    y, p = preprocess_image(image, dtype=np.float64)
    assert p.zmax > p.zmin and y.min() == 0.0 and y.max() == 1.0
    x = np.nan_to_num(image)
    _, inside = _unclipped(x, p)
    np.testing.assert_allclose(inverse_preprocess(y, p)[inside], x[inside], atol=1e-9)


def test_config_validation_and_yaml_loading() -> None:
    assert from_dict(PreprocessConfig, {"sigma": None}).sigma is None
    assert from_dict(PreprocessConfig, {"z_max": 4}).z_max == 4.0
    with pytest.raises(RadiffError, match="z_max"):
        PreprocessConfig(z_max=20.0)
    with pytest.raises(RadiffError, match="sigma"):
        from_dict(PreprocessConfig, {"sigma": -1})
    with pytest.raises(RadiffError, match="contrast"):
        PreprocessConfig(contrast=0.0)


def test_reference_params_are_medians_in_rms_units() -> None:
    bases = [_synthetic(10 + i, peak=20.0 + 15 * i) for i in range(3)]
    rms = [2e-4, 5e-3, 0.7]
    params = [fit_params(b * r) for b, r in zip(bases, rms)]
    ref = reference_params(params, rms)
    unit = [fit_params(b) for b in bases]
    for key in ("zmin", "zmax", "clip_lo", "clip_hi"):
        assert getattr(ref, key) == pytest.approx(float(np.median([getattr(u, key) for u in unit])), rel=1e-9)
    assert ref.tmin == math.tanh(ref.clip_lo) and ref.tmax == math.tanh(ref.clip_hi)
    # a generated tile maps to flux for a local sigma through .scaled
    y = np.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(
        inverse_preprocess(y, ref.scaled(3.0)), 3.0 * inverse_preprocess(y, ref), rtol=1e-12
    )
    with pytest.raises(RadiffError, match="2 rms values"):
        reference_params(params, rms[:2])
    with pytest.raises(RadiffError, match="at least one"):
        reference_params([], [])
    with pytest.raises(RadiffError, match="rms value 1"):
        reference_params(params, [1.0, 0.0, 1.0])
