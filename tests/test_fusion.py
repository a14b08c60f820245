"""Fusing a blind-spot output with the noisy input (nn.fusion): the gate stays shut on noise, opens
where the prediction misses detail, follows a signal-dependent noise curve, and is the same
through every path (in memory, tiled, lazy, preview)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import napari_bsdenoise as bsd
from napari_bsdenoise.errors import InputError
from napari_bsdenoise.nn.fusion import DEFAULT_WINDOW, FusedNetwork, fuse, fusion_params
from napari_bsdenoise.noise import NoiseCorrelation


def _noise_record(std=10.0, acf=None, curve=()):
    acf = np.eye(1) if acf is None else acf
    return NoiseCorrelation(np.asarray(acf, float), 0.0, 0.0, 0, 1, 1, std, 100, 0.5, curve).to_dict()


def test_margin_counts_effectively_independent_samples():
    indep = fusion_params(_noise_record(), [0.0], [1.0], 1)
    assert indep.margin == pytest.approx(1 + 2 * math.sqrt(2 / DEFAULT_WINDOW**2))
    acf = np.full((3, 3), 0.5)
    acf[1, 1] = 1.0  # correlated noise: fewer independent samples per window, a wider margin
    corr = fusion_params(_noise_record(acf=acf), [0.0], [1.0], 1)
    assert corr.margin == pytest.approx(1 + 2 * math.sqrt(2 * (1 + 8 * 0.25) / DEFAULT_WINDOW**2))
    # normalised units: variance / std**2, intensities shifted and scaled
    p = fusion_params(_noise_record(std=4.0), [10.0], [2.0], 1)
    assert p.variances == ((4.0,),) and p.intensities == ((-5.0,),)


def test_gate_stays_shut_on_noise_and_opens_on_missed_detail(rng):
    clean = np.zeros((1, 1, 128, 128), np.float32)
    clean[..., 60:68, :] = 8.0  # a bright line the "blind-spot output" below misses
    noisy = clean + rng.normal(0, 1, clean.shape).astype(np.float32)
    params = fusion_params(_noise_record(std=1.0), [0.0], [1.0], 1)
    x = torch.from_numpy(noisy)
    # the right answer stays right: noise alone does not reopen the gate
    out = fuse(x, torch.from_numpy(clean), params).numpy()
    assert np.mean((out - clean) ** 2) < 0.02
    # a prediction that misses the line gets it back from the noisy input (minus most of the noise)
    missed = np.zeros_like(clean)
    out = fuse(x, torch.from_numpy(missed), params).numpy()
    err_line = np.mean((out - clean)[..., 60:68, :] ** 2)
    assert err_line < 1.5 < np.mean((missed - clean)[..., 60:68, :] ** 2)
    assert np.mean((out - clean)[..., :50, :] ** 2) < 0.02  # flat parts far from it stay denoised


def test_noise_curve_follows_signal_dependent_noise(rng):
    from skimage import data

    img = data.camera().astype(np.float64)
    noisy = rng.poisson(img / 4) * 4.0 + rng.normal(0, 3, img.shape)  # variance 4 * intensity + 9
    est = bsd.estimate_noise_correlation(noisy)
    mu, var = est.noise_curve[0]
    assert len(mu) >= 4 and np.all(np.diff(mu) >= 0)
    lo, hi = est.noise_variance(40.0), est.noise_variance(200.0)
    assert hi > 2 * lo  # shot noise grows with the intensity
    assert 0.6 * (4 * 200 + 9) < hi < 1.6 * (4 * 200 + 9)
    back = NoiseCorrelation.from_dict(est.to_dict())
    assert back.noise_curve == est.noise_curve and back.noise_variance(200.0) == hi


def _image(rng, correlated: bool):
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[:96, :96]
    noise = ndi.uniform_filter(rng.normal(0, 24, (96, 96)), 3) if correlated else rng.normal(0, 8, (96, 96))
    return (100 + 40 * np.sin(xx / 5.0) * (yy > 48) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def atbsn_model():
    """An AT-BSN trained on spatially correlated noise (where fusion="auto" applies)."""
    img = _image(np.random.default_rng(0), correlated=True)
    model = bsd.train(img, steps=3, network="tiny", blind_spot=3, patch_size=32, batch_size=2)
    assert model.config.noise["correlation_length"] > 0
    return model, img


def test_auto_leaves_pixel_independent_noise_alone():
    img = _image(np.random.default_rng(1), correlated=False)
    model = bsd.train(img, steps=2, network="tiny", blind_spot=1, patch_size=32, batch_size=2)
    assert model.config.noise["correlation_length"] == 0
    plain = bsd.denoise(img, model, fusion=False)
    np.testing.assert_array_equal(bsd.denoise(img, model, check=False), plain)  # "auto": no measured gain there
    assert not np.allclose(bsd.denoise(img, model, fusion=True), plain)  # but it can be asked for
    assert "fused" not in model.summary()


def test_denoise_fusion_paths_agree(atbsn_model, tmp_path):
    import dask.array as da

    model, img = atbsn_model
    assert "fused with the noisy input against its noise curve" in model.summary()
    plain = bsd.denoise(img, model, fusion=False)
    fused = bsd.denoise(img, model)  # "auto": fused for an AT-BSN model
    assert not np.allclose(plain, fused)
    np.testing.assert_array_equal(fused, bsd.denoise(img, model, fusion=True))
    np.testing.assert_allclose(bsd.denoise(img, model, tile_size=32), fused, atol=1e-4)
    lazy = bsd.denoise(da.from_array(img, chunks=48), model, tile_size=48).compute()
    np.testing.assert_allclose(lazy, fused, atol=1e-4)
    out = bsd.denoise(img, model, out=tmp_path / "o.zarr", chunk_size=48)
    import zarr

    np.testing.assert_allclose(zarr.open(str(out), mode="r")[...], fused, atol=1e-4)
    # blind spot 0 sees the noisy pixel: nothing to fuse
    np.testing.assert_array_equal(bsd.denoise(img, model, blind_spot=0), bsd.denoise(img, model, blind_spot=0,
                                                                                     fusion=False))
    with pytest.raises(InputError, match="blind_spot=0"):
        bsd.denoise(img, model, blind_spot=0, fusion=True)
    with pytest.raises(InputError, match="fusion must be"):
        bsd.denoise(img, model, fusion="yes")


def test_fusion_needs_a_blind_spot_model(atbsn_model):
    model, img = atbsn_model
    student = bsd.distill(img, model, steps=2, patch_size=32, batch_size=2)
    with pytest.raises(InputError, match="student"):
        bsd.denoise(img, student, fusion=True)
    np.testing.assert_array_equal(bsd.denoise(img, student, check=False), bsd.denoise(img, student, fusion=False))


def test_fused_network_radius_and_preview(atbsn_model):
    from napari_bsdenoise.api import Preview

    model, img = atbsn_model
    params = fusion_params(model.config.noise, model.config.normalization.mean, model.config.normalization.std, 1)
    net = FusedNetwork(model.network, params)
    assert net.receptive_radius(3) == model.network.receptive_radius(3) + DEFAULT_WINDOW // 2
    p = Preview(model, img, region=(20, 60, 10, 70))
    for s in (1, 3, 5):
        np.testing.assert_allclose(p.render(s), bsd.denoise(img, model, blind_spot=s)[20:60, 10:70], atol=1e-4)
    plain = Preview(model, img, region=(20, 60, 10, 70), fusion=False)
    np.testing.assert_allclose(plain.render(3), bsd.denoise(img, model, blind_spot=3, fusion=False)[20:60, 10:70], atol=1e-4)


def test_distillation_targets_are_fused_like_the_teachers_output(atbsn_model):
    from napari_bsdenoise.api import make_distiller

    model, img = atbsn_model
    kw = {"steps": 2, "patch_size": 32, "batch_size": 2, "teacher_blind_spots": [0, 1, 3]}
    fused = make_distiller(img, model, precompute=True, **kw)
    plain = make_distiller(img, model, precompute=True, fusion=False, **kw)
    assert fused.fusion is not None and plain.fusion is None
    # precomputed channels: the input, then the targets at blind spots 0, 1, 3
    a, b = fused.sampler.data[:, 1:], plain.sampler.data[:, 1:]
    np.testing.assert_array_equal(a[:, 0], b[:, 0])  # blind spot 0 sees the pixel: not fused
    for k in (1, 2):
        assert not np.allclose(a[:, k], b[:, k])
        want = fuse(torch.from_numpy(np.ascontiguousarray(plain.sampler.data[:, :1])), torch.from_numpy(np.ascontiguousarray(b[:, k : k + 1])), fused.fusion)
        np.testing.assert_allclose(a[:, k : k + 1], want.numpy(), atol=1e-5)
    # per-batch targets are fused the same way
    per_batch = make_distiller(img, model, **kw)
    x = torch.from_numpy(np.ascontiguousarray(per_batch.sampler.data[:1, :, :64, :64]))
    outs = per_batch.targets(x)
    raw = make_distiller(img, model, fusion=False, **kw).targets(x)
    torch.testing.assert_close(outs[0], raw[0])
    torch.testing.assert_close(outs[2], fuse(x, raw[2], per_batch.fusion))
    student = bsd.distill(img, model, **kw)
    assert student.config.training["distillation"]["fused_targets"] is True
