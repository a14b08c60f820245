"""Tests of the ``napari-bsdenoise`` command line, calling ``main([...])`` in-process on tiny files."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_bsdenoise import load_model
from napari_bsdenoise.cli import Progress, convert_dtype, main

TRAIN = ["--network", "tiny", "--steps", "3", "--blind-spot", "1", "-q"]


def _noisy(shape, seed=0, offset=100, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]] if len(shape) >= 2 else (0, 0)
    signal = 20 + 10 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    signal = np.broadcast_to(signal, shape) if len(shape) == 2 else signal[(None,) * (len(shape) - 2)]
    return (rng.poisson(np.broadcast_to(signal, shape)) + offset).astype(dtype)


def _rgb(seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    base = np.stack([100 + 60 * np.sin(xx / 6.0), 120 + 50 * np.cos(yy / 8.0), 90 + 0.5 * xx], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_user_error(rc, err, *fragments):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got:\n{err}"
    assert lines[0].startswith("napari-bsdenoise: error: "), lines[0]
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2-D ImageJ TIFF with a pixel size, a model trained on it, and an RGB PNG with its model."""
    d = tmp_path_factory.mktemp("cli")
    image = d / "cells.tif"
    tifffile.imwrite(image, _noisy((64, 64)), imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"unit": "um"})
    model = d / "cells.safetensors"
    assert main(["train", str(image), "-o", str(model), *TRAIN]) == 0
    png = d / "photo.png"
    iio.imwrite(png, _rgb())
    rgb_model = d / "photo"  # no suffix: the CLI appends .safetensors
    assert main(["train", str(png), "-o", str(rgb_model), *TRAIN]) == 0
    return {"dir": d, "image": image, "model": model, "png": png, "rgb_model": d / "photo.safetensors"}


# -- train / denoise / info / noise ------------------------------------------------------------
def test_train_writes_a_loadable_model(files):
    model = load_model(files["model"])
    assert model.config.network.width == 16  # --network tiny
    assert model.config.training["steps"] == 3
    assert model.train_blind_spot == 1
    assert model.config.axes == "YX"


def test_train_progress_and_summary(files, tmp_path, capsys):
    rc, out, err = _run(capsys, "train", files["image"], "-o", tmp_path / "m.safetensors", "--network", "tiny",
                        "--steps", "2", "--seed", "1")
    assert rc == 0, err
    assert "saved" in out and "m.safetensors" in out
    assert "train" in err and "100%" in err  # the progress bar went to stderr
    assert "noise diagnostic" in err  # blind spot auto reports the diagnostic


def test_denoise_tiff_float32_keeps_pixel_size(files, capsys):
    out_path = files["dir"] / "denoised.tif"
    before = _digest(files["image"])
    rc, out, err = _run(capsys, "denoise", files["model"], files["image"], "-o", out_path, "-q")
    assert rc == 0, err
    assert "wrote" in out
    assert _digest(files["image"]) == before  # the input is never modified
    with tifffile.TiffFile(out_path) as tif:
        data = tif.asarray()
        assert data.shape == (64, 64) and data.dtype == np.float32
        assert tif.pages[0].tags["XResolution"].value == (4, 1)
        assert tif.imagej_metadata["unit"] == "um"
    assert abs(float(data.mean()) - 120) < 10  # in the input's units


def test_denoise_dtype_input_rounds_and_clips(files, capsys):
    out_path = files["dir"] / "denoised_u16.tif"
    rc, _, err = _run(capsys, "denoise", files["model"], files["image"], "-o", out_path, "--dtype", "input",
                      "--blind-spot", "0", "-q")
    assert rc == 0, err
    data = tifffile.imread(out_path)
    assert data.dtype == np.uint16 and data.shape == (64, 64)


def test_convert_dtype_clips_instead_of_wrapping():
    out = convert_dtype(np.array([-3.2, 12.6, 300.0, np.float32(65535.7)]), np.uint8)
    assert out.dtype == np.uint8 and out.tolist() == [0, 13, 255, 255]
    assert convert_dtype(np.array([-1.0, 70000.0]), np.uint16).tolist() == [0, 65535]


def test_rgb_png_round_trip(files, capsys):
    out_png = files["dir"] / "photo_denoised.png"
    rc, _, err = _run(capsys, "denoise", files["rgb_model"], files["png"], "-o", out_png, "-q")
    assert rc == 0, err
    data = iio.imread(out_png)
    assert data.shape == (64, 64, 3) and data.dtype == np.uint8  # PNG output defaults to the input's type
    out_tif = files["dir"] / "photo_denoised.tif"
    assert main(["denoise", str(files["rgb_model"]), str(files["png"]), "-o", str(out_tif), "-q"]) == 0
    with tifffile.TiffFile(out_tif) as tif:
        assert tif.series[0].axes == "YXS" and tif.series[0].dtype == np.float32


def test_stack_axes_from_option_and_from_metadata(files, tmp_path, capsys):
    stack = _noisy((3, 64, 64), seed=2)
    plain = tmp_path / "plain_stack.tif"
    tifffile.imwrite(plain, stack, photometric="minisblack")  # no axes in the file: must be given
    rc, _, err = _run(capsys, "denoise", files["model"], plain, "-o", tmp_path / "a.tif", "-q")
    _assert_user_error(rc, err, "--axes")
    rc, _, err = _run(capsys, "denoise", files["model"], plain, "-o", tmp_path / "a.tif", "--axes", "ZYX", "-q")
    assert rc == 0, err
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        assert tif.series[0].shape == (3, 64, 64) and tif.series[0].axes == "ZYX"
    ij = tmp_path / "ij_stack.tif"
    tifffile.imwrite(ij, stack, imagej=True, metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
    rc, _, err = _run(capsys, "denoise", files["model"], ij, "-o", tmp_path / "b.tif", "--tile-size", "32", "-q")
    assert rc == 0, err
    with tifffile.TiffFile(tmp_path / "b.tif") as tif:
        assert tif.asarray().shape == (3, 64, 64)
        assert tif.imagej_metadata["spacing"] == 0.5


def test_info(files, capsys):
    rc, out, _ = _run(capsys, "info", files["model"])
    assert rc == 0
    assert "blind spot" in out and "napari-bsdenoise model" in out
    rc, out, _ = _run(capsys, "info", files["model"], "--json")
    assert rc == 0
    config = json.loads(out)
    assert config["network"]["width"] == 16 and config["train_blind_spot"] == 1


def test_noise(files, capsys):
    rc, out, _ = _run(capsys, "noise", files["image"])
    assert rc == 0
    assert "blind spot" in out and "autocorrelation" in out
    rc, out, _ = _run(capsys, "noise", files["image"], "--json")
    assert rc == 0
    assert json.loads(out)["train_blind_spot"] >= 1


def test_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert "napari-bsdenoise" in capsys.readouterr().out
    assert main(["denoise", "--help"]) == 0
    assert "--tile-size" in capsys.readouterr().out


# -- user errors: exit code 2, one line, no traceback -----------------------------------------
def test_missing_files(files, tmp_path, capsys):
    _assert_user_error(*_run(capsys, "train", tmp_path / "nope.tif", "-o", tmp_path / "m")[::2], "not found")
    _assert_user_error(*_run(capsys, "denoise", tmp_path / "nope.safetensors", files["image"], "-o",
                             tmp_path / "o.tif")[::2], "not found")
    _assert_user_error(*_run(capsys, "denoise", files["model"], tmp_path / "nope.tif", "-o",
                             tmp_path / "o.tif")[::2], "not found")
    _assert_user_error(*_run(capsys, "info", tmp_path / "nope.safetensors")[::2], "not found")


def test_pickle_as_model_is_refused(files, tmp_path, capsys):
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _assert_user_error(*_run(capsys, "info", evil)[::2], "pickle")
    _assert_user_error(*_run(capsys, "denoise", evil, files["image"], "-o", tmp_path / "o.tif")[::2], "pickle")


def test_six_dimensional_tiff(files, tmp_path, capsys):
    path = tmp_path / "six.tif"
    tifffile.imwrite(path, np.zeros((2, 2, 2, 2, 32, 32), np.uint16))
    _assert_user_error(*_run(capsys, "train", path, "-o", tmp_path / "m", *TRAIN)[::2], "6-D")
    _assert_user_error(*_run(capsys, "denoise", files["model"], path, "-o", tmp_path / "o.tif")[::2], "6-D")


def test_nan_tiff(files, tmp_path, capsys):
    data = _noisy((64, 64)).astype(np.float32)
    data[3, 4] = np.nan
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, data)
    _assert_user_error(*_run(capsys, "train", path, "-o", tmp_path / "m", *TRAIN)[::2], "NaN")
    _assert_user_error(*_run(capsys, "noise", path)[::2], "NaN")


def test_unreadable_and_unsupported_images(files, tmp_path, capsys):
    fake = tmp_path / "fake.tif"
    fake.write_text("not an image")
    _assert_user_error(*_run(capsys, "noise", fake)[::2], "not a TIFF")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(files["image"].read_bytes()[:200])
    _assert_user_error(*_run(capsys, "noise", truncated)[::2], "cannot read")
    other = tmp_path / "data.csv"
    other.write_text("1,2,3\n")
    _assert_user_error(*_run(capsys, "noise", other)[::2], "unsupported")


def test_output_never_overwrites_input(files, capsys):
    before = _digest(files["image"])
    rc, _, err = _run(capsys, "denoise", files["model"], files["image"], "-o", files["image"])
    _assert_user_error(rc, err, "refusing to overwrite the input")
    rc, _, err = _run(capsys, "denoise", files["model"], files["image"], "-o", files["model"])
    _assert_user_error(rc, err, "refusing to overwrite the input")
    assert _digest(files["image"]) == before


def test_bad_options(files, tmp_path, capsys):
    rc, _, err = _run(capsys, "train", files["image"], "-o", tmp_path / "m", "--steps", "3", "--seconds", "2")
    _assert_user_error(rc, err, "not allowed with")
    rc, _, err = _run(capsys, "train", files["image"])
    _assert_user_error(rc, err, "-o/--output")
    rc, _, err = _run(capsys, "denoise", files["model"], files["image"], "-o", tmp_path / "o.tif",
                      "--blind-spot", "2", "-q")
    _assert_user_error(rc, err, "odd")
    rc, _, err = _run(capsys, "denoise", files["model"], files["image"], "-o", tmp_path / "o.jpg")
    _assert_user_error(rc, err, "JPEG")
    rc, _, err = _run(capsys, "denoise", files["model"], files["image"], "-o", tmp_path / "o.png", "--dtype",
                      "float32")
    _assert_user_error(rc, err, "PNG")
    rc, _, err = _run(capsys, "denoise", files["rgb_model"], files["image"], "-o", tmp_path / "o.tif")
    _assert_user_error(rc, err, "channel")
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "o.png").exists()


def test_text_progress_bar_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    stream = io.StringIO()
    bar = Progress("train", stream=stream)
    for f in np.linspace(0, 1, 21):
        bar.update(f, "loss 1")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("train: 100%")
    assert 5 <= len(lines) <= 12  # throttled: about one line per 10 % when not on a terminal


def test_ctrl_c_during_training_saves_the_best_model(files, tmp_path, capsys, monkeypatch):
    calls = []

    def interrupt(self, fraction, info=""):
        calls.append(fraction)
        if len(calls) == 3:  # start, step 1, then Ctrl-C
            raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "update", interrupt)
    out = tmp_path / "stopped.safetensors"
    rc, _, err = _run(capsys, "train", files["image"], "-o", out, "--network", "tiny", "--steps", "50",
                      "--blind-spot", "1")
    assert rc == 130
    assert "interrupted" in err and "saved" in err
    assert load_model(out).config.training["steps"] < 50


def test_jpeg_input(tmp_path, capsys):
    path = tmp_path / "photo.jpg"
    iio.imwrite(path, _rgb(seed=3), quality=95)
    rc, out, err = _run(capsys, "noise", path)
    assert rc == 0, err
    assert "axes YXC" in out


# -- distill -----------------------------------------------------------------------------------
def test_distill_writes_a_student_that_denoises(files, tmp_path, capsys):
    student = tmp_path / "student"  # .safetensors is appended
    rc, out, err = _run(capsys, "distill", files["model"], files["image"], "-o", student, "--steps", "3",
                        "--student", "tiny", "--teacher-blind-spots", "1,3,5", "--whole-image-targets")
    assert rc == 0, err
    assert "non-blind student" in out and "teachers at blind spots 1, 3, 5" in err
    model = load_model(tmp_path / "student.safetensors")
    assert model.is_student and model.config.training["distillation"]["teacher_blind_spots"] == [1, 3, 5]
    assert model.config.training["teacher_targets"] == "whole image"
    teacher = load_model(files["model"])
    fusable = teacher.method == "atbsn" and teacher.config.noise["correlation_length"] > 0
    assert model.config.training["distillation"]["fused_targets"] is fusable
    rc, _, err = _run(capsys, "distill", files["model"], files["image"], "-o", tmp_path / "plain", "--steps", "2",
                      "--student", "tiny", "--no-fused-targets", "-q")
    assert rc == 0, err
    assert load_model(tmp_path / "plain.safetensors").config.training["distillation"]["fused_targets"] is False
    rc, out, err = _run(capsys, "denoise", tmp_path / "student.safetensors", files["image"], "-o",
                        tmp_path / "d.tif")
    assert rc == 0, err
    assert tifffile.imread(tmp_path / "d.tif").shape == (64, 64)
    rc, out, _ = _run(capsys, "info", tmp_path / "student.safetensors")
    assert rc == 0 and "student" in out


def test_distill_user_errors(files, tmp_path, capsys):
    rc, _, err = _run(capsys, "distill", files["model"], files["png"], "-o", tmp_path / "s", "--steps", "1")
    _assert_user_error(rc, err, "1-channel")  # a grey model cannot teach on an RGB photo
    rc, _, err = _run(capsys, "distill", tmp_path / "missing.safetensors", files["image"], "-o", tmp_path / "s")
    _assert_user_error(rc, err, "missing.safetensors")
    rc, _, err = _run(capsys, "distill", files["model"], files["image"], "-o", tmp_path / "s",
                      "--teacher-blind-spots", "2")
    _assert_user_error(rc, err, "odd")


def test_denoise_no_fusion_gives_the_blind_spot_output_alone(files, capsys):
    from scipy import ndimage as ndi

    from napari_bsdenoise import denoise

    # camera-like: spatially correlated noise, where fusion="auto" applies
    rng = np.random.default_rng(3)
    base = _rgb().astype(np.float64)
    noise = ndi.uniform_filter(rng.normal(0, 30, base.shape), (3, 3, 1))
    png = files["dir"] / "camera.png"
    iio.imwrite(png, np.clip(base + noise, 0, 255).astype(np.uint8))
    model_path = files["dir"] / "camera.safetensors"
    assert main(["train", str(png), "-o", str(model_path), "--network", "tiny", "--steps", "2", "-q"]) == 0
    model = load_model(model_path)
    assert model.method == "atbsn" and model.config.noise["correlation_length"] > 0
    img = iio.imread(png)
    for flag, fusion in (([], "auto"), (["--no-fusion"], False)):
        out_path = files["dir"] / f"camera_{fusion}.tif"
        rc, _, err = _run(capsys, "denoise", model_path, png, "-o", out_path, "-q", *flag)
        assert rc == 0, err
        np.testing.assert_allclose(tifffile.imread(out_path), denoise(img, model, fusion=fusion), atol=1e-4)
    assert not np.allclose(tifffile.imread(files["dir"] / "camera_auto.tif"),
                           tifffile.imread(files["dir"] / "camera_False.tif"))
