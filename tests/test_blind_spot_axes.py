"""Per-axis (y, x) blind spots through the whole package: validation, training, denoising, tiling, the
preview, distillation, model files and the CLI (issue #18; the network probes are in test_nn.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_bsdenoise as bsd
from napari_bsdenoise.config import blind_spot_side, check_blind_spot
from napari_bsdenoise.engine.distill import default_teacher_blind_spots
from napari_bsdenoise.errors import InputError


def _x_correlated(shape=(96, 96), seed=0):
    """A smooth image plus noise correlated along x only (a 1 x 7 box)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = 100 + 40 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    noise = ndi.convolve(rng.normal(size=shape), np.ones((1, 7)) / np.sqrt(7), mode="wrap")
    return (clean + 10 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def axis_model():
    return bsd.train(_x_correlated(), steps=3, network="tiny", blind_spot=(1, 9), patch_size=32, batch_size=2)


def test_check_and_parse():
    assert check_blind_spot((1, 9)) == (1, 9) and check_blind_spot([3, 3]) == 3
    assert bsd.parse_blind_spot("1x9") == (1, 9) and bsd.parse_blind_spot("9 x 1") == (9, 1)
    assert bsd.parse_blind_spot("5") == 5 and bsd.format_blind_spot((1, 9)) == "1x9"
    assert blind_spot_side((1, 9)) == 9
    assert bsd.parse_blind_spot("1x3x5") == (1, 3, 5) and bsd.format_blind_spot((1, 3, 3)) == "1x3x3"  # 3-D boxes
    for bad in ("1x2", "0x3", "3x", "a", "1x3x5x7", "0x3x3"):
        with pytest.raises(InputError):
            bsd.parse_blind_spot(bad)


def test_train_and_denoise_with_a_rectangle(axis_model):
    cfg = axis_model.config
    assert cfg.train_blind_spot == (1, 9) and cfg.inference_blind_spot == (1, 3)
    assert "1x9" in axis_model.summary() or "(1, 9)" in axis_model.summary()
    noisy = _x_correlated(seed=1)
    out = bsd.denoise(noisy, axis_model, check=False)
    assert out.shape == noisy.shape and np.isfinite(out).all()
    # the blind spot is per call: (1, 3) and (1, 9) differ, (3, 3) equals 3
    a = bsd.denoise(noisy, axis_model, blind_spot=(1, 9), fusion=False)
    b = bsd.denoise(noisy, axis_model, blind_spot=(1, 3), fusion=False)
    assert np.abs(a - b).max() > 0
    np.testing.assert_array_equal(bsd.denoise(noisy, axis_model, blind_spot=(3, 3), fusion=False),
                                  bsd.denoise(noisy, axis_model, blind_spot=3, fusion=False))


def test_tiled_equals_untiled_with_a_rectangle(axis_model):
    noisy = _x_correlated((80, 112), seed=2)
    whole = bsd.denoise(noisy, axis_model, blind_spot=(1, 9), fusion=False)
    tiled = bsd.denoise(noisy, axis_model, blind_spot=(1, 9), fusion=False, tile_size=32)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_model_file_round_trip(axis_model, tmp_path):
    path = axis_model.save(tmp_path / "axis.safetensors")
    back = bsd.load_model(path)
    assert back.config.train_blind_spot == (1, 9) and back.config.inference_blind_spot == (1, 3)
    noisy = _x_correlated(seed=3)
    np.testing.assert_array_equal(bsd.denoise(noisy, back, check=False), bsd.denoise(noisy, axis_model, check=False))


def test_preview_renders_a_rectangle(axis_model):
    from napari_bsdenoise.engine.preview import Preview

    noisy = _x_correlated(seed=4)
    preview = Preview(axis_model, noisy, region=(8, 72, 8, 72))
    for s in ((1, 9), (1, 3), 3):
        fast = preview.render(s)
        ref = bsd.denoise(noisy, axis_model, blind_spot=s, check=False)[8:72, 8:72]
        np.testing.assert_allclose(fast, ref, atol=2e-3)


def test_rejected_settings(axis_model):
    noisy = _x_correlated(seed=5)
    with pytest.raises(InputError, match="mixes 0"):
        bsd.denoise(noisy, axis_model, blind_spot=(0, 3))
    with pytest.raises(InputError):
        bsd.train(noisy, steps=1, blind_spot=(1, 2))
    with pytest.raises(InputError, match="too small"):
        bsd.train(noisy[:20], steps=1, blind_spot=(11, 1))  # 20 rows: too few for 11


def test_dbsn_and_student_refuse_a_rectangle(teacher):
    noisy = _x_correlated(seed=6)
    dbsn = bsd.train(noisy, method="dbsn", steps=1, network="tiny")
    with pytest.raises(InputError, match="D-BSN"):
        bsd.denoise(noisy, dbsn, blind_spot=(1, 3))


def test_default_teacher_blind_spots_follow_the_sides():
    assert default_teacher_blind_spots((1, 9)) == (0, 1, (1, 3), (1, 5), (1, 7), (1, 9), (1, 11))
    assert default_teacher_blind_spots((9, 1))[-1] == (11, 1)
    assert default_teacher_blind_spots(9) == (0, 1, 3, 5, 7, 9, 11)  # squares as before


def test_distill_from_a_rectangle_teacher(axis_model):
    noisy = _x_correlated(seed=7)
    student = bsd.distill(noisy, axis_model, steps=2, student="tiny", patch_size=32, batch_size=2)
    spots = student.config.training["distillation"]["teacher_blind_spots"]
    assert [1, 9] in spots and 0 in spots
    assert bsd.denoise(noisy, student, check=False).shape == noisy.shape


def test_auto_blind_spot_is_per_axis():
    """blind_spot='auto' takes the diagnostic's rectangle for noise correlated along one axis."""
    rng = np.random.default_rng(8)
    noise = ndi.convolve(rng.normal(size=(128, 128)), np.ones((1, 7)) / np.sqrt(7), mode="wrap")
    noisy = (100 + 20 * noise).astype(np.float32)
    trainer = bsd.make_trainer(noisy, steps=1, network="tiny", method="atbsn")
    ty, tx = trainer.model.config.train_blind_spot
    assert ty == 1 and tx >= 7


def test_cli_takes_yxx(tmp_path):
    import tifffile

    from napari_bsdenoise.cli import main

    img = tmp_path / "noisy.tif"
    tifffile.imwrite(img, _x_correlated(seed=9))
    model = tmp_path / "m.safetensors"
    assert main(["train", str(img), "-o", str(model), "--steps", "2", "--network", "tiny", "--blind-spot", "1x9",
                 "-q"]) == 0
    assert bsd.load_model(model).config.train_blind_spot == (1, 9)
    out = tmp_path / "out.tif"
    assert main(["denoise", str(model), str(img), "-o", str(out), "--blind-spot", "1x5"]) == 0
    assert tifffile.imread(out).shape == (96, 96)
    assert main(["denoise", str(model), str(img), "-o", str(out), "--blind-spot", "1x4"]) == 2
