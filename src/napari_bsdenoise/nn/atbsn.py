"""AT-BSN: the asymmetric tunable blind-spot network (Chen et al., CVPR 2024).

A shifted UNet (:class:`~.shifted.ShiftUNet`) runs on four rotations of the
input; each branch's features are shifted down by ``d`` rows, rotated back and
concatenated, and a 1x1 head fuses them.  The union of the four half-planes
hides every offset with Chebyshev distance ``<= d - 1``: a blind spot of side
``s = 2d - 1``.  Only the final shift depends on ``s``, so one trained network
serves any blind spot at inference (``s = 0`` sees the centre pixel).

Any H x W is accepted: each rotation is padded at its bottom and right (the
sides its upward-looking receptive field never reaches from inside the image
with a blind-spot leak, see ``_pad_causal``) to a multiple of ``2 ** depth``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shifted import NEGATIVE_SLOPE, ShiftUNet, init_weights, shift_down


def blind_spot_shift(blind_spot: int) -> int:
    """Final feature shift ``d`` for a blind spot of side ``s`` (``s = 2d - 1``; ``s = 0`` -> 0)."""
    s = int(blind_spot)
    if s < 0 or (s > 0 and s % 2 == 0):
        raise ValueError(f"blind_spot must be 0 or an odd positive integer (1, 3, 5, ...), got {blind_spot!r}")
    return (s + 1) // 2


def _pad_causal(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom and right up to ``multiple``.

    In the rotated frame the branch looks up, so rows below a pixel never reach
    it; columns right of it are only seen from rows at least ``d`` above, and a
    reflection keeps rows, so reflected pixels are still outside the blind spot.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


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

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """UNet features of the four rotations, padded, in each rotation's own frame.

        Independent of the blind spot, so they can be cached while a user tunes it.
        """
        h, w = x.shape[-2:]
        m = self.unet.multiple
        feats: list[torch.Tensor | None] = [None] * 4
        # rotations 0/2 share one shape and 1/3 the other: batch them in pairs
        # (all four at once when the image is square).
        groups = [(0, 1, 2, 3)] if h == w else [(0, 2), (1, 3)]
        for group in groups:
            batch = torch.cat([_pad_causal(torch.rot90(x, k, dims=(2, 3)), m) for k in group], dim=0)
            out = self.unet(batch)
            for k, chunk in zip(group, out.chunk(len(group), dim=0)):
                feats[k] = chunk
        return feats  # type: ignore[return-value]

    def head_from_features(self, feats: list[torch.Tensor], blind_spot: int, size: tuple[int, int]) -> torch.Tensor:
        """Apply the final shift for ``blind_spot``, rotate back and fuse."""
        d = blind_spot_shift(blind_spot)
        h, w = size
        branches = []
        for k, f in enumerate(feats):
            hk, wk = (h, w) if k % 2 == 0 else (w, h)
            f = shift_down(f, d)[:, :, :hk, :wk]
            branches.append(torch.rot90(f, -k, dims=(2, 3)))
        return self.head(torch.cat(branches, dim=1))

    def forward(self, x: torch.Tensor, blind_spot: int = 1) -> torch.Tensor:
        return self.head_from_features(self.features(x), blind_spot, tuple(x.shape[-2:]))

    @property
    def multiple(self) -> int:
        return self.unet.multiple
