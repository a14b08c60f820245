"""The Train panel in a real (hidden) napari viewer: docking the panels, the layer picker and
axis detection, training to completion, the method choice, Stop/Continue/Reset, and bad layers
becoming notifications.

Runs headless (tests/widget_helpers.py starts the display); the tiny models are session fixtures
in tests/conftest.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from widget_helpers import _clean_session, _dock, _noisy, _records, _stop_within_a_step  # noqa: F401

import napari_bsdenoise as bsd
from napari_bsdenoise.widgets import SESSION, DenoiseWidget, TrainWidget
from napari_bsdenoise.widgets.layers import detect_axes

pytestmark = pytest.mark.gui


def _tiny_settings(w: TrainWidget, steps: int) -> None:
    w.blind_spot_combo.setCurrentText("1")
    w.budget_kind.setCurrentText("steps")
    w.steps_spin.setValue(steps)
    w.advanced.setChecked(True)
    w.network_combo.setCurrentText("tiny")
    w.patch_spin.setValue(32)
    w.batch_spin.setValue(4)


# -- docking and the layer picker -------------------------------------------------------------
def test_dock_both_widgets_by_their_documented_names(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(_noisy((64, 64)), name="img")
    train, denoise = _dock(viewer, "Train"), _dock(viewer, "Denoise")
    assert isinstance(train, TrainWidget) and isinstance(denoise, DenoiseWidget)
    assert train.picker.layer().name == "img" and denoise.picker.layer().name == "img"
    assert train.axes_edit.text() == "YX"
    assert "CPU" in train.device_label.text() or "GPU" in train.device_label.text()


def test_layer_picker_follows_add_remove_rename(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w = _dock(viewer, "Train")
    assert w.picker.count() == 0 and w.picker.layer() is None
    a = viewer.add_image(_noisy((64, 64)), name="a")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="mask")  # never offered
    assert [w.picker.itemText(i) for i in range(w.picker.count())] == ["a"]
    b = viewer.add_image(_noisy((3, 64, 64)), name="b", axis_labels=("z", "y", "x"))
    assert [w.picker.itemText(i) for i in range(w.picker.count())] == ["a", "b"]
    w.picker.set_layer(b)
    assert w.axes_edit.text() == "ZYX"
    a.name = "renamed"
    assert [w.picker.itemText(i) for i in range(w.picker.count())] == ["renamed", "b"]
    assert w.picker.layer() is b  # the selection survives a rename
    viewer.layers.remove(b)
    assert [w.picker.itemText(i) for i in range(w.picker.count())] == ["renamed"]
    assert w.picker.layer() is a and w.axes_edit.text() == "YX"


def test_detect_axes_from_labels_rgb_and_shape(make_napari_viewer):
    viewer = make_napari_viewer()
    cases = [
        (viewer.add_image(np.zeros((64, 64, 3), np.uint8), rgb=True), "YXC"),
        (viewer.add_image(np.zeros((2, 64, 64))), "CYX"),
        (viewer.add_image(np.zeros((9, 64, 64))), "ZYX"),
        (viewer.add_image(np.zeros((5, 3, 64, 64))), "TZYX"),
        (viewer.add_image(np.zeros((5, 2, 64, 64)), axis_labels=("time", "channel", "y", "x")), "TCYX"),
        (viewer.add_image(np.zeros((7, 64, 64)), axis_labels=("t", "y", "x")), "TYX"),
    ]
    for layer, axes in cases:
        assert detect_axes(layer) == axes, layer.axis_labels


# -- training ---------------------------------------------------------------------------------
def test_train_to_completion_then_save_and_load(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    data = _noisy((64, 64))
    before = data.copy()
    viewer.add_image(data, name="cells")
    w = _dock(viewer, "Train")
    denoise = _dock(viewer, "Denoise")
    qtbot.waitUntil(lambda: w.noise is not None, timeout=20_000)  # the diagnostic runs on its own
    assert "blind spot" in w.noise_label.text() and w.noise_plot.autocorrelation is not None
    _tiny_settings(w, 30)
    w.train_button.click()
    assert w.busy and not w.train_button.isEnabled() and w.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    assert w.trainer.step == 30 and w.model is not None
    assert w.progress.value() == 1000
    assert len(w.loss_plot.train) == 30 and len(w.loss_plot.val) >= 2
    assert w.model.config.training["steps"] == 30
    assert w.model.config.train_blind_spot == 1 and w.model.config.network.width == 16
    assert SESSION.names() == ["cells model"] and SESSION.get("cells model") is w.model
    assert denoise.model() is w.model  # the Denoise widget offers the model just trained
    assert "Done: 30 steps" in w.status.text()
    np.testing.assert_array_equal(viewer.layers["cells"].data, before)

    path = w.save_model(str(tmp_path / "cells.safetensors"))
    assert path.exists()
    loaded = w.load_model(str(path))
    assert loaded.config.to_dict()["network"] == w.model.config.to_dict()["network"]
    np.testing.assert_allclose(bsd.denoise(data, loaded), bsd.denoise(data, SESSION.get("cells model")), atol=1e-5)


def test_train_method_choice(make_napari_viewer, qtbot):
    """The Method combo offers train's methods with its default and is passed to train (D-BSN here)."""
    viewer = make_napari_viewer()
    viewer.add_image(_noisy((64, 64)), name="cells")
    w = _dock(viewer, "Train")
    assert [w.method_combo.itemText(i) for i in range(w.method_combo.count())] == list(bsd.api.TRAIN_METHODS)
    assert w.method_combo.currentText() == bsd.api.DEFAULT_METHOD
    _tiny_settings(w, 4)
    w.method_combo.setCurrentText("dbsn")
    assert w.training_kwargs()["method"] == "dbsn"
    w.train_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    assert w.model is not None and w.model.method == "dbsn" and w.model.inference_blind_spot == 0



def test_stop_acts_within_a_step_and_keeps_the_best_model(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(_noisy((64, 64)), name="img")
    w = _dock(viewer, "Train")
    _tiny_settings(w, 100_000)
    _stop_within_a_step(qtbot, w, w.train_button, lambda: w.trainer)
    # Continue trains the same model 5 more steps (the budget is added to the steps done)
    done = w.trainer.step
    w.steps_spin.setValue(5)
    w.continue_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    assert w.trainer.step == done + 5
    w.reset_button.click()
    assert w.model is None and w.trainer is None and not w.continue_button.isEnabled()


# -- errors become notifications --------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((2, 2, 2, 2, 16, 16), np.float32), "6-D"),
        (np.where(np.eye(64) > 0, np.nan, 1.0).astype(np.float32), "NaN"),
        (np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32), "too small"),
    ],
    ids=["6-D", "NaN", "too-small"],
)
def test_bad_layer_gives_a_notification(make_napari_viewer, qtbot, data, message):
    viewer = make_napari_viewer()
    viewer.add_image(data, name="bad")
    w = _dock(viewer, "Train")
    if data.ndim == 6:
        w.axes_edit.setText("??????")
    w.blind_spot_combo.setCurrentText("1")
    n = len(_records())
    w.train_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=20_000)
    new = _records()[n:]
    assert any(message in m for m in new), new
    assert w.model is None


# -- the one-button Auto section ---------------------------------------------------------------
def test_auto_denoise_button_adds_the_result_and_the_models(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    data = _noisy((64, 64))
    viewer.add_image(data, name="cells", scale=(0.5, 0.25), units=("um", "um"), axis_labels=("y", "x"))
    w = _dock(viewer, "Train")
    assert w.auto_seconds.value() == bsd.api.DEFAULT_AUTO_SECONDS
    w.auto_seconds.setValue(30)
    assert w.auto_method.currentText() == "auto"
    w.auto_method.setCurrentText("dbsn")
    w.auto_button.click()
    assert w.busy and w.auto_stop_button.isEnabled() and not w.train_button.isEnabled()
    qtbot.waitUntil(lambda: not w.busy, timeout=120_000)
    out = viewer.layers["cells_denoised"]
    assert out.data.shape == data.shape and tuple(out.scale) == (0.5, 0.25) and tuple(out.units) == viewer.layers["cells"].units
    meta = out.metadata["napari_bsdenoise"]
    assert meta["auto"]["method"] == "dbsn" and "chosen by the user" in meta["auto"]["method_reason"]
    assert meta["source_layer"] == "cells"
    assert any(name.startswith("cells auto teacher") for name in SESSION.names())
    assert "auto_denoise:" in w.auto_label.text()


def test_auto_stop_keeps_the_models(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(_noisy((64, 64)), name="img")
    w = _dock(viewer, "Train")
    w.auto_seconds.setValue(120)
    w.auto_button.click()
    qtbot.waitUntil(lambda: "step" in w.auto_job.status.text(), timeout=60_000)
    w.auto_stop_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    assert "img_denoised" not in viewer.layers
    assert any(name.startswith("img auto teacher") for name in SESSION.names())
    assert "Stopped" in w.auto_job.status.text()
