"""Seed streams and the beam: the primitives the determinism invariant rests on."""

import math

import numpy as np
import pytest

from radiff_scale.beam import Beam, correlated_noise, gaussian_kernel
from radiff_scale.seeding import derive_rng, derive_seed, derive_seeds, derive_uniforms


def test_seed_depends_only_on_its_inputs() -> None:
    assert derive_seed(7, 3, "tile") == derive_seed(7, 3, "tile")
    assert len({derive_seed(7, 3, "tile"), derive_seed(7, 4, "tile"), derive_seed(7, 3, "k"), derive_seed(8, 3, "tile")}) == 4
    assert derive_rng(1, 2, "x").random() == derive_rng(1, 2, "x").random()
    with pytest.raises(ValueError):
        derive_seed(-1, 0)


@pytest.mark.parametrize("run_seed", [0, 3, 2**32 - 1, 2**32, 2**63 + 5, 2**100 + 3])
def test_array_streams_equal_the_scalar_ones_bit_for_bit(run_seed: int) -> None:
    """derive_seeds/derive_uniforms re-implement SeedSequence and PCG64 seeding on arrays:
    any slip (a constant, a carry, an index of 2^32 or more hashed as two words) shows here."""
    rng = np.random.default_rng(run_seed % 1000)
    idx = np.concatenate([[0, 1, 2**32 - 1, 2**32, 2**40 + 7, 2**62], rng.integers(0, 10**7, 300)]).astype(np.uint64)
    for purpose in ("", "class", "k", "tile"):
        seeds = derive_seeds(run_seed, idx, purpose)
        assert seeds.dtype == np.uint64 and seeds.shape == idx.shape
        assert seeds.tolist() == [derive_seed(run_seed, int(i), purpose) for i in idx]
        assert derive_uniforms(run_seed, idx, purpose).tolist() == [derive_rng(run_seed, int(i), purpose).random() for i in idx]
    assert derive_seeds(run_seed, np.zeros(0, np.int64)).shape == (0,)
    with pytest.raises(ValueError):
        derive_seeds(run_seed, np.array([3, -1]))


def test_beam_area_and_kernel_integral_agree() -> None:
    beam = Beam(9.8, 5.8, 30.0)
    kernel = beam.kernel(1.5, size=61)
    assert kernel.max() == pytest.approx(1.0)
    assert kernel.sum() == pytest.approx(beam.area_pixels(1.5), rel=1e-6)


def test_kernel_position_angle_is_east_of_north() -> None:
    # PA 0: major axis along rows (north). PA 90: along -cols (east).
    k0 = gaussian_kernel(8.0, 2.0, 0.0, size=31)
    k90 = gaussian_kernel(8.0, 2.0, 90.0, size=31)
    assert k0[15 + 5, 15] > k0[15, 15 + 5]
    assert k90[15, 15 - 5] > k90[15 + 5, 15]
    np.testing.assert_allclose(k90, k0.T, atol=1e-12)


def test_correlated_noise_is_windowable_and_has_the_requested_rms() -> None:
    kernel = Beam(6.5, 6.5).kernel(1.5)
    half = kernel.shape[0] // 2
    white = np.random.default_rng(0).standard_normal((700, 700))
    whole = correlated_noise(white, kernel, 2e-4)
    window = correlated_noise(white[100 : 300 + 2 * half, 50 : 250 + 2 * half], kernel, 2e-4)
    np.testing.assert_allclose(window, whole[100:300, 50:250], rtol=1e-5, atol=1e-12)
    assert whole.std() == pytest.approx(2e-4, rel=0.1)
    assert not math.isclose(whole[0, 0], whole[0, 1])
