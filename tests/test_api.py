"""The public API: training, denoising, model files and every documented bad input."""

import numpy as np
import pytest

import napari_bsdenoise as bsd
from napari_bsdenoise.errors import InputError, ModelFileError

from conftest import psnr

TINY = {"network": "tiny", "patch_size": 32, "batch_size": 4}


@pytest.fixture(scope="module")
def tiny_model():
    rng = np.random.default_rng(1)
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    return bsd.train(img, steps=3, blind_spot=1, **TINY)


# -- training ------------------------------------------------------------------------------
@pytest.mark.slow
def test_training_lowers_validation_loss_and_raises_psnr(smooth_image, rng):
    from skimage import data

    clean = data.camera()[40:168, 180:308].astype(np.float32) * 200 / 255
    noisy = clean + rng.normal(0, 20, clean.shape).astype(np.float32)
    smooth_image = clean
    events = []
    kw = {"network": "tiny", "patch_size": 48, "batch_size": 4, "seed": 0}
    model = bsd.train(noisy, steps=150, blind_spot=1, callback=events.append, **kw)
    vals = [e.val_loss for e in events if e.kind == "validation"]
    assert vals[-1] < 0.9 * vals[0]
    assert model.config.training["best_val_loss"] <= min(vals) + 1e-9
    out = bsd.denoise(noisy, model)
    assert out.dtype == np.float32 and out.shape == noisy.shape
    assert psnr(out, smooth_image, 200) > psnr(noisy, smooth_image, 200) + 3  # measured +5 dB


@pytest.mark.slow
def test_large_train_blind_spot_beats_one_pixel_on_correlated_noise(smooth_image, rng):
    """Spatially correlated noise: a 1-pixel BSN reproduces it; train 9 / infer 3 removes it."""
    from scipy.ndimage import uniform_filter
    from skimage import data

    clean = data.camera()[40:168, 180:308].astype(np.float32) * 200 / 255
    white = rng.normal(0, 1, clean.shape)
    corr = uniform_filter(white, 3, mode="wrap")
    noisy = (clean + 20 * corr / corr.std()).astype(np.float32)
    kw = {"network": "tiny", "patch_size": 48, "batch_size": 4, "steps": 150, "seed": 0}
    m1 = bsd.train(noisy, blind_spot=1, **kw)
    m9 = bsd.train(noisy, blind_spot=9, **kw)
    p_noisy = psnr(noisy, clean, 200)
    p1 = psnr(bsd.denoise(noisy, m1, blind_spot=1), clean, 200)
    p93 = psnr(bsd.denoise(noisy, m9, blind_spot=3), clean, 200)
    # measured (tests/ on 2 CPU cores): noisy 20.0, 1-pixel 20.3, train 9 / infer 3 21.8 dB
    assert p93 > p1 + 1.0 and p93 > p_noisy + 1.0, (p_noisy, p1, p93)


def test_seeded_training_is_reproducible(rng):
    img = rng.normal(0, 1, (40, 40)).astype(np.float32)
    a = bsd.train(img, steps=4, blind_spot=1, seed=3, **TINY)
    b = bsd.train(img, steps=4, blind_spot=1, seed=3, **TINY)
    for (k, va), vb in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        assert np.array_equal(va.numpy(), vb.numpy()), k


def test_stop_keeps_best_and_resume_continues(rng):
    img = rng.normal(0, 1, (48, 48)).astype(np.float32)
    trainer = bsd.make_trainer(img, steps=40, blind_spot=1, **TINY)
    for event in trainer:
        if event.step >= 5:
            break  # "Stop"
    stopped = trainer.model
    assert isinstance(stopped, bsd.BlindSpotModel) and trainer.step == 5
    for _ in trainer.run(steps=3):  # "Continue": optimiser state kept, budget extended
        pass
    assert trainer.step == 8
    assert trainer.model.config.training["steps"] == 8


def test_callback_false_stops(rng):
    img = rng.normal(0, 1, (40, 40)).astype(np.float32)
    seen = []
    bsd.train(img, steps=50, blind_spot=1, callback=lambda e: seen.append(e) or e.step < 2, **TINY)
    assert max(e.step for e in seen) == 2


def test_continue_from_model(tiny_model, rng):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    more = bsd.train(img, steps=2, blind_spot=1, model=tiny_model, **TINY)
    assert more.config.normalization == tiny_model.config.normalization


def test_seconds_budget(rng):
    img = rng.normal(0, 1, (40, 40)).astype(np.float32)
    trainer = bsd.make_trainer(img, seconds=1.0, blind_spot=1, **TINY)
    events = list(trainer)
    assert events[-1].kind == "done" and trainer.elapsed >= 1.0


def test_auto_blind_spot_uses_the_diagnostic(rng, smooth_image):
    from scipy.ndimage import uniform_filter

    yy, xx = np.mgrid[:128, :128]
    smooth = 100 + 50 * np.sin(xx / 20) * np.cos(yy / 15)
    m_white = bsd.make_trainer(smooth + rng.normal(0, 10, (128, 128)), steps=1, **TINY).model
    assert (m_white.train_blind_spot, m_white.inference_blind_spot) == (1, 1)
    corr = uniform_filter(rng.normal(0, 1, (128, 128)), 3)
    m_corr = bsd.make_trainer(corr.astype(np.float32), steps=1, **TINY).model
    assert m_corr.train_blind_spot >= 5 and m_corr.inference_blind_spot == 3
    assert "noise" in m_corr.summary()


# -- data handling -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,axes,dtype",
    [
        ((40, 44), None, np.uint16),
        ((40, 44, 3), None, np.uint8),
        ((3, 40, 44), "ZYX", np.float32),
        ((2, 2, 40, 44), "TCYX", np.uint16),
        ((2, 40, 2, 44), "ZYCX", np.float64),
    ],
)
def test_train_and_denoise_axes_and_dtypes(shape, axes, dtype, rng):
    img = (rng.random(shape) * 200).astype(dtype)
    model = bsd.train(img, axes=axes, steps=2, blind_spot=1, **TINY)
    out = bsd.denoise(img, model, axes=axes)
    assert out.shape == img.shape and out.dtype == np.float32
    if shape[-1] == 3 and axes is None:
        assert model.config.channel_mode == "joint" and model.config.network.in_channels == 3
        assert model.config.loss == "l1"
    if axes and "C" in axes:
        assert model.config.channel_mode == "independent" and model.config.network.in_channels == 1
        assert len(model.config.normalization.mean) == 2


def test_input_never_modified(tiny_model, rng):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    copy = img.copy()
    bsd.denoise(img, tiny_model)
    bsd.train(img, steps=1, blind_spot=1, **TINY)
    assert np.array_equal(img, copy)


def test_normalisation_is_the_models_not_the_fields(tiny_model, rng):
    """What lies outside the receptive field (here a much brighter region) changes nothing:
    the normalisation is the model's, never recomputed from the image or a tile."""
    img = rng.normal(100, 10, (64, 300)).astype(np.float32)
    img[:, 150:] += 500
    # (check=False: the 3-step model is no denoiser, and the safety check would rightly keep the input)
    whole = bsd.denoise(img, tiny_model, check=False)
    crop = bsd.denoise(img[:, :150], tiny_model, check=False)
    far = 150 - tiny_model.network.receptive_radius(1) - 1
    np.testing.assert_allclose(whole[:, :far], crop[:, :far], atol=1e-3)
    renorm = bsd.denoise(img[:, :150], tiny_model, renormalize=True)
    assert not np.allclose(renorm[:, :far], crop[:, :far], atol=1e-3)


def test_negative_values_not_clipped(rng):
    img = rng.normal(-50, 10, (48, 48)).astype(np.float32)
    model = bsd.train(img, steps=20, blind_spot=1, **TINY)
    out = bsd.denoise(img, model)
    assert out.mean() < -40 and out.min() < -50


@pytest.mark.parametrize("shape", [(150, 170), (2, 70, 333)])
def test_tiled_equals_untiled(tiny_model, rng, shape):
    img = rng.normal(100, 10, shape).astype(np.float32)
    axes = "YX" if len(shape) == 2 else "ZYX"
    a = bsd.denoise(img, tiny_model, axes=axes, tile_size=40)
    b = bsd.denoise(img, tiny_model, axes=axes, tile_size=4096)
    assert np.abs(a - b).max() <= 1e-4 * (img.max() - img.min())


def test_blind_spot_choice_changes_output(tiny_model, rng):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    assert not np.allclose(bsd.denoise(img, tiny_model, blind_spot=1), bsd.denoise(img, tiny_model, blind_spot=5))


# -- model files ---------------------------------------------------------------------------
def test_save_load_identical(tiny_model, tmp_path, rng):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    path = tiny_model.save(tmp_path / "m.safetensors")
    loaded = bsd.load_model(path)
    assert loaded.config.to_dict() == tiny_model.config.to_dict()
    assert np.array_equal(bsd.denoise(img, loaded), bsd.denoise(img, tiny_model))
    assert loaded.config.version == bsd.__version__


def test_model_file_is_safetensors_with_json(tiny_model, tmp_path):
    import json
    import struct

    path = tiny_model.save(tmp_path / "m")
    assert path.suffix == ".safetensors"
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    cfg = json.loads(header["__metadata__"]["napari_bsdenoise"])
    assert cfg["train_blind_spot"] == 1 and "normalization" in cfg and "training" in cfg


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "pickle", "zip", "foreign", "text"])
def test_unreadable_model_files(kind, tiny_model, tmp_path):
    import pickle

    import torch
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        good = tiny_model.save(tmp_path / "good").read_bytes()
        path.write_bytes(good[: len(good) // 2])
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    elif kind == "zip":
        torch.save({"w": torch.zeros(2)}, path)
    elif kind == "foreign":
        save_file({"w": torch.zeros(2)}, str(path))
    elif kind == "text":
        path.write_text("hello, this is not a model at all")
    with pytest.raises(ModelFileError):
        bsd.load_model(path)


# -- bad inputs ----------------------------------------------------------------------------
R = np.random.default_rng(0).normal(0, 1, (40, 40)).astype(np.float32)

@pytest.mark.parametrize(
    "image,kwargs,match",
    [
        (np.full((40, 40), np.nan, np.float32), {}, "NaN"),
        (np.where(np.eye(40) > 0, np.inf, 1.0), {}, "infinite"),
        (np.zeros((8, 8), np.float32), {}, "too small"),
        (np.zeros((2, 3, 40, 40), np.float32), {}, "axes"),
        (np.zeros((40, 40, 7), np.float32), {}, "axes"),
        (np.zeros((1, 1, 1, 1, 40, 40), np.float32), {}, "6-D"),
        (np.zeros((40, 40), bool), {}, "boolean"),
        (np.zeros((40, 40), complex), {}, "complex"),
        (R, {"axes": "YXQ"}, "letters|dimensions"),
        (R, {"axes": "YY"}, "twice"),
        (R, {"axes": "ZYX"}, "dimensions"),
        (np.zeros((3, 40), np.float32), {"axes": "ZX"}, "Y and X"),
        (R, {"blind_spot": 2}, "odd"),
        (R, {"blind_spot": 0}, "identity"),
        (R, {"steps": 0}, "positive"),
        (R, {"network": "huge"}, "network"),
        (np.zeros((40, 40), np.float32), {"blind_spot": 1}, "constant|no noise"),
        ([[1, 2], [3]], {}, "ragged|numeric|inhomogeneous"),
    ],
)
def test_bad_training_input(image, kwargs, match):
    with pytest.raises(InputError, match=match):
        try:
            bsd.train(image, **{"steps": 1, **TINY, **kwargs})
        except ValueError as exc:  # numpy's own error for ragged lists
            if isinstance(exc, InputError):
                raise
            raise InputError(str(exc)) from exc


@pytest.mark.parametrize(
    "image,kwargs,match",
    [
        (np.zeros((40, 40, 3), np.uint8), {}, "channel"),
        (np.zeros((4, 4), np.float32), {"blind_spot": 5}, "too small"),
        (np.zeros((40, 40), np.float32), {"blind_spot": 4}, "odd"),
        (np.zeros((40, 40), np.float32), {"device": "tpu9"}, "device"),
    ],
)
def test_bad_denoise_input(tiny_model, image, kwargs, match):
    with pytest.raises(InputError, match=match):
        bsd.denoise(image, tiny_model, **kwargs)


def test_denoise_needs_a_model():
    with pytest.raises(InputError, match="BlindSpotModel"):
        bsd.denoise(np.zeros((40, 40)), "model.safetensors")


def test_header_length_starting_like_a_pickle_is_not_refused(tmp_path):
    """A safetensors header of 0x..80 bytes starts with the byte a pickle starts with."""
    import struct

    from napari_bsdenoise import modelfile

    for pad in range(256):
        path = modelfile.write(tmp_path / "m.safetensors", {"w": __import__("torch").zeros(1)}, {"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no header length with a 0x80 first byte")
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] % 256 == 0x80
    tensors, config = modelfile.read(path)
    assert config["pad"] == "x" * pad
