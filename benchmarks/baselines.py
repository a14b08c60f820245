"""Classical baselines of the benchmarks: scikit-image's J-invariant calibrated wavelet denoiser,
the wavelet denoiser with the calibrated parameters, and BM3D.

All baselines work on float images in [0, 1] (noisy / 255) and return float32 in 0-255 units.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Callable

import numpy as np


def estimate_sigma01(x01: np.ndarray) -> float:
    """skimage's robust wavelet (MAD of finest diagonal detail) noise std, [0, 1] units, averaged over RGB."""
    from skimage.restoration import estimate_sigma

    rgb = x01.ndim == 3
    return float(estimate_sigma(x01, channel_axis=-1 if rgb else None, average_sigmas=True))


JINV_SIGMA_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def calibrate_wavelet(x01: np.ndarray) -> tuple[Callable, dict, dict]:
    """J-invariant calibration of ``denoise_wavelet`` as in scikit-image's "Calibrating denoisers using
    J-invariance" example: ``calibrate_denoiser(noisy, partial(denoise_wavelet, rescale_sigma=True),
    denoise_parameters=grid)``.

    Grid: sigma = estimate_sigma x ``JINV_SIGMA_FACTORS``; wavelet db1/db2; RGB: channel_axis=-1 and
    convert2ycbcr in (True, False).  Returns (J-invariant calibrated function, best kwargs, info).
    """
    from skimage.restoration import calibrate_denoiser, denoise_wavelet

    rgb = x01.ndim == 3
    s = estimate_sigma01(x01)
    grid: dict[str, list] = {
        "sigma": [float(s * f) for f in JINV_SIGMA_FACTORS],
        "wavelet": ["db1", "db2"],
        "channel_axis": [-1 if rgb else None],
    }
    if rgb:
        grid["convert2ycbcr"] = [True, False]
    fn = partial(denoise_wavelet, rescale_sigma=True)
    calibrated, (tested, losses) = calibrate_denoiser(x01, fn, denoise_parameters=grid, extra_output=True)
    best = dict(tested[int(np.argmin(losses))])
    factor = best["sigma"] / s if s > 0 else float("nan")
    info = {
        "sigma_est": s * 255.0,
        "best_sigma": best["sigma"] * 255.0,
        "best_factor": factor,
        "wavelet": best["wavelet"],
        "ycbcr": best.get("convert2ycbcr", False),
        "at_grid_edge": bool(np.isclose(factor, JINV_SIGMA_FACTORS[-1]) or np.isclose(factor, JINV_SIGMA_FACTORS[0])),
    }
    return calibrated, best, info


def run_jinv(noisy: np.ndarray, cache: dict | None = None) -> tuple[np.ndarray, dict]:
    """(b) scikit-image's J-invariant calibrated wavelet denoiser, canonical usage: the function returned
    by ``calibrate_denoiser`` (itself J-invariant, 4x4 masks) applied to the noisy image."""
    cache = {} if cache is None else cache
    x = noisy.astype(np.float64) / 255.0
    t0 = time.perf_counter()
    calibrated, best, info = calibrate_wavelet(x)
    t_cal = time.perf_counter() - t0
    cache["jinv_calibration"] = (best, info, t_cal)
    out = calibrated(x)
    return (out * 255.0).astype(np.float32), info


def run_wavelet_cal(noisy: np.ndarray, cache: dict | None = None) -> tuple[np.ndarray, dict, float]:
    """Variant: ``denoise_wavelet`` applied directly (not J-invariant) with the calibrated parameters.

    Reuses the calibration of :func:`run_jinv` from ``cache`` when present.  Returns
    ``(out, info, seconds)`` with seconds = calibration + this denoising (timed here, not by the caller).
    """
    from skimage.restoration import denoise_wavelet

    x = noisy.astype(np.float64) / 255.0
    if cache is not None and "jinv_calibration" in cache:
        best, info, t_cal = cache["jinv_calibration"]
    else:
        t0 = time.perf_counter()
        _, best, info = calibrate_wavelet(x)
        t_cal = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = denoise_wavelet(x, rescale_sigma=True, **best)
    return (out * 255.0).astype(np.float32), info, t_cal + time.perf_counter() - t0


def run_bm3d(noisy: np.ndarray, sigma255: float | None = None) -> tuple[np.ndarray, dict]:
    """(c) BM3D ('np' profile) with sigma from ``estimate_sigma`` (or ``sigma255`` if given, 0-255 units);
    ``bm3d.bm3d`` for grey, ``bm3d.bm3d_rgb`` (opponent colour space) for RGB, on [0, 1] floats."""
    import bm3d

    x = noisy.astype(np.float64) / 255.0
    s = estimate_sigma01(x) if sigma255 is None else sigma255 / 255.0
    s = max(s, 1e-4)
    out = bm3d.bm3d_rgb(x, s) if x.ndim == 3 else bm3d.bm3d(x, s)
    return (np.asarray(out) * 255.0).astype(np.float32), {"sigma": s * 255.0}
