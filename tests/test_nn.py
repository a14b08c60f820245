"""The AT-BSN network: blind-spot geometry, parameter count, shapes."""

import numpy as np
import pytest
import torch

from napari_bsdenoise.nn import ATBSN, blind_spot_shift


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


@pytest.mark.parametrize("s", [-1, 2, 4])
def test_invalid_blind_spot(s):
    with pytest.raises(ValueError):
        blind_spot_shift(s)
