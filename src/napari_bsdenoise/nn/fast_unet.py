"""An inference-only rewrite of the non-blind student UNet that computes the same function faster.

Measured on one CPU thread (issue 16, docs/speed.md): the trainable :class:`~.student.StudentUNet` spends
about 40 % of a pass outside its convolutions, zero-padding a copy of every feature map (``F.pad``
before each convolution, needed by the blind layers it shares with the teacher) and concatenating
channels_last tensors before each decoder block.  This module holds a copy of the same weights and

* pads inside the convolutions (``padding=1``: no padded copy);
* splits each decoder block's first convolution into one over the upsampled features and one over the
  skip connection, summed in place, instead of convolving their concatenation
  (``W [u; s] = W_u u + W_s s``: no concatenated copy);
* runs channels_last with in-place activations;
* optionally holds bf16 weights and activations (the last 1x1 convolution stays fp32, so the output is
  not rounded to bf16's 8-bit mantissa).

In fp32 the output equals the student's up to float rounding (tested).  It is built by
:func:`inference_form` for each inference pass and never trained or saved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .form_parts import act_ as act, copy_unet, finish_form
from .student import StudentUNet, pad_to_multiple, receptive_radius


class FastStudentUNet(nn.Module):
    """Inference-only equivalent of a :class:`~.student.StudentUNet` (same ``forward(x, blind_spot)``,
    ``multiple`` and ``receptive_radius``).

    Parameters
    ----------
    student : StudentUNet
        The trained network; its weights are copied (later changes to it are not seen).
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.bfloat16`` for the weights and activations.
    channels_last : bool
        Run in the channels_last memory format (fastest with oneDNN on the CPU and on CUDA).
    """

    def __init__(self, student, *, dtype: torch.dtype = torch.float32, channels_last: bool = True):
        super().__init__()
        unet = student.unet
        if unet.blind or unet.ndim != 2:
            raise ValueError("FastStudentUNet rewrites a 2-D non-blind (student) UNet")
        self.depth = unet.depth
        self.dtype = dtype
        self.channels_last = channels_last
        copy_unet(self, unet)
        self.out = nn.Conv2d(student.out.in_channels, student.out.out_channels, 1)
        self.out.load_state_dict(student.out.state_dict())
        finish_form(self, [], dtype, channels_last)

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def receptive_radius(self, blind_spot: int = 0) -> int:
        return receptive_radius(self.depth)

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        n = act(self.enc0(x))
        for i, conv in enumerate(self.enc):
            n = F.max_pool2d(act(conv(n)), 2)
            if i < self.depth - 1:
                skips.append(n)
        n = act(self.bottom(n))
        for up, skip, second in zip(self.dec_up, self.dec_skip, self.dec_second):
            n = F.interpolate(n, scale_factor=2, mode="nearest")
            n = act(up(n).add_(skip(skips.pop())))
            n = act(second(n))
        return n

    def forward(self, x: torch.Tensor, blind_spot: int = 0) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.multiple)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, enabled=False):  # the dtype is this module's own, not autocast's
            n = self._unet(x.to(self.dtype))
            out = self.out(n.float())
        return out[:, :, :h, :w].contiguous()


def inference_form(network: nn.Module, precision: str = "fp32") -> nn.Module:
    """``network`` as it should run for inference: a student becomes a :class:`FastStudentUNet` and a 2-D
    AT-BSN a :class:`~.fast_atbsn.FastATBSN` (in bf16 for ``precision="bf16"``), a fusion or outlier wrapper gets the inference form of the network it wraps,
    and anything else is returned as it is.  The form is built on the device ``network`` is on."""
    from .fusion import FusedNetwork
    from .outliers import OutlierGuard

    if isinstance(network, (FusedNetwork, OutlierGuard)):
        return type(network)(inference_form(network.network, precision), network.params)
    from .atbsn import ATBSN
    from .fast_atbsn import FastATBSN

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if isinstance(network, StudentUNet):
        device = network.out.weight.device
        return FastStudentUNet(network, dtype=dtype, channels_last=device.type != "mps").to(device)
    if type(network) is ATBSN:  # (not the BSGD branch, which subclasses it with a time embedding)
        device = network.head[0].weight.device
        return FastATBSN(network, dtype=dtype, channels_last=device.type != "mps").to(device)
    from .atbsn25d import ATBSN25D, FastATBSN25D

    if type(network) is ATBSN25D:
        device = network.head[0].weight.device
        return FastATBSN25D(network, dtype=dtype, channels_last=device.type != "mps").to(device)
    return network
