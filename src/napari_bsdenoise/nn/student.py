"""Non-blind student UNets for multi-teacher distillation (AT-BSN (D), Chen et al. 2024, §3.5).

A student is the teacher's UNet topology with every blind-spot shift turned
off, one pass instead of four rotations, and a 1x1 output conv instead of the
384-channel fusion head: about 4-7x cheaper than its teacher.  It sees the
pixel it predicts, which is harmless because it learns from the teacher's
outputs, never from the noisy pixel itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shifted import ShiftUNet, init_weights


class StudentUNet(nn.Module):
    """Plain (centred-convolution) UNet mapping ``C`` channels to ``C`` channels.

    Parameters
    ----------
    in_channels, out_channels : int
        1 for grey/fluorescence, 3 for RGB.
    width, depth : int
        Encoder width and pooling levels, as for :class:`~.atbsn.ATBSN`; with the
        teacher's own width and depth the UNet weights can be copied from it
        (:meth:`warm_start`).
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 48, depth: int = 5):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.unet = ShiftUNet(in_channels, width=width, depth=depth, blind=False)
        self.out = nn.Conv2d(self.unet.out_channels, out_channels, 1)
        init_weights(self, last=self.out)

    @property
    def multiple(self) -> int:
        return self.unet.multiple

    def forward(self, x: torch.Tensor, blind_spot: int = 0) -> torch.Tensor:
        # ``blind_spot`` is accepted for a uniform calling convention with ATBSN; a student is non-blind.
        h, w = x.shape[-2:]
        return self.out(self.unet(pad_to_multiple(x, self.multiple)))[:, :, :h, :w]

    def receptive_radius(self, blind_spot: int = 0) -> int:
        """Chebyshev radius beyond which input pixels cannot influence an output pixel: ``5 * 2**depth - 3``
        (one pixel per centred 3x3 convolution at its scale: enc0, then a convolution and a 2x2 pooling
        per level, the bottleneck, two convolutions per decoder level; probe-tested).
        """
        return receptive_radius(self.unet.depth)

    def warm_start(self, teacher: nn.Module) -> int:
        """Copy the teacher's UNet weights where shapes match, except the last decoder block
        (as the AT-BSN code does); returns the number of tensors copied."""
        return load_matching(self.unet, teacher.unet.state_dict(), skip=f"dec.{self.unet.depth - 1}.")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` padded at the bottom and right to sides that are multiples of ``multiple``: in the image frame,
    so tiles stay on the untiled pooling grid; by reflection (a non-blind network may see any pixel),
    which avoids a dark border."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if (ph < h and pw < w) else "replicate")


def receptive_radius(depth: int) -> int:
    """The student UNet's exact receptive radius, ``5 * 2**depth - 3`` (:meth:`StudentUNet.receptive_radius`)."""
    return 5 * 2**depth - 3


def load_matching(module: nn.Module, state: dict, *, skip: str | None = None) -> int:
    """Copy the tensors of ``state`` into ``module`` where names and shapes match (names starting
    with ``skip`` excepted); returns the number copied."""
    dst = module.state_dict()
    same = {k: v.detach().clone() for k, v in state.items()
            if k in dst and dst[k].shape == v.shape and not (skip and k.startswith(skip))}
    dst.update(same)
    module.load_state_dict(dst)
    return len(same)
