"""SSIM between a generated image and the real image its mask came from (paper section 5.1.2).

Why it is here: the paper scores semantic image synthesis by the structural similarity
(Wang et al. 2004) between each generated image and the ground-truth image of the same mask,
averaged over the test set (Table 4: 39.04% for RADiff). It is computed on the [0, 1]
images the models see (the paper maps each FITS image to [0, 1] with tanh; here with the
bundle's stretch), so the dynamic range is ``L = 1``.

Definition (Wang et al. 2004, Eq. 13, with their recommended constants, which the paper
repeats: K1 = 0.01, K2 = 0.03, C1 = (K1 L)^2, C2 = (K2 L)^2)::

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

with local means, variances and covariance weighted by an 11 x 11 Gaussian window of
sigma 1.5 (normalised to sum 1), computed at every position where the window lies wholly
inside the image (no padding: Wang et al.'s reference code, and scikit-image with
``gaussian_weights=True``), and the image's SSIM the mean of that map. The paper's Eq. 15
prints the numerator as a sum of the two factors; that is read as a slip, the product being
Wang et al.'s definition. Variances are the window-weighted population moments (no N - 1),
as in the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SSIMConfig:
    """The SSIM constants; the defaults are Wang et al.'s and the paper's."""

    #: Window side in pixels (odd).
    window: int = 11
    #: Standard deviation of the Gaussian window in pixels.
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03
    #: L: the dynamic range of the images (1 for the paper's [0, 1] images).
    data_range: float = 1.0

    def __post_init__(self) -> None:
        if self.window < 3 or self.window % 2 == 0:
            raise ValueError(f"SSIM window must be an odd number >= 3, got {self.window}")
        if not (self.sigma > 0 and self.k1 > 0 and self.k2 > 0 and self.data_range > 0):
            raise ValueError("SSIM sigma, k1, k2 and data_range must be > 0")

    def kernel(self) -> np.ndarray:
        """The 1-D Gaussian weights (window,), summing to 1; the 2-D window is their outer product."""
        r = np.arange(self.window, dtype=np.float64) - (self.window - 1) / 2.0
        w = np.exp(-0.5 * (r / self.sigma) ** 2)
        return w / w.sum()


def _image(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected one image (H, W), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: image contains NaN or inf")
    return arr


def _local_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Window-weighted mean at every position where the whole window fits ('valid' region)."""
    r = (len(w) - 1) // 2
    out = ndimage.correlate1d(x, w, axis=0, mode="constant")
    out = ndimage.correlate1d(out, w, axis=1, mode="constant")
    return out[r : x.shape[0] - r, r : x.shape[1] - r]


def ssim_map(x: Any, y: Any, config: SSIMConfig = SSIMConfig()) -> np.ndarray:
    """The local SSIM map ((H - window + 1), (W - window + 1)) of two images of one shape."""
    a, b = _image(x, "x"), _image(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    if min(a.shape) < config.window:
        raise ValueError(f"images {a.shape} are smaller than the {config.window}-pixel SSIM window")
    w = config.kernel()
    c1 = (config.k1 * config.data_range) ** 2
    c2 = (config.k2 * config.data_range) ** 2
    mu_a, mu_b = _local_mean(a, w), _local_mean(b, w)
    var_a = _local_mean(a * a, w) - mu_a**2
    var_b = _local_mean(b * b, w) - mu_b**2
    cov = _local_mean(a * b, w) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return num / den


def ssim(x: Any, y: Any, config: SSIMConfig = SSIMConfig()) -> float:
    """SSIM of two images (H, W): the mean of :func:`ssim_map`; 1 for identical images."""
    return float(ssim_map(x, y, config).mean())


def ssim_per_image(xs: Any, ys: Any, config: SSIMConfig = SSIMConfig()) -> np.ndarray:
    """SSIM of each pair ``(xs[i], ys[i])`` of two stacks (N, H, W) (or two images: N = 1)."""
    a, b = np.asarray(xs), np.asarray(ys)
    if a.ndim == 2 and b.ndim == 2:
        a, b = a[None], b[None]
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"expected two stacks (N, H, W) of one shape, got {a.shape} and {b.shape}")
    return np.array([ssim(p, q, config) for p, q in zip(a, b)], dtype=np.float64)


def mean_ssim(xs: Any, ys: Any, config: SSIMConfig = SSIMConfig()) -> float:
    """Mean SSIM over paired stacks: the paper's Table 4 number (as a fraction, not %)."""
    return float(ssim_per_image(xs, ys, config).mean())
