"""BSGD: the two time-conditioned branches of blind-spot guided diffusion (Cheng et al., arXiv 2509.16091).

Only the paper's abstract is verified (docs/bsgd.md): a *conventional* diffusion branch that models the
noisy images and a *blind-spot* diffusion branch whose clean-image estimate is semi-clean.  Both are
built here from the project's shifted-convolution UNet (:mod:`.shifted`):

* :class:`TimeShiftUNet` -- the shifted (or, with ``blind=False``, centred) UNet with FiLM time
  conditioning: a sinusoidal embedding of ``t`` goes through a small MLP to a per-channel scale and
  shift applied after every block.  The modulation is constant over space, so it adds no spatial
  path from any pixel to any other: a blind branch stays exactly as blind as without it (probe in
  tests/test_bsgd.py, at several ``t``).  The FiLM layers start at zero (the identity).
* :class:`TimeConvUNet` -- the conventional branch (one pass of the centred UNet + 1x1 output).
* :class:`TimeBlindSpotNet` -- the blind-spot branch: AT-BSN's four rotations, final shift and 1x1
  fusion head around a time-conditioned shifted UNet (any blind spot at sampling, as AT-BSN).
* :class:`BSGDNet` -- both branches in one module (``.conv`` and ``.bsn``) so a model saves and loads
  like any other.  Both predict the clean sample ``x0`` (here: the noisy image ``y``, the diffusion's
  data) from ``x_t`` (x0-parameterisation, see :mod:`napari_bsdenoise.methods.bsgd.sampling`).

Called like the other networks as ``net(x, blind_spot)`` it returns the blind-spot branch's estimate at
``t = 0`` (an ordinary blind-spot denoiser), so ``denoise`` and the tiling path accept a BSGD model;
the guided sampler calls :meth:`BSGDNet.branches`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .atbsn import ATBSN
from .shifted import ShiftUNet, init_weights
from .student import StudentUNet, load_matching

#: continuous time t in [0, 1] is embedded as 1000 t (the usual DDPM step range)
TIME_SCALE = 1000.0


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. / DDPM) of ``t`` with shape ``(B,)``: ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * TIME_SCALE)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class TimeEmbedding(nn.Module):
    """``t -> MLP(sinusoidal(t))``."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.dim))


class TimeShiftUNet(ShiftUNet):
    """:class:`ShiftUNet` with a FiLM (per-channel scale and shift) from a time embedding after every block."""

    def __init__(self, in_channels: int, *, width: int, depth: int, blind: bool, emb_dim: int):
        super().__init__(in_channels, width=width, depth=depth, blind=blind)
        w, w2 = width, 2 * width
        sizes = [w] * (depth + 2) + [w2] * depth  # enc0, enc blocks, bottom, dec blocks
        self.film = nn.ModuleList(nn.Linear(emb_dim, 2 * c) for c in sizes)
        for lin in self.film:  # identity at initialisation
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _mod(self, i: int, n: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film[i](emb).chunk(2, dim=1)
        return n * (1 + scale[:, :, None, None]) + shift[:, :, None, None]

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        if emb is None:
            raise ValueError("TimeShiftUNet needs a time embedding")
        if emb.shape[0] != x.shape[0]:  # rotations stacked on the batch axis: [rot a (B), rot b (B), ...]
            emb = emb.repeat(x.shape[0] // emb.shape[0], 1)
        skips = [x]
        n = self._mod(0, self.enc0(x), emb)
        for i, block in enumerate(self.enc):
            # conv + act, FiLM, then the (shifted) pool
            n = block[-1](self._mod(1 + i, block[:-1](n), emb))
            if i < self.depth - 1:
                skips.append(n)
        n = self._mod(self.depth + 1, self.bottom(n), emb)
        for j, block in enumerate(self.dec):
            n = F.interpolate(n, scale_factor=2, mode="nearest")
            n = self._mod(self.depth + 2 + j, block(torch.cat([n, skips.pop()], dim=1)), emb)
        return n


def _emb_dim(width: int) -> int:
    return max(16, 2 * width)


class TimeConvUNet(StudentUNet):
    """Conventional (non-blind) diffusion branch: ``x0_c(x_t, t)``."""

    def __init__(self, in_channels: int, out_channels: int | None = None, *, width: int, depth: int):
        super().__init__(in_channels, out_channels, width=width, depth=depth)
        self.time = TimeEmbedding(_emb_dim(width))
        self.unet = TimeShiftUNet(in_channels, width=width, depth=depth, blind=False, emb_dim=self.time.dim)
        init_weights(self.unet)  # convolutions only: the FiLM layers stay zero

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # image-frame padding (bottom/right), as StudentUNet
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return self.out(self.unet(x, self.time(t)))[:, :, :h, :w]


class TimeBlindSpotNet(ATBSN):
    """Blind-spot diffusion branch: ``x0_b(x_t, t)`` that never sees the pixel it predicts (for s >= 1)."""

    def __init__(self, in_channels: int, out_channels: int | None = None, *, width: int, depth: int):
        super().__init__(in_channels, out_channels, width=width, depth=depth)
        self.time = TimeEmbedding(_emb_dim(width))
        self.unet = TimeShiftUNet(in_channels, width=width, depth=depth, blind=True, emb_dim=self.time.dim)
        init_weights(self.unet)

    def forward(self, x: torch.Tensor, t: torch.Tensor, blind_spot: int = 1) -> torch.Tensor:  # type: ignore[override]
        return self.head_from_features(self.features(x, self.time(t)), blind_spot, tuple(x.shape[-2:]))


class BSGDNet(nn.Module):
    """The two BSGD branches (same width and depth) in one module.

    Parameters
    ----------
    in_channels, out_channels : int
        1 for grey/fluorescence, 3 for RGB.
    width, depth : int
        Encoder width and pooling levels of *each* branch (presets in :mod:`napari_bsdenoise.methods.bsgd.checks`).
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 16, depth: int = 3):
        super().__init__()
        self.conv = TimeConvUNet(in_channels, out_channels, width=width, depth=depth)
        self.bsn = TimeBlindSpotNet(in_channels, out_channels, width=width, depth=depth)

    @property
    def multiple(self) -> int:
        return max(self.conv.multiple, self.bsn.multiple)

    def branches(self, x: torch.Tensor, t: torch.Tensor, blind_spot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0_conv, x0_bsn)`` for ``x_t`` at times ``t`` (shape ``(B,)``, in [0, 1])."""
        return self.conv(x, t), self.bsn(x, t, blind_spot)

    def warm_start(self, guide: nn.Module) -> dict[str, int]:
        """Start both branches from a trained AT-BSN ``guide`` of the same width and depth.

        The blind-spot branch takes every guide tensor (its convolutions and fusion head; the time
        embedding and the FiLM layers, zero at initialisation, make it the guide at every ``t``); the
        conventional branch takes the guide's UNet as a distilled student does
        (:meth:`StudentUNet.warm_start`).  Returns the number of tensors copied per branch."""
        return {"bsn": load_matching(self.bsn, guide.state_dict()), "conv": self.conv.warm_start(guide)}

    def step_radius(self, blind_spot: int) -> int:
        """Receptive radius of one evaluation of both branches."""
        return max(self.conv.receptive_radius(0), self.bsn.receptive_radius(blind_spot))

    def forward(self, x: torch.Tensor, blind_spot: int = 1) -> torch.Tensor:
        """The blind-spot branch at ``t = 0``: a plain blind-spot denoiser (for ``denoise``/previews)."""
        t = torch.zeros(x.shape[0], device=x.device)
        return self.bsn(x, t, blind_spot)

    def receptive_radius(self, blind_spot: int = 1) -> int:
        return self.bsn.receptive_radius(blind_spot)
