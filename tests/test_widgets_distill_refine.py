"""The Distill and Refine panels in a real (hidden) napari viewer: distilling a teacher into a
student and denoising with it, Stop/Continue, distillation errors; BSGD refinement (training the
diffusion branches, Continue, Save model…, refining, Cancel) and its errors.

Runs headless (tests/widget_helpers.py starts the display); the tiny models (teacher, guide,
BSGD model) are session fixtures in tests/conftest.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from widget_helpers import _check_output, _clean_session, _dock, _noisy, _records, _stop_within_a_step  # noqa: F401

import napari_bsdenoise as bsd
from napari_bsdenoise import api
from napari_bsdenoise.widgets import SESSION, DistillWidget, RefineWidget

pytestmark = pytest.mark.gui


# -- distillation -----------------------------------------------------------------------------
def _distill_settings(w: DistillWidget, steps: int) -> None:
    w.student_combo.setCurrentText("tiny")
    w.budget_kind.setCurrentText("steps")
    w.steps_spin.setValue(steps)
    w.advanced.setChecked(True)
    w.patch_spin.setValue(32)
    w.batch_spin.setValue(2)


def test_distill_then_denoise_with_the_student(make_napari_viewer, qtbot, teacher, tmp_path):
    viewer = make_napari_viewer()
    data = _noisy((64, 64))
    before = data.copy()
    layer = viewer.add_image(data, name="cells", scale=(0.5, 0.25), translate=(3.0, -2.0))
    SESSION.add("cells model", teacher)
    w = _dock(viewer, "Distill")
    denoise = _dock(viewer, "Denoise")
    assert isinstance(w, DistillWidget)
    assert w.teacher() is teacher and w.picker.layer() is layer and w.axes_edit.text() == "YX"
    assert denoise.slider.isEnabled()  # the teacher: a tunable blind spot
    _distill_settings(w, 4)
    w.blind_spots_edit.setText("1, 3")
    assert w.distill_kwargs()["precompute"] is False and w.distill_kwargs()["fusion"] == "auto"
    w.fused_check.setChecked(False)
    assert w.distill_kwargs()["fusion"] is False
    w.whole_check.setChecked(True)  # whole-image teacher targets
    w.distill_button.click()
    assert w.busy and w.stop_button.isEnabled() and not w.distill_button.isEnabled()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    student = w.model
    assert w.distiller.step == 4 and student is w.distiller.model
    assert student.is_student and student.inference_blind_spot == 0 and student.config.network.width == 16
    assert w.distiller.blind_spots == (1, 3) and "teacher blind spots 1, 3" in w.device_label.text()
    assert w.distiller.precomputed and student.config.training["teacher_targets"] == "whole image"
    assert student.config.training["distillation"]["fused_targets"] is False  # the box was unticked
    assert w.progress.value() == 1000 and len(w.loss_plot.train) == 4 and len(w.loss_plot.val) >= 1
    assert "Done: 4 steps" in w.status.text()
    assert SESSION.names() == ["cells model", "cells model student"] and SESSION.get("cells model student") is student
    assert [w.teacher_combo.itemText(i) for i in range(w.teacher_combo.count())] == ["cells model"]
    assert w.save_button.isEnabled() and "cells model student" in w.model_label.text()
    np.testing.assert_array_equal(layer.data, before)

    # the Denoise widget selects the student: blind spot fixed at 0, preview and whole layer work
    assert denoise.model() is student
    assert not denoise.slider.isEnabled() and denoise.blind_spot() == 0
    assert not denoise.blind_spot_note.isHidden() and "student" in denoise.blind_spot_note.text()
    want = bsd.denoise(data, student, check=False)  # what the preview shows (the model's output)
    denoise.preview_check.setChecked(True)
    qtbot.waitUntil(lambda: "cells_preview" in viewer.layers and not denoise.preview_busy, timeout=20_000)
    prev = viewer.layers["cells_preview"]
    y0, y1, x0, x1 = prev.metadata["napari_bsdenoise"]["region"]
    np.testing.assert_allclose(prev.data, want[y0:y1, x0:x1], atol=1e-4)
    assert denoise.preview.cached and "student" in denoise.preview_label.text()
    denoise.preview_check.setChecked(False)
    denoise.denoise_button.click()
    qtbot.waitUntil(lambda: not denoise.busy, timeout=30_000)
    out = _check_output(viewer, layer, "cells_denoised", student, 0, "YX")
    # the whole layer at the student's default is safety-checked, as denoise(check="auto") does it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsd.SafetyWarning)
        checked = bsd.denoise(data, student)
    np.testing.assert_allclose(out.data, checked, atol=1e-4)
    np.testing.assert_array_equal(layer.data, before)
    denoise.model_combo.setCurrentText("cells model")  # back to the teacher: the slider is free again
    assert denoise.slider.isEnabled() and denoise.blind_spot_note.isHidden()

    path = w.save_student(str(tmp_path / "student.safetensors"))
    loaded = bsd.load_model(path)
    assert loaded.is_student
    np.testing.assert_allclose(bsd.denoise(data, loaded, check=False), want, atol=1e-5)


def test_distill_stop_keeps_the_best_student_and_continue(make_napari_viewer, qtbot, teacher):
    viewer = make_napari_viewer()
    viewer.add_image(_noisy((64, 64)), name="img")
    SESSION.add("t", teacher)
    w = _dock(viewer, "Distill")
    _distill_settings(w, 100_000)
    _stop_within_a_step(qtbot, w, w.distill_button, lambda: w.distiller)
    assert w.model.is_student and SESSION.get("t student") is w.model
    done = w.distiller.step
    w.steps_spin.setValue(3)
    w.continue_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    assert w.distiller.step == done + 3
    assert SESSION.names() == ["t", "t student"] and SESSION.get("t student") is w.model  # updated, not added


def test_distill_errors_give_notifications(make_napari_viewer, qtbot, teacher, rgb_model, tmp_path):
    viewer = make_napari_viewer()
    gray = viewer.add_image(_noisy((64, 64)), name="gray")
    w = _dock(viewer, "Distill")
    n = len(_records())
    w.distill_button.click()
    assert any("no teacher" in m for m in _records()[n:])
    # a student is refused as a teacher, from a file and from the session
    student = bsd.distill(_noisy((64, 64)), teacher, student="tiny", steps=1, patch_size=32, batch_size=2)
    path = student.save(tmp_path / "student.safetensors")
    assert w.load_teacher(str(path)) is None
    assert any("distilled student" in m for m in _records()[n:])
    SESSION.add("s", student)
    assert w.teacher_combo.count() == 0 and w.teacher() is None
    # wrong channels
    SESSION.add("rgb", rgb_model)
    assert w.teacher() is rgb_model
    w.distill_button.click()
    assert any("3-channel" in m for m in _records()[n:])
    # a teacher from a file; then a layer too small to distil on
    loaded = w.load_teacher(str(teacher.save(tmp_path / "teacher.safetensors")))
    assert loaded is not None and w.teacher() is loaded and w.teacher_combo.currentText() == "teacher"
    w.picker.set_layer(viewer.add_image(_noisy((12, 12)), name="small"))
    w.distill_button.click()
    assert any("too small" in m for m in _records()[n:])
    assert not w.busy and w.model is None and w.distiller is None
    assert SESSION.names() == ["s", "rgb", "teacher"] and gray.data.shape == (64, 64)


# -- BSGD refinement (experimental) -----------------------------------------------------------
def test_refine_trains_the_branches_then_refines_the_layer(make_napari_viewer, qtbot, small_guide):
    viewer = make_napari_viewer()
    data = _noisy((48, 48))
    before = data.copy()
    layer = viewer.add_image(data, name="cells", scale=(0.5, 0.25), translate=(3.0, -2.0), units=("um", "um"),
                             contrast_limits=(20, 220))
    SESSION.add("g", small_guide)
    w = _dock(viewer, "Refine")
    assert isinstance(w, RefineWidget)
    assert "Experimental" in w.experimental_label.text() and "docs/bsgd.md" in w.experimental_label.text()
    assert w.guide() is small_guide and w.bsgd_model() is None and w.picker.layer() is layer
    assert w.axes_edit.text() == "YX" and w.refine_button.isEnabled()
    w.network_combo.setCurrentText("tiny")
    w.budget_kind.setCurrentText("steps")
    w.steps_spin.setValue(3)
    w.train_button.click()
    assert w.training and w.stop_button.isEnabled() and not w.train_button.isEnabled()
    assert not w.refine_button.isEnabled()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    diff = w.bsgd_model()
    assert diff is not None and diff.method == "bsgd" and diff is w.trainer.model and w.trainer.step == 3
    assert diff.config.training["bsgd"]["guide"]["method"] == small_guide.method
    assert SESSION.names() == ["g", "g bsgd"] and w.model_combo.currentText() == "g bsgd"
    assert [w.guide_combo.itemText(i) for i in range(w.guide_combo.count())] == ["g"]  # BSGD is no guide
    assert w.train_progress.value() == 1000 and "Done: 3 steps" in w.train_status.text()
    assert len(w.loss_plot.train) >= 2

    w.steps_box.setValue(2)
    w.rounds_box.setValue(1)
    w.guidance_box.setValue(0.5)
    w.seed_box.setValue(3)
    assert w.anchor_box.value() == api.DEFAULT_ANCHOR
    w.anchor_box.setValue(2.0)
    assert w.check_box.isChecked()  # the safeguard is on by default; off here to see the refinement itself
    w.check_box.setChecked(False)
    w.refine_button.click()
    assert w.refining and w.cancel_button.isEnabled() and not w.train_button.isEnabled()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    out = viewer.layers["cells_refined"]
    kw = dict(guide=small_guide, sampling_steps=2, rounds=1, guidance=0.5, anchor=2.0, check=False)
    want = bsd.refine(data, diff, seed=3, **kw)
    np.testing.assert_allclose(out.data, want, atol=1e-4)
    assert not np.allclose(out.data, bsd.refine(data, diff, seed=4, **kw), atol=1e-3)  # the seed is passed on
    np.testing.assert_allclose(out.scale, layer.scale)
    np.testing.assert_allclose(out.translate, layer.translate)
    assert tuple(out.units) == tuple(layer.units) and tuple(out.axis_labels) == tuple(layer.axis_labels)
    np.testing.assert_allclose(out.contrast_limits, (20, 220))
    meta = out.metadata["napari_bsdenoise"]
    assert meta["method"] == "bsgd" and meta["experimental"] and meta["model"] == "g bsgd" and meta["guide"] == "g"
    assert (meta["sampling_steps"], meta["rounds"], meta["guidance"], meta["seed"]) == (2, 1, 0.5, 3)
    assert meta["t_start"] == 0.3 and meta["replace"] == 0.16 and meta["anchor"] == 2.0
    assert meta["source_layer"] == "cells"
    assert w.progress.value() == 1000 and "Added 'cells_refined'" in w.status.text()
    assert meta["safety_check"] == "off"
    # with the safeguard: its verdict is in the metadata, and the layer is what refine(check="auto") gives
    w.check_box.setChecked(True)
    w.refine_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    out = viewer.layers["cells_refined"]
    assert out.metadata["napari_bsdenoise"]["safety_check"].startswith("refinement check")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(out.data, bsd.refine(data, diff, seed=3, **{**kw, "check": "auto"}), atol=1e-4)
    np.testing.assert_array_equal(layer.data, before)  # the input is never modified


def test_refine_cancel_and_errors_give_notifications(make_napari_viewer, qtbot, small_guide, small_bsgd,
                                                     tmp_path):
    viewer = make_napari_viewer()
    data = _noisy((48, 48))
    layer = viewer.add_image(data, name="img")
    w = _dock(viewer, "Refine")
    n = len(_records())
    w.refine_button.click()
    assert any("no BSGD model" in m for m in _records()[n:])
    w.continue_training()  # the button is disabled; called anyway it notifies
    assert any("no BSGD model to continue" in m for m in _records()[n:]) and not w.busy
    w.train_button.click()
    assert any("no guide" in m for m in _records()[n:])
    # a blind-spot model is refused as a BSGD model; a BSGD model file is loaded and selected
    assert w.load_model(str(small_guide.save(tmp_path / "guide.safetensors"))) is None
    assert any("not a BSGD model" in m for m in _records()[n:])
    assert w.load_model(str(small_bsgd.save(tmp_path / "diff.safetensors"))) is not None
    assert w.model_combo.currentText() == "diff" and w.guide() is None
    # a bad input: NaNs
    bad = data.copy()
    bad[3, 4] = np.nan
    w.picker.set_layer(viewer.add_image(bad, name="bad"))
    w.refine_button.click()
    assert any("NaN" in m for m in _records()[n:]) and not w.busy and "bad_refined" not in viewer.layers
    # Cancel: a long refinement (64 steps x 16 rounds), cancelled at once, adds no layer
    SESSION.add("g", small_guide)
    w.picker.set_layer(layer)
    w.steps_box.setValue(64)
    w.rounds_box.setValue(16)
    w.refine_button.click()
    assert w.refining
    w.cancel_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=20_000)
    assert "img_refined" not in viewer.layers
    assert "Cancelled" in w.status.text() and any("cancelled" in m for m in _records()[n:])
    np.testing.assert_array_equal(layer.data, data)


def test_refine_continue_and_save_the_bsgd_model(make_napari_viewer, qtbot, small_guide, tmp_path, monkeypatch):
    import torch
    from qtpy.QtWidgets import QFileDialog

    viewer = make_napari_viewer()
    layer = viewer.add_image(_noisy((48, 48)), name="cells")
    SESSION.add("g", small_guide)
    w = _dock(viewer, "Refine")
    assert not w.continue_button.isEnabled() and not w.save_button.isEnabled()  # no BSGD model yet
    w.network_combo.setCurrentText("tiny")
    w.budget_kind.setCurrentText("steps")
    w.steps_spin.setValue(2)
    w.train_button.click()
    assert not w.continue_button.isEnabled() and not w.save_button.isEnabled()  # busy
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    assert w.continue_button.isEnabled() and w.save_button.isEnabled()
    assert w.bsgd_model().config.training["steps"] == 2

    # Continue: the same trainer, 3 more steps; the session entry is updated, not added
    w.steps_spin.setValue(3)
    w.continue_button.click()
    assert w.training and w.stop_button.isEnabled()
    assert not any(b.isEnabled() for b in (w.train_button, w.continue_button, w.save_button, w.load_button,
                                           w.refine_button))
    assert w.save_model(str(tmp_path / "busy.safetensors")) is None and not (tmp_path / "busy.safetensors").exists()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    diff = w.bsgd_model()
    assert w.trainer.step == 5 and diff is w.trainer.model
    assert diff.config.training["steps"] == 5 and diff.config.training["total_steps"] == 5
    assert SESSION.names() == ["g", "g bsgd"] and SESSION.get("g bsgd") is diff
    assert "Done: 5 steps" in w.train_status.text()

    # Save model…: the default file name is the session name; load_model reads the same BSGD model back
    asked = {}

    def fake_dialog(parent, title, default, filters):
        asked["default"] = default
        return str(tmp_path / default), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_dialog))
    w.save_button.click()
    assert asked["default"] == "g bsgd.safetensors"
    loaded = bsd.load_model(tmp_path / "g bsgd.safetensors")
    assert loaded.method == "bsgd" and loaded.config.network == diff.config.network
    want, got = diff.network.state_dict(), loaded.network.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert loaded.config.training["bsgd"]["guide"]["method"] == small_guide.method

    # Continue a loaded model: a new trainer on the selected layer; its steps add to the recorded ones
    assert w.load_model(str(tmp_path / "g bsgd.safetensors")) is not None
    assert w.model_combo.currentText() == "g bsgd (2)" and w.bsgd_model() is not w.trainer.model
    w.steps_spin.setValue(2)
    w.continue_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    more = SESSION.get("g bsgd (2)")
    assert more is w.trainer.model and more is not loaded and w.trainer.step == 2
    assert more.config.training["continued_from"]["steps"] == 5 and more.config.training["total_steps"] == 7
    assert more.config.training["bsgd"] == loaded.config.training["bsgd"]
    assert SESSION.names() == ["g", "g bsgd", "g bsgd (2)"] and SESSION.get("g bsgd") is diff

    # refining keeps Continue and Save disabled too
    w.steps_box.setValue(64)
    w.rounds_box.setValue(16)
    w.refine_button.click()
    assert w.refining and not w.continue_button.isEnabled() and not w.save_button.isEnabled()
    w.cancel_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=20_000)
    assert w.continue_button.isEnabled() and w.save_button.isEnabled() and layer.name == "cells"
