"""3-D AT-BSN: the tunable blind spot for volumes ``(N, C, Z, Y, X)``.

The 2-D network fuses four rotations of one upward-looking UNet; a volume has six half-spaces to
look into (-y, +y, -x, +x, -z, +z).  One 3-D shifted UNet (:class:`~.shifted.ShiftUNet` with
``ndim=3``, causal along Y) runs on six permutations of the volume: as it is, flipped along Y, with
X and then Z swapped into Y (each also flipped).  Each branch's features are shifted by the blind
spot's half side along the axis it looks along, put back and fused by a 1x1x1 head.  The union of
the six half-spaces misses exactly the box ``|dz| < d_z, |dy| < d_y, |dx| < d_x``: a
``z x y x x`` blind spot of odd sides ``2 d - 1``, set per axis at inference (``blind_spot=(1, 3, 3)``
for noise correlated in-plane only; ``blind_spot=0`` sees the centre voxel).

The weights are shared between the six looks, as the 2-D network shares them between rotations;
the head sees which look each feature came from, so it can weigh Z (often sampled 2-5x coarser than
Y and X) apart from the in-plane looks.  Any Z x Y x X is accepted: the input is zero-padded at the
far end of each axis to a multiple of ``2 ** depth`` and the output cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shifted import NEGATIVE_SLOPE, ShiftUNet, init_weights, shift_down

# (axis swapped into Y, flipped along Y): the six looks of one Y-causal UNet.  Axes of a
# (N, C, Z, Y, X) tensor: Z = 2, Y = 3, X = 4.
LOOKS = ((None, False), (None, True), (4, False), (4, True), (2, False), (2, True))
LOOK_AXIS = (1, 1, 2, 2, 0, 0)  # index into (z, y, x) of the axis each look looks along


def blind_spot_shifts3d(blind_spot) -> tuple[int, int, int]:
    """``(dz, dy, dx)`` for a cube side ``s`` or a ``(z, y, x)`` box of odd sides (``s = 2d - 1``,
    ``s = 0`` -> 0 everywhere: the non-blind output)."""
    sides = tuple(blind_spot) if isinstance(blind_spot, (tuple, list)) else (blind_spot,) * 3
    if len(sides) != 3:
        raise ValueError(f"a 3-D blind spot is an odd side or a (z, y, x) triple, got {blind_spot!r}")
    out = []
    for v in sides:
        s = int(v)
        if s < 0 or (s > 0 and s % 2 == 0) or s != v:
            raise ValueError(f"blind_spot must be 0 or odd positive integers (1, 3, 5, ...), got {blind_spot!r}")
        out.append((s + 1) // 2)
    if len(set(d == 0 for d in out)) != 1:
        raise ValueError(f"blind_spot mixes 0 with blind sides: {blind_spot!r}")
    return out[0], out[1], out[2]


def _look(x: torch.Tensor, look: int) -> torch.Tensor:
    axis, flip = LOOKS[look]
    if axis is not None:
        x = x.transpose(axis, 3)
    return x.flip(3) if flip else x


def _unlook(x: torch.Tensor, look: int) -> torch.Tensor:
    axis, flip = LOOKS[look]
    if flip:
        x = x.flip(3)
    return x.transpose(axis, 3) if axis is not None else x


def _pad_to_multiple3d(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the far end of Z, Y and X up to ``multiple`` (zeros: no copy of any voxel can enter a
    blind spot, and every look's pooling grid stays anchored to the volume's origin)."""
    d, h, w = x.shape[-3:]
    pd, ph, pw = (-d) % multiple, (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph, 0, pd)) if (pd or ph or pw) else x


class ATBSN3D(nn.Module):
    """Asymmetric tunable blind-spot network for volumes (six looks of a 3-D shifted UNet).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the volume (1 for one fluorophore).
    width, depth : int
        Encoder width and pooling levels of the 3-D UNet (each level pools Z, Y and X by 2).
    """

    spatial_dims = 3

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, width: int = 16, depth: int = 2):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.unet = ShiftUNet(in_channels, width=width, depth=depth, blind=True, ndim=3)
        f = self.unet.out_channels
        self.head = nn.Sequential(
            nn.Conv3d(6 * f, 2 * f, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv3d(2 * f, f, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Conv3d(f, out_channels, 1),
        )
        init_weights(self, last=self.head[-1])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """UNet features of the six looks, padded, each in its look's own frame (independent of the
        blind spot, so they can be cached while a user tunes it)."""
        x = _pad_to_multiple3d(x, self.unet.multiple)
        views = [_look(x, k) for k in range(6)]
        feats: list[torch.Tensor | None] = [None] * 6
        groups: dict[tuple, list[int]] = {}
        for k, v in enumerate(views):  # looks of one shape run as one batch
            groups.setdefault(tuple(v.shape), []).append(k)
        for group in groups.values():
            out = self.unet(torch.cat([views[k] for k in group], dim=0))
            for k, chunk in zip(group, out.chunk(len(group), dim=0)):
                feats[k] = chunk
        return feats  # type: ignore[return-value]

    def head_from_features(self, feats: list[torch.Tensor], blind_spot, size: tuple[int, int, int]) -> torch.Tensor:
        """Shift each look by its axis's half side of ``blind_spot``, put it back and fuse."""
        shifts = blind_spot_shifts3d(blind_spot)
        d, h, w = size
        branches = [_unlook(shift_down(f, shifts[LOOK_AXIS[k]]), k) for k, f in enumerate(feats)]
        return self.head(torch.cat(branches, dim=1)[:, :, :d, :h, :w])

    def forward(self, x: torch.Tensor, blind_spot=1) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"ATBSN3D takes (N, C, Z, Y, X) volumes, got a {x.ndim}-D tensor")
        return self.head_from_features(self.features(x), blind_spot, tuple(x.shape[-3:]))

    @property
    def multiple(self) -> int:
        return self.unet.multiple

    def receptive_radius(self, blind_spot=1) -> int:
        """Chebyshev radius (in voxels, every axis) beyond which an input voxel cannot influence an
        output voxel: the 2-D bound of :meth:`.atbsn.ATBSN.receptive_radius` holds per axis."""
        return 10 * self.unet.multiple + max(blind_spot_shifts3d(blind_spot))
