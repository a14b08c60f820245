"""Tests of the noise-correlation diagnostic (synthetic data only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data

from napari_bsdenoise.errors import InputError
from napari_bsdenoise.noise import (
    NoiseCorrelation,
    estimate_noise_correlation,
    estimate_noise_correlation_samples,
)


def _camera() -> np.ndarray:
    return data.camera().astype(np.float64)


def _blurred_noise(shape, size=3, seed=0, axis=None) -> np.ndarray:
    """Unit-variance noise correlated by a box filter (over both axes, or only ``axis``)."""
    rng = np.random.default_rng(seed)
    pad = 2 * size
    raw = rng.normal(0.0, 1.0, (shape[0] + 2 * pad, shape[1] + 2 * pad))
    if axis is None:
        out = ndi.uniform_filter(raw, size)
    else:
        out = ndi.uniform_filter1d(raw, size, axis=axis)
    out = out[pad:-pad, pad:-pad]
    return out / out.std()


def _smooth_blobs(seed=1) -> np.ndarray:
    """A fluorescence-like image in [0, 1]: smoothed blobs on an empty background."""
    blobs = data.binary_blobs(512, blob_size_fraction=0.1, volume_fraction=0.25, rng=seed)
    return ndi.gaussian_filter(blobs.astype(np.float64), 2.0)


# --- pixel-independent noise ------------------------------------------------------------------


def test_white_noise_is_pixel_independent():
    noise = np.random.default_rng(0).normal(0.0, 1.0, (256, 256))
    res = estimate_noise_correlation(noise)
    assert abs(res.lag1_x) < 0.05 and abs(res.lag1_y) < 0.05
    assert res.correlation_length == 0
    assert (res.train_blind_spot, res.inference_blind_spot) == (1, 1)
    assert res.noise_std == pytest.approx(1.0, rel=0.1)
    assert "pixel-independent" in res.summary()


def test_white_noise_on_textured_image_and_noise_std():
    rng = np.random.default_rng(1)
    res = estimate_noise_correlation(_camera() + rng.normal(0.0, 10.0, (512, 512)))
    assert abs(res.lag1_x) < 0.05 and abs(res.lag1_y) < 0.05
    assert (res.train_blind_spot, res.inference_blind_spot) == (1, 1)
    assert res.noise_std == pytest.approx(10.0, rel=0.2)
    assert res.n_blocks > 0


def test_poisson_gaussian_uint16_with_offset_is_pixel_independent():
    rng = np.random.default_rng(2)
    photons = 2.0 + 60.0 * ndi.gaussian_filter(_camera(), 1.0) / 255.0
    gain, offset, read = 8.0, 400.0, 4.0
    img = gain * rng.poisson(photons) + offset + rng.normal(0.0, read, photons.shape)
    img = np.round(img).astype(np.uint16)
    res = estimate_noise_correlation(img)
    # the camera's dark coat has texture at the level of its (low, signal-dependent) noise: a small leak
    assert abs(res.lag1_x) < 0.08 and abs(res.lag1_y) < 0.08
    assert (res.train_blind_spot, res.inference_blind_spot) == (1, 1)
    true_std = np.sqrt(np.mean(gain**2 * photons + read**2))
    assert res.noise_std == pytest.approx(true_std, rel=0.3)


def test_dark_clipped_8bit_background_is_pixel_independent():
    # dim blobs on a dark background: Poisson counts plus read noise, clipped at 0, 8-bit
    rng = np.random.default_rng(3)
    photons = 1.0 + 30.0 * _smooth_blobs()
    img = rng.poisson(photons) + rng.normal(0.0, 1.5, photons.shape) - 1.0
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    assert np.mean(img == 0) > 0.1  # really clipped
    res = estimate_noise_correlation(img)
    assert (res.train_blind_spot, res.inference_blind_spot) == (1, 1)
    assert abs(res.lag1_x) < 0.06 and abs(res.lag1_y) < 0.06


def test_rgb_independent_channels():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    clean = np.stack([60 + 120 * yy, 80 + 100 * xx, 200 - 120 * yy * xx], axis=-1)
    img = np.clip(np.round(clean + rng.normal(0.0, 6.0, clean.shape)), 0, 255).astype(np.uint8)
    res = estimate_noise_correlation(img)  # YXC inferred, channels analysed separately
    assert (res.train_blind_spot, res.inference_blind_spot) == (1, 1)
    assert res.noise_std == pytest.approx(6.0, rel=0.2)


# --- correlated noise -------------------------------------------------------------------------


def test_box_blurred_noise_is_correlated():
    res = estimate_noise_correlation(_camera() + 25.0 * _blurred_noise((512, 512), 3))
    assert not res.mild  # noise at ~0.4 of the image's std: the rule for strong correlated noise
    # a 3x3 box filter gives correlation 2/3 at lag 1, 1/3 at lag 2, 0 beyond
    assert res.lag1_x > 0.5 and res.lag1_y > 0.5
    assert res.correlation_length >= 2
    assert res.train_blind_spot >= 5 and res.train_blind_spot % 2 == 1
    assert res.inference_blind_spot == 3
    assert "correlated" in res.summary()


def test_mild_correlated_noise_gets_small_blind_spots():
    """Weak correlated noise on a detailed image (DSLR-like): 3 / 3 keep detail; strong noise keeps 5+."""
    mild = estimate_noise_correlation(_camera() + 3.0 * _blurred_noise((512, 512), 3))
    assert mild.correlation_length >= 2 and mild.noise_fraction < 0.25 and mild.mild
    assert (mild.train_blind_spot, mild.inference_blind_spot) == (3, 3)
    assert "mild" in mild.summary()
    strong = estimate_noise_correlation(_camera() + 30.0 * _blurred_noise((512, 512), 3))
    assert not strong.mild and strong.train_blind_spot >= 5 and "mild" not in strong.summary()
    white = estimate_noise_correlation(_camera() + 3.0 * np.random.default_rng(0).normal(size=(512, 512)))
    assert not white.mild and white.train_blind_spot == 1  # pixel-independent noise is never "mild"


def test_gaussian_blurred_noise_is_correlated():
    rng = np.random.default_rng(5)
    noise = ndi.gaussian_filter(rng.normal(0.0, 1.0, (300, 300)), 1.0)[22:278, 22:278]
    res = estimate_noise_correlation(noise / noise.std())
    assert res.lag1_x == pytest.approx(np.exp(-0.25), abs=0.08)  # 0.78 for sigma = 1
    assert res.train_blind_spot >= 7
    assert 1 < res.inference_blind_spot <= res.train_blind_spot


def test_bias_correction_is_exact_on_pure_correlated_noise():
    noise = _blurred_noise((512, 512), 3, seed=6)
    res = estimate_noise_correlation(noise, max_lag=4)
    acf, L = res.autocorrelation, 4
    assert acf[L, L + 1] == pytest.approx(2 / 3, abs=0.03)
    assert acf[L, L + 2] == pytest.approx(1 / 3, abs=0.03)
    assert acf[L + 1, L + 1] == pytest.approx(4 / 9, abs=0.03)
    assert abs(acf[L, L + 3]) < 0.03 and abs(acf[L + 3, L]) < 0.03
    assert res.noise_std == pytest.approx(1.0, rel=0.1)


def test_correlation_along_one_axis():
    res = estimate_noise_correlation(50.0 + 5.0 * _blurred_noise((256, 256), 3, seed=7, axis=1))
    assert res.lag1_x > 0.5
    assert abs(res.lag1_y) < 0.1
    assert res.direction == "x" and "along x" in res.summary()
    # a rectangle: one row (y neighbours carry independent noise), several columns
    ty, tx = res.train_blind_spot
    assert ty == 1 and tx >= 5 and tx % 2 == 1
    assert res.inference_blind_spot == (1, 3)
    assert res.correlation_lengths[0] == 0 and res.correlation_lengths[1] >= 2


def _axis_noise(shape, axis, length, seed):
    n = 2 * length + 1
    kernel = {"x": np.ones((1, n)), "y": np.ones((n, 1)), "diag": np.eye(n)}[axis]
    out = ndi.convolve(np.random.default_rng(seed).normal(size=shape), kernel, mode="wrap")
    return out / out.std()


@pytest.mark.parametrize("axis", ["x", "y"])
def test_per_axis_blind_spot_on_a_textured_image(axis):
    """On the camera image texture leaks a little correlation into every direction: the short axis
    must still get one pixel, the long one the whole correlation (box of 7: correlated to lag 6)."""
    res = estimate_noise_correlation(_camera() + 20.0 * _axis_noise((512, 512), axis, 3, seed=11))
    short, long_side = res.train_blind_spot if axis == "x" else res.train_blind_spot[::-1]
    assert short == 1 and long_side >= 2 * 6 + 1  # lag 6, plus margin (up to the 15 that lag 7 allows)
    assert res.direction == axis
    assert f"along {axis}" in res.summary() and "x" in res.summary()


def test_diagonal_correlation_gets_a_square():
    res = estimate_noise_correlation(_camera() + 20.0 * _axis_noise((512, 512), "diag", 3, seed=12))
    assert res.direction == "diagonal"
    assert isinstance(res.train_blind_spot, int) and res.train_blind_spot >= 13


def test_long_correlation_extends_the_measured_lags():
    """Correlated beyond the default 4 lags: measured again out to 7, and the summary says so."""
    res = estimate_noise_correlation(50.0 + 5.0 * _axis_noise((512, 512), "x", 5, seed=13))
    assert res.autocorrelation.shape == (15, 15) and res.max_lag == 7
    assert res.correlation_reaches_edge and "beyond" in res.summary()
    assert res.train_blind_spot == (1, 15)
    short = estimate_noise_correlation(50.0 + 5.0 * _axis_noise((512, 512), "x", 5, seed=13), max_lag=4)
    assert short.max_lag == 7  # the extension is the default
    from napari_bsdenoise.noise import estimate_noise_correlation_samples

    fixed = estimate_noise_correlation_samples(
        (50.0 + 5.0 * _axis_noise((512, 512), "x", 5, seed=13))[None, None], extend=False)
    assert fixed.max_lag == 4 and fixed.correlation_reaches_edge


def test_per_axis_result_json_round_trip():
    from napari_bsdenoise.noise import NoiseCorrelation

    res = estimate_noise_correlation(50.0 + 5.0 * _axis_noise((256, 256), "y", 2, seed=14))
    assert isinstance(res.train_blind_spot, tuple)
    back = NoiseCorrelation.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back == res and back.train_blind_spot == res.train_blind_spot


# --- API, layout and result object ------------------------------------------------------------


def test_result_shape_centre_and_json():
    rng = np.random.default_rng(8)
    for max_lag in (2, 4):
        res = estimate_noise_correlation(rng.normal(size=(128, 128)), max_lag=max_lag)
        acf = res.autocorrelation
        assert acf.shape == (2 * max_lag + 1, 2 * max_lag + 1)
        assert acf[max_lag, max_lag] == 1.0
        np.testing.assert_allclose(acf, acf[::-1, ::-1])  # point symmetric
        d = res.to_dict()
        text = json.dumps(d)
        back = NoiseCorrelation.from_dict(json.loads(text))
        np.testing.assert_allclose(back.autocorrelation, acf)
        assert back == res
        assert isinstance(res.summary(), str) and res.summary()


def test_stack_and_samples_api_agree():
    rng = np.random.default_rng(9)
    stack = rng.normal(0.0, 2.0, (3, 128, 128)).astype(np.float32)
    res = estimate_noise_correlation(stack, axes="ZYX")
    res2 = estimate_noise_correlation_samples(stack[:, None])
    assert res.to_dict() == res2.to_dict()
    assert (res.train_blind_spot, res.inference_blind_spot) == (1, 1)
    assert res.noise_std == pytest.approx(2.0, rel=0.15)


def test_deterministic():
    img = _camera() + np.random.default_rng(10).normal(0.0, 5.0, (512, 512))
    assert estimate_noise_correlation(img).to_dict() == estimate_noise_correlation(img).to_dict()


def test_small_image_still_works():
    res = estimate_noise_correlation(np.random.default_rng(11).normal(size=(16, 16)))
    assert (res.train_blind_spot, res.inference_blind_spot) == (1, 1)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_raises(bad):
    img = np.random.default_rng(12).normal(size=(64, 64))
    img[10, 10] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        estimate_noise_correlation(img)


def test_too_small_raises():
    with pytest.raises(InputError, match="too small"):
        estimate_noise_correlation(np.zeros((8, 64)))
    with pytest.raises(InputError, match="too small"):
        estimate_noise_correlation_samples(np.zeros((1, 1, 64, 10), np.float32))


def test_other_bad_input_raises():
    with pytest.raises(InputError, match="no noise"):
        estimate_noise_correlation(np.full((64, 64), 7.0))
    with pytest.raises(InputError, match="numeric"):
        estimate_noise_correlation(np.zeros((64, 64), dtype=bool))
    with pytest.raises(InputError, match="max_lag"):
        estimate_noise_correlation(np.zeros((64, 64)), max_lag=9)
    with pytest.raises(InputError):
        estimate_noise_correlation(np.zeros((4, 64, 64)))  # ambiguous axes
    with pytest.raises(InputError, match="4-D"):
        estimate_noise_correlation_samples(np.zeros((64, 64), np.float32))


# --- hot pixels do not mislead the diagnostic -------------------------------------------------


def test_hot_pixels_do_not_make_noise_look_correlated():
    """0.3 % hot pixels (+20 sigma) push structured blocks into the estimate: without the diagnostic's own
    spike pass, pixel-independent noise on scikit-image's ``cell`` is given a blind spot of 3."""
    import napari_bsdenoise.noise.estimate as est
    from napari_bsdenoise.noise.despike import despike

    rng = np.random.default_rng(0)
    clean = data.cell().astype(np.float64)
    noisy = clean + rng.normal(0.0, 5.0, clean.shape)
    hot = noisy.copy()
    idx = rng.choice(hot.size, int(0.003 * hot.size), replace=False)
    hot.flat[idx] += 100
    res = estimate_noise_correlation(hot)
    assert (res.train_blind_spot, res.inference_blind_spot) == (1, 1)
    assert abs(res.lag1_x) < 0.1 and abs(res.lag1_y) < 0.1
    assert res.noise_std == pytest.approx(5.0, rel=0.2)
    real = est.despike
    try:  # the same image without the pass
        est.despike = lambda s: (s, 0)
        assert estimate_noise_correlation(hot).train_blind_spot != 1
    finally:
        est.despike = real
    # the pass replaces (nearly) only the spikes, in a copy; an image without spikes comes back as it is
    out, n = despike(hot[None, None])
    assert n >= 0.9 * len(idx) and np.abs(out[0, 0].flat[idx] - clean.flat[idx]).mean() < 10
    assert np.count_nonzero(out[0, 0] != hot.astype(np.float32)) <= n and hot.max() > clean.max() + 50
    smooth = clean.astype(np.float32)[None, None]
    assert despike(smooth)[1] == 0 and despike(smooth)[0] is smooth
    # a thin line and a diffraction-limited spot are not spikes
    img = noisy.copy()
    img[100, 50:150] += 100
    img[300:303, 300:303] += 100
    assert despike(img[None, None])[1] <= 2
