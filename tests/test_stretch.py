"""The asinh stretch keeps real dynamic range and inverts exactly; bundles pick their own stretch."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest

from radiff_scale.data.stretch import (
    AsinhStretch,
    ZScaleTanhStretch,
    background_stats,
    stretch_for_card,
    stretch_from_dict,
)
from radiff_scale.errors import RadiffError

FIRST = sorted(glob.glob(str(Path(__file__).resolve().parents[2] / "shared" / "data" / "first" / "*.fits.gz")))


def _source_on_noise(peak_sigma: float, rms: float = 2e-4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:128, 0:128]
    image = rng.normal(3e-5, rms, (128, 128)) + peak_sigma * rms * np.exp(-((rr - 64) ** 2 + (cc - 50) ** 2) / 8.0)
    return image


def test_background_stats_ignore_sources_and_nans() -> None:
    image = _source_on_noise(500.0)
    image[:3] = np.nan
    centre, rms = background_stats(image)
    assert centre == pytest.approx(3e-5, abs=2e-5)
    assert rms == pytest.approx(2e-4, rel=0.05)


def test_a_bright_source_keeps_its_dynamic_range_and_comes_back_exactly() -> None:
    """A 1000-sigma source is neither clipped nor flattened (the ZScale chain put everything
    above ~5 ZScale units at 1), and decode(encode(x)) gives x in rms units."""
    stretch = AsinhStretch()
    image = _source_on_noise(1000.0)
    y = stretch.encode(image)
    assert y.dtype == np.float32 and 0.0 < y.min() and y.max() < 1.0
    centre, rms = background_stats(image)
    back = stretch.decode(y.astype(np.float64)) * rms + centre
    # float32 storage of y: relative precision ~ 6e-8 of the asinh range, amplified by cosh at the peak.
    assert np.max(np.abs(back - image) / (rms * np.cosh(np.arcsinh(np.abs(image - centre) / rms)))) < 1e-5
    peak = np.unravel_index(np.argmax(image), image.shape)
    ring = (peak[0], peak[1] + 2)
    assert y[peak] > y[ring] > np.median(y)  # structure inside the bright source survives

    zscale = ZScaleTanhStretch({"zmin": 0.0, "zmax": 1.0, "clip_lo": -0.05, "clip_hi": 5.0,
                                "tmin": float(np.tanh(-0.05)), "tmax": float(np.tanh(5.0))}).encode(image)
    assert np.sum(zscale >= 0.999) > 3 * np.sum(y >= 0.999 * y.max())  # what the old chain flattened


def test_the_noise_keeps_a_usable_share_of_the_range() -> None:
    y = AsinhStretch().encode(np.random.default_rng(1).normal(0.0, 1.0, (128, 128)))
    lo, hi = np.percentile(y, [0.5, 99.5])
    assert 0.2 < hi - lo < 0.5


def test_a_stretch_is_scale_free() -> None:
    image = _source_on_noise(200.0)
    stretch = AsinhStretch()
    np.testing.assert_allclose(stretch.encode(image), stretch.encode(7.0 * image + 0.3), atol=2e-6)


def test_bad_images_and_settings_are_one_line_user_errors() -> None:
    with pytest.raises(RadiffError, match="constant"):
        AsinhStretch().encode(np.zeros((8, 8)))
    with pytest.raises(RadiffError, match="finite pixels"):
        background_stats(np.full((8, 8), np.nan), source="x.fits")
    with pytest.raises(RadiffError, match="softening"):
        stretch_from_dict({"softening": 0})
    with pytest.raises(RadiffError, match="s_lo < 0 < s_hi"):
        stretch_from_dict({"s_lo": 1.0})
    with pytest.raises(RadiffError, match="unknown key"):
        stretch_from_dict({"soft": 1.0})


def test_a_card_chooses_its_stretch() -> None:
    assert stretch_for_card({"stretch": AsinhStretch(softening=2.0).to_card()}) == AsinhStretch(softening=2.0)
    reference = {"zmin": -3.0, "zmax": 10.0, "clip_lo": -0.05, "clip_hi": 5.0,
                 "tmin": float(np.tanh(-0.05)), "tmax": float(np.tanh(5.0))}
    old = stretch_for_card({"preprocess_reference": reference})
    assert isinstance(old, ZScaleTanhStretch)
    assert old.decode(np.array([1.0]))[0] == pytest.approx(-3.0 + 5.0 * 13.0)
    # The card entry carries its reference: a U-Net trained on an old autoencoder bundle keeps
    # a decodable card once the training job drops preprocess_reference.
    again = stretch_for_card({"stretch": old.to_card()})
    assert again == old and again.decode(np.array([1.0]))[0] == old.decode(np.array([1.0]))[0]
    with pytest.raises(RadiffError, match="no stretch"):
        stretch_for_card({})
    with pytest.raises(RadiffError, match="unknown stretch"):
        stretch_for_card({"stretch": {"kind": "log"}})


@pytest.mark.skipif(not FIRST, reason="needs ../shared/data/first (the development workspace's real data)")
def test_real_first_galaxies_are_not_clipped() -> None:
    """Real FIRST peaks (9-1600 rms) stay below the top of the range: nothing saturates."""
    from astropy.io import fits

    stretch = AsinhStretch()
    for path in FIRST[::50]:
        y = stretch.encode(fits.getdata(path))
        assert y.max() < 0.99, path
