"""Shared pieces of the inference-only forms (:mod:`.fast_unet` for students, :mod:`.fast_atbsn` for
the AT-BSN teacher): copies of a :class:`~.shifted.ShiftUNet`'s convolutions padded inside, and the
casting and layout that finish a form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shifted import NEGATIVE_SLOPE


def act_(t: torch.Tensor) -> torch.Tensor:
    """The networks' LeakyReLU, in place (the forms never need the pre-activation)."""
    return F.leaky_relu_(t, NEGATIVE_SLOPE)


def _conv(src: nn.Conv2d, lo: int = 0, hi: int | None = None, *, bias: bool = True, padding=1) -> nn.Conv2d:
    """A 3x3 convolution padded inside (``padding``) with ``src``'s weights for its input channels ``lo:hi``."""
    w = src.weight.detach()[:, lo:hi]
    conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=padding, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(w)
        if bias:
            conv.bias.copy_(src.bias.detach())
    return conv


def copy_unet(target: nn.Module, unet, padding=1) -> None:
    """Give ``target`` copies of ``unet``'s (a :class:`~.shifted.ShiftUNet`) convolutions, padded inside:
    ``enc0``, ``enc``, ``bottom``, and per decoder block ``dec_up`` / ``dec_skip`` (its first convolution
    split into the part over the upsampled features and the part over the skip connection) and
    ``dec_second``."""
    target.enc0 = _conv(unet.enc0[0], padding=padding)
    target.enc = nn.ModuleList(_conv(block[0], padding=padding) for block in unet.enc)
    target.bottom = _conv(unet.bottom[0], padding=padding)
    target.dec_up, target.dec_skip, target.dec_second = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
    for level, block in enumerate(unet.dec):
        # the channels upsampled into this block: the bottleneck's, then the previous block's output
        n_up = (unet.bottom[0] if level == 0 else unet.dec[level - 1][2]).out_channels
        target.dec_up.append(_conv(block[0], 0, n_up, padding=padding))
        target.dec_skip.append(_conv(block[0], n_up, None, bias=False, padding=padding))
        target.dec_second.append(_conv(block[2], padding=padding))


def finish_form(target: nn.Module, extra: list, dtype: torch.dtype, channels_last: bool) -> None:
    """Cast the UNet copies of :func:`copy_unet` and the ``extra`` modules to ``dtype``, lay the whole
    ``target`` out channels_last (if asked) and put it in eval mode."""
    for m in [target.enc0, target.enc, target.bottom, target.dec_up, target.dec_skip, target.dec_second, *extra]:
        m.to(dtype)
    if channels_last:
        target.to(memory_format=torch.channels_last)
    target.eval()
