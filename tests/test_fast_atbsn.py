"""The inference form of the AT-BSN teacher (nn/fast_atbsn.py) computes the teacher's function, faster."""

import numpy as np
import pytest
import torch

from napari_bsdenoise.nn.atbsn import ATBSN
from napari_bsdenoise.nn.fast_atbsn import FastATBSN
from napari_bsdenoise.nn.fast_unet import inference_form
from napari_bsdenoise.nn.fusion import FusedNetwork, FusionParams

BLIND_SPOTS = [0, 1, 3, 5, 9, (1, 3), (5, 1), (3, 9)]


def _teacher(channels=1, width=8, depth=3, seed=0):
    torch.manual_seed(seed)
    net = ATBSN(channels, channels, width=width, depth=depth).eval()
    with torch.no_grad():  # non-zero biases and negative activations, so that a dropped bias or a pooling
        for m in net.modules():  # padded with -inf instead of ShiftPool's zero row would show
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.normal_(0, 0.3)
    return net


@pytest.mark.parametrize("channels,width,depth,shape,batch", [(1, 8, 3, (64, 64), 1), (3, 4, 2, (37, 50), 2),
                                                              (1, 16, 1, (20, 33), 1), (2, 4, 4, (48, 80), 3)])
def test_fp32_form_equals_the_teacher_at_every_blind_spot(channels, width, depth, shape, batch):
    net = _teacher(channels, width, depth)
    x = torch.randn(batch, channels, *shape)
    fast = FastATBSN(net)
    with torch.no_grad():
        for s in BLIND_SPOTS:
            want, got = net(x, s), fast(x, s)
            assert got.shape == want.shape and got.dtype == torch.float32
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        feats = fast.features(x)  # the distillation's one pass, several heads
        torch.testing.assert_close(fast.head_from_features(feats, 3, shape), net(x, 3), rtol=1e-5, atol=1e-5)
    assert fast.multiple == net.multiple
    assert all(fast.receptive_radius(s) == net.receptive_radius(s) for s in BLIND_SPOTS)


def test_fp32_form_without_channels_last_equals_the_teacher():
    net = _teacher()
    x = torch.randn(1, 1, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(FastATBSN(net, channels_last=False)(x, 3), net(x, 3), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("blind_spot", [1, 3, (1, 5), (5, 3)])
def test_the_form_keeps_the_blind_spot(blind_spot):
    """Gradient probe on the form itself: no influence inside the blind rectangle, some just outside."""
    net = FastATBSN(_teacher(width=4, depth=2).double(), dtype=torch.float64)
    sy, sx = blind_spot if isinstance(blind_spot, tuple) else (blind_spot, blind_spot)
    x = torch.randn(1, 1, 48, 48, dtype=torch.float64, requires_grad=True)
    c = 24
    net(x, blind_spot)[0, 0, c, c].backward()
    g = x.grad[0, 0].abs().numpy()
    ry, rx = (sy - 1) // 2, (sx - 1) // 2
    assert np.all(g[c - ry : c + ry + 1, c - rx : c + rx + 1] == 0)
    assert g[c - ry - 1, c] > 0 and g[c + ry + 1, c] > 0 and g[c, c - rx - 1] > 0 and g[c, c + rx + 1] > 0


def test_bf16_form_is_close_and_its_output_stays_fp32():
    net = _teacher()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        want = net(x, 3)
        got = FastATBSN(net, dtype=torch.bfloat16)(x, 3)
    assert got.dtype == torch.float32
    err = (got - want).pow(2).mean().sqrt() / want.std()
    assert 0 < err < 0.05


def test_the_form_is_a_copy_and_inference_form_builds_it():
    net = _teacher()
    fast = inference_form(net)
    assert isinstance(fast, FastATBSN) and inference_form(net, "bf16").dtype == torch.bfloat16
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        before = fast(x, 1)
        net.head[4].bias.add_(1.0)  # a later change to the teacher is not seen by the copy
        torch.testing.assert_close(fast(x, 1), before)
    params = FusionParams(intensities=((0.0, 1.0),), variances=((0.1, 0.1),), window=5, margin=0.5)
    wrapped = inference_form(FusedNetwork(net, params))
    assert isinstance(wrapped, FusedNetwork) and isinstance(wrapped.network, FastATBSN)
    with pytest.raises(ValueError, match="blind-spot"):
        student_like = ATBSN(1, 1, width=4, depth=2)
        student_like.unet.blind = False
        FastATBSN(student_like)
