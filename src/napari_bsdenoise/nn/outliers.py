"""Hot pixels, dead pixels and other isolated outliers: found against the noise model, replaced
before the network sees them.

sCMOS and EMCCD cameras have hot pixels by the hundred, and cosmic rays or salt-and-pepper noise
add more.  A blind-spot network does not see the pixel it predicts, so it removes an isolated
outlier by itself, but everything that puts the noisy input back (the noisy-input fusion, D-BSN's
posterior mean, a non-blind student, blind spot 0) puts the outlier back too, and each outlier also
sits in its neighbours' receptive fields.  So outliers are repaired in the input, once, for every path.

A pixel is an outlier when all hold:

* it differs from the median of the 16 pixels at Chebyshev distance 2 (the ring around its 3x3
  neighbourhood, so clusters of up to 2x2 pixels do not hide each other) by more than ``z_high``
  (default 6) noise standard deviations at that intensity (the model's measured noise curve);
* at most ``max_cluster`` (4) pixels of its 3x3 neighbourhood, itself included, differ from their
  own ring medians by more than ``z_low`` (3) standard deviations;
* its ring is homogeneous: none of the 16 ring pixels differs from the ring median by more than
  ``z_ring`` (4) standard deviations, or by more than half as much as the pixel itself does (an
  outlier far above the texture around it).

The last two keep real structure: a thin line continues through the ring of each of its pixels,
ends included, an edge or a corner crosses it, and a diffraction-limited spot lights up the 3x3
neighbourhood, while a hot pixel or a 2x2 cluster sits alone inside surroundings that vary much
less than it stands out.  The tests err on keeping data.
Outliers are replaced by their ring median (in a copy: the user's data is never changed).
A real object of at most 2x2 pixels that stands 6 sigma above its surroundings cannot be told from
a hot cluster by one image and is removed too (``hot_pixels="keep"`` keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .fusion import noise_knots, noise_variance

Z_HIGH = 6.0
Z_LOW = 3.0
Z_RING = 4.0
MAX_CLUSTER = 4
RADIUS = 3  # ring median (2) + the 3x3 cluster count of ring tests (1)
_RING = [(dy, dx) for dy in range(5) for dx in range(5) if not (1 <= dy <= 3 and 1 <= dx <= 3)]
# var(x - median of 16 noisy values) ~ var(x) * (1 + pi / (2 * 16)) for independent noise
_MEDIAN_VARIANCE = 1.0 + 3.14159 / 32


@dataclass(frozen=True)
class OutlierParams:
    """The noise curve (normalised units, as :class:`~napari_bsdenoise.nn.fusion.FusionParams`) and
    the thresholds of the module docstring (picklable, for dask workers)."""

    intensities: tuple
    variances: tuple
    z_high: float = Z_HIGH
    z_low: float = Z_LOW
    z_ring: float = Z_RING
    max_cluster: int = MAX_CLUSTER


def outlier_params(noise: dict, mean, std, n_channels: int) -> OutlierParams:
    """:class:`OutlierParams` from a model's noise record (``config.noise``) and normalisation."""
    mu, var = noise_knots(noise, mean, std, n_channels)
    return OutlierParams(mu, var)


def _odd_even_merge(lo: int, hi: int, r: int):
    step = 2 * r
    if step < hi - lo:
        yield from _odd_even_merge(lo, hi, step)
        yield from _odd_even_merge(lo + r, hi, step)
        yield from ((i, i + r) for i in range(lo + r, hi - r, step))
    else:
        yield lo, lo + r


def _odd_even_merge_sort(lo: int, hi: int):
    """Batcher's odd-even merge sort of wires ``lo..hi`` (inclusive, a power of two of them): comparators
    ``(i, j)`` that put the smaller value on ``i``."""
    if hi > lo:
        mid = lo + (hi - lo) // 2
        yield from _odd_even_merge_sort(lo, mid)
        yield from _odd_even_merge_sort(mid + 1, hi)
        yield from _odd_even_merge(lo, hi, 1)


def _ring_plan(outputs=(0, 7, 8, 15)) -> list[tuple[int, int, bool, bool]]:
    """The 16-input sorting network pruned to what ``outputs`` (min, the middle two, max) depend on:
    ``(i, j, keep_min, keep_max)`` per comparator."""
    need, plan = set(outputs), []
    for i, j in reversed(list(_odd_even_merge_sort(0, 15))):
        if i in need or j in need:
            plan.append((i, j, i in need, j in need))
            need |= {i, j}
    return plan[::-1]


_RING_PLAN = _ring_plan()


def ring_median(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the median of the 16 pixels at Chebyshev distance 2 (edges replicated), and the
    largest absolute difference between one of them and that median.

    A sorting network of elementwise min/max over 16 shifted views (53 comparators) instead of sorting
    an unfolded copy: the same values, 25x faster on the CPU and 16x rather than 25x the memory."""
    n, c, h, w = x.shape
    xp = F.pad(x.reshape(n * c, 1, h, w), (2, 2, 2, 2), mode="replicate")[:, 0]
    v = [xp[:, dy: dy + h, dx: dx + w] for dy, dx in _RING]
    for i, j, keep_min, keep_max in _RING_PLAN:
        a, b = v[i], v[j]
        if keep_min:
            v[i] = torch.minimum(a, b)
        if keep_max:
            v[j] = torch.maximum(a, b)
    mid = (v[7] + v[8]) * 0.5  # the mean of the two middle values (torch.median takes the lower)
    spread = torch.maximum(v[15] - mid, mid - v[0])
    return mid.reshape(n, c, h, w), spread.reshape(n, c, h, w)


def find_outliers(x: torch.Tensor, params: OutlierParams) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask, ring_median)`` of ``x`` (N, C, Y, X, normalised units): True where a pixel is an
    outlier (module docstring).  A volume (N, C, Z, Y, X) is searched plane by plane: each Z plane is
    one camera frame, and a camera's hot pixels sit at the same Y-X in every plane, so the planes
    above and below cannot tell them from structure."""
    if x.ndim == 5:
        n, c, d, h, w = x.shape
        mask, med = find_outliers(x.transpose(1, 2).reshape(n * d, c, h, w), params)
        back = lambda t: t.reshape(n, d, c, h, w).transpose(1, 2)  # noqa: E731
        return back(mask), back(med)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        med, spread = ring_median(x)
        sigma = (noise_variance(med, params) * _MEDIAN_VARIANCE).clamp_min(1e-12).sqrt()
        z = (x - med).abs() / sigma
        n, c, h, w = x.shape
        low = (z > params.z_low).float().reshape(n * c, 1, h, w)
        cluster = F.conv2d(F.pad(low, (1, 1, 1, 1)), torch.ones(1, 1, 3, 3, device=x.device)).reshape(n, c, h, w)
        dev = (x - med).abs()
        flat = (spread <= params.z_ring * sigma) | (2 * spread <= dev)
        mask = (z > params.z_high) & (cluster <= params.max_cluster) & flat
    return mask, med


def repair(x: torch.Tensor, params: OutlierParams) -> torch.Tensor:
    """``x`` with its outliers replaced by their ring medians (a new tensor)."""
    mask, med = find_outliers(x, params)
    return torch.where(mask, med.to(x.dtype), x)


class OutlierGuard(nn.Module):
    """A network whose input is repaired (:func:`repair`) before it runs, at every blind spot; the
    receptive radius grows by :data:`RADIUS`."""

    def __init__(self, network: nn.Module, params: OutlierParams):
        super().__init__()
        self.network = network
        self.params = params
        self.multiple = getattr(network, "multiple", 1)
        self.spatial_dims = getattr(network, "spatial_dims", 2)
        self.plane_wise = getattr(network, "plane_wise", False)

    def receptive_radius(self, blind_spot: int = 1) -> int:
        return self.network.receptive_radius(blind_spot) + RADIUS

    def receptive_radii(self, blind_spot=1) -> tuple[int, int, int]:
        """A 3-D network's ``(z, y, x)`` radii: the repair is in-plane, so only Y and X grow."""
        radii = getattr(self.network, "receptive_radii", None)
        z, y, x = radii(blind_spot) if radii is not None else (self.network.receptive_radius(blind_spot),) * 3
        return z, y + RADIUS, x + RADIUS

    def forward(self, x: torch.Tensor, blind_spot: int = 1, **kwargs) -> torch.Tensor:
        return self.network(repair(x, self.params), blind_spot, **kwargs)  # (planes= for the 2.5-D network)


def repair_samples(data, params: OutlierParams):
    """``(repaired copy, outlier mask)`` of ``(N, C, Y, X)`` numpy data (or ``(N, C, Z, Y, X)`` volumes,
    plane by plane), one sample at a time (the ring median takes 16 times a sample's memory)."""
    import numpy as np

    out = np.array(data, dtype=np.float32, copy=True)
    mask = np.zeros(out.shape, dtype=bool)
    with torch.no_grad():
        for i in range(len(out)):
            x = torch.from_numpy(out[i : i + 1])
            m, med = find_outliers(x, params)
            mask[i : i + 1] = m.numpy()
            out[i : i + 1] = torch.where(m, med, x).numpy()
    return out, mask
