"""Laine-style "upward-looking" building blocks and the shifted UNet.

Every layer here is causal along rows: output row ``r`` depends only on input
rows ``<= r``.  Stacking them gives each output pixel a receptive field in the
closed upper half-plane (its own row included).  Rotating the input four ways,
shifting the features down by ``d`` rows and fusing the four branches then
hides a ``(2d-1) x (2d-1)`` square around every pixel (see :mod:`.atbsn`).

With ``blind=False`` the same modules are ordinary centred layers, which gives
the non-blind UNet used by students.  ``ndim=3`` builds the same UNet from 3x3x3 convolutions for
volumes ``(N, C, Z, Y, X)``, still causal along Y (the 3-D AT-BSN permutes axes to look along Z and X,
:mod:`.atbsn3d`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NEGATIVE_SLOPE = 0.1


class ShiftConv2d(nn.Conv2d):
    """3x3 convolution that only looks at the current and the two rows above."""

    def __init__(self, in_channels: int, out_channels: int, *, blind: bool = True):
        super().__init__(in_channels, out_channels, 3, padding=0)
        self.blind = blind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # zero padding (not reflect): a reflected row above would copy pixels from
        # below into the receptive field and break the blind spot.
        x = F.pad(x, (1, 1, 2, 0) if self.blind else (1, 1, 1, 1))
        return super().forward(x)


class ShiftConv3d(nn.Conv3d):
    """3x3x3 convolution that only looks at the current and the two rows (Y) above."""

    def __init__(self, in_channels: int, out_channels: int, *, blind: bool = True):
        super().__init__(in_channels, out_channels, 3, padding=0)
        self.blind = blind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 2, 0, 1, 1) if self.blind else (1, 1, 1, 1, 1, 1))
        return super().forward(x)


def shift_down(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Shift features down (along Y, the second-last axis) by ``rows`` (zeros enter at the top, the
    bottom rows drop out); 4-D and 5-D tensors."""
    if rows == 0:
        return x
    return F.pad(x, (0, 0, rows, 0))[..., : x.shape[-2], :]


class ShiftPool(nn.Module):
    """2x2 (2x2x2 for volumes) max-pool preceded by a one-row shift so pooling stays causal."""

    def __init__(self, *, blind: bool = True, ndim: int = 2):
        super().__init__()
        self.blind = blind
        self.pool = F.max_pool3d if ndim == 3 else F.max_pool2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blind:
            x = shift_down(x, 1)
        return self.pool(x, 2)


class ShiftUNet(nn.Module):
    """The Laine et al. (2019) UNet with configurable width and depth.

    ``depth`` pooling levels (5 in the paper), encoder width ``width`` (48) and
    decoder width ``2 * width`` (96); the raw input is concatenated before the
    last decoder block.  Output: ``2 * width`` channels at full resolution.
    Inputs must have H and W (and Z, for ``ndim=3``) divisible by ``2 ** depth``.
    """

    def __init__(self, in_channels: int, *, width: int = 48, depth: int = 5, blind: bool = True, ndim: int = 2):
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        self.depth = depth
        self.blind = blind
        self.ndim = ndim
        conv_type = ShiftConv3d if ndim == 3 else ShiftConv2d
        w, w2 = width, 2 * width
        act = lambda: nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)  # noqa: E731
        conv = lambda i, o: conv_type(i, o, blind=blind)  # noqa: E731
        self.enc0 = nn.Sequential(conv(in_channels, w), act())
        self.enc = nn.ModuleList(nn.Sequential(conv(w, w), act(), ShiftPool(blind=blind, ndim=ndim)) for _ in range(depth))
        self.bottom = nn.Sequential(conv(w, w), act())
        dec = []
        for level in range(depth):
            up = w if level == 0 else w2  # the deepest block upsamples the bottleneck
            skip = in_channels if level == depth - 1 else w  # the last block sees the raw input
            cin = up + skip
            dec.append(nn.Sequential(conv(cin, w2), act(), conv(w2, w2), act()))
        self.dec = nn.ModuleList(dec)
        self.out_channels = w2

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        n = self.enc0(x)
        for i, block in enumerate(self.enc):
            n = block(n)
            if i < self.depth - 1:
                skips.append(n)
        n = self.bottom(n)
        for block in self.dec:
            n = F.interpolate(n, scale_factor=2, mode="nearest")
            n = block(torch.cat([n, skips.pop()], dim=1))
        return n


def init_weights(module: nn.Module, last: nn.Module | None = None) -> None:
    """He (Kaiming) initialisation for LeakyReLU(0.1), zero biases; linear gain for ``last``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, a=NEGATIVE_SLOPE, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if last is not None:
        nn.init.kaiming_normal_(last.weight, nonlinearity="linear")
