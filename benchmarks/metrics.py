"""Benchmark metrics: PSNR, SSIM, their scale-invariant variants (SI-PSNR, SI-SSIM) and noise statistics.

Metric conventions (all computed in float64, in 0-255 units)
------------------------------------------------------------
* The method output is converted to float and **clipped to [0, 255], not rounded**; every metric is
  computed on this clipped float image against the float clean image.
* ``psnr``   = 10 log10(255^2 / MSE) over all pixels and channels (data_range 255).
* ``ssim``   = ``skimage.metrics.structural_similarity(gt, out, data_range=255)`` with scikit-image's
  defaults (7x7 uniform window, sample covariance, K1=0.01, K2=0.03, i.e. *not* the Gaussian-weighted
  variant of Wang et al. that some papers use), ``channel_axis=-1`` for RGB = mean of per-channel SSIM.
* ``si_psnr`` = scale-invariant PSNR: fit ``a*out + b`` to ``gt`` by least squares (one global a, b over
  all pixels and channels), then PSNR (data_range 255) of the fitted image, which is not clipped again.
  Always >= ``psnr``.  This reproduces the ``si_psnr`` column of ``pairs.csv`` for W2S exactly.
* ``si_ssim`` = SSIM (as above) of the same affinely fitted image; use it instead of ``ssim`` for W2S.
"""

from __future__ import annotations

import math

import numpy as np


def _prep(out: np.ndarray) -> np.ndarray:
    """Metric convention: float64, clipped to [0, 255], not rounded."""
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 255.0)


def psnr(gt: np.ndarray, out: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(gt, np.float64) - _prep(out)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(gt: np.ndarray, out: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    gt = np.asarray(gt, np.float64)
    return float(
        structural_similarity(gt, _prep(out), data_range=255.0, channel_axis=-1 if gt.ndim == 3 else None)
    )


def affine_fit(gt: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``a*out + b`` with (a, b) the least-squares fit of the (clipped) output to ``gt``."""
    x = _prep(out).ravel()
    y = np.asarray(gt, np.float64).ravel()
    xm, ym = x.mean(), y.mean()
    var = float(np.mean((x - xm) ** 2))
    a = float(np.mean((x - xm) * (y - ym))) / var if var > 0 else 0.0
    b = ym - a * xm
    return (a * _prep(out) + b).reshape(np.shape(gt))


def si_psnr(gt: np.ndarray, out: np.ndarray) -> float:
    fit = affine_fit(gt, out)
    mse = float(np.mean((np.asarray(gt, np.float64) - fit) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def si_ssim(gt: np.ndarray, out: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    gt = np.asarray(gt, np.float64)
    return float(
        structural_similarity(
            gt, affine_fit(gt, out), data_range=255.0, channel_axis=-1 if gt.ndim == 3 else None
        )
    )


def score(gt: np.ndarray, out: np.ndarray) -> dict[str, float]:
    return {"psnr": psnr(gt, out), "ssim": ssim(gt, out), "si_psnr": si_psnr(gt, out), "si_ssim": si_ssim(gt, out)}


def noise_stats(noisy: np.ndarray, gt: np.ndarray, scale_free: bool) -> dict[str, float]:
    """True residual std (0-255 units) and its lag-1 correlation along x (GT-based, for reporting only).

    For scale-free groups (W2S) the clean image is first fitted affinely to the noisy one.
    """
    z = np.asarray(noisy, np.float64)
    ref = np.asarray(gt, np.float64)
    if scale_free:
        ref = affine_fit(z, ref)  # a*gt+b fitted to the noisy image
    r = z - ref
    r = r - r.mean()
    lag1 = float(np.mean(r[:, 1:] * r[:, :-1]) / np.mean(r * r))
    return {"resid_std": float(r.std()), "resid_lag1": lag1}
