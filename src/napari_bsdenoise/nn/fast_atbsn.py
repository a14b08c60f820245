"""An inference-only rewrite of the 2-D AT-BSN teacher that computes the same function faster.

The roofline (issue 16, docs/speed.md) showed where the trainable :class:`~.atbsn.ATBSN` loses time on
the CPU: 40 % of a pass outside its convolutions (a zero-padded copy of every feature map before each
shifted convolution, the decoder's concatenations, the rotations), and its 1x1 head on a channels-first
concatenation of the four branches at a fifth of the matmul limit.  This module holds a copy of the same
weights and

* pads inside the convolutions: a shifted 3x3 convolution (zero rows above, none below) is the same as a
  ``padding=(2, 1)`` convolution whose last two output rows are dropped (a view, no padded copy);
* splits each decoder block's first convolution into one over the upsampled features and one over the
  skip connection, summed in place (``W [u; s] = W_u u + W_s s``), instead of convolving a concatenation;
* pools without the shifted copy: the shift-by-one-row-then-2x2-max of :class:`~.shifted.ShiftPool` is a
  max-pool with one row of padding whose first output row is clamped at the zero that the shift brings in;
* writes the four shifted, back-rotated branches straight into one channels_last tensor, and runs the
  1x1 head as matmuls over its pixels (:class:`PointwiseConv`);
* runs channels_last with in-place activations, optionally in bf16 (the last 1x1 convolution stays fp32).

In fp32 the output equals the teacher's up to float rounding, at every blind spot (tested).  It is built by
:func:`~.fast_unet.inference_form` for each inference pass and never trained or saved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .atbsn import ATBSN, blind_spot_shifts, receptive_radius, zero_pad_to_multiple
from .form_parts import act_ as _act, copy_unet, finish_form


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution that runs as a matmul over the pixels when its input is channels_last (oneDNN
    took a slow path for these, at a fifth of the matmul limit; docs/speed.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or not x.permute(0, 2, 3, 1).is_contiguous():
            return super().forward(x)
        out = F.linear(x.permute(0, 2, 3, 1), self.weight[:, :, 0, 0], self.bias)  # (N, H, W, C_out)
        return out.permute(0, 3, 1, 2)  # a channels_last view


def _copy_1x1(src: nn.Conv2d) -> PointwiseConv:
    conv = PointwiseConv(src.in_channels, src.out_channels, 1)
    conv.load_state_dict(src.state_dict())
    return conv


def _shift_into(dst: torch.Tensor, src: torch.Tensor, k: int, d: int) -> None:
    """``dst = crop(rot90(shift_down(f, d), -k))`` for ``src = rot90(f, -k)`` (the padded image frame),
    without the shifted copy: shifting down in rotation ``k``'s frame moves the branch down (k = 0), left
    (1), up (2) or right (3) in the image's, with zeros entering behind."""
    h, w = dst.shape[-2:]
    if d == 0:
        dst.copy_(src[:, :, :h, :w])
        return
    axis = -2 if k % 2 == 0 else -1
    n = dst.shape[axis]
    size = src.shape[axis]
    if k in (0, 3):  # content moves towards larger indices: out[i] = src[i - d]
        keep = n - d
        dst.narrow(axis, d, keep).copy_(_crop(src, axis, 0, keep, h, w))
        dst.narrow(axis, 0, d).zero_()
    else:  # towards smaller indices: out[i] = src[i + d], zeros past the padded extent
        keep = min(n, size - d)
        dst.narrow(axis, 0, keep).copy_(_crop(src, axis, d, keep, h, w))
        if keep < n:
            dst.narrow(axis, keep, n - keep).zero_()


def _crop(src: torch.Tensor, axis: int, start: int, length: int, h: int, w: int) -> torch.Tensor:
    """``src[..., start:start + length, :w]`` along rows (axis -2) or ``src[..., :h, start:start + length]``."""
    if axis == -2:
        return src[:, :, start : start + length, :w]
    return src[:, :, :h, start : start + length]


class FastATBSN(nn.Module):
    """Inference-only equivalent of a 2-D :class:`~.atbsn.ATBSN` (same ``forward(x, blind_spot)``,
    ``features``, ``head_from_features``, ``multiple`` and ``receptive_radius``).

    Parameters
    ----------
    teacher : ATBSN
        The trained network; its weights are copied (later changes to it are not seen).
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.bfloat16`` for the weights and activations.
    channels_last : bool
        Run in the channels_last memory format (fastest with oneDNN on the CPU and on CUDA).
    """

    def __init__(self, teacher: ATBSN, *, dtype: torch.dtype = torch.float32, channels_last: bool = True):
        super().__init__()
        unet = teacher.unet
        if not unet.blind or unet.ndim != 2:
            raise ValueError("FastATBSN rewrites a 2-D blind-spot (AT-BSN) UNet")
        self.depth = unet.depth
        self.dtype = dtype
        self.channels_last = channels_last
        copy_unet(self, unet, padding=(2, 1))  # zero rows above (and two extra below, cut off)
        self.head0, self.head1, self.head2 = (_copy_1x1(teacher.head[i]) for i in (0, 2, 4))
        self.width = unet.out_channels
        finish_form(self, [self.head0, self.head1], dtype, channels_last)  # (head2 stays fp32)

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def receptive_radius(self, blind_spot: int = 1) -> int:
        return receptive_radius(self.multiple, blind_spot)

    @staticmethod
    def _conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        return conv(x)[:, :, : x.shape[-2]]  # the rows a zero-above shifted convolution computes

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        n = _act(self._conv(self.enc0, x))
        for i, conv in enumerate(self.enc):
            n = _act(self._conv(conv, n))
            rows = n.shape[-2] // 2
            n = F.max_pool2d(n, 2, padding=(1, 0))[:, :, :rows]
            n[:, :, 0].clamp_(min=0)  # ShiftPool's first pair holds the zero row its shift brings in
            if i < self.depth - 1:
                skips.append(n)
        n = _act(self._conv(self.bottom, n))
        for up, skip, second in zip(self.dec_up, self.dec_skip, self.dec_second):
            n = F.interpolate(n, scale_factor=2, mode="nearest")
            n = _act(self._conv(up, n).add_(self._conv(skip, skips.pop())))
            n = _act(self._conv(second, n))
        return n

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """UNet features of the four rotations, padded, in each rotation's own frame (as
        :meth:`ATBSN.features <napari_bsdenoise.nn.atbsn.ATBSN.features>`, in this module's dtype)."""
        x = zero_pad_to_multiple(x, self.multiple)
        feats = []
        with torch.autocast(x.device.type, enabled=False):  # the dtype is this module's own
            for k in range(4):
                # one rotation and one sample at a time: a convolution's output, cut to the rows it
                # keeps, is then still a contiguous (channels_last) tensor, which oneDNN takes as it is
                outs = []
                for xi in torch.rot90(x, k, dims=(2, 3)).to(self.dtype).split(1):
                    if self.channels_last:
                        xi = xi.contiguous(memory_format=torch.channels_last)
                    outs.append(self._unet(xi))
                feats.append(outs[0] if len(outs) == 1 else torch.cat(outs))
        return feats  # type: ignore[return-value]

    def head_from_features(self, feats: list[torch.Tensor], blind_spot, size: tuple[int, int]) -> torch.Tensor:
        """Apply the final shift for ``blind_spot``, rotate back and fuse, as the teacher does."""
        dy, dx = blind_spot_shifts(blind_spot)
        h, w = size
        f = self.width
        n = feats[0].shape[0]
        cat = torch.empty((n, 4 * f, h, w), dtype=feats[0].dtype, device=feats[0].device,
                          memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        for k, feat in enumerate(feats):
            _shift_into(cat[:, k * f : (k + 1) * f], torch.rot90(feat, -k, dims=(2, 3)), k,
                        dx if k % 2 else dy)
        with torch.autocast(cat.device.type, enabled=False):
            n = _act(self.head0(cat))
            return self.head2(_act(self.head1(n)).float())

    def forward(self, x: torch.Tensor, blind_spot=1) -> torch.Tensor:
        out = self.head_from_features(self.features(x), blind_spot, tuple(x.shape[-2:]))
        return out.contiguous()
