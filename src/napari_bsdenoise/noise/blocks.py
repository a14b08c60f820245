"""Blocks of the noisy data: analysis windows, detrended blocks and the usable ones, lag products."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detrend import DETREND_ORDER, design

# --- tuning constants (calibrated on real noisy/clean pairs and synthetic noise) ---
_MAX_STRATA = 8  # intensity strata (noise is often signal dependent)
_MIN_STRATUM_BLOCKS = 32
_MAX_CANDIDATE_BLOCKS = 16384  # per channel; bigger data are subsampled at random
_MAX_CLIPPED_FRACTION = 0.9  # blocks with more pixels at the data min/max are saturated (clipping is
# pointwise, so partly clipped noise stays uncorrelated; dark photon-counting backgrounds are mostly 0)
_MIN_STD_STEPS = 0.5  # quantised data: blocks whose std is below this many steps are skipped
MIN_BLOCKS = 4
_WINDOW_BLOCKS = 64  # blocks are analysed in grids of at most 64 x 64 blocks (1024 px at block 16)


# ----------------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------------


def _quantisation_step(values: np.ndarray) -> float:
    """Spacing of the value lattice when the data are quantised (integers, 8-bit scaled...), else 0."""
    u = np.unique(values)
    if u.size < 2 or u.size > 0.5 * values.size:
        return 0.0
    return float(np.min(np.diff(u)))


def lag_sums(z: np.ndarray, lags: list[tuple[int, int]]) -> np.ndarray:
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
class Blocks:
    """Detrended blocks of one channel and what is known about each."""

    resid: np.ndarray  # (M, n) residuals of the polynomial fit
    var: np.ndarray  # (M,) residual variance (mean square)
    means: np.ndarray  # (M,) block mean
    valid: np.ndarray  # (M,) usable: not clipped, dead or below the quantisation step
    grid: tuple  # (windows, wy, wx): the blocks form these grids, in C order
    strata: list  # indices of the valid blocks, by intensity


def prepare_channel(data: np.ndarray, block: int, max_lag: int, rng: np.random.Generator) -> Blocks | None:
    """Detrend the blocks of one channel and flag the usable ones."""
    win = _windows(data, block, rng)
    nw, wy, wx = win.shape[:3]
    flat = win.reshape(nw * wy * wx, block * block)
    _, q = design(block, max_lag, DETREND_ORDER)
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
    if np.count_nonzero(valid) < MIN_BLOCKS:  # nothing clean enough: use anything with some variance
        valid = alive
    if not np.any(valid):
        return None

    vidx = np.flatnonzero(valid)
    order = vidx[np.argsort(means[vidx], kind="stable")]
    n_strata = int(np.clip(len(order) // _MIN_STRATUM_BLOCKS, 1, _MAX_STRATA))
    return Blocks(resid, var, means, valid, (nw, wy, wx), np.array_split(order, n_strata))
