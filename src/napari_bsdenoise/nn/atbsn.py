"""AT-BSN: the asymmetric tunable blind-spot network (Chen et al., CVPR 2024).

A shifted UNet (:class:`~.shifted.ShiftUNet`) runs on four rotations of the
input; each branch's features are shifted down by ``d`` rows, rotated back and
concatenated, and a 1x1 head fuses them.  The union of the four half-planes
hides every offset with Chebyshev distance ``<= d - 1``: a blind spot of side
``s = 2d - 1``; shifting the vertical and horizontal branches by different
amounts hides a rectangle instead (``blind_spot=(y, x)``, for noise correlated
along one axis).  Only the final shift depends on ``s``, so one trained network
serves any blind spot at inference (``s = 0`` sees the centre pixel).

Any H x W is accepted: the input is zero-padded at its bottom and right to a
multiple of ``2 ** depth`` and the output cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shifted import NEGATIVE_SLOPE, ShiftUNet, init_weights, shift_down


def blind_spot_shift(blind_spot) -> int:
    """Final feature shift ``d`` for a blind spot of side ``s`` (``s = 2d - 1``; ``s = 0`` -> 0); the
    larger of the two for a ``(y, x)`` blind spot."""
    return max(blind_spot_shifts(blind_spot))


def blind_spot_shifts(blind_spot) -> tuple[int, int]:
    """``(dy, dx)``: the shifts of the vertical (rotations 0, 2) and horizontal (1, 3) branches.

    A square side ``s`` shifts all four by ``(s + 1) // 2``; a ``(y, x)`` blind spot shifts the branches
    looking up and down by ``(y + 1) // 2`` and those looking left and right by ``(x + 1) // 2``, which
    hides the ``y x x`` rectangle ``|dy| <= (y - 1) / 2, |dx| <= (x - 1) / 2``.
    """
    sides = tuple(blind_spot) if isinstance(blind_spot, (tuple, list)) else (blind_spot, blind_spot)
    out = []
    for v in sides:
        s = int(v)
        if s < 0 or (s > 0 and s % 2 == 0) or s != v:
            raise ValueError(f"blind_spot must be 0 or an odd positive integer (1, 3, 5, ...), got {blind_spot!r}")
        out.append((s + 1) // 2)
    if len(out) != 2 or (out[0] == 0) != (out[1] == 0):
        raise ValueError(f"blind_spot must be an odd side or a (y, x) pair of odd sides >= 1, got {blind_spot!r}")
    return out[0], out[1]


def zero_pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad bottom and right up to ``multiple`` (in the image's own frame).

    Zeros (the mean, in normalised units) carry no pixel values, so no branch
    can see a copy of a pixel inside its blind spot (a reflection would leak).
    Padding in the image frame, before rotating, keeps every rotation's pooling
    grid anchored to the image origin, so tiles starting on multiples of
    ``multiple`` reproduce the untiled result exactly.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph)) if (ph or pw) else x


class ATBSN(nn.Module):
    """Asymmetric tunable blind-spot network.

    Parameters
    ----------
    in_channels, out_channels : int
        1 for grey/fluorescence, 3 for RGB.
    width : int
        Encoder width (48 in the paper); the decoder has ``2 * width``.
    depth : int
        Number of pooling levels (5 in the paper).
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 48, depth: int = 5):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.unet = ShiftUNet(in_channels, width=width, depth=depth, blind=True)
        f = self.unet.out_channels
        self.head = nn.Sequential(
            nn.Conv2d(4 * f, 4 * f, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv2d(4 * f, f, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv2d(f, out_channels, 1),
        )
        init_weights(self, last=self.head[-1])

    def features(self, x: torch.Tensor, *unet_args) -> list[torch.Tensor]:
        """UNet features of the four rotations, padded, in each rotation's own frame.

        Independent of the blind spot, so they can be cached while a user tunes it.
        ``unet_args`` are passed on to the UNet (a time embedding for the BSGD branch).
        """
        x = zero_pad_to_multiple(x, self.unet.multiple)
        h, w = x.shape[-2:]
        feats: list[torch.Tensor | None] = [None] * 4
        # rotations 0/2 share one shape and 1/3 the other: batch them in pairs
        # (all four at once when the image is square).
        groups = [(0, 1, 2, 3)] if h == w else [(0, 2), (1, 3)]
        for group in groups:
            batch = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in group], dim=0)
            out = self.unet(batch, *unet_args)
            for k, chunk in zip(group, out.chunk(len(group), dim=0)):
                feats[k] = chunk
        return feats  # type: ignore[return-value]

    def branches(self, feats: list[torch.Tensor], blind_spot: int, size: tuple[int, int]) -> torch.Tensor:
        """The four rotations' features shifted for ``blind_spot``, rotated back, concatenated and cropped
        to ``size``: what the head fuses."""
        dy, dx = blind_spot_shifts(blind_spot)
        h, w = size
        # rotations 0 and 2 look up and down (their rows are the image's rows), 1 and 3 left and right
        out = [torch.rot90(shift_down(f, dx if k % 2 else dy), -k, dims=(2, 3)) for k, f in enumerate(feats)]
        return torch.cat(out, dim=1)[:, :, :h, :w]

    def head_from_features(self, feats: list[torch.Tensor], blind_spot: int, size: tuple[int, int]) -> torch.Tensor:
        """Apply the final shift for ``blind_spot``, rotate back and fuse."""
        return self.head(self.branches(feats, blind_spot, size))

    def forward(self, x: torch.Tensor, blind_spot: int = 1) -> torch.Tensor:
        return self.head_from_features(self.features(x), blind_spot, tuple(x.shape[-2:]))

    @property
    def multiple(self) -> int:
        return self.unet.multiple

    def receptive_radius(self, blind_spot: int = 1) -> int:
        """Chebyshev radius beyond which input pixels cannot influence an output pixel.

        The shifted UNet reaches up to ``9 * 2**depth - 1`` pixels from a pixel
        on the pooling grid and a little further from others; ``10 * 2**depth``
        bounds every position (gradient probe, tests/test_nn.py), plus the
        final shift.
        """
        return receptive_radius(self.unet.multiple, blind_spot)


def receptive_radius(multiple: int, blind_spot=1) -> int:
    """:meth:`ATBSN.receptive_radius` of an AT-BSN whose pooling factor is ``multiple`` (``2 ** depth``)."""
    return 10 * multiple + blind_spot_shift(blind_spot)
