"""Noise statistics of the blocks: flat-block selection, noise level per intensity, per-channel estimate."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .blocks import MIN_BLOCKS, Blocks, lag_sums

# --- tuning constants (calibrated on real noisy/clean pairs and synthetic noise) ---
_STRATUM_QUANTILE = 0.25  # noise level of a stratum read from this quantile of its block variances
_ENVELOPE_QUANTILE = 0.3  # pinball quantile of the affine noise-level envelope fit
_ENVELOPE_FACTOR = 1.5  # strata further above the envelope than this are taken as textured
_FLAT_FRACTION = 0.1  # fraction of blocks (flattest neighbourhoods) used for the correlation ...
_MIN_FLAT_BLOCKS = 16  # ... but at least this many
_CUT_MARGIN = 1.2  # margin on the 99 % noise-only cut of a block's own variance


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


def _select_flat(bl: Blocks, dof: float) -> np.ndarray:
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
    if len(cand) >= MIN_BLOCKS:
        k = min(len(cand), max(int(math.ceil(_FLAT_FRACTION * len(cand))), _MIN_FLAT_BLOCKS))
        keep = cand[np.argsort(nb_max[cand], kind="stable")[:k]]
        own_cut = _chi2_quantile(dof, 0.99) / _chi2_quantile(dof, 0.5) * _CUT_MARGIN
        keep = keep[~(bl.var[keep] > own_cut * nb_med[keep])]
        if len(keep) >= MIN_BLOCKS:
            return keep
    # too small for neighbourhoods: fall back to the flattest blocks themselves
    vidx = np.flatnonzero(bl.valid)
    k = max(MIN_BLOCKS, int(math.ceil(_FLAT_FRACTION * len(vidx))))
    return vidx[np.argsort(bl.var[vidx], kind="stable")[:k]]


def _noise_variance(bl: Blocks, dof: float) -> tuple[float, np.ndarray, np.ndarray]:
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


def channel_estimate(bl: Blocks, block: int, lags, a: np.ndarray, dof: float):
    """(rho over the half-plane lags, noise variance C0, blocks used, (intensities, C0 per intensity))
    for one channel."""
    keep = _select_flat(bl, dof)
    z = bl.resid[keep] / np.sqrt(bl.var[keep])[:, None]
    cov = np.linalg.solve(a, lag_sums(z.reshape(-1, block, block), lags) / len(keep))
    if not cov[0] > 0:
        return None
    rho = cov / cov[0]
    a0 = float(a[0] @ rho)  # E[block mean square] = C0 * a0 / n
    if not a0 > 0:
        a0 = float(a[0, 0])
    scale = block * block / a0
    var, mu_s, v_s = _noise_variance(bl, dof)
    return rho, var * scale, len(keep), (mu_s, v_s * scale)
