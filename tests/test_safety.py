"""The self-supervised safety check (engine/sure.py, engine/safety.py): SURE is exact where the noise
model is, it rejects a deliberately bad model, and denoise falls back and says so (issue #18)."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

import napari_bsdenoise as bsd
from napari_bsdenoise.engine.sure import correlated_probe, estimate_risk
from napari_bsdenoise.errors import InputError


def _blur(x, sigma):
    r = int(3 * sigma) + 1
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1))


class _Blur(torch.nn.Module):
    def __init__(self, sigma):
        super().__init__()
        self.sigma = sigma

    def forward(self, x, blind_spot=None):
        return _blur(x, self.sigma)


def _x_box_acf(length):
    n, L = 2 * length + 1, 2 * length
    acf = np.zeros((2 * L + 1, 2 * L + 1))
    for dx in range(-L, L + 1):
        acf[L, L + dx] = max(0.0, 1 - abs(dx) / n)
    return acf


@pytest.mark.parametrize("kind", ["white", "x_correlated"])
@pytest.mark.parametrize("sigma", [0.7, 2.0])
def test_sure_is_exact_with_the_true_noise_model(kind, sigma):
    from skimage import data

    rng = np.random.default_rng(0)
    clean = data.camera()[:256, :256].astype(np.float32) / 255
    if kind == "white":
        noise, acf = rng.normal(0, 0.08, clean.shape), np.pad([[1.0]], 4)
    else:
        noise = ndi.convolve(rng.normal(size=clean.shape), np.ones((1, 7)) / np.sqrt(7), mode="wrap") * 0.08
        acf = _x_box_acf(3)
    y = (clean + noise).astype(np.float32)[None, None]
    net = _Blur(sigma)
    g = net(torch.from_numpy(y)).numpy()
    true_gain = 10 * np.log10(np.mean(noise**2) / np.mean((g[0, 0] - clean) ** 2))
    knots = SimpleNamespace(intensities=((0.0,),), variances=((0.08**2,),))
    risk = estimate_risk(net, y, blind_spot=1, acf=acf, knots=knots, device=torch.device("cpu"), crop=256)
    assert risk.gain_db() == pytest.approx(true_gain, abs=0.3)
    # the identity is estimated at 0 dB exactly in expectation; a wrong noise model (white for
    # correlated noise) makes a blur that copies the correlation look better than it is
    if kind == "x_correlated":
        white = estimate_risk(net, y, blind_spot=1, acf=np.pad([[1.0]], 4), knots=knots,
                              device=torch.device("cpu"), crop=256)
        assert white.gain_db() > true_gain + 1


def test_the_default_crops_cover_a_512_image_whole():
    """With two crops the estimate read only the left half of a 512x512 image, and the noise level on
    its flat parts varied with the content (docs/safety.md); the default covers all of it."""
    y = np.random.default_rng(0).normal(0, 0.1, (1, 1, 512, 512)).astype(np.float32)
    knots = SimpleNamespace(intensities=((0.0,),), variances=((0.01,),))
    risk = estimate_risk(_Blur(1.0), y, blind_spot=1, acf=np.pad([[1.0]], 4), knots=knots, device=torch.device("cpu"))
    assert risk.pixels == 512 * 512
    two = estimate_risk(_Blur(1.0), y, blind_spot=1, acf=np.pad([[1.0]], 4), knots=knots, device=torch.device("cpu"),
                        crops=2)
    assert two.pixels == 512 * 512 // 2


def test_correlated_probe_has_the_autocorrelation():
    acf = _x_box_acf(2)
    b = correlated_probe((1, 1, 256, 256), acf, np.random.default_rng(1))[0, 0]
    assert b.std() == pytest.approx(1.0, abs=1e-3)
    lag = lambda dy, dx: float(np.mean(b * np.roll(b, (dy, dx), axis=(0, 1))))  # noqa: E731
    assert lag(0, 1) == pytest.approx(acf[4, 5], abs=0.03) and abs(lag(1, 0)) < 0.03


@pytest.fixture(scope="module")
def correlated():
    """Noise correlated along x on a smooth image, and a model trained 3 steps at (1, 9)."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:128, :128]
    clean = 100 + 40 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    noise = ndi.convolve(rng.normal(size=clean.shape), np.ones((1, 7)) / np.sqrt(7), mode="wrap")
    noisy = (clean + 12 * noise).astype(np.float32)
    return noisy, clean


def test_rejects_a_deliberately_bad_setting(correlated):
    """Blind spot 0 of a barely trained network copies the correlated noise and more: the check
    estimates it below the input, tries the other settings and picks one that is not worse."""
    noisy, clean = correlated
    bad = bsd.train(noisy, steps=1, network="tiny", blind_spot=(1, 9), patch_size=32, batch_size=2, seed=1)
    report = bsd.safety_check(noisy, bad, blind_spot=0)
    assert report.checked and report.fell_back and report.candidates[0].gain_db < 0
    err = lambda out: float(np.mean((np.asarray(out, float) - clean) ** 2))  # noqa: E731
    assert err(bsd.denoise(noisy, bad, blind_spot=0, check=False)) > err(noisy)  # it is bad
    with pytest.warns(bsd.SafetyWarning, match="safety check"):
        out = bsd.denoise(noisy, bad, blind_spot=0, check=True)
    assert err(out) <= err(noisy) * 1.05  # not worse than the input (within 0.2 dB)
    json.dumps(report.to_dict())
    assert "safety check" in report.summary()


def test_keeps_the_input_when_nothing_helps(correlated):
    """A network whose weights were scrambled is worse than the input at every setting: the input
    is returned unchanged (a copy), with a warning, and nothing is written to a file."""
    noisy, _ = correlated
    broken = bsd.train(noisy, steps=1, network="tiny", blind_spot=(1, 9), patch_size=32, batch_size=2)
    with torch.no_grad():
        for p in broken.network.parameters():
            p.mul_(25.0)
    with pytest.warns(bsd.SafetyWarning, match="input is kept"):
        out = bsd.denoise(noisy, broken)
    np.testing.assert_array_equal(out, noisy)
    assert out is not noisy
    report = bsd.safety_check(noisy, broken)
    assert report.chosen is None and report.to_dict()["chosen"] is None


def test_the_input_is_kept_only_clearly_below_it():
    """The estimate errs by 1-2 dB on mild real noise (docs/safety.md): a setting estimated slightly
    below the input is still used (the best of them), the input is kept below -KEEP_INPUT_DB."""
    from napari_bsdenoise.engine.safety import KEEP_INPUT_DB, Candidate, SafetyReport, fallback_choice

    a, b = Candidate(3, "auto", -0.64, True), Candidate(3, False, -0.99, False)
    assert fallback_choice([a, b]) is a and fallback_choice([b, a]) is a
    report = SafetyReport(candidates=[a, b], chosen=a, fell_back=True)
    assert not report.keeps_input and "within the check's error" in report.summary()
    low = [Candidate(3, "auto", -KEEP_INPUT_DB, True), Candidate(1, "auto", -6.0, True)]
    assert fallback_choice(low) is None
    kept = SafetyReport(candidates=low, chosen=None, fell_back=True)
    assert kept.keeps_input and "the input is kept unchanged" in kept.summary()


def test_good_default_is_kept_and_check_can_be_skipped(correlated):
    noisy, clean = correlated
    model = bsd.train(noisy, steps=60, network="tiny", blind_spot=(1, 9), patch_size=48, batch_size=4)
    report = bsd.safety_check(noisy, model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bsd.SafetyWarning)  # no fallback, no warning
        if not report.fell_back:
            checked = bsd.denoise(noisy, model)
            np.testing.assert_array_equal(checked, bsd.denoise(noisy, model, check=False))
    events = []
    bsd.denoise(noisy, model, callback=events.append)
    assert any(e.kind == "check" and "safety check" in e.message for e in events)
    with pytest.raises(InputError, match="check must be"):
        bsd.denoise(noisy, model, check="yes")


def test_skipped_without_a_noise_model(correlated):
    noisy, _ = correlated
    model = bsd.train(noisy, steps=1, network="tiny", blind_spot=(1, 9), patch_size=32, batch_size=2)
    model.config.noise = None
    report = bsd.safety_check(noisy, model)
    assert not report.checked and "skipped" in report.summary()


def test_sure_with_noise_correlated_across_channels():
    """sRGB-like noise, the same in R, G and B to 0.8: the probe correlated across channels keeps the
    estimate exact; a per-channel probe makes a channel-mixing blur look better than it is."""
    from skimage import data

    rng = np.random.default_rng(3)
    clean = data.astronaut()[:192, :192].astype(np.float32).transpose(2, 0, 1) / 255
    corr = np.full((3, 3), 0.8) + 0.2 * np.eye(3)
    noise = np.einsum("ij,jhw->ihw", np.linalg.cholesky(corr), rng.normal(size=clean.shape)) * 0.08
    y = (clean + noise).astype(np.float32)[None]

    class _MixBlur(torch.nn.Module):  # blur each channel, then average the channels a little
        def forward(self, x, blind_spot=None):
            b = torch.cat([_blur(x[:, i: i + 1], 1.0) for i in range(3)], 1)
            return 0.7 * b + 0.3 * b.mean(1, keepdim=True)

    net = _MixBlur()
    g = net(torch.from_numpy(y)).numpy()[0]
    true_gain = 10 * np.log10(np.mean(noise**2) / np.mean((g - clean) ** 2))
    knots = SimpleNamespace(intensities=((0.0,),) * 3, variances=((0.08**2,),) * 3)
    kw = dict(blind_spot=1, acf=np.pad([[1.0]], 4), knots=knots, device=torch.device("cpu"), crop=192)
    joint = estimate_risk(net, y, channel_corr=corr, **kw)
    assert joint.gain_db() == pytest.approx(true_gain, abs=0.3)
    assert estimate_risk(net, y, **kw).gain_db() > true_gain + 0.5
    # and the correlation is read back from the residual of a noise-blind "denoiser" (the clean image)
    class _Oracle(torch.nn.Module):
        def forward(self, x, blind_spot=None):
            return torch.from_numpy(clean[None])

    ref = estimate_risk(_Oracle(), y, probe=False, **kw)
    np.testing.assert_allclose(ref.channel_correlation(), corr, atol=0.05)


def _acf_with_rings(rings):
    """A (2L+1)^2 autocorrelation whose Chebyshev ring d holds rings[d - 1]."""
    L = len(rings)
    yy, xx = np.meshgrid(np.arange(-L, L + 1), np.arange(-L, L + 1), indexing="ij")
    ring = np.maximum(np.abs(yy), np.abs(xx))
    return np.where(ring == 0, 1.0, np.array([1.0, *rings])[ring]).tolist()


@pytest.mark.parametrize("train,rings,expected", [
    (3, [0.72, 0.42, 0.25, 0.16], 5),  # Nam d800_iso1600_3: two pixels away still 0.42
    (3, [0.68, 0.27, 0.13, 0.10], 3),  # Nam 5dmark3_iso3200_1
    (3, [0.9, 0.8, 0.7, 0.6], 9),  # correlated to the diagnostic's range: no further
    (1, [0.05, 0.01, 0.0, 0.0], 1),  # pixel-independent
    ((1, 9), [0.72, 0.42, 0.25, 0.16], (1, 9)),  # a rectangle is kept
])
def test_the_noise_level_is_read_beyond_the_correlated_neighbours(train, rings, expected):
    """The safety check reads the image's noise level on the output at the training blind spot, widened
    while the nearest pixels that output sees still carry strongly correlated noise (methods/atbsn.py)."""
    from napari_bsdenoise import registry
    from napari_bsdenoise.methods.atbsn import reference_blind_spot

    cfg = SimpleNamespace(train_blind_spot=train, noise={"autocorrelation": _acf_with_rings(rings)},
                          network=SimpleNamespace(spatial_dims=2))
    assert reference_blind_spot(cfg) == expected
    assert registry.get("atbsn").reference(cfg) == (expected, False)
    cfg.noise = None
    assert reference_blind_spot(cfg) == train
