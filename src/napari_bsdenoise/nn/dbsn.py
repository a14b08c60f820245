"""D-BSN: a dilated blind-spot network with a learned noise model (Wu et al., ECCV 2020, brief §5).

The blind-spot part is a centre-masked ``k x k`` convolution followed only by
1x1 convolutions and ``3 x 3`` convolutions dilated by ``(k + 1) / 2``.  Every
offset the network can reach is ``m + (k + 1) / 2 * j`` with ``0 < |m|_inf <= (k - 1) / 2``,
which is never 0: the blind spot is exactly the centre pixel, in one pass (no
rotations, no pooling).  Two branches (``k = 3`` and ``k = 5``, dilations 2 and 3)
are concatenated, as in the official network, but with light residual blocks
(1x1 -> dilated 3x3 -> 1x1) instead of 96-channel Inception blocks, so the
``tiny`` preset trains at a useful rate on a CPU.

Per pixel and channel the network predicts

* ``mu``: the blind-spot estimate of the clean value (from the neighbours only);
* ``var_mu``: the uncertainty of ``mu`` (a 1x1 head on the blind features);
* ``var_n``: the noise variance, a pixel-wise function of the signal (a 1x1
  network on ``mu``: a learned signal-dependent noise-level function, e.g.
  Poisson-Gaussian ``a * x + b``, in the normalised units the network works in).

The posterior mean of the clean value given ``mu`` and the noisy pixel ``y`` is
``(var_n * mu + var_mu * y) / (var_mu + var_n)``: where the network is unsure
(edges, fine detail) the pixel's own value is let back in.  ``forward(x, 0)``
returns that fused estimate (the centre pixel is seen: a non-blind output) and
``forward(x, 1)`` the blind-spot ``mu`` alone.  Channels are independent
(diagonal covariances).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .shifted import NEGATIVE_SLOPE, init_weights

MIN_VARIANCE = 1e-4  # in normalised units (the data's std is 1): a floor that keeps the NLL finite
BRANCH_KERNELS = (3, 5)
DILATION_CYCLE = (1, 2, 4)  # block dilations: multiples of the branch's base keep the blind spot


class CentreMaskedConv2d(nn.Conv2d):
    """A ``k x k`` convolution whose centre tap is always zero (the pixel itself is never seen)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(1, 1, kernel_size, kernel_size)
        mask[..., kernel_size // 2, kernel_size // 2] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class DilatedBlock(nn.Module):
    """Residual 1x1 -> dilated 3x3 -> 1x1 block (offsets stay on the dilation's lattice)."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        inner = max(8, width // 2)
        self.body = nn.Sequential(
            nn.Conv2d(width, inner, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv2d(inner, inner, 3, padding=dilation, dilation=dilation),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv2d(inner, width, 1),
        )

    def forward(self, x):
        return F.leaky_relu(x + self.body(x), NEGATIVE_SLOPE)


class Branch(nn.Module):
    def __init__(self, width: int, kernel: int, blocks: int):
        super().__init__()
        self.kernel = kernel
        self.dilation = (kernel + 1) // 2
        self.masked = CentreMaskedConv2d(width, width, kernel)
        self.pre = nn.Sequential(nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True), nn.Conv2d(width, width, 1),
                                 nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True))
        self.dilations = [self.dilation * DILATION_CYCLE[i % len(DILATION_CYCLE)] for i in range(blocks)]
        self.blocks = nn.Sequential(*[DilatedBlock(width, d) for d in self.dilations])
        self.post = nn.Conv2d(width, width, 1)

    def forward(self, x):
        return self.post(self.blocks(self.pre(self.masked(x))))

    @property
    def radius(self) -> int:
        return self.kernel // 2 + sum(self.dilations)


def _mlp1x1(n_in: int, width: int, n_out: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    c = n_in
    for _ in range(layers - 1):
        mods += [nn.Conv2d(c, width, 1), nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)]
        c = width
    mods.append(nn.Conv2d(c, n_out, 1))
    return nn.Sequential(*mods)


#: The variance heads predict a log-variance scaled by this gain: Adam then moves a log-variance by
#: up to ``LOG_VARIANCE_GAIN * lr`` per step, so a few hundred steps span decades of noise level.
LOG_VARIANCE_GAIN = 8.0
MAX_LOG_VARIANCE = 8.0


def _variance(z: torch.Tensor) -> torch.Tensor:
    """Positive, finite variance from a head's output (exp of a clamped log-variance, plus a floor)."""
    return torch.exp(torch.clamp(LOG_VARIANCE_GAIN * z.float(), max=MAX_LOG_VARIANCE)) + MIN_VARIANCE


class DBSN(nn.Module):
    """Dilated blind-spot network with uncertainty and noise-level heads.

    Parameters
    ----------
    in_channels, out_channels : int
        1 for grey/fluorescence, 3 for RGB (channels modelled independently).
    width : int
        Feature channels of each branch (96 in the official network).
    depth : int
        Dilated residual blocks per branch (8 in the official network).
    """

    multiple = 1  # no pooling: any tile start reproduces the untiled result

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 32, depth: int = 4):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if out_channels != in_channels:
            raise ValueError("D-BSN fuses its prediction with the noisy input: out_channels must equal in_channels")
        self.channels = in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True))
        self.branches = nn.ModuleList([Branch(width, k, depth) for k in BRANCH_KERNELS])
        self.fuse = nn.Sequential(
            nn.Conv2d(len(BRANCH_KERNELS) * width, width, 1), nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv2d(width, width, 1), nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )
        self.mu_head = nn.Conv2d(width, in_channels, 1)
        hidden = max(16, width // 2)
        self.var_mu_head = _mlp1x1(width, hidden, in_channels, 3)  # sigma_mu net (blind features)
        self.noise_net = _mlp1x1(in_channels, 16, in_channels, 4)  # sigma_n net: pixel-wise function of mu
        self._init()

    def _init(self):
        init_weights(self, last=self.mu_head)
        with torch.no_grad():
            for head in (self.var_mu_head[-1], self.noise_net[-1]):
                head.weight.mul_(0.1 / LOG_VARIANCE_GAIN)
        self.set_initial_variances(0.1, 0.1)

    def set_initial_variances(self, var_mu: float, var_n: float) -> None:
        """Start the heads near these variances (normalised units), e.g. from a noise estimate."""
        with torch.no_grad():
            for head, v in ((self.var_mu_head[-1], var_mu), (self.noise_net[-1], var_n)):
                v = min(max(float(v), 2 * MIN_VARIANCE), 100.0)
                head.bias.fill_(math.log(v - MIN_VARIANCE) / LOG_VARIANCE_GAIN)

    # -- the parts ----------------------------------------------------------------------------
    def blind(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, features)``: the blind-spot prediction and the blind mid-level features."""
        s = self.stem(x)
        feats = self.fuse(torch.cat([b(s) for b in self.branches], dim=1))
        return self.mu_head(feats), feats

    def variances(self, mu: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(var_mu, var_n)`` in float32 (exp of a clamped log-variance plus a floor: positive and finite)."""
        return _variance(self.var_mu_head(feats)), _variance(self.noise_net(mu))

    def parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every per-pixel quantity: ``mu``, ``var_mu``, ``var_n`` and the posterior mean ``fused``."""
        mu, feats = self.blind(x)
        var_mu, var_n = self.variances(mu, feats)
        return {"mu": mu, "var_mu": var_mu, "var_n": var_n, "fused": fuse(mu, x, var_mu, var_n)}

    def forward(self, x: torch.Tensor, blind_spot: int = 0) -> torch.Tensor:
        """The posterior-mean (fused) estimate for ``blind_spot=0``, the blind-spot ``mu`` for ``1``."""
        if blind_spot not in (0, 1):
            raise ValueError(f"D-BSN has a fixed 1-pixel blind spot: blind_spot must be 0 (fused) or 1, "
                             f"got {blind_spot!r}")
        mu, feats = self.blind(x)
        if blind_spot == 1:
            return mu
        var_mu, var_n = self.variances(mu, feats)
        return fuse(mu, x, var_mu, var_n)

    def receptive_radius(self, blind_spot: int = 0) -> int:
        """Chebyshev radius beyond which input pixels cannot influence an output pixel (exact)."""
        return max(b.radius for b in self.branches)


def fuse(mu: torch.Tensor, y: torch.Tensor, var_mu: torch.Tensor, var_n: torch.Tensor) -> torch.Tensor:
    """Posterior mean of N(mu, var_mu) prior and N(x, var_n) noise given ``y`` (per pixel and channel)."""
    w = var_mu / (var_mu + var_n)  # weight of the noisy pixel
    return mu.float() + w * (y.float() - mu.float())


def gaussian_nll(y: torch.Tensor, mu: torch.Tensor, var_mu: torch.Tensor, var_n: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (without the constant) of ``y`` under N(mu, var_mu + var_n).

    Closed form for independent channels: ``0.5 * ((y - mu)^2 / v + log v)``; ``v`` is
    floored by :data:`MIN_VARIANCE` (no inverses of small numbers).
    """
    v = var_mu + var_n
    return 0.5 * ((y.float() - mu.float()) ** 2 / v + torch.log(v)).mean()



def constrained_nll(y: torch.Tensor, mu: torch.Tensor, var_mu: torch.Tensor, var_n: torch.Tensor) -> torch.Tensor:
    """D-BSN's constrained objective: the NLL with ``log(var_mu + var_n)`` replaced by its upper bound
    ``log var_n + var_mu / var_n`` (per pixel and channel, mean over all; no inverses of small numbers).

    The plain NLL only identifies the sum ``var_mu + var_n``; the bound breaks the tie in favour of the
    noise, so ``var_mu`` stays near 0 where the blind-spot mean is as good as it gets for that intensity
    and grows only where the context says it is worse (edges, fine detail).
    """
    r2 = (y.float() - mu.float()) ** 2
    return 0.5 * (r2 / (var_mu + var_n) + torch.log(var_n) + var_mu / var_n).mean()
