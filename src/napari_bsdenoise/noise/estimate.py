"""The noise-correlation estimators: :func:`estimate_noise_correlation` and its ``(N, C, Y, X)`` form."""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from ..errors import InputError
from .blocks import prepare_channel
from .despike import despike
from .detrend import DETREND_ORDER, design, effective_dof, half_lags
from .recommend import EXTENDED_MAX_LAG, MILD_NOISE_FRACTION, recommend, spot
from .result import NoiseCorrelation
from .statistics import channel_estimate

__all__ = ["estimate_noise_correlation", "estimate_noise_correlation_samples"]


def estimate_noise_correlation_samples(
    samples: np.ndarray, *, max_lag: int = 4, block: int = 16, seed: int = 0, extend: bool = True
) -> NoiseCorrelation:
    """Estimate the spatial autocorrelation of the noise of ``(N, C, Y, X)`` samples.

    ``samples`` holds N independent 2-D images (slices) with C channels; each
    channel is analysed on its own and the results are averaged.  See
    :func:`estimate_noise_correlation` for the method and the result.  With ``extend``, noise still
    correlated at ``max_lag`` is measured again out to lag 7 (what 16-pixel blocks allow), so that the
    blind spot can cover it.
    """
    despiked: dict = {}  # (the spike pass runs once for both estimates)
    result = _estimate(samples, max_lag, block, seed, despiked)
    if (extend and result.correlation_reaches_edge and max_lag < EXTENDED_MAX_LAG
            and block >= 2 * EXTENDED_MAX_LAG + 2):
        result = _estimate(samples, EXTENDED_MAX_LAG, block, seed, despiked)
    return result


def _channel_results(samples, block, max_lag, lags, a, seed):
    """``(per-channel results, per-channel noise curves)`` of :func:`~.statistics.channel_estimate`."""
    rng = np.random.default_rng(seed)
    prepared = [(ch, prepare_channel(samples[:, ch], block, max_lag, rng)) for ch in range(samples.shape[1])]
    prepared = [(ch, p) for ch, p in prepared if p is not None]
    # the spread of noise-only block variances (chi-square dof) depends on the correlation: iterate
    dof = effective_dof(block, max_lag, DETREND_ORDER, np.eye(1, len(lags)).ravel())
    results, curves = [], {}
    for _ in range(2):
        new = [(ch, r) for ch, r in ((ch, channel_estimate(p, block, lags, a, dof)) for ch, p in prepared)
               if r is not None]
        if not new:
            break
        curves = {ch: r[3] for ch, r in new}
        results = [r for _, r in new]
        dof = effective_dof(block, max_lag, DETREND_ORDER, np.mean([r[0] for r in results], axis=0))
    return results, curves


def _estimate(samples, max_lag, block, seed, despiked: dict) -> NoiseCorrelation:
    samples = np.asarray(samples)
    if samples.ndim != 4:
        raise InputError(f"samples must be a 4-D (N, C, Y, X) array, got shape {samples.shape}")
    max_lag = int(max_lag)
    block = int(block)
    if max_lag < 1:
        raise InputError(f"max_lag must be at least 1, got {max_lag}")
    if block < 2 * max_lag + 2:
        raise InputError(f"max_lag={max_lag} is too large for {block}-pixel blocks: use max_lag <= {(block - 2) // 2}")
    n, c, h, w = samples.shape
    if n == 0 or c == 0 or h < block or w < block:
        raise InputError(
            f"the image is too small to estimate its noise: each 2-D slice must be at least "
            f"{block}x{block} pixels (got {h}x{w})"
        )
    if not np.all(np.isfinite(samples)):
        raise InputError("the image contains NaN or infinite values; replace them before estimating the noise")

    a, _ = design(block, max_lag, DETREND_ORDER)
    lags = half_lags(max_lag)
    # hot pixels push structured blocks into the correlation estimate: it reads a copy without spikes.
    # The noise level and curve are read as before (on low-count data the pass also takes Poisson tails).
    if "samples" not in despiked:  # (cached by the caller across its two estimates)
        despiked["samples"] = despike(samples)
    cleaned, n_spikes = despiked["samples"]
    results, curves = _channel_results(cleaned, block, max_lag, lags, a, seed)
    if not results:
        raise InputError("no noise could be detected in the image (it is constant, or saturated everywhere)")
    rho_half = np.mean([r[0] for r in results], axis=0)
    n_pairs = [r[2] * block * block for r in results]
    levels = results
    if n_spikes:
        raw, raw_curves = _channel_results(samples, block, max_lag, lags, a, seed)
        if raw:
            levels, curves = raw, raw_curves
    noise_std = float(math.sqrt(max(np.mean([r[1] for r in levels]), 0.0)))
    n_blocks = int(sum(r[2] for r in levels))

    acf = np.zeros((2 * max_lag + 1, 2 * max_lag + 1))
    for (dy, dx), r in zip(lags, rho_half):
        acf[max_lag + dy, max_lag + dx] = r
        acf[max_lag - dy, max_lag - dx] = r
    acf[max_lag, max_lag] = 1.0
    acf.setflags(write=False)

    # standard error of a correlation estimate (Bartlett: inflated by the correlation itself)
    se = math.sqrt((1.0 + 2.0 * float(np.sum(rho_half[1:] ** 2))) / max(min(n_pairs), 1))
    rec = recommend(acf, se)
    length, train, infer = rec.length, rec.train, rec.infer
    step = max(1, int(math.sqrt(h * w * n / 4_000_000)))  # the image's std from <= ~4 M pixels
    image_std = float(np.mean([np.std(samples[:, ch, ::step, ::step], dtype=np.float64) for ch in range(c)]))
    noise_fraction = min(1.0, noise_std / image_std) if image_std > 0 else 1.0
    # per channel: noise variance by intensity (channels without an estimate get the average level)
    flat_curve = ((0.0,), (noise_std**2,))
    curve = tuple((tuple(map(float, curves[ch][0])), tuple(map(float, curves[ch][1]))) if ch in curves
                  else flat_curve for ch in range(c))
    if length > 0 and noise_fraction < MILD_NOISE_FRACTION:  # per axis: (1, 9) -> (1, 3)
        ty, tx = (train, train) if isinstance(train, int) else train
        train = infer = spot(min(ty, 3), min(tx, 3))
    return NoiseCorrelation(
        autocorrelation=acf,
        lag1_x=float(acf[max_lag, max_lag + 1]),
        lag1_y=float(acf[max_lag + 1, max_lag]),
        correlation_length=length,
        correlation_lengths=rec.lengths,
        direction=rec.direction,
        correlation_reaches_edge=rec.reaches_edge,
        train_blind_spot=train,
        inference_blind_spot=infer,
        noise_std=noise_std,
        n_blocks=int(n_blocks),
        noise_fraction=float(noise_fraction),
        noise_curve=curve,
    )


def estimate_noise_correlation(image, *, axes: str | None = None, max_lag: int = 4) -> NoiseCorrelation:
    """Estimate the spatial correlation of the noise of a noisy image, without a clean reference.

    Parameters
    ----------
    image : array_like
        The noisy image: 2-D ``YX``, RGB ``YXC`` or a stack (``ZYX``, ``TYX``, ``TZCYX``...).
    axes : str, optional
        Axis letters among T, Z, C, Y, X.  Inferred for 2-D and RGB images.
    max_lag : int, optional
        Largest lag (pixels) of the returned autocorrelation.

    Returns
    -------
    NoiseCorrelation
        The normalised noise autocorrelation, the correlation length and the
        recommended training/inference blind spots; ``.summary()`` gives a
        one-line verdict.

    Raises
    ------
    InputError
        If the image is smaller than one analysis block (16x16 pixels) or
        contains NaN/infinite values.

    Notes
    -----
    Each 2-D slice and channel is tiled into 16x16 blocks and a quadratic
    surface is removed from each.  The autocorrelation is measured on the
    blocks whose neighbouring blocks are the flattest (saturated, dead and
    sub-quantisation blocks excluded), with the bias of the surface fit removed
    exactly; the noise level is read per intensity stratum.  T and Z slices are
    independent 2-D images, so only in-plane correlation is measured.  Channels
    are analysed separately and averaged.

    Pixel-independent noise (Poisson-Gaussian raw microscopy data) gives blind
    spots 1/1.  Spatially correlated noise (camera sRGB, resampled or filtered
    data) gives a training blind spot that covers the correlation length plus
    one pixel of margin (up to ``2 * max_lag + 1``) and an inference blind spot
    of 3, as AT-BSN uses on smartphone sRGB (9/3).  Image structure finer than
    about 16 pixels everywhere in the image cannot be told from correlated noise.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> from napari_bsdenoise.noise import estimate_noise_correlation
    >>> rng = np.random.default_rng(0)
    >>> noisy = data.camera() + rng.normal(0, 10, (512, 512))
    >>> result = estimate_noise_correlation(noisy)
    >>> result.train_blind_spot, result.inference_blind_spot
    (1, 1)
    >>> abs(result.lag1_x) < 0.05
    True
    """
    from ..axes import SampleLayout, default_channel_mode, to_samples, validate_axes

    arr = np.asarray(image)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"the image must be numeric (integer or float), got dtype {arr.dtype}")
    axes = validate_axes(axes, arr.shape)
    layout = SampleLayout(axes, arr.shape, default_channel_mode(axes, arr.shape, arr.dtype))
    h, w = layout.spatial_shape
    if h < 16 or w < 16:
        raise InputError(f"the image is too small to estimate its noise: Y and X must be at least 16 pixels (got {h}x{w})")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise InputError("the image contains NaN or infinite values; replace them before estimating the noise")
    samples = to_samples(arr, layout)
    return estimate_noise_correlation_samples(samples, max_lag=max_lag)


def estimate_noise_correlation_volumes(samples: np.ndarray, *, block: int = 16, seed: int = 0):
    """``(in_plane, along_z)`` diagnostics of ``(N, C, Z, Y, X)`` volumes.

    ``in_plane`` is :func:`estimate_noise_correlation_samples` of the Y-X slices; ``along_z`` is
    :func:`z_noise_correlation` (a :class:`ZCorrelation`).
    """
    samples = np.asarray(samples)
    if samples.ndim != 5:
        raise InputError(f"samples must be a 5-D (N, C, Z, Y, X) array, got shape {samples.shape}")
    n, c, d, h, w = samples.shape
    in_plane = estimate_noise_correlation_samples(samples.transpose(0, 2, 1, 3, 4).reshape(n * d, c, h, w),
                                                  block=block, seed=seed)
    return in_plane, z_noise_correlation(samples, block=block)


#: Z lags whose noise correlation is at least this count as correlated (the in-plane high-pass below makes
#: the estimate exact for noise white in-plane; flat columns leave little signal to leak into it)
Z_THRESHOLD = 0.1
Z_MAX_LAG = 4


@dataclass(frozen=True)
class ZCorrelation:
    """The noise correlation along Z: ``lags[k - 1]`` at lag ``k``; ``length`` the last correlated lag of the
    run from lag 1 (0: independent between slices); the recommended Z sides of the blind box."""

    lags: tuple[float, ...]
    length: int

    @property
    def train_side(self) -> int:
        return 2 * self.length + 1

    @property
    def inference_side(self) -> int:
        return min(3, self.train_side)  # as in-plane: train on the whole correlation, infer with a small box

    def to_dict(self) -> dict:
        return {"lags": [round(v, 4) for v in self.lags], "correlation_length": self.length,
                "train_side": self.train_side, "inference_side": self.inference_side}


def z_noise_correlation(samples: np.ndarray, *, block: int = 16, max_lag: int = Z_MAX_LAG) -> ZCorrelation:
    """The noise correlation between slices of ``(N, C, Z, Y, X)`` volumes, without a clean reference.

    Every slice is high-passed in-plane (minus its 3x3 mean), which removes the signal where a slice is
    locally flat but keeps the noise's correlation between slices exactly (the same filter runs on every
    slice).  The correlation is read on the flattest quarter of the ``block x block`` columns (their
    high-pass variance over all of Z is lowest: no structure in any slice), so a signal that is smooth
    along Z (a PSF 2-5x longer in Z than in-plane) does not pass for correlated noise.  Fewer than
    ``max_lag + 2`` slices: reported independent (lags of 0).
    """
    from scipy.ndimage import uniform_filter

    x = np.asarray(samples, dtype=np.float64)
    n, c, d, h, w = x.shape
    max_lag = min(max_lag, d - 2)
    if max_lag < 1 or h < block or w < block:
        return ZCorrelation((0.0,) * max(max_lag, 1), 0)
    hp = x - uniform_filter(x, size=(1, 1, 1, 3, 3), mode="reflect")
    hb, wb = h // block, w // block
    cols = hp[..., : hb * block, : wb * block].reshape(n, c, d, hb, block, wb, block)
    cols = cols.transpose(0, 1, 3, 5, 2, 4, 6).reshape(n * c * hb * wb, d, block * block)
    var = cols.var(axis=(1, 2))
    flat = cols[var <= np.quantile(var, 0.25)]
    flat = flat - flat.mean(axis=(1, 2), keepdims=True)
    lags = []
    for k in range(1, max_lag + 1):
        a, b = flat[:, :-k], flat[:, k:]
        lags.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())))
    length = 0
    while length < len(lags) and lags[length] >= Z_THRESHOLD:
        length += 1
    return ZCorrelation(tuple(lags), length)
