"""Do generated tiles look like real radio images? Measures that need no trained critic.

The question has a few sides, each with a measure here (numpy / scipy / scikit-learn only,
so it runs anywhere the test suite runs):

* **Texture.** Real interferometric images carry beam-correlated noise; an autoencoder that
  blurs loses power at high spatial frequency. :func:`radial_power_spectrum`,
  :func:`high_frequency_share` and :func:`hf_power_kept` (the share of power above
  0.2 cycles/pixel a reconstruction keeps, relative to the real image).
* **Overall realism.** A classifier two-sample test (:func:`classifier_two_sample_test`):
  a logistic regression on simple per-tile features (:func:`tile_features`) tries to
  tell real from generated; cross-validated accuracy 0.5 means it cannot.
* **Brightness.** Peak S/N inside a source's mask (:func:`peak_snr`) compared as
  distributions (:func:`ks_distance`): a model that flattens bright sources fails here.
* **Background condition.** The power spectrum of a tile's source-free pixels
  (:func:`noise_spectrum`) compared with a background's (:func:`spectrum_distance`): a
  tile conditioned on a background should inherit its beam-correlated noise.

Images are 2-D arrays or stacks (N, H, W) in any linear unit; functions that need a
noise scale measure it themselves with :func:`radiff_scale.data.stretch.background_stats`
(robust sigma of the tile's own background), so flux, rms units or a linear [0, 1]
decoding all give the same answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from radiff_scale.data.stretch import background_stats

#: Pixel quantiles (percent) used as features: the tails carry the sources, the middle the noise.
FEATURE_QUANTILES = (0.1, 1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0, 99.9)

#: Radial bins of the spectrum used as features: few enough for ~100 tiles per set.
FEATURE_BINS = 16

#: Smallest power kept before a log10 (spectra of all-zero images would be -inf).
_TINY = 1e-30


def _stack(images: Any) -> np.ndarray:
    """(N, H, W) float64 from one image or a stack; a 2-D input becomes N = 1."""
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected an image (H, W) or a stack (N, H, W), got shape {arr.shape}")
    return arr


def _mean_free(image: np.ndarray) -> np.ndarray:
    """The image minus its finite mean, NaN/inf -> 0: blanks then add no power and DC is exactly 0."""
    finite = np.isfinite(image)
    mean = float(image[finite].mean()) if finite.any() else 0.0
    return np.where(finite, image - mean, 0.0)


def _power_2d(images: np.ndarray) -> np.ndarray:
    """|FFT|^2 / (H*W) per image: white noise of variance v has power v at every frequency."""
    h, w = images.shape[1:]
    centred = np.stack([_mean_free(im) for im in images])
    return np.abs(np.fft.fft2(centred)) ** 2 / (h * w)


def _radius(shape: tuple[int, int]) -> np.ndarray:
    """Spatial frequency |f| in cycles/pixel of every FFT element of an image of ``shape``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return np.hypot(fy, fx)


def radial_power_spectrum(images: Any, n_bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres in cycles/pixel, azimuthally averaged power (N, n_bins)).

    Each image has its finite mean subtracted (NaN -> 0 afterwards) before the 2-D FFT;
    bins are equal-width from 0 to 0.5 cycles/pixel (the Nyquist radius: the corners of
    the frequency square beyond it are left out so every bin is a full ring). The DC term
    is excluded. A bin with no frequency in it (tiny images) is NaN.
    """
    arr = _stack(images)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    power = _power_2d(arr)
    radius = _radius(arr.shape[1:])
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    index = np.digitize(radius, edges[1:-1])  # 0..n_bins-1 for radius < 0.5 (right edge below)
    keep = (radius > 0) & (radius <= 0.5)
    index = index[keep]
    counts = np.bincount(index, minlength=n_bins).astype(np.float64)
    out = np.empty((len(arr), n_bins))
    for i, p in enumerate(power):
        sums = np.bincount(index, weights=p[keep], minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(counts > 0, sums / counts, np.nan)
    return 0.5 * (edges[:-1] + edges[1:]), out


def high_frequency_share(images: Any, cutoff: float = 0.2) -> np.ndarray:
    """Per image, the share of its non-DC power at |f| > ``cutoff`` cycles/pixel.

    Measured over the whole frequency square (corners included), so white noise gives
    (1 - pi * cutoff^2) = 0.874 at 0.2 and a beam-smoothed image much less. An image with
    no power (constant) gives NaN.
    """
    arr = _stack(images)
    power = _power_2d(arr)
    radius = _radius(arr.shape[1:])
    high = (radius > cutoff).astype(np.float64)
    total = power.sum(axis=(1, 2))  # DC is 0 after mean subtraction
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (power * high).sum(axis=(1, 2)) / total, np.nan)


def hf_power_kept(real: Any, reconstructed: Any, cutoff: float = 0.2) -> float:
    """Mean high-frequency share of ``reconstructed`` over that of ``real`` (1 = all of it kept).

    The autoencoder's texture measure: a decoder that blurs keeps a small fraction (the
    published RADiff autoencoder kept ~0.03 of it on real FIRST images).
    """
    return float(np.nanmean(high_frequency_share(reconstructed, cutoff)) / np.nanmean(high_frequency_share(real, cutoff)))


def to_sigma_units(image: Any) -> np.ndarray:
    """``(image - centre) / rms`` with the image's own robust background; NaN -> 0 (the background)."""
    arr = np.asarray(image, dtype=np.float64)
    centre, rms = background_stats(arr)
    return np.where(np.isfinite(arr), (arr - centre) / rms, 0.0)


def tile_features(images: Any, n_bins: int = FEATURE_BINS) -> np.ndarray:
    """(N, n_bins + 12) features for telling real tiles from generated ones.

    Per image, in its own robust-sigma units: log10 of the radial power spectrum divided
    by its total (the texture, independent of brightness), the pixel quantiles
    :data:`FEATURE_QUANTILES`, the peak S/N, and the fractions of pixels above 3 and 5
    sigma (how much of the tile is source). Simple and interpretable on purpose: a
    classifier that still wins on these names what is wrong.
    """
    arr = _stack(images)
    s = np.stack([to_sigma_units(im) for im in arr])
    _, power = radial_power_spectrum(s, n_bins=n_bins)
    power = np.nan_to_num(power, nan=0.0)
    total = power.sum(axis=1, keepdims=True)
    spectrum = np.log10(np.maximum(power / np.maximum(total, _TINY), _TINY))
    flat = s.reshape(len(s), -1)
    quantiles = np.percentile(flat, FEATURE_QUANTILES, axis=1).T
    peak = flat.max(axis=1, keepdims=True)
    above = np.stack([(flat > 3.0).mean(axis=1), (flat > 5.0).mean(axis=1)], axis=1)
    return np.concatenate([spectrum, quantiles, peak, above], axis=1)


def classifier_two_sample_test(
    real: Any, generated: Any, seed: int = 0, folds: int = 5, features: bool = False
) -> dict[str, Any]:
    """Cross-validated accuracy of a logistic regression telling ``real`` from ``generated``.

    0.5 means the features cannot tell the sets apart; 1.0 means they always can. Both
    sets are cut to the smaller size by a seeded draw (an unbalanced test rewards guessing
    the majority), features are :func:`tile_features` (or the inputs themselves when
    ``features``), and the model is StandardScaler + LogisticRegression in a Pipeline so
    the scaling is fitted inside each training fold. Folds are stratified and shuffled
    with ``seed``. Returns accuracy mean and std over folds, the fold accuracies and the
    number of images per set.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a = np.asarray(real, dtype=np.float64) if features else tile_features(real)
    b = np.asarray(generated, dtype=np.float64) if features else tile_features(generated)
    n = min(len(a), len(b))
    if n < 2:
        raise ValueError(f"need at least 2 images per set, got {len(a)} real and {len(b)} generated")
    rng = np.random.default_rng(seed)
    a = a[np.sort(rng.choice(len(a), n, replace=False))]
    b = b[np.sort(rng.choice(len(b), n, replace=False))]
    x = np.nan_to_num(np.concatenate([a, b]), nan=0.0, posinf=0.0, neginf=0.0)
    y = np.concatenate([np.zeros(n, dtype=int), np.ones(n, dtype=int)])
    k = max(2, min(folds, n))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = cross_val_score(model, x, y, cv=cv, scoring="accuracy")
    return {
        "accuracy_mean": float(scores.mean()),
        "accuracy_std": float(scores.std()),
        "fold_accuracies": [float(s) for s in scores],
        "folds": int(k),
        "n_per_set": int(n),
    }


def _background_pixels(image: np.ndarray, mask: np.ndarray, min_pixels: int = 64) -> np.ndarray:
    """Finite pixels outside ``mask``; the whole image's finite pixels when too few are left."""
    finite = np.isfinite(image)
    outside = image[finite & ~mask]
    return outside if outside.size >= min_pixels else image[finite]


def peak_snr(images: Any, masks: Any) -> np.ndarray:
    """Per image, the peak inside its mask in robust sigma of the tile's own background.

    The background is measured (sigma-clipped median and MAD rms) on the pixels outside
    the mask, so a bright extended source does not inflate its own noise estimate. An
    empty mask gives NaN.
    """
    arr = _stack(images)
    m = np.asarray(masks).astype(bool)
    if m.ndim == 2:
        m = m[None]
    if m.shape != arr.shape:
        raise ValueError(f"masks shape {m.shape} differs from images shape {arr.shape}")
    out = np.full(len(arr), np.nan)
    for i, (im, mk) in enumerate(zip(arr, m)):
        inside = im[mk & np.isfinite(im)]
        if inside.size:
            centre, rms = background_stats(_background_pixels(im, mk))
            out[i] = (inside.max() - centre) / rms
    return out


def ks_distance(a: Any, b: Any) -> dict[str, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (scipy), NaNs dropped."""
    from scipy.stats import ks_2samp

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return {"statistic": float("nan"), "pvalue": float("nan")}
    result = ks_2samp(a, b)
    return {"statistic": float(result.statistic), "pvalue": float(result.pvalue)}


def noise_spectrum(
    images: Any, masks: Any | None = None, n_bins: int = 16, dilate: int = 3, normalise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, radial power spectrum (N, n_bins)) of each image's background pixels only.

    Pixels in the mask, grown by ``dilate`` pixels (source wings reach past a mask's
    edge), are replaced by the median of the remaining pixels, i.e. contribute no power
    after the mean is removed; the same fill is applied to every set that is compared, so
    its effect cancels in :func:`spectrum_distance`. With ``normalise`` each spectrum is
    divided by its sum: the comparison is then of the noise *shape* (beam correlation),
    not its level, which is what a background condition should transfer. Masks should
    reach down to ~3 sigma: a bright source's wings left outside dominate the spectrum.
    ``masks`` None: the whole image is background.
    """
    arr = _stack(images)
    if masks is None:
        m = np.zeros(arr.shape, dtype=bool)
    else:
        m = np.asarray(masks).astype(bool)
        if m.ndim == 2:
            m = m[None]
        if m.shape != arr.shape:
            raise ValueError(f"masks shape {m.shape} differs from images shape {arr.shape}")
    filled = np.empty_like(arr)
    for i, (im, mk) in enumerate(zip(arr, m)):
        grown = ndimage.binary_dilation(mk, iterations=dilate) if dilate > 0 and mk.any() else mk
        bg = im[~grown & np.isfinite(im)]
        fill = float(np.median(bg)) if bg.size else 0.0
        filled[i] = np.where(grown | ~np.isfinite(im), fill, im)
    freqs, power = radial_power_spectrum(filled, n_bins=n_bins)
    if normalise:
        total = np.nansum(power, axis=1, keepdims=True)
        power = power / np.maximum(total, _TINY)
    return freqs, power


def spectrum_distance(p: Any, q: Any) -> np.ndarray | float:
    """Mean |log10 p - log10 q| over bins (last axis); bins where either is not > 0 are skipped.

    0 = the same spectrum; 1 = a factor of 10 apart on average. Pass mean spectra (1-D;
    e.g. ``power.mean(axis=0)``) for a set-to-set distance, or stacks for one per row.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.abs(np.log10(p) - np.log10(q))
    ok = np.isfinite(diff)
    counts = ok.sum(axis=-1)
    total = np.where(ok, diff, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
    return float(out) if out.ndim == 0 else out
