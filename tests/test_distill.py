"""Multi-teacher distillation: the non-blind student, its training and its use like any model."""

import numpy as np
import pytest
import torch

import napari_bsdenoise as bsd
from napari_bsdenoise.engine.distill import default_teacher_blind_spots
from napari_bsdenoise.errors import InputError
from napari_bsdenoise.nn import ATBSN, StudentUNet

from conftest import psnr

TINY = {"patch_size": 32, "batch_size": 4}


@pytest.fixture(scope="module")
def teacher():
    img = np.random.default_rng(1).normal(100, 10, (48, 48)).astype(np.float32)
    return bsd.train(img, steps=3, blind_spot=3, network="tiny", **TINY)


@pytest.fixture(scope="module")
def student(teacher):
    img = np.random.default_rng(2).normal(100, 10, (48, 48)).astype(np.float32)
    return bsd.distill(img, teacher, steps=3, **TINY)


def test_student_is_not_blind(device):
    """The output at a pixel depends on that pixel (unlike every teacher with s >= 1)."""
    torch.manual_seed(0)
    net = StudentUNet(1, width=8, depth=2).to(device).eval()
    x = torch.randn(1, 1, 32, 32, device=device, requires_grad=True)
    net(x)[0, 0, 16, 16].backward()
    assert x.grad[0, 0, 16, 16].abs() > 0
    assert (x.grad[0, 0].abs() > 0).sum() > 9  # and on its neighbourhood


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 1, 20, 64)])
def test_student_any_shape(shape):
    net = StudentUNet(shape[1], width=8, depth=3).eval()
    with torch.no_grad():
        assert net(torch.randn(shape)).shape == shape


def test_warm_start_copies_the_teachers_unet():
    t, s = ATBSN(1, width=8, depth=3), StudentUNet(1, width=8, depth=3)
    n = s.warm_start(t)
    assert n > 0
    assert torch.equal(s.unet.enc0[0].weight, t.unet.enc0[0].weight)
    assert not torch.equal(s.unet.dec[-1][0].weight, t.unet.dec[-1][0].weight)  # last block stays fresh
    assert StudentUNet(1, width=16, depth=3).warm_start(t) == 0  # other shapes: nothing copied


def test_default_teacher_sets():
    assert default_teacher_blind_spots(1) == (1,)
    assert default_teacher_blind_spots(3) == (0, 1, 3, 5)
    assert default_teacher_blind_spots(9) == (0, 1, 3, 5, 7, 9, 11)  # the paper's SIDD set


def test_distilled_model_behaves_like_any_model(student, teacher, tmp_path, rng):
    assert student.is_student and student.inference_blind_spot == 0
    assert student.config.training["distillation"]["teacher_blind_spots"] == [0, 1, 3, 5]
    assert "student" in student.summary()
    img = rng.normal(100, 10, (2, 40, 50)).astype(np.float32)
    out = bsd.denoise(img, student, axes="ZYX")
    assert out.shape == img.shape and out.dtype == np.float32
    path = student.save(tmp_path / "student.safetensors")
    again = bsd.load_model(path)
    assert again.is_student
    np.testing.assert_array_equal(bsd.denoise(img, again, axes="ZYX"), out)
    # exact tiling (tiles on the pooling grid, halo = receptive radius)
    big = rng.normal(100, 10, (100, 90)).astype(np.float32)
    np.testing.assert_allclose(bsd.denoise(big, student, tile_size=32), bsd.denoise(big, student), atol=1e-4)
    # lazy path
    da = pytest.importorskip("dask.array")
    lazy = bsd.denoise(da.from_array(big, chunks=64), student)
    np.testing.assert_allclose(np.asarray(lazy), bsd.denoise(big, student), atol=1e-4)


def test_student_rejects_a_blind_spot(student, rng):
    img = rng.normal(100, 10, (40, 40)).astype(np.float32)
    bsd.denoise(img, student, blind_spot=0)
    with pytest.raises(InputError, match="non-blind"):
        bsd.denoise(img, student, blind_spot=3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "median"}, "mode"),
        ({"student": "huge"}, "student"),
        ({"teacher_blind_spots": [2]}, "odd"),
        ({"teacher_blind_spots": []}, "empty"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_distill_arguments(teacher, rng, kwargs, match):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    with pytest.raises(InputError, match=match):
        bsd.distill(img, teacher, **kwargs)


def test_bad_teacher_or_student(teacher, student, rng):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    with pytest.raises(InputError, match="teacher must be a BlindSpotModel"):
        bsd.distill(img, "model.safetensors")
    with pytest.raises(InputError, match="not a distilled student"):
        bsd.distill(img, student)
    with pytest.raises(InputError, match="distilled student"):
        bsd.distill(img, teacher, student=teacher)
    with pytest.raises(InputError, match="distill"):
        bsd.train(img, model=student, steps=1)
    with pytest.raises(InputError, match="3-channel"):
        bsd.distill(img, _rgb_teacher())  # a grey image for an RGB teacher


def _rgb_teacher():
    img = np.random.default_rng(3).normal(100, 10, (48, 48, 3)).astype(np.float32)
    return bsd.train(img, steps=1, blind_spot=1, network="tiny", **TINY)


def test_mean_teacher_mode(teacher, rng):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    distiller = bsd.make_distiller(img, teacher, mode="mean", steps=2, **TINY)
    x = torch.from_numpy(distiller.sampler.batch(2))
    assert len(distiller.targets(x)) == 1
    multi = bsd.make_distiller(img, teacher, steps=2, **TINY)
    targets = multi.targets(x)
    assert len(targets) == 4
    torch.testing.assert_close(distiller.targets(x)[0], torch.stack(targets).mean(0))
    assert list(distiller)[-1].kind == "done"


def test_per_batch_targets_are_the_teachers_outputs(teacher, rng):
    """Per batch, the targets come from the teacher's inference form (nn/fast_atbsn.py): the same
    function as the trained network, at every teacher blind spot."""
    from napari_bsdenoise.nn.fast_atbsn import FastATBSN

    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    distiller = bsd.make_distiller(img, teacher, steps=2, precision="fp32", fusion=False, hot_pixels="keep", **TINY)
    assert isinstance(distiller.teacher_form, FastATBSN)
    x = torch.from_numpy(distiller.sampler.batch(3))
    with torch.no_grad():
        expected = [teacher.network.eval()(x, s) for s in distiller.blind_spots]
    for got, want in zip(distiller.targets(x), expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_whole_image_targets_are_the_teachers_dihedral_mean(teacher, rng, monkeypatch):
    """Precomputed targets (``precompute=True``/``"auto"``) are each teacher's output on the whole image,
    averaged over the 8 dihedral transforms, and they travel with every crop as extra channels."""
    from napari_bsdenoise.engine import distill as distill_mod
    from napari_bsdenoise.engine.patches import dihedral

    img = rng.normal(100, 10, (40, 56)).astype(np.float32)
    assert not bsd.make_distiller(img, teacher, steps=2, **TINY).precomputed  # the default: per patch
    distiller = bsd.make_distiller(img, teacher, steps=2, precision="fp32", precompute="auto", **TINY)
    assert distiller.precomputed and distiller.sampler.data.shape[1] == 1 + 4
    mean, std = teacher.config.normalization.mean[0], teacher.config.normalization.std[0]
    for j, s in enumerate((0, 1, 3, 5)):
        expected = np.mean([distill_mod._undo_dihedral(
            bsd.denoise(np.ascontiguousarray(dihedral(img, k)), teacher, blind_spot=s, precision="fp32"), k)
            for k in range(8)], axis=0)
        np.testing.assert_allclose(distiller.sampler.data[0, 1 + j], (expected - mean) / std, atol=1e-4)
    assert list(distiller)[-1].kind == "done"
    assert distiller.model.config.training["teacher_targets"] == "whole image"
    # too much data for whole-image targets: back to running the teacher patch by patch
    monkeypatch.setattr(distill_mod, "PRECOMPUTE_MAX_PIXELS", 100)
    per_patch = bsd.make_distiller(img, teacher, steps=2, precompute="auto", **TINY)
    assert not per_patch.precomputed and per_patch.sampler.data.shape[1] == 1
    assert list(per_patch)[-1].kind == "done"
    assert per_patch.model.config.training["teacher_targets"] == "per patch"
    mean_mode = bsd.make_distiller(img, teacher, steps=2, mode="mean", precompute=True, **TINY)
    assert mean_mode.sampler.data.shape[1] == 2 and list(mean_mode)[-1].kind == "done"
    with pytest.raises(InputError, match="precompute"):
        bsd.make_distiller(img, teacher, steps=2, precompute="yes", **TINY)


def test_continue_distilling_and_stop(teacher, student, rng):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    distiller = bsd.make_distiller(img, teacher, student=student, steps=6, **TINY)
    events = []
    for e in distiller:
        events.append(e)
        if e.kind == "step" and e.step == 2:
            break  # a stopped run keeps its best model
    assert distiller.model.is_student and distiller.step == 2
    assert events[0].kind == "start" and "teachers at blind spots 0, 1, 3, 5" in events[0].message
    rest = list(distiller.run())
    assert rest[-1].kind == "done" and distiller.step == 6


@pytest.mark.slow
def test_student_beats_the_teachers_best_blind_spot_on_correlated_noise():
    """AT-BSN (D)'s claim on a small synthetic: the student beats every single teacher."""
    from scipy.ndimage import uniform_filter
    from skimage import data

    rng = np.random.default_rng(0)
    clean = data.camera()[40:168, 180:308].astype(np.float32) * 200 / 255
    corr = uniform_filter(rng.normal(0, 1, clean.shape), 3, mode="wrap")
    noisy = (clean + 20 * corr / corr.std()).astype(np.float32)
    kw = {"patch_size": 48, "batch_size": 4, "seed": 0}
    teacher = bsd.train(noisy, blind_spot=9, steps=150, network="tiny", **kw)
    # the teachers are the network's outputs (what the student learns), not denoise's fused default
    best_single = max(psnr(bsd.denoise(noisy, teacher, blind_spot=s, fusion=False), clean, 200)
                      for s in (0, 1, 3, 5, 7, 9, 11))
    events = []
    student = bsd.distill(noisy, teacher, steps=100, callback=events.append, **kw)
    vals = [e.val_loss for e in events if e.kind == "validation"]
    assert vals[-1] < vals[0]  # distillation lowers the (held-out) distillation loss
    p_student = psnr(bsd.denoise(noisy, student), clean, 200)
    # measured: best single teacher 22.9 dB (s=1), student 23.7 dB (mean-teacher mode: 23.8)
    assert p_student > best_single + 0.3, (p_student, best_single)
