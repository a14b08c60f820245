"""The per-block polynomial detrending and the exact removal of its bias on the lag products."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# --- tuning constants (calibrated on real noisy/clean pairs and synthetic noise) ---
DETREND_ORDER = 2  # polynomial order removed per block (2 = quadratic surface)


# ----------------------------------------------------------------------------------------------
# bias correction of the per-block polynomial fit
# ----------------------------------------------------------------------------------------------


def half_lags(max_lag: int) -> list[tuple[int, int]]:
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
def design(block: int, max_lag: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Matrix A with E[S_h] = sum_k A[h, k] C_k for the detrended block residuals, and the fit basis.

    S_h is the sum over a block of r_p r_{p+h} (r = residual after the
    polynomial fit, r = P n with P = I - Q Q^T), C_k the stationary noise
    autocovariance at lag k (assumed zero beyond ``max_lag``): E[r r^T] =
    P (sum_k C_k G_k) P with G_k the lag-k pattern, so A[h, k] is the sum of
    the lag-h entries of P G_k P.  Solving A C = S removes the bias of the fit.
    """
    lags = half_lags(max_lag)
    q = _poly_basis(block, order)
    pairs = [_lag_pairs(block, dy, dx) for dy, dx in lags]
    a = np.zeros((len(lags), len(lags)))
    for j, lag in enumerate(lags):
        pgp = _project(_lag_pattern(block, [lag], [1.0]), q)
        for i, (p, qq) in enumerate(pairs):
            a[i, j] = pgp[p, qq].sum()
    a.setflags(write=False)
    return a, q


def effective_dof(block: int, max_lag: int, order: int, rho_half: np.ndarray) -> float:
    """Effective chi-square degrees of freedom of a noise-only block's residual sum of squares."""
    _, q = design(block, max_lag, order)
    r = _project(_lag_pattern(block, half_lags(max_lag), rho_half), q)
    tr2 = float(np.sum(r * r))
    n = block * block
    dof = float(np.trace(r) ** 2 / tr2) if tr2 > 0 else float(n)
    return float(np.clip(dof, 2.0, n)) if np.isfinite(dof) else float(n)
