"""Noise-correlation diagnostic: is the noise pixel-independent, and which blind spot does it need?

A blind-spot network only works if the noise at a pixel is independent of the
pixels it is allowed to see.  Raw microscopy noise (Poisson shot noise plus
Gaussian read noise) is pixel-independent, so a 1-pixel blind spot is right.
Camera sRGB noise (demosaicing, in-camera denoising, JPEG) and resampled data
(registration, deskewing, deconvolution) are spatially correlated over a few
pixels and need a larger training blind spot (AT-BSN: 9 to train, 3 at
inference on smartphone sRGB).

The estimate uses the noisy data alone (no clean reference):

1. every 2-D slice and channel is tiled into ``block x block`` blocks (16 px)
   and a quadratic surface is fitted to each block and subtracted, which
   removes smooth image content;
2. saturated (mostly at the data min/max), dead (no variance) and
   sub-quantisation-step blocks are dropped;
3. the correlation is measured on the blocks with the flattest
   *surroundings* (lowest largest variance among the 4 neighbouring blocks),
   minus blocks whose own variance is implausible for noise at the
   neighbours' level.  Ranking on the neighbours instead of the block itself
   avoids a bias: the lowest-variance blocks of correlated noise are also the
   least correlated ones;
4. their lag products up to ``max_lag`` are summed and the bias of the
   per-block fit (about -1/n for a mean, more for a surface) is removed exactly
   by solving the linear system that maps a stationary noise autocovariance to
   the expected lag products of the fitted residuals;
5. the noise level is read per intensity stratum (signal-dependent noise) from
   the low quantiles of the block variances, capped by a robust affine
   noise-level envelope so that textured strata do not inflate it.

Calibrated on real noisy/clean pairs (smartphone and DSLR sRGB, widefield and
confocal fluorescence): see ``_recommend`` for the decision rule.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .errors import InputError

__all__ = ["NoiseCorrelation", "estimate_noise_correlation", "estimate_noise_correlation_samples"]

# --- tuning constants (calibrated on real noisy/clean pairs and synthetic noise) ---
_DETREND_ORDER = 2  # polynomial order removed per block (2 = quadratic surface)
_MAX_STRATA = 8  # intensity strata (noise is often signal dependent)
_MIN_STRATUM_BLOCKS = 32
_MAX_CANDIDATE_BLOCKS = 16384  # per channel; bigger data are subsampled at random
_MAX_CLIPPED_FRACTION = 0.9  # blocks with more pixels at the data min/max are saturated (clipping is
# pointwise, so partly clipped noise stays uncorrelated; dark photon-counting backgrounds are mostly 0)
_MIN_STD_STEPS = 0.5  # quantised data: blocks whose std is below this many steps are skipped
_MIN_BLOCKS = 4
_STRATUM_QUANTILE = 0.25  # noise level of a stratum read from this quantile of its block variances
_ENVELOPE_QUANTILE = 0.3  # pinball quantile of the affine noise-level envelope fit
_ENVELOPE_FACTOR = 1.5  # strata further above the envelope than this are taken as textured
_WINDOW_BLOCKS = 64  # blocks are analysed in grids of at most 64 x 64 blocks (1024 px at block 16)
_FLAT_FRACTION = 0.1  # fraction of blocks (flattest neighbourhoods) used for the correlation ...
_MIN_FLAT_BLOCKS = 16  # ... but at least this many
_CUT_MARGIN = 1.2  # margin on the 99 % noise-only cut of a block's own variance
_INDEPENDENT_THRESHOLD = 0.1  # max |corr| of the 8 nearest neighbours still called pixel-independent
_LENGTH_THRESHOLD = 0.05  # |corr| above this counts towards the correlation length
_CORR_THRESHOLD_SE = 4.0  # thresholds are at least this many standard errors of the estimate
# Correlated noise that is weak next to the image's own variation (noise std below this fraction of
# the image's std): a large training blind spot blurs away more detail than the noise it removes.
# Measured (docs/benchmarks.md): Nam DSLR crops at fractions 0.03-0.07 gained 2-6 dB with training
# blind spot 3 instead of 9 (300 steps); at 0.13 and 0.16, +1.0 and +0.1 dB (2000 steps, fused output);
# SIDD phone crops (0.5-0.8) lose 6 dB with 3.  Inference 3, not 1: with the noisy-input fusion
# (nn/fusion.py) 3 won on every image measured (a 1-pixel blind spot lets correlated noise into the
# prediction, which then hides from the fusion's noise test).
_MILD_NOISE_FRACTION = 0.25


@dataclass(frozen=True)
class NoiseCorrelation:
    """Result of :func:`estimate_noise_correlation`.

    Attributes
    ----------
    autocorrelation : ndarray, shape (2L+1, 2L+1)
        Normalised autocorrelation of the noise; the centre (lag (0, 0)) is 1.
        Row index is the y lag + L, column index the x lag + L.
    lag1_x, lag1_y : float
        Correlation at lag 1 along x and along y.
    correlation_length : int
        Largest Chebyshev lag (pixels) at which the noise is still correlated;
        0 for pixel-independent noise.
    train_blind_spot, inference_blind_spot : int
        Recommended odd blind spots for training and inference.
    noise_std : float
        Estimated noise standard deviation in the units of the input (an
        average over the intensity range for signal-dependent noise).
    n_blocks : int
        Number of flat blocks the estimate is based on.
    noise_fraction : float
        ``noise_std`` divided by the standard deviation of the whole (noisy)
        image: how much of the image's variation is noise.  Correlated noise
        below 0.25 is *mild*: the recommended blind spots are then 3 and 3.
    noise_curve : tuple
        Per channel, ``(intensities, variances)``: the noise variance measured
        in up to 8 intensity strata (noise is often signal dependent); see
        :meth:`noise_variance`.
    """

    autocorrelation: np.ndarray = field(compare=False, repr=False)
    lag1_x: float
    lag1_y: float
    correlation_length: int
    train_blind_spot: int
    inference_blind_spot: int
    noise_std: float
    n_blocks: int
    noise_fraction: float = float("nan")
    noise_curve: tuple = field(default=(), compare=False, repr=False)

    def noise_variance(self, intensity, channel: int = 0) -> np.ndarray:
        """Noise variance at ``intensity`` (input units) in ``channel``, interpolated between the
        intensity strata of the estimate (constant beyond them); ``noise_std**2`` without a curve."""
        if not self.noise_curve:
            return np.full(np.shape(intensity), self.noise_std**2)
        mu, var = self.noise_curve[channel]
        return np.interp(intensity, mu, var)

    @property
    def mild(self) -> bool:
        """Correlated but weak next to the image's own variation (see ``noise_fraction``)."""
        return not self.pixel_independent and self.noise_fraction < _MILD_NOISE_FRACTION

    @property
    def max_lag(self) -> int:
        return (self.autocorrelation.shape[0] - 1) // 2

    @property
    def pixel_independent(self) -> bool:
        return self.correlation_length == 0

    def summary(self) -> str:
        """A short human-readable verdict with the recommended blind spots."""
        lags = f"lag-1 corr x {self.lag1_x:.2f}, y {self.lag1_y:.2f}"
        if self.pixel_independent:
            return (
                f"noise looks pixel-independent ({lags}; std {self.noise_std:.3g}): "
                f"blind spot {self.train_blind_spot} for training and inference"
            )
        hi, lo = max(abs(self.lag1_x), abs(self.lag1_y)), min(abs(self.lag1_x), abs(self.lag1_y))
        axis = ""
        if hi - lo > 0.1 and lo < 0.5 * hi:
            axis = f", mostly along {'x' if abs(self.lag1_x) > abs(self.lag1_y) else 'y'}"
        mild = (f", mild: {self.noise_fraction:.0%} of the image's std, so a small blind spot keeps more detail "
                "than it lets noise through" if self.mild else "")
        return (
            f"noise is spatially correlated over ~{self.correlation_length} px{axis} ({lags}; "
            f"std {self.noise_std:.3g}{mild}): train with blind spot {self.train_blind_spot}, "
            f"infer with {self.inference_blind_spot}"
        )

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary (plain Python floats, ints and lists)."""
        return {
            "autocorrelation": [[float(v) for v in row] for row in np.asarray(self.autocorrelation)],
            "lag1_x": float(self.lag1_x),
            "lag1_y": float(self.lag1_y),
            "correlation_length": int(self.correlation_length),
            "train_blind_spot": int(self.train_blind_spot),
            "inference_blind_spot": int(self.inference_blind_spot),
            "noise_std": float(self.noise_std),
            "n_blocks": int(self.n_blocks),
            "noise_fraction": float(self.noise_fraction),
            "noise_curve": [[list(mu), list(var)] for mu, var in self.noise_curve],
        }

    @classmethod
    def from_dict(cls, d: dict) -> NoiseCorrelation:
        """Inverse of :meth:`to_dict`."""
        acf = np.asarray(d["autocorrelation"], dtype=np.float64)
        acf.setflags(write=False)
        return cls(
            autocorrelation=acf,
            lag1_x=float(d["lag1_x"]),
            lag1_y=float(d["lag1_y"]),
            correlation_length=int(d["correlation_length"]),
            train_blind_spot=int(d["train_blind_spot"]),
            inference_blind_spot=int(d["inference_blind_spot"]),
            noise_std=float(d["noise_std"]),
            n_blocks=int(d["n_blocks"]),
            noise_fraction=float(d.get("noise_fraction", float("nan"))),  # absent before 0.2
            noise_curve=tuple((tuple(map(float, mu)), tuple(map(float, var)))
                              for mu, var in d.get("noise_curve", ())),  # absent before 0.3
        )


# ----------------------------------------------------------------------------------------------
# bias correction of the per-block polynomial fit
# ----------------------------------------------------------------------------------------------


def _half_lags(max_lag: int) -> list[tuple[int, int]]:
    """Lags (dy, dx) of one half-plane, (0, 0) first; the other half follows by symmetry."""
    lags = [(0, 0)]
    lags += [(0, dx) for dx in range(1, max_lag + 1)]
    lags += [(dy, dx) for dy in range(1, max_lag + 1) for dx in range(-max_lag, max_lag + 1)]
    return lags


def _poly_basis(block: int, order: int) -> np.ndarray:
    """Orthonormal basis (n, m) of the 2-D polynomials of total degree <= order on a block."""
    t = (np.arange(block) - (block - 1) / 2) / block
    yy, xx = np.meshgrid(t, t, indexing="ij")
    cols = [(yy**i * xx**j).ravel() for i in range(order + 1) for j in range(order + 1 - i)]
    q, _ = np.linalg.qr(np.stack(cols, axis=1))
    return q


def _lag_pairs(block: int, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (p, q) of the pixel pairs of a block with q = p + (dy, dx)."""
    y, x = np.meshgrid(np.arange(block), np.arange(block), indexing="ij")
    ok = (y + dy >= 0) & (y + dy < block) & (x + dx >= 0) & (x + dx < block)
    return (y * block + x)[ok], ((y + dy) * block + (x + dx))[ok]


def _lag_pattern(block: int, lags, weights) -> np.ndarray:
    """Symmetric (n, n) matrix with weight w_k at every pixel pair separated by +-k."""
    n = block * block
    g = np.zeros((n, n))
    for (dy, dx), w in zip(lags, weights):
        p, q = _lag_pairs(block, dy, dx)
        g[p, q] += w
        if (dy, dx) != (0, 0):
            g[q, p] += w
    return g


def _project(g: np.ndarray, q: np.ndarray) -> np.ndarray:
    """P g P with P = I - q q^T (the residual operator of the polynomial fit)."""
    gq = g @ q
    return g - q @ gq.T - gq @ q.T + q @ (q.T @ gq) @ q.T


@lru_cache(maxsize=8)
def _design(block: int, max_lag: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Matrix A with E[S_h] = sum_k A[h, k] C_k for the detrended block residuals, and the fit basis.

    S_h is the sum over a block of r_p r_{p+h} (r = residual after the
    polynomial fit, r = P n with P = I - Q Q^T), C_k the stationary noise
    autocovariance at lag k (assumed zero beyond ``max_lag``): E[r r^T] =
    P (sum_k C_k G_k) P with G_k the lag-k pattern, so A[h, k] is the sum of
    the lag-h entries of P G_k P.  Solving A C = S removes the bias of the fit.
    """
    lags = _half_lags(max_lag)
    q = _poly_basis(block, order)
    pairs = [_lag_pairs(block, dy, dx) for dy, dx in lags]
    a = np.zeros((len(lags), len(lags)))
    for j, lag in enumerate(lags):
        pgp = _project(_lag_pattern(block, [lag], [1.0]), q)
        for i, (p, qq) in enumerate(pairs):
            a[i, j] = pgp[p, qq].sum()
    a.setflags(write=False)
    return a, q


def _dof(block: int, max_lag: int, order: int, rho_half: np.ndarray) -> float:
    """Effective chi-square degrees of freedom of a noise-only block's residual sum of squares."""
    _, q = _design(block, max_lag, order)
    r = _project(_lag_pattern(block, _half_lags(max_lag), rho_half), q)
    tr2 = float(np.sum(r * r))
    n = block * block
    dof = float(np.trace(r) ** 2 / tr2) if tr2 > 0 else float(n)
    return float(np.clip(dof, 2.0, n)) if np.isfinite(dof) else float(n)


# ----------------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------------


def _quantisation_step(values: np.ndarray) -> float:
    """Spacing of the value lattice when the data are quantised (integers, 8-bit scaled...), else 0."""
    u = np.unique(values)
    if u.size < 2 or u.size > 0.5 * values.size:
        return 0.0
    return float(np.min(np.diff(u)))


def _lag_sums(z: np.ndarray, lags: list[tuple[int, int]]) -> np.ndarray:
    """Sum over blocks z (M, B, B) of z_p z_{p+h} for each lag h."""
    b = z.shape[-1]
    out = np.empty(len(lags))
    for i, (dy, dx) in enumerate(lags):
        if dx >= 0:
            out[i] = np.einsum("mij,mij->", z[:, : b - dy, : b - dx], z[:, dy:, dx:])
        else:
            out[i] = np.einsum("mij,mij->", z[:, : b - dy, -dx:], z[:, dy:, : b + dx])
    return out


def _windows(data: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """Grids of non-overlapping blocks, shape (W, wy, wx, block, block), from data (N, Y, X).

    Each window is a contiguous grid of at most ``_WINDOW_BLOCKS`` blocks a side
    taken from one slice (so blocks keep their neighbours); big data are
    subsampled by picking random windows up to ``_MAX_CANDIDATE_BLOCKS`` blocks.
    """
    n, h, w = data.shape
    ny, nx = h // block, w // block
    wy, wx = min(ny, _WINDOW_BLOCKS), min(nx, _WINDOW_BLOCKS)
    y0, x0 = (h - ny * block) // 2, (w - nx * block) // 2
    ys, xs = range(0, ny - wy + 1, wy), range(0, nx - wx + 1, wx)
    n_per_slice = len(ys) * len(xs)
    total = n * n_per_slice
    n_windows = min(total, max(1, _MAX_CANDIDATE_BLOCKS // (wy * wx)))
    picks = np.sort(rng.choice(total, size=n_windows, replace=False)) if n_windows < total else np.arange(total)
    out = np.empty((n_windows, wy, wx, block, block))
    for k, idx in enumerate(picks):
        i, rest = divmod(int(idx), n_per_slice)
        y = y0 + ys[rest // len(xs)] * block
        x = x0 + xs[rest % len(xs)] * block
        tile = data[i, y : y + wy * block, x : x + wx * block]
        out[k] = tile.reshape(wy, block, wx, block).transpose(0, 2, 1, 3)
    return out


@dataclass
class _Blocks:
    """Detrended blocks of one channel and what is known about each."""

    resid: np.ndarray  # (M, n) residuals of the polynomial fit
    var: np.ndarray  # (M,) residual variance (mean square)
    means: np.ndarray  # (M,) block mean
    valid: np.ndarray  # (M,) usable: not clipped, dead or below the quantisation step
    grid: tuple  # (windows, wy, wx): the blocks form these grids, in C order
    strata: list  # indices of the valid blocks, by intensity


def _prepare_channel(data: np.ndarray, block: int, max_lag: int, rng: np.random.Generator) -> _Blocks | None:
    """Detrend the blocks of one channel and flag the usable ones."""
    win = _windows(data, block, rng)
    nw, wy, wx = win.shape[:3]
    flat = win.reshape(nw * wy * wx, block * block)
    _, q = _design(block, max_lag, _DETREND_ORDER)
    resid = flat - (flat @ q) @ q.T
    var = np.mean(resid * resid, axis=1)
    means = flat.mean(axis=1)

    lo, hi = float(np.min(data)), float(np.max(data))
    span = hi - lo
    clipped = np.mean((flat <= lo) | (flat >= hi), axis=1)
    sub = data.ravel()
    if sub.size > 200_000:
        sub = sub[rng.choice(sub.size, size=200_000, replace=False)]
    step = _quantisation_step(sub)

    scale = max(span, abs(lo), abs(hi))
    alive = var > (1e-7 * scale) ** 2  # below float32 resolution: constant
    valid = alive & (clipped <= _MAX_CLIPPED_FRACTION)
    if step > 0:
        valid &= var >= (_MIN_STD_STEPS * step) ** 2
    if np.count_nonzero(valid) < _MIN_BLOCKS:  # nothing clean enough: use anything with some variance
        valid = alive
    if not np.any(valid):
        return None

    vidx = np.flatnonzero(valid)
    order = vidx[np.argsort(means[vidx], kind="stable")]
    n_strata = int(np.clip(len(order) // _MIN_STRATUM_BLOCKS, 1, _MAX_STRATA))
    return _Blocks(resid, var, means, valid, (nw, wy, wx), np.array_split(order, n_strata))


def _chi2_quantile(dof: float, p: float) -> float:
    """p-quantile of chi2(dof) / dof: where a noise-only block variance falls, relative to its mean."""
    from scipy.special import gammaincinv

    return float(2.0 * gammaincinv(dof / 2.0, p) / dof)


def _lower_envelope(mu: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Robust affine noise-level function through the lower part of the (mean, variance) points.

    Shot noise makes the variance affine in the mean; image structure only adds
    variance.  Among the lines through two points (and the constants), pick the
    one minimising a pinball loss of the log ratio that penalises points below
    the line more, so textured strata (points far above) do not pull it up.
    Returns the line evaluated at ``mu``.
    """
    logv = np.log(v)
    tau = _ENVELOPE_QUANTILE
    best, best_loss = v.copy(), np.inf
    cands = [np.full_like(v, val) for val in v]
    for i in range(len(mu)):
        for j in range(i + 1, len(mu)):
            if mu[j] != mu[i]:
                slope = (v[j] - v[i]) / (mu[j] - mu[i])
                cands.append(v[i] + slope * (mu - mu[i]))
    for line in cands:
        if np.any(line <= 0):
            continue
        d = logv - np.log(line)
        loss = float(np.sum(np.where(d >= 0, tau * d, (tau - 1.0) * d)))
        if loss < best_loss:
            best, best_loss = line, loss
    return best


def _neighbours(values: np.ndarray, valid: np.ndarray, grid: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Largest and median of ``values`` over each block's 4-neighbours in its window.

    The largest is inf when a neighbour is unusable (not ``valid``) and nan when
    the block has no neighbour; the median is over the usable neighbours.
    """
    nw, wy, wx = grid
    g = np.full((nw, wy + 2, wx + 2), np.nan)
    g[:, 1:-1, 1:-1] = np.where(valid, values, np.inf).reshape(nw, wy, wx)
    nbs = np.stack([g[:, :-2, 1:-1], g[:, 2:, 1:-1], g[:, 1:-1, :-2], g[:, 1:-1, 2:]]).reshape(4, -1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan: blocks without neighbours
        return np.nanmax(nbs, axis=0), np.nanmedian(np.where(np.isinf(nbs), np.nan, nbs), axis=0)


def _select_flat(bl: _Blocks, dof: float) -> np.ndarray:
    """Indices of blocks that are pure noise, chosen so that the choice does not bias the correlation.

    A block's own variance is tied to its own noise sample: keeping the
    lowest-variance blocks of correlated noise lowers its measured correlation.
    So blocks are ranked by the largest variance among their 4-neighbours (image
    structure is spatially coherent, so a block in flat surroundings is very
    likely flat itself) and the best ``_FLAT_FRACTION`` are kept, minus those
    whose own variance is implausible for noise at their neighbours' level (a
    small object inside the block; this loose cut passes 99 % of noise-only
    blocks and hardly biases anything).
    """
    nb_max, nb_med = _neighbours(bl.var, bl.valid, bl.grid)
    cand = np.flatnonzero(bl.valid & np.isfinite(nb_max))
    if len(cand) >= _MIN_BLOCKS:
        k = min(len(cand), max(int(math.ceil(_FLAT_FRACTION * len(cand))), _MIN_FLAT_BLOCKS))
        keep = cand[np.argsort(nb_max[cand], kind="stable")[:k]]
        own_cut = _chi2_quantile(dof, 0.99) / _chi2_quantile(dof, 0.5) * _CUT_MARGIN
        keep = keep[~(bl.var[keep] > own_cut * nb_med[keep])]
        if len(keep) >= _MIN_BLOCKS:
            return keep
    # too small for neighbourhoods: fall back to the flattest blocks themselves
    vidx = np.flatnonzero(bl.valid)
    k = max(_MIN_BLOCKS, int(math.ceil(_FLAT_FRACTION * len(vidx))))
    return vidx[np.argsort(bl.var[vidx], kind="stable")[:k]]


def _noise_variance(bl: _Blocks, dof: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Noise-only residual mean square of a block, averaged over the intensity strata, and the
    per-stratum ``(intensity, mean square)`` points it averages.

    Each stratum's level is read from a low quantile of its block variances
    (image structure only adds variance), capped by a robust affine envelope
    over the strata (shot noise is affine in the intensity, texture is not).
    """
    q_low = _chi2_quantile(dof, _STRATUM_QUANTILE)
    mu_s = np.array([np.median(bl.means[st]) for st in bl.strata])
    v_s = np.array([np.quantile(bl.var[st], _STRATUM_QUANTILE) for st in bl.strata]) / q_low
    if len(bl.strata) > 2:
        v_s = np.minimum(v_s, _ENVELOPE_FACTOR * _lower_envelope(mu_s, v_s))
    return float(np.mean(v_s)), mu_s, v_s


def _channel_estimate(bl: _Blocks, block: int, lags, a: np.ndarray, dof: float):
    """(rho over the half-plane lags, noise variance C0, blocks used, (intensities, C0 per intensity))
    for one channel."""
    keep = _select_flat(bl, dof)
    z = bl.resid[keep] / np.sqrt(bl.var[keep])[:, None]
    cov = np.linalg.solve(a, _lag_sums(z.reshape(-1, block, block), lags) / len(keep))
    if not cov[0] > 0:
        return None
    rho = cov / cov[0]
    a0 = float(a[0] @ rho)  # E[block mean square] = C0 * a0 / n
    if not a0 > 0:
        a0 = float(a[0, 0])
    scale = block * block / a0
    var, mu_s, v_s = _noise_variance(bl, dof)
    return rho, var * scale, len(keep), (mu_s, v_s * scale)


def estimate_noise_correlation_samples(
    samples: np.ndarray, *, max_lag: int = 4, block: int = 16, seed: int = 0
) -> NoiseCorrelation:
    """Estimate the spatial autocorrelation of the noise of ``(N, C, Y, X)`` samples.

    ``samples`` holds N independent 2-D images (slices) with C channels; each
    channel is analysed on its own and the results are averaged.  See
    :func:`estimate_noise_correlation` for the method and the result.
    """
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

    rng = np.random.default_rng(seed)
    a, _ = _design(block, max_lag, _DETREND_ORDER)
    lags = _half_lags(max_lag)
    prepared = [(ch, _prepare_channel(samples[:, ch], block, max_lag, rng)) for ch in range(c)]
    prepared = [(ch, p) for ch, p in prepared if p is not None]
    # the spread of noise-only block variances (chi-square dof) depends on the correlation: iterate
    dof = _dof(block, max_lag, _DETREND_ORDER, np.eye(1, len(lags)).ravel())
    results, curves = [], {}
    for _ in range(2):
        new = [(ch, r) for ch, r in ((ch, _channel_estimate(p, block, lags, a, dof)) for ch, p in prepared)
               if r is not None]
        if not new:
            break
        curves = {ch: r[3] for ch, r in new}
        results = [r for _, r in new]
        dof = _dof(block, max_lag, _DETREND_ORDER, np.mean([r[0] for r in results], axis=0))
    if not results:
        raise InputError("no noise could be detected in the image (it is constant, or saturated everywhere)")
    rho_half = np.mean([r[0] for r in results], axis=0)
    noise_std = float(math.sqrt(max(np.mean([r[1] for r in results]), 0.0)))
    n_blocks = int(sum(r[2] for r in results))
    n_pairs = [r[2] * block * block for r in results]

    acf = np.zeros((2 * max_lag + 1, 2 * max_lag + 1))
    for (dy, dx), r in zip(lags, rho_half):
        acf[max_lag + dy, max_lag + dx] = r
        acf[max_lag - dy, max_lag - dx] = r
    acf[max_lag, max_lag] = 1.0
    acf.setflags(write=False)

    # standard error of a correlation estimate (Bartlett: inflated by the correlation itself)
    se = math.sqrt((1.0 + 2.0 * float(np.sum(rho_half[1:] ** 2))) / max(min(n_pairs), 1))
    length, train, infer = _recommend(acf, se)
    step = max(1, int(math.sqrt(h * w * n / 4_000_000)))  # the image's std from <= ~4 M pixels
    image_std = float(np.mean([np.std(samples[:, ch, ::step, ::step], dtype=np.float64) for ch in range(c)]))
    noise_fraction = min(1.0, noise_std / image_std) if image_std > 0 else 1.0
    # per channel: noise variance by intensity (channels without an estimate get the average level)
    flat_curve = ((0.0,), (noise_std**2,))
    curve = tuple((tuple(map(float, curves[ch][0])), tuple(map(float, curves[ch][1]))) if ch in curves
                  else flat_curve for ch in range(c))
    if length > 0 and noise_fraction < _MILD_NOISE_FRACTION:
        train, infer = min(train, 3), min(train, 3)
    return NoiseCorrelation(
        autocorrelation=acf,
        lag1_x=float(acf[max_lag, max_lag + 1]),
        lag1_y=float(acf[max_lag + 1, max_lag]),
        correlation_length=length,
        train_blind_spot=train,
        inference_blind_spot=infer,
        noise_std=noise_std,
        n_blocks=int(n_blocks),
        noise_fraction=float(noise_fraction),
        noise_curve=curve,
    )


def _recommend(acf: np.ndarray, se: float) -> tuple[int, int, int]:
    """(correlation length, train blind spot, inference blind spot) from the autocorrelation.

    * pixel-independent (length 0, blind spots 1/1) unless some lag-1 neighbour
      (Chebyshev ring 1, diagonals included) correlates by more than
      ``_INDEPENDENT_THRESHOLD``;
    * otherwise the correlation length is the outermost ring whose largest
      |correlation| exceeds ``_LENGTH_THRESHOLD``; the training blind spot covers
      it plus one ring of margin (a blind-spot network also exploits weak,
      spread-out correlation, and with asymmetric inference a large training
      blind spot costs little), capped by the measured range;
    * inference uses 3 (AT-BSN's asymmetric choice), never more than training.

    Both thresholds are raised to ``_CORR_THRESHOLD_SE`` standard errors of the
    estimate for small images.
    """
    L = (acf.shape[0] - 1) // 2
    yy, xx = np.meshgrid(np.arange(-L, L + 1), np.arange(-L, L + 1), indexing="ij")
    cheb = np.maximum(np.abs(yy), np.abs(xx))
    ring_max = [float(np.max(np.abs(acf[cheb == d]))) for d in range(1, L + 1)]
    floor = _CORR_THRESHOLD_SE * se
    if ring_max[0] <= max(_INDEPENDENT_THRESHOLD, floor):
        return 0, 1, 1
    length = max(d for d in range(1, L + 1) if d == 1 or ring_max[d - 1] > max(_LENGTH_THRESHOLD, floor))
    train = min(2 * length + 3, 2 * L + 1)
    return length, train, min(3, train)


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
    from .axes import SampleLayout, default_channel_mode, to_samples, validate_axes

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
