"""The inference form of a student (nn/fast_unet.py) computes the student's function, faster."""

import numpy as np
import pytest
import torch

from napari_bsdenoise.nn.fast_unet import FastStudentUNet, inference_form
from napari_bsdenoise.nn.fusion import FusedNetwork, FusionParams
from napari_bsdenoise.nn.student import StudentUNet


def _student(channels=1, width=8, depth=3, seed=0):
    torch.manual_seed(seed)
    net = StudentUNet(channels, width=width, depth=depth).eval()
    with torch.no_grad():  # non-zero biases, so that a dropped or doubled bias would show
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.normal_(0, 0.1)
    return net


@pytest.mark.parametrize("channels,width,depth,shape", [(1, 8, 3, (64, 64)), (3, 4, 2, (37, 50)),
                                                        (1, 16, 1, (20, 33)), (2, 4, 4, (48, 80))])
def test_fp32_form_equals_the_student(channels, width, depth, shape):
    net = _student(channels, width, depth)
    x = torch.randn(2, channels, *shape)
    fast = FastStudentUNet(net)
    with torch.no_grad():
        want, got = net(x), fast(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert fast.multiple == net.multiple and fast.receptive_radius(0) == net.receptive_radius(0)


def test_bf16_form_is_close_and_its_output_stays_fp32():
    net = _student()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        want = net(x)
        got = FastStudentUNet(net, dtype=torch.bfloat16)(x)
    assert got.dtype == torch.float32
    err = (got - want).pow(2).mean().sqrt() / want.std()
    assert 0 < err < 0.05  # bf16 rounding: not bit-equal, but a few per cent of the signal at most


def test_the_form_is_a_copy():
    net = _student()
    fast = FastStudentUNet(net)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        before = fast(x)
        net.out.bias.add_(1.0)  # a later change to the student is not seen by the copy
        torch.testing.assert_close(fast(x), before)


def test_inference_form_rewrites_students_inside_wrappers_only():
    net = _student()
    assert isinstance(inference_form(net), FastStudentUNet)
    assert inference_form(net, "bf16").dtype == torch.bfloat16
    params = FusionParams(intensities=((0.0, 1.0),), variances=((0.1, 0.1),), window=5, margin=0.5)
    wrapped = inference_form(FusedNetwork(net, params))
    assert isinstance(wrapped, FusedNetwork) and isinstance(wrapped.network, FastStudentUNet)
    assert wrapped.params is params
    other = torch.nn.Identity()
    assert inference_form(other) is other
    with pytest.raises(ValueError, match="non-blind"):
        from napari_bsdenoise.nn.shifted import ShiftUNet

        blind = StudentUNet(1, width=4, depth=2)
        blind.unet = ShiftUNet(1, width=4, depth=2, blind=True)
        FastStudentUNet(blind)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_student_receptive_radius_is_exact(depth):
    """No pixel beyond ``receptive_radius`` influences an output pixel, and one at that distance does
    (all weights positive, so that no cancellation can hide an influence)."""
    net = StudentUNet(1, width=4, depth=depth).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.abs() + 0.01)
    r = net.receptive_radius(0)
    size = 2 * r + 4 * net.multiple
    size += (-size) % net.multiple
    worst = 0
    for c in range(size // 2 - net.multiple, size // 2 + net.multiple):  # every phase of the pooling grid
        x = torch.ones(1, 1, size, size, dtype=torch.double, requires_grad=True)
        net(x)[0, 0, c, c].backward()
        ys, xs = np.nonzero(x.grad[0, 0].numpy())
        worst = max(worst, int(max(np.abs(ys - c).max(), np.abs(xs - c).max())))
    assert worst == r
