"""The AT-BSN network: blind-spot geometry, parameter count, shapes."""

import numpy as np
import pytest
import torch

from napari_bsdenoise.nn import ATBSN, blind_spot_shift
from napari_bsdenoise.nn.atbsn import blind_spot_shifts


def _influence(net, s, h, w, cy, cx, device="cpu"):
    x = torch.randn(1, net.unet.enc0[0].in_channels, h, w, dtype=torch.float64, device=device, requires_grad=True)
    net(x, s)[0, 0, cy, cx].backward()
    g = x.grad[0].abs().sum(0).cpu()
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return g, torch.maximum((yy - cy).abs(), (xx - cx).abs())


@pytest.mark.parametrize("s", [1, 3, 5, 9])
@pytest.mark.parametrize("where", [(40, 40), (3, 60), (44, 1), (47, 67)])
def test_blind_spot_probe(s, where):
    """Chebyshev distance <= d-1: zero influence; d+1 .. receptive field: non-zero (algorithms.md §3.2)."""
    torch.manual_seed(0)
    net = ATBSN(1, 1, width=8, depth=3).double()
    d = blind_spot_shift(s)
    g, cheb = _influence(net, s, 48, 68, *where)
    assert g[cheb <= d - 1].max() == 0
    seen = g[(cheb >= d + 1) & (cheb <= d + 4)]
    assert seen.numel() > 0 and bool((seen > 0).all())


@pytest.mark.parametrize("s", [(1, 5), (5, 1), (3, 9), (9, 3), (1, 9)])
@pytest.mark.parametrize("where", [(40, 40), (3, 60), (44, 1)])
def test_per_axis_blind_spot_probe(s, where):
    """A (y, x) blind spot hides the rectangle |dy| <= dy-1, |dx| <= dx-1 and sees a margin around it."""
    torch.manual_seed(0)
    net = ATBSN(1, 1, width=8, depth=3).double()
    dy, dx = blind_spot_shifts(s)
    assert (dy, dx) == ((s[0] + 1) // 2, (s[1] + 1) // 2)
    x = torch.randn(1, 1, 48, 68, dtype=torch.float64, requires_grad=True)
    net(x, s)[0, 0, where[0], where[1]].backward()
    g = x.grad[0, 0].abs()
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(68), indexing="ij")
    ady, adx = (yy - where[0]).abs(), (xx - where[1]).abs()
    assert g[(ady <= dy - 1) & (adx <= dx - 1)].max() == 0
    near = torch.maximum(ady, adx) <= max(dy, dx) + 4
    # just outside the rectangle (one pixel of margin, as the square probe): every pixel is seen
    seen = g[near & ((ady >= dy + 1) | (adx >= dx + 1))]
    assert seen.numel() > 0 and bool((seen > 0).all())
    # and the rectangle is not a square: the short axis sees pixels the long axis hides
    if dy != dx:
        long_side = (ady <= max(dy, dx) - 1) & (adx <= max(dy, dx) - 1)
        assert g[long_side].max() > 0


def test_per_axis_blind_spot_equals_square_when_sides_agree():
    net = ATBSN(1, 1, width=8, depth=2).eval()
    x = torch.randn(1, 1, 32, 40)
    with torch.no_grad():
        np.testing.assert_allclose(net(x, (5, 5)), net(x, 5), atol=0)


@pytest.mark.parametrize("depth", [1, 2])
def test_shallow_networks_are_blind(depth):
    # depth 1 once built a last decoder block with the wrong number of input channels
    torch.manual_seed(0)
    net = ATBSN(1, 1, width=4, depth=depth).double()
    g, cheb = _influence(net, 3, 24, 28, 12, 14)
    assert g[cheb <= 1].max() == 0 and g[(cheb >= 3) & (cheb <= 5)].min() > 0


def test_blind_spot_zero_is_not_blind():
    net = ATBSN(1, 1, width=8, depth=3).double()
    g, cheb = _influence(net, 0, 32, 32, 16, 16)
    assert g[16, 16] > 0


def test_rgb_blind_spot_covers_all_channels():
    net = ATBSN(3, 3, width=8, depth=2).double()
    g, cheb = _influence(net, 3, 32, 40, 10, 30)
    assert g[cheb <= 1].max() == 0


def test_paper_preset_parameter_count():
    # the published AT-BSN teacher for RGB has exactly 1,268,547 parameters (algorithms.md §3.1)
    assert sum(p.numel() for p in ATBSN(3, 3, width=48, depth=5).parameters()) == 1_268_547


@pytest.mark.parametrize("shape", [(1, 1, 37, 53), (2, 3, 64, 64), (1, 1, 16, 100)])
def test_any_shape(shape, device):
    net = ATBSN(shape[1], shape[1], width=8, depth=4).to(device)
    y = net(torch.randn(shape, device=device), 3)
    assert y.shape == shape


def test_features_cache_matches_forward():
    net = ATBSN(1, 1, width=8, depth=3).eval()
    x = torch.randn(1, 1, 40, 56)
    with torch.no_grad():
        feats = net.features(x)
        for s in (0, 1, 5):
            np.testing.assert_allclose(net.head_from_features(feats, s, (40, 56)), net(x, s), atol=1e-6)


@pytest.mark.parametrize("s", [-1, 2, 4, (0, 3), (3, 0), (1, 2), (1, 3, 5)])
def test_invalid_blind_spot(s):
    with pytest.raises(ValueError):
        blind_spot_shift(s)
