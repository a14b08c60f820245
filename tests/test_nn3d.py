"""The 3-D AT-BSN: blind-box geometry along Z, Y and X (isotropic and anisotropic), shapes, the cache."""

import numpy as np
import pytest
import torch

from napari_bsdenoise.nn.atbsn3d import ATBSN3D, blind_spot_shifts3d
from napari_bsdenoise.nn.shifted import ShiftUNet

SHAPE = (20, 24, 28)


def _influence(net, s, where):
    x = torch.randn(1, 1, *SHAPE, dtype=torch.float64, requires_grad=True)
    net(x, s)[(0, 0) + tuple(where)].backward()
    g = x.grad[0, 0].abs()
    zz, yy, xx = torch.meshgrid(*(torch.arange(n) for n in SHAPE), indexing="ij")
    return g, ((zz - where[0]).abs(), (yy - where[1]).abs(), (xx - where[2]).abs())


@pytest.mark.parametrize("s", [1, 3, 5, (1, 3, 3), (3, 1, 1), (1, 1, 5), (5, 3, 1)])
@pytest.mark.parametrize("where", [(9, 11, 13), (1, 22, 2), (18, 3, 26)])
def test_blind_box_probe(s, where):
    """Inside the z x y x x box: zero influence; one voxel of margin outside it, within the receptive
    field: every voxel is seen (the 2-D probe of test_nn.py, per axis)."""
    torch.manual_seed(0)
    net = ATBSN3D(1, 1, width=4, depth=2).double()
    d = blind_spot_shifts3d(s)
    g, (az, ay, ax) = _influence(net, s, where)
    inside = (az <= d[0] - 1) & (ay <= d[1] - 1) & (ax <= d[2] - 1)
    box = [min(c + v - 1, n - 1) - max(c - v + 1, 0) + 1 for c, v, n in zip(where, d, SHAPE)]
    assert int(inside.sum()) == np.prod(box)  # (clipped by the volume's faces)
    assert g[inside].max() == 0
    near = torch.maximum(torch.maximum(az, ay), ax) <= max(d) + 3
    seen = g[near & ((az >= d[0] + 1) | (ay >= d[1] + 1) | (ax >= d[2] + 1))]
    assert seen.numel() > 0 and bool((seen > 0).all())
    if len(set(d)) > 1:  # a box, not a cube: the short axes see voxels the long one hides
        cube = (az <= max(d) - 1) & (ay <= max(d) - 1) & (ax <= max(d) - 1)
        assert g[cube].max() > 0


def test_blind_spot_zero_sees_the_voxel():
    net = ATBSN3D(1, 1, width=4, depth=2).double()
    g, _ = _influence(net, 0, (9, 11, 13))
    assert g[9, 11, 13] > 0


def test_cube_equals_its_triple():
    net = ATBSN3D(1, 1, width=4, depth=2).eval()
    x = torch.randn(1, 1, 12, 20, 16)
    with torch.no_grad():
        np.testing.assert_allclose(net(x, (3, 3, 3)), net(x, 3), atol=0)


@pytest.mark.parametrize("shape", [(1, 1, 13, 17, 9), (2, 2, 8, 8, 8), (1, 1, 5, 40, 12)])
def test_any_shape(shape, device):
    net = ATBSN3D(shape[1], shape[1], width=4, depth=2).to(device)
    y = net(torch.randn(shape, device=device), 3)
    assert y.shape == shape


def test_features_cache_matches_forward():
    net = ATBSN3D(1, 1, width=4, depth=2).eval()
    x = torch.randn(1, 1, 10, 14, 18)
    with torch.no_grad():
        feats = net.features(x)
        for s in (0, 1, (1, 3, 5)):
            np.testing.assert_allclose(net.head_from_features(feats, s, (10, 14, 18)), net(x, s), atol=1e-6)


def test_receptive_radius_bounds_the_influence():
    torch.manual_seed(0)
    net = ATBSN3D(1, 1, width=4, depth=1).double()
    shape = (9, 60, 9)
    x = torch.randn(1, 1, *shape, dtype=torch.float64, requires_grad=True)
    net(x, 1)[0, 0, 4, 30, 4].backward()
    g = x.grad[0, 0].abs().sum((0, 2))
    far = torch.nonzero(g > 0).flatten()
    assert int((far - 30).abs().max()) <= net.receptive_radius(1)


@pytest.mark.parametrize("s", [-1, 2, (1, 3), (0, 3, 3), (1, 2, 3)])
def test_invalid_blind_spot(s):
    with pytest.raises(ValueError):
        blind_spot_shifts3d(s)


def test_wrong_rank_is_refused():
    with pytest.raises(ValueError, match="Z, Y, X"):
        ATBSN3D(1, 1, width=4, depth=1)(torch.zeros(1, 1, 8, 8), 1)


def test_unet_ndim_checked():
    with pytest.raises(ValueError, match="ndim"):
        ShiftUNet(1, width=4, depth=1, ndim=4)
