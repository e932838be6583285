"""The block-wise robust sigma map."""

from __future__ import annotations

import numpy as np
import pytest

from radiff_scale.beam import Beam
from radiff_scale.compose.background import FitsBackground, SyntheticBackground
from radiff_scale.compose.sigma import SigmaMap, sigma_map
from radiff_scale.compose.wcs import MapGeometry
from radiff_scale.errors import RadiffError


class ArraySource:
    """An in-memory background that records the windows read from it."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data.astype(np.float32)
        self.windows: list[tuple[int, int, int, int]] = []

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def read(self, row0, row1, col0, col1):
        self.windows.append((row0, row1, col0, col1))
        return self.data[row0:row1, col0:col1].copy()


def test_sigma_of_synthetic_noise_matches_its_rms():
    geo = MapGeometry((640, 576), 1.5, 30.0, -20.0, Beam(6.5, 6.5), 1.4e9)
    source = SyntheticBackground(geo, rms_jy=3e-4, seed=5, block=256)
    smap = sigma_map(source, block=128)
    assert smap.grid.shape == (5, 5)
    assert smap.median == pytest.approx(3e-4, rel=0.03)
    assert np.all(np.abs(smap.grid / 3e-4 - 1) < 0.08)
    rows, cols = np.mgrid[0:640:37, 0:576:41]
    values = smap.at(rows, cols)
    assert values.shape == rows.shape
    assert np.all(np.abs(values / 3e-4 - 1) < 0.08)


def test_sigma_follows_a_noise_step_and_ignores_sources():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((256, 512))
    data[:, 256:] *= 3.0
    data[100:110, 50:60] += 500.0  # a bright source inside a block: MAD does not see it
    smap = sigma_map(ArraySource(data), block=64, filter_size=1)
    assert smap.at(128, 100) == pytest.approx(1.0, rel=0.06)
    assert smap.at(128, 420) == pytest.approx(3.0, rel=0.06)
    mid = smap.at(95.5, 255.5)  # halfway between the centres of blocks (1, 3) and (1, 4)
    assert mid == pytest.approx((smap.grid[1, 3] + smap.grid[1, 4]) / 2, rel=1e-6)


def test_at_is_bilinear_between_block_centres_and_flat_outside():
    grid = np.array([[1.0, 3.0], [5.0, 7.0]], dtype=np.float32)
    smap = SigmaMap(grid=grid, block=10, shape=(20, 20))  # block centres at 4.5 and 14.5
    assert smap.at(4.5, 4.5) == pytest.approx(1.0)
    assert smap.at(14.5, 14.5) == pytest.approx(7.0)
    assert smap.at(9.5, 9.5) == pytest.approx(4.0)
    assert smap.at(4.5, 9.5) == pytest.approx(2.0)
    assert smap.at(0, 0) == pytest.approx(1.0)
    assert smap.at(19, 0) == pytest.approx(5.0)


def test_blank_blocks_are_filled_from_neighbours():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((192, 192)) * 2.0
    data[0:64, 0:64] = 0.0  # blanked corner (NaN was turned into 0 by the reader)
    smap = sigma_map(ArraySource(data), block=64)
    assert np.all(np.isfinite(smap.grid)) and np.all(smap.grid > 0)
    assert smap.grid[0, 0] == pytest.approx(2.0, rel=0.1)
    with pytest.raises(RadiffError):
        sigma_map(ArraySource(np.zeros((128, 128))), block=64)


def test_sigma_map_reads_bounded_windows():
    source = ArraySource(np.random.default_rng(2).standard_normal((600, 500)))
    sigma_map(source, block=50, tile=200)
    assert max((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in source.windows) <= 200 * 200
    covered = np.zeros(source.shape, dtype=int)
    for r0, r1, c0, c1 in source.windows:
        covered[r0:r1, c0:c1] += 1
    assert np.all(covered == 1)  # every pixel read exactly once


def test_sigma_map_of_a_real_map(shared_data):
    bg = FitsBackground(shared_data / "backgrounds" / "ScorpioFaintSNRField.fits")
    smap = sigma_map(bg, block=200)
    data = bg.read(0, 1000, 0, 1000).astype(np.float64)
    global_rms = 1.4826 * np.median(np.abs(data - np.median(data)))
    assert smap.median == pytest.approx(global_rms, rel=0.25)
    values = smap.at(*np.mgrid[0:1000:50, 0:1000:50])
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert values.max() < 5 * global_rms
