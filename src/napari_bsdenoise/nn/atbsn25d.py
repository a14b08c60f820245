"""2.5-D AT-BSN: a blind-spot network for volumes that sees the neighbouring planes whole.

Where the noise is independent between Z planes (each plane of a confocal or light-sheet stack is its
own exposure), a voxel's noise is independent of every voxel of the other planes, so a network may
see those planes in full, the voxel right above and below included: only the plane being predicted
needs a blind spot.  This network predicts plane ``z`` from

* the plane itself, through AT-BSN's four blind rotations (:class:`~.atbsn.ATBSN`; its in-plane
  ``y x x`` blind spot is tunable at inference as in 2-D), and
* ``z_context`` planes on each side, at ``d_z <= |dz| < d_z + z_context`` with ``d_z = (z + 1) // 2``
  for a ``z``-sided blind box (beyond the noise's correlation along Z), taken as ``2 * z_context``
  channels by a plain 2-D UNet (beyond the volume's ends, the plane as far on the other side:
  :func:`context_plane`),

fused by a 1x1 head.  The output at ``(z, y, x)`` is therefore independent of the noisy voxels of its
own plane within the in-plane blind spot and of every voxel of the planes ``0 < |dz| < d_z``.  Per plane this costs a 2-D AT-BSN plus
a non-blind UNet, against about four times a 2-D step for the full 3-D network (:mod:`.atbsn3d`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .atbsn import ATBSN, receptive_radius
from .atbsn3d import blind_spot_shifts3d
from .shifted import NEGATIVE_SLOPE, ShiftUNet, init_weights


def _sides(blind_spot) -> tuple[int, int, int]:
    """``(z, y, x)`` odd sides (0: non-blind) of a cube side or a box, checked."""
    blind_spot_shifts3d(blind_spot)  # raises on anything that is not a valid 3-D blind spot
    return tuple(int(v) for v in blind_spot) if isinstance(blind_spot, (tuple, list)) else (int(blind_spot),) * 3


def context_plane(z: int, offset: int, depth: int) -> int:
    """The plane that stands for ``z + offset`` in the context of plane ``z`` of a ``depth``-plane volume:
    itself, or beyond the volume's end its mirror about ``z`` (``z - offset``: a plane as far away on the
    other side, so never ``z`` or a plane within the Z blind side), else ``depth`` (a plane of zeros).
    The end planes then see as many planes as the others, as in training, instead of zeros."""
    for p in (z + offset, z - offset):
        if 0 <= p < depth:
            return p
    return depth


class ATBSN25D(ATBSN):
    """AT-BSN on each Z plane, with ``z_context`` planes on each side seen whole.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the volume (1 for one fluorophore).
    width, depth : int
        Encoder width and pooling levels of both 2-D UNets (the blind one and the context one).
    z_context : int
        Planes seen on each side of the predicted one.
    """

    spatial_dims = 3
    plane_wise = True  # forward(planes=...) predicts only some planes; the others are context

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 16, depth: int = 3,
                 z_context: int = 2):
        if isinstance(z_context, bool) or not isinstance(z_context, int) or z_context < 1:
            raise ValueError(f"z_context must be a positive integer, got {z_context!r}")
        out_channels = in_channels if out_channels is None else out_channels
        super().__init__(in_channels, out_channels, width=width, depth=depth)
        self.z_context = z_context
        self.context = ShiftUNet(2 * z_context * in_channels, width=width, depth=depth, blind=False)
        f, g = self.unet.out_channels, self.context.out_channels
        self.head = nn.Sequential(
            nn.Conv2d(4 * f + g, 4 * f, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv2d(4 * f, f, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv2d(f, out_channels, 1),
        )
        init_weights(self, last=self.head[-1])

    def context_offsets(self, blind_spot) -> list[int]:
        """The Z offsets of the planes the context branch sees, for ``blind_spot``."""
        d = max(1, (_sides(blind_spot)[0] + 1) // 2)
        return [-(d + j) for j in reversed(range(self.z_context))] + [d + j for j in range(self.z_context)]

    def forward(self, x: torch.Tensor, blind_spot=1, planes: slice | None = None) -> torch.Tensor:
        """``(N, C_out, P, Y, X)`` for the ``P`` planes ``planes`` of ``x`` (``(N, C, Z, Y, X)``; all by
        default; the rest of ``x`` is context)."""
        return self.predict(x, blind_spot, planes, self.features)

    def predict(self, x: torch.Tensor, blind_spot, planes, features) -> torch.Tensor:
        """:meth:`forward` with the blind rotations' ``features`` function given (the inference form's)."""
        if x.ndim != 5:
            raise ValueError(f"ATBSN25D takes (N, C, Z, Y, X) volumes, got a {x.ndim}-D tensor")
        _, sy, sx = _sides(blind_spot)
        n, c, d, h, w = x.shape
        zs = list(range(d))[planes] if planes is not None else list(range(d))
        offsets = self.context_offsets(blind_spot)
        padded = F.pad(x, (0, 0, 0, 0, 0, 1))  # plane d: zeros
        centre = x[:, :, zs].transpose(1, 2).reshape(n * len(zs), c, h, w)
        index = [[context_plane(z, o, d) for z in zs] for o in offsets]
        ctx = torch.stack([padded[:, :, i] for i in index], dim=1)  # N, 2K, C, P, Y, X
        ctx = ctx.permute(0, 3, 1, 2, 4, 5).reshape(n * len(zs), len(offsets) * c, h, w)
        blind = self.branches(features(centre), sy if sy == sx else (sy, sx), (h, w)).float()
        m = self.context.multiple
        seen = self.context(F.pad(ctx, (0, (-w) % m, 0, (-h) % m)))[:, :, :h, :w]
        out = self.head(torch.cat([blind, seen], dim=1))
        return out.reshape(n, len(zs), -1, h, w).transpose(1, 2)

    def training_planes(self, depth: int, blind_spot) -> slice:
        """The planes of a ``depth``-deep training patch whose context lies inside it (the loss's)."""
        reach = max(abs(o) for o in self.context_offsets(blind_spot))
        if depth <= 2 * reach:
            return slice(0, depth)
        return slice(reach, depth - reach)

    def receptive_radii(self, blind_spot=1) -> tuple[int, int, int]:
        """``(z, y, x)`` radii beyond which an input voxel cannot influence an output voxel."""
        _, sy, sx = _sides(blind_spot)
        r = receptive_radius(self.unet.multiple, sy if sy == sx else (sy, sx))
        return max(abs(o) for o in self.context_offsets(blind_spot)), r, r

    def receptive_radius(self, blind_spot=1) -> int:
        return max(self.receptive_radii(blind_spot))


class FastATBSN25D(nn.Module):
    """Inference form of :class:`ATBSN25D`: its blind rotations run as :class:`~.fast_atbsn.FastATBSN`
    (optionally in bf16), the context UNet and the head as trained (same ``forward``)."""

    spatial_dims = 3
    plane_wise = True  # forward(planes=...) predicts only some planes; the others are context

    def __init__(self, net: ATBSN25D, *, dtype: torch.dtype = torch.float32, channels_last: bool = True):
        super().__init__()
        from .fast_atbsn import FastATBSN

        self.net = net
        self.blind = FastATBSN(net, dtype=dtype, channels_last=channels_last)  # (only its features are used)

    @property
    def multiple(self) -> int:
        return self.net.multiple

    def receptive_radii(self, blind_spot=1) -> tuple[int, int, int]:
        return self.net.receptive_radii(blind_spot)

    def receptive_radius(self, blind_spot=1) -> int:
        return self.net.receptive_radius(blind_spot)

    def forward(self, x: torch.Tensor, blind_spot=1, planes: slice | None = None) -> torch.Tensor:
        return self.net.predict(x, blind_spot, planes, self.blind.features)
