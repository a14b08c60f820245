"""The 2.5-D AT-BSN (#15): the blind spot in its own plane, whole planes beyond the Z side, nothing else."""

import numpy as np
import pytest
import torch

from napari_bsdenoise.nn.atbsn25d import ATBSN25D

SHAPE = (14, 24, 28)


def _influence(net, s, where):
    x = torch.randn(1, 1, *SHAPE, dtype=torch.float64, requires_grad=True)
    net(x, s)[(0, 0) + tuple(where)].backward()
    return x.grad[0, 0].abs()


@pytest.mark.parametrize("s", [1, 3, (1, 3, 3), (3, 1, 1), (5, 3, 1), (1, 1, 5)])
@pytest.mark.parametrize("where", [(7, 11, 13), (1, 22, 2), (12, 3, 26)])
def test_blind_geometry_probe(s, where):
    """Own plane: zero inside the y x x blind spot, seen on a one-pixel margin; planes 0 < |dz| < d_z:
    zero; planes d_z <= |dz| < d_z + z_context: seen whole, the voxel right above and below included;
    beyond: zero."""
    torch.manual_seed(0)
    k = 2
    net = ATBSN25D(1, 1, width=4, depth=2, z_context=k).double()
    sz, sy, sx = s if isinstance(s, tuple) else (s,) * 3
    dz, dy, dx = (sz + 1) // 2, (sy + 1) // 2, (sx + 1) // 2
    g = _influence(net, s, where)
    z, y, x = where
    own = g[z]
    yy, xx = torch.meshgrid(torch.arange(SHAPE[1]), torch.arange(SHAPE[2]), indexing="ij")
    inside = ((yy - y).abs() < dy) & ((xx - x).abs() < dx)
    margin = ((yy - y).abs() <= dy) & ((xx - x).abs() <= dx) & ~inside
    assert own[inside].max() == 0 and bool((own[margin] > 0).all())
    for off in range(-SHAPE[0], SHAPE[0]):
        p = z + off
        if off == 0 or not 0 <= p < SHAPE[0]:
            continue
        if dz <= abs(off) < dz + k:
            assert g[p, y, x] > 0 and bool((g[p][inside | margin] > 0).all()), off
        else:
            assert g[p].max() == 0, off
    assert net.context_offsets(s) == [-(dz + 1), -dz, dz, dz + 1]


def test_blind_spot_zero_sees_the_voxel():
    net = ATBSN25D(1, 1, width=4, depth=1, z_context=1).double()
    assert _influence(net, 0, (7, 11, 13))[7, 11, 13] > 0


def test_planes_and_training_planes():
    """Predicting some planes equals predicting all and keeping those; a training patch's loss counts
    the planes whose context lies inside it."""
    torch.manual_seed(0)
    net = ATBSN25D(1, 1, width=4, depth=1, z_context=2).eval()
    x = torch.randn(2, 1, 10, 16, 12)
    with torch.no_grad():
        whole = net(x, 3)
        assert whole.shape == x.shape
        np.testing.assert_allclose(net(x, 3, planes=slice(3, 7)), whole[:, :, 3:7], atol=1e-6)
    assert net.training_planes(10, 1) == slice(2, 8) and net.training_planes(10, (3, 1, 1)) == slice(3, 7)
    assert net.training_planes(4, 1) == slice(0, 4)  # too shallow for whole context: every plane counts
    assert net.receptive_radii((3, 1, 1))[0] == 3 and net.receptive_radius(1) == net.receptive_radii(1)[1]


def test_rgb_volumes_and_any_shape():
    net = ATBSN25D(3, 3, width=4, depth=2, z_context=1).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 5, 13, 9), (1, 3, 3)).shape == (1, 3, 5, 13, 9)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_z_context(bad):
    with pytest.raises(ValueError, match="z_context"):
        ATBSN25D(1, 1, width=4, depth=1, z_context=bad)


def test_wrong_rank_is_refused():
    with pytest.raises(ValueError, match="Z, Y, X"):
        ATBSN25D(1, 1, width=4, depth=1)(torch.zeros(1, 1, 8, 8), 1)


@pytest.mark.parametrize("s", [1, (3, 1, 1), (1, 3, 5)])
def test_inference_form_equals_the_network(s):
    from napari_bsdenoise.nn.atbsn25d import FastATBSN25D
    from napari_bsdenoise.nn.fast_unet import inference_form

    torch.manual_seed(0)
    net = ATBSN25D(1, 1, width=4, depth=2, z_context=2).eval()
    fast = inference_form(net)
    assert isinstance(fast, FastATBSN25D) and fast.receptive_radii(s) == net.receptive_radii(s)
    x = torch.randn(1, 1, 9, 20, 17)
    with torch.no_grad():
        np.testing.assert_allclose(fast(x, s), net(x, s), atol=1e-5)


def test_end_planes_see_the_mirrored_planes_never_their_own():
    """Beyond the volume's ends a context plane is replaced by the plane as far on the other side (the end
    planes see as many planes as in training), never by the predicted plane or one within the Z side."""
    from napari_bsdenoise.nn.atbsn25d import context_plane

    assert [context_plane(0, o, 10) for o in (-2, -1, 1, 2)] == [2, 1, 1, 2]
    assert [context_plane(9, o, 10) for o in (-3, -2, 2, 3)] == [6, 7, 7, 6]
    assert context_plane(1, -3, 3) == 3  # neither side exists: the zero plane
    for d in range(1, 8):
        for z in range(d):
            for o in (-3, -2, 2, 3):
                assert abs(context_plane(z, o, d) - z) >= 2 or context_plane(z, o, d) == d
    torch.manual_seed(0)
    net = ATBSN25D(1, 1, width=4, depth=1, z_context=2).double()
    g = _influence(net, (3, 1, 1), (SHAPE[0] - 1, 11, 13))  # the last plane: offsets -3, -2 and (mirrored) +2, +3
    last = SHAPE[0] - 1
    assert g[last - 1].max() == 0 and g[last - 2, 11, 13] > 0 and g[last - 3, 11, 13] > 0
    assert g[last - 4].max() == 0 and g[last, 11, 13] == 0
