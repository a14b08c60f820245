"""auto_denoise (issue #14): the noise diagnostic picks the method, one wall-time budget is split
between the teacher, the student and inference, every choice is recorded, Stop keeps the models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_bsdenoise as bsd
from napari_bsdenoise.errors import InputError
from napari_bsdenoise.pipelines.auto import MARGIN_FRACTION, MARGIN_SECONDS, AutoDenoiser


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:96, :96]
    clean = 120 + 60 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    white = (clean + rng.normal(0, 12, clean.shape)).astype(np.float32)  # pixel-independent
    corr = (clean + ndi.uniform_filter(rng.normal(0, 36, clean.shape), 3)).astype(np.float32)  # correlated
    return clean, white, corr


def test_the_budget_split_adds_up_and_follows_the_noise(images):
    _, white, corr = images
    for img, method, distill in ((white, "dbsn", False), (corr, "atbsn", True)):
        p = AutoDenoiser(img, seconds=60, teacher_fraction=0.25)
        plan = p.plan
        assert p.method == method and p.distill is distill
        spent = plan["noise"] + plan["teacher"] + plan["student"] + plan["inference"]
        assert spent == pytest.approx(60 * (1 - MARGIN_FRACTION) - MARGIN_SECONDS, rel=1e-6)
        if distill:
            assert plan["teacher"] == pytest.approx(0.25 * (plan["teacher"] + plan["student"]))
        else:
            assert plan["student"] == 0
        assert p.result.choices["budget"] == plan and p.result.choices["method"] == method


def test_a_forced_method_is_followed_and_recorded(images):
    _, white, corr = images
    p = AutoDenoiser(white, seconds=60, method="atbsn")  # pixel-independent noise, AT-BSN forced
    assert p.method == "atbsn" and "chosen by the user" in p.result.choices["method_reason"]
    p = AutoDenoiser(corr, seconds=60, method="dbsn")  # correlated noise, D-BSN forced: said to copy it
    assert p.method == "dbsn" and not p.distill and "copies" in p.result.choices["method_reason"]
    with pytest.raises(InputError, match="method must be one of 'auto', 'atbsn', 'dbsn'"):
        AutoDenoiser(white, seconds=60, method="n2v")


def test_auto_denoise_records_every_choice_and_beats_the_noisy_input(images):
    clean, _, corr = images
    res = bsd.auto_denoise(corr, seconds=24)
    assert res.teacher is not None and res.student is not None
    # the safety check ran on the result's model and is recorded (the teacher replaces a failing student)
    check = res.choices["safety_check"]
    assert check["checked"] and check["candidates"] and check["summary"] in res.summary()
    assert res.model is (res.teacher if "final_model" in res.choices else res.student)
    assert res.teacher.method == "atbsn" and res.student.is_student and not res.stopped
    assert set(res.choices["seconds"]) == {"teacher", "student", "inference", "total"}
    # (the wall-time budget itself is measured by benchmarks/bench_auto.py, not by a timed test)
    mse = lambda a: float(np.mean((np.asarray(a, np.float64) - clean) ** 2))  # noqa: E731
    assert mse(res.denoised) < mse(corr)
    assert res.denoised.shape == corr.shape and res.denoised.dtype == np.float32
    for m in (res.teacher, res.student):
        assert m.config.training["auto"]["method"] == "atbsn"
        assert "made by auto_denoise: atbsn" in m.summary()
    assert "auto_denoise: atbsn" in res.summary() and "budget 24 s" in res.summary()


def test_stop_keeps_the_models_trained_so_far(images):
    _, white, corr = images
    res = bsd.auto_denoise(corr, seconds=30, callback=lambda ev: not ev.message.startswith("student"))
    assert res.stopped and res.denoised is None and res.student is not None and res.teacher is not None
    assert res.choices["stopped_in"] == "student" and "stopped during student" in res.summary()
    seen = []
    res = bsd.auto_denoise(white, seconds=30, callback=lambda ev: seen.append(ev) or len(seen) < 3)
    assert res.stopped and res.teacher is not None and res.teacher.method == "dbsn" and res.student is None
    assert res.teacher.config.training["best_step"] >= 0  # the best model by the held-out loss so far


def test_bad_input_is_a_clear_error(images):
    _, white, _ = images
    with pytest.raises(InputError, match="seconds must be a positive number"):
        bsd.auto_denoise(white, seconds=0)
    with pytest.raises(InputError, match="teacher_fraction"):
        bsd.auto_denoise(white, teacher_fraction=1.5)
    with pytest.raises(InputError, match="too small to train"):
        bsd.auto_denoise(white[:8, :8])
    with pytest.raises(InputError, match="too little for this image"):
        bsd.auto_denoise(white, seconds=1)
    with pytest.raises(InputError, match="NaN"):
        bad = white.copy()
        bad[3, 3] = np.nan
        bsd.auto_denoise(bad)
    with pytest.raises(InputError, match="axes"):
        bsd.auto_denoise(np.stack([white] * 4))


def test_cli_auto_writes_the_result_and_the_models(images, tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    from napari_bsdenoise.cli import main

    _, white, _ = images
    tifffile.imwrite(tmp_path / "in.tif", white)
    code = main(["auto", str(tmp_path / "in.tif"), "-o", str(tmp_path / "out.tif"), "--seconds", "12",
                 "--method", "atbsn", "--no-distill", "--save-models", str(tmp_path / "models"), "-q"])
    assert code == 0
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == white.shape and out.dtype == np.float32
    assert "wrote" in capsys.readouterr().out
    model = bsd.load_model(tmp_path / "models" / "in_teacher.safetensors")
    auto = model.config.training["auto"]  # the diagnostic says D-BSN here: the forced method is what ran
    assert model.method == "atbsn" and "chosen by the user" in auto["method_reason"] and auto["distill"] is False
    assert not (tmp_path / "models" / "in_student.safetensors").exists()
    assert main(["auto", str(tmp_path / "in.tif"), "-o", str(tmp_path / "in.tif")]) == 2  # never the input
