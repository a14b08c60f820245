"""Fusing a blind-spot prediction with the noisy input where the prediction misses detail.

A blind-spot network never sees the pixel it predicts, so where that pixel carries detail that its
surroundings do not (fine texture, thin lines, and everything when the noise is weak next to the
image's own variation), its prediction is wrong by more than the noise.  The residual
``r = x - f`` (noisy input minus prediction) then holds more than noise.  A local Wiener gain on
the residual puts back the part of it that noise does not explain:

    out = f + W * r,   W = max(0, 1 - margin / v),   v = local mean of r**2 / noise variance

``v`` is the residual's energy in a ``window x window`` neighbourhood relative to the noise
variance expected at that intensity (the noise curve of :mod:`napari_bsdenoise.noise`): about 1
where the prediction is right (``W = 0``, the prediction is kept), large where it misses detail
(``W`` near 1, the noisy pixel is kept).  ``margin`` is ``1 + z * sqrt(2 / n_eff)``: ``z``
standard errors of a local mean of squared noise over ``n_eff`` effectively independent samples
(fewer for spatially correlated noise), so noise alone almost never reopens the gate.

The measured effect (docs/benchmarks.md): +2 to +3 dB on mild DSLR noise, where the blind-spot
output alone is below the noisy input; a few tenths of a dB on strong smartphone noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Side of the neighbourhood over which the residual energy is averaged.
DEFAULT_WINDOW = 11
#: Standard errors of the local noise energy the residual must exceed before the noisy pixel is used.
DEFAULT_Z = 2.0


@dataclass(frozen=True)
class FusionParams:
    """What the fusion needs, in the network's normalised units (picklable, for dask workers).

    ``intensities`` and ``variances`` are ``(C, K)`` knots of the noise variance as a function of
    the (normalised) intensity, one row per network input channel; ``margin`` and ``window`` as in
    the module docstring.
    """

    intensities: tuple
    variances: tuple
    window: int
    margin: float


def noise_knots(noise: dict, mean, std, n_channels: int) -> tuple[tuple, tuple]:
    """``(intensities, variances)``: per network input channel, the knots of the noise variance as a
    function of the intensity, in the normalised units of ``mean``/``std`` (per data channel), from a
    model's noise record (``config.noise``).  With one network channel for several data channels
    (independent channels) all share the largest normalised variance at each intensity, which keeps
    a test against the noise conservative for every channel."""
    from ..noise import NoiseCorrelation

    est = NoiseCorrelation.from_dict(noise)
    mean, std = np.atleast_1d(np.asarray(mean, float)), np.atleast_1d(np.asarray(std, float))
    curves = []
    for c in range(len(mean)):
        if est.noise_curve:
            mu, var = (np.asarray(v, float) for v in est.noise_curve[min(c, len(est.noise_curve) - 1)])
        else:  # models written before the curve existed: the average level
            mu, var = np.zeros(1), np.full(1, est.noise_std**2)
        curves.append(((mu - mean[c]) / std[c], np.maximum(var, 1e-12) / std[c] ** 2))
    if n_channels == 1 and len(curves) > 1:
        knots = np.unique(np.concatenate([mu for mu, _ in curves]))
        curves = [(knots, np.max([np.interp(knots, mu, var) for mu, var in curves], axis=0))]
    k = max(len(mu) for mu, _ in curves)
    rows_mu, rows_var = [], []
    for mu, var in curves:  # pad to a common length by repeating the last knot
        rows_mu.append(tuple(np.pad(mu, (0, k - len(mu)), mode="edge").tolist()))
        rows_var.append(tuple(np.pad(var, (0, k - len(var)), mode="edge").tolist()))
    return tuple(rows_mu), tuple(rows_var)


def fusion_params(noise: dict, mean, std, n_channels: int, *, window: int = DEFAULT_WINDOW,
                  z: float = DEFAULT_Z) -> FusionParams:
    """:class:`FusionParams` from a model's noise record (``config.noise``) and normalisation.

    ``mean``/``std`` are per data channel; ``n_channels`` is the network's input channels (see
    :func:`noise_knots`).
    """
    rows_mu, rows_var = noise_knots(noise, mean, std, n_channels)
    acf = np.asarray(noise["autocorrelation"], float)
    n_eff = window * window / max(float(np.sum(acf**2)), 1.0)
    return FusionParams(rows_mu, rows_var, int(window), 1.0 + z * math.sqrt(2.0 / n_eff))


def noise_variance(x: torch.Tensor, params) -> torch.Tensor:
    """The noise variance at intensity ``x`` (N, C, Y, X) from ``params.intensities``/``variances``."""
    mu = torch.tensor(params.intensities, dtype=torch.float32, device=x.device)
    var = torch.tensor(params.variances, dtype=torch.float32, device=x.device)
    if mu.shape[0] != x.shape[1]:
        mu, var = mu[:1].expand(x.shape[1], -1), var[:1].expand(x.shape[1], -1)
    return _interp(x, mu, var)


def _interp(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``var(x)`` per channel (constant beyond the knots); x is (N, C, Y, X),
    mu/var are (C, K) with increasing mu along K."""
    n, c, h, w = x.shape
    flat = x.permute(1, 0, 2, 3).reshape(c, -1).contiguous()
    if mu.shape[1] == 1:
        out = var[:, :1].expand(c, flat.shape[1])
    else:
        idx = torch.searchsorted(mu.contiguous(), flat).clamp(1, mu.shape[1] - 1)
        x0, x1 = mu.gather(1, idx - 1), mu.gather(1, idx)
        y0, y1 = var.gather(1, idx - 1), var.gather(1, idx)
        t = ((flat - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
        out = y0 + t * (y1 - y0)
    return out.reshape(c, n, h, w).permute(1, 0, 2, 3)


def fuse(x: torch.Tensor, f: torch.Tensor, params: FusionParams) -> torch.Tensor:
    """``f + W * (x - f)``: the blind-spot prediction ``f`` with the noisy input ``x`` put back where
    the residual exceeds the noise (both ``(N, C, Y, X)``, normalised units)."""
    with torch.autocast(device_type=f.device.type, enabled=False):  # a variance ratio: keep fp32
        return _fuse(x.float(), f.float(), params)


def _fuse(x: torch.Tensor, f: torch.Tensor, params: FusionParams) -> torch.Tensor:
    r = x - f
    energy = (r * r / noise_variance(f, params)).mean(dim=1, keepdim=True)
    k = params.window
    v = F.avg_pool2d(energy, k, stride=1, padding=k // 2, count_include_pad=False)
    gain = (1.0 - params.margin / v.clamp_min(1e-12)).clamp(0.0, 1.0)
    return f + gain * r


class FusedNetwork(nn.Module):
    """A blind-spot network whose output is fused with its input (:func:`fuse`); blind spot 0
    (non-blind) is passed through unchanged.  The receptive radius grows by half a window."""

    def __init__(self, network: nn.Module, params: FusionParams):
        super().__init__()
        self.network = network
        self.params = params
        self.multiple = getattr(network, "multiple", 1)

    def receptive_radius(self, blind_spot: int = 1) -> int:
        return self.network.receptive_radius(blind_spot) + self.params.window // 2

    def forward(self, x: torch.Tensor, blind_spot: int = 1) -> torch.Tensor:
        f = self.network(x, blind_spot)
        if blind_spot == 0:
            return f
        return fuse(x, f, self.params)
