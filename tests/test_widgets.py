"""The napari widgets in a real (hidden) napari viewer: docking, the layer picker, training,
Stop/Continue, the live blind-spot preview, denoising 2-D/RGB/3-D/dask layers, distilling a
teacher into a student and denoising with it, BSGD refinement (training the diffusion branches,
Continue, Save model…, refining, Cancel), errors.

Runs headless: Qt's ``offscreen`` platform with an X server for OpenGL (``Xvfb`` is started
when there is no ``DISPLAY``; scripts/setup.sh testing installs it).  Models are tiny.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_bsdenoise.widgets.layers import ensure_display

ensure_display()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import napari_bsdenoise as bsd  # noqa: E402
from napari_bsdenoise.widgets import SESSION, DenoiseWidget, DistillWidget, RefineWidget, TrainWidget  # noqa: E402
from napari_bsdenoise.widgets.denoise import BLIND_SPOTS  # noqa: E402
from napari_bsdenoise.widgets.layers import camera, detect_axes  # noqa: E402

pytestmark = pytest.mark.gui
PLUGIN = "napari-bsdenoise"


@pytest.fixture(autouse=True)
def _clean_session():
    SESSION.clear()
    yield
    SESSION.clear()


def _noisy(shape, seed=0, dtype=np.float32):
    from skimage import data, transform

    rng = np.random.default_rng(seed)
    base = transform.resize(data.camera().astype(np.float32), shape[-2:], anti_aliasing=True, preserve_range=True)
    img = np.broadcast_to(base, shape) + rng.normal(0, 12, shape)
    return np.clip(img, 0, 255).astype(dtype)


@pytest.fixture(scope="module")
def gray_model():
    return bsd.train(_noisy((64, 64)), steps=2, network="tiny", blind_spot=1, patch_size=32, batch_size=2)


@pytest.fixture(scope="module")
def rgb_model():
    rgb = np.stack([_noisy((64, 64), seed=c, dtype=np.uint8) for c in range(3)], axis=-1)
    return bsd.train(rgb, steps=2, network="tiny", blind_spot=1, patch_size=32, batch_size=2)


def _dock(viewer, name):
    _dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def _records():
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records]


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


def _stop_within_a_step(qtbot, w, start_button, trainer):
    """Start, press Stop after step 3 and check that only the running step finishes and the best
    model so far is kept (Train and Distill widgets; ``trainer()`` is the widget's trainer)."""
    start_button.click()
    qtbot.waitUntil(lambda: trainer() is not None and trainer().step >= 3, timeout=30_000)
    w.stop_button.click()
    at_stop = trainer().step
    qtbot.waitUntil(lambda: not w.busy, timeout=10_000)
    assert at_stop <= trainer().step <= at_stop + 1  # the step that was running finishes; no more
    assert w.model is trainer().model and w.model is not None
    assert "Stopped at step" in w.status.text()
    assert w.continue_button.isEnabled() and start_button.isEnabled()


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


def test_denoise_without_model_or_with_wrong_channels_notifies(make_napari_viewer, rgb_model):
    viewer = make_napari_viewer()
    viewer.add_image(_noisy((64, 64)), name="gray")
    w = _dock(viewer, "Denoise")
    n = len(_records())
    w.denoise_button.click()
    assert any("no model" in m for m in _records()[n:])
    SESSION.add("rgb", rgb_model)
    w.denoise_button.click()
    assert any("3-channel" in m for m in _records()[n:])
    assert "gray_denoised" not in viewer.layers


# -- the live preview -------------------------------------------------------------------------
def test_preview_updates_when_the_slider_moves(make_napari_viewer, qtbot, gray_model):
    viewer = make_napari_viewer()
    data = _noisy((64, 64))
    viewer.add_image(data, name="img", scale=(0.5, 0.5), translate=(3.0, 4.0))
    SESSION.add("m", gray_model)
    w = _dock(viewer, "Denoise")
    w.set_blind_spot(1)
    w.preview_check.setChecked(True)
    qtbot.waitUntil(lambda: "img_preview" in viewer.layers, timeout=20_000)
    prev = viewer.layers["img_preview"]
    y0, y1, x0, x1 = prev.metadata["napari_bsdenoise"]["region"]
    np.testing.assert_allclose(prev.data, bsd.denoise(data, gray_model, blind_spot=1)[y0:y1, x0:x1], atol=1e-4)
    np.testing.assert_allclose(prev.translate, (3.0 + 0.5 * y0, 4.0 + 0.5 * x0))
    first = prev.data.copy()
    w.slider.setValue(BLIND_SPOTS.index(5))  # the slider: only the head runs, synchronously
    assert w.preview.cached and viewer.layers["img_preview"] is prev
    assert not np.allclose(prev.data, first)
    np.testing.assert_allclose(prev.data, bsd.denoise(data, gray_model, blind_spot=5)[y0:y1, x0:x1], atol=1e-4)
    assert prev.metadata["napari_bsdenoise"]["blind_spot"] == 5
    assert 0 < w.preview_seconds < 5


def test_dbsn_model_offers_blind_spots_0_and_1_only(make_napari_viewer, qtbot, gray_model):
    viewer = make_napari_viewer()
    data = _noisy((64, 64))
    viewer.add_image(data, name="img")
    dbsn = bsd.train(data, method="dbsn", steps=2, network="tiny")
    SESSION.add("tunable", gray_model)
    SESSION.add("dbsn", dbsn)
    w = _dock(viewer, "Denoise")
    assert w.model() is dbsn
    assert w.slider.maximum() == 1 and w.blind_spot() == 0 and "D-BSN" in w.blind_spot_note.text()
    w.slider.setValue(5)  # clamped by Qt to the maximum
    assert w.blind_spot() == 1
    w.preview_check.setChecked(True)
    qtbot.waitUntil(lambda: "img_preview" in viewer.layers and not w.preview_busy, timeout=20_000)
    prev = viewer.layers["img_preview"]
    y0, y1, x0, x1 = prev.metadata["napari_bsdenoise"]["region"]
    np.testing.assert_allclose(prev.data, bsd.denoise(data, dbsn, blind_spot=1)[y0:y1, x0:x1], atol=1e-4)
    w.slider.setValue(0)
    np.testing.assert_allclose(prev.data, bsd.denoise(data, dbsn)[y0:y1, x0:x1], atol=1e-4)
    w.preview_check.setChecked(False)
    w.model_combo.setCurrentText("tunable")  # an AT-BSN: every blind spot again
    assert w.slider.maximum() == len(BLIND_SPOTS) - 1 and w.blind_spot_note.isHidden()


def test_preview_of_the_current_slice_and_view(make_napari_viewer, qtbot, gray_model):
    viewer = make_napari_viewer()
    stack = _noisy((3, 256, 256))
    stack[2] += 40  # a different slice
    layer = viewer.add_image(stack, name="stack", axis_labels=("z", "y", "x"), scale=(2, 1, 1))
    SESSION.add("m", gray_model)
    w = _dock(viewer, "Denoise")
    viewer.dims.set_current_step(0, 2)
    camera(viewer).center = (0, 64, 64)
    camera(viewer).zoom = 8  # a small part of the slice is visible
    w.preview_check.setChecked(True)
    qtbot.waitUntil(lambda: "stack_preview" in viewer.layers and not w.preview_busy, timeout=20_000)
    prev = viewer.layers["stack_preview"]
    y0, y1, x0, x1 = prev.metadata["napari_bsdenoise"]["region"]
    assert (y1 - y0) < 256 and (x1 - x0) < 256 and y0 <= 64 <= y1 and x0 <= 64 <= x1
    assert prev.data.shape == (1, y1 - y0, x1 - x0)
    assert prev.translate[0] == 2 * 2  # shown at slice 2 only
    want = bsd.denoise(stack[2], gray_model, blind_spot=w.blind_spot())[y0:y1, x0:x1]
    np.testing.assert_allclose(prev.data[0], want, atol=1e-3)
    assert layer.data is stack


# -- the whole layer --------------------------------------------------------------------------
def _check_output(viewer, layer, out_name, model, blind_spot, axes):
    out = viewer.layers[out_name]
    assert out.data.shape == layer.data.shape
    np.testing.assert_allclose(out.scale, layer.scale)
    np.testing.assert_allclose(out.translate, layer.translate)
    assert tuple(out.units) == tuple(layer.units) and tuple(out.axis_labels) == tuple(layer.axis_labels)
    np.testing.assert_allclose(out.contrast_limits, layer.contrast_limits)
    meta = out.metadata["napari_bsdenoise"]
    assert meta["blind_spot"] == blind_spot and meta["axes"] == axes and meta["source_layer"] == layer.name
    assert meta["model_config"]["network"]["width"] == model.config.network.width
    return out


@pytest.mark.parametrize("kind", ["2d", "rgb", "3d"])
def test_denoise_layer(make_napari_viewer, qtbot, gray_model, rgb_model, kind):
    viewer = make_napari_viewer()
    if kind == "2d":
        data, kw, model, axes = _noisy((64, 80)), {"scale": (0.5, 0.25), "translate": (10.0, -5.0),
                                                    "units": ("um", "um")}, gray_model, "YX"
    elif kind == "rgb":
        data = np.stack([_noisy((64, 64), seed=c, dtype=np.uint8) for c in range(3)], axis=-1)
        kw, model, axes = {"rgb": True, "scale": (2.0, 2.0), "translate": (1.0, 2.0)}, rgb_model, "YXC"
    else:
        data, model, axes = _noisy((3, 64, 64), dtype=np.uint16), gray_model, "ZYX"
        kw = {"scale": (3.0, 0.5, 0.5), "translate": (6.0, 1.0, 1.0), "axis_labels": ("z", "y", "x"),
              "contrast_limits": (10, 200)}
    before = data.copy()
    layer = viewer.add_image(data, name="in", **kw)
    SESSION.add("m", model)
    w = _dock(viewer, "Denoise")
    assert w.axes_edit.text() == axes
    w.set_blind_spot(3)
    w.denoise_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    out = _check_output(viewer, layer, "in_denoised", model, 3, axes)
    np.testing.assert_allclose(out.data, bsd.denoise(data, model, axes=axes, blind_spot=3), atol=1e-4)
    # fused by default where the training data's noise was correlated (nn/fusion.py)
    assert out.metadata["napari_bsdenoise"]["fusion"] is (model.config.noise["correlation_length"] > 0)
    assert out.rgb == layer.rgb
    np.testing.assert_array_equal(layer.data, before)  # the input is never modified
    # denoising again replaces the output layer's data instead of adding "in_denoised [1]"
    w.set_blind_spot(0)
    w.denoise_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    assert [lyr.name for lyr in viewer.layers] == ["in", "in_denoised"]
    assert viewer.layers["in_denoised"].metadata["napari_bsdenoise"]["blind_spot"] == 0
    assert viewer.layers["in_denoised"].metadata["napari_bsdenoise"]["fusion"] is False  # nothing to fuse at 0


def test_denoise_fusion_checkbox(make_napari_viewer, qtbot):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:64, :64]
    data = (100 + 40 * np.sin(xx / 5.0) + ndi.uniform_filter(rng.normal(0, 24, (64, 64)), 3)).astype(np.float32)
    model = bsd.train(data, steps=2, network="tiny", blind_spot=3, patch_size=32, batch_size=2)
    assert model.config.noise["correlation_length"] > 0  # correlated noise: fusion="auto" applies
    viewer = make_napari_viewer()
    viewer.add_image(data, name="in")
    SESSION.add("corr", model)
    w = _dock(viewer, "Denoise")
    assert w.fusion_check.isEnabled() and w.fusion_check.isChecked()
    for checked in (True, False):
        w.fusion_check.setChecked(checked)
        w.set_blind_spot(3)
        w.denoise_button.click()
        qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
        out = viewer.layers["in_denoised"]
        np.testing.assert_allclose(out.data, bsd.denoise(data, model, blind_spot=3, fusion=checked), atol=1e-4)
        assert out.metadata["napari_bsdenoise"]["fusion"] is checked
    assert not np.allclose(bsd.denoise(data, model, blind_spot=3), bsd.denoise(data, model, blind_spot=3,
                                                                                 fusion=False))


def test_dask_layer_stays_lazy(make_napari_viewer, qtbot, gray_model):
    import dask.array as da

    viewer = make_napari_viewer()
    stack = _noisy((4, 64, 64))
    lazy = da.from_array(stack, chunks=(1, 64, 64))
    layer = viewer.add_image(lazy, name="lazy", axis_labels=("z", "y", "x"))
    SESSION.add("m", gray_model)
    w = _dock(viewer, "Denoise")
    w.denoise_button.click()
    assert not w.busy  # nothing to wait for: the result is a lazy dask array
    out = _check_output(viewer, layer, "lazy_denoised", gray_model, 1, "ZYX")
    assert isinstance(out.data, da.Array) and layer.data is lazy
    np.testing.assert_allclose(np.asarray(out.data[1]), bsd.denoise(stack[1], gray_model), atol=1e-3)


def test_denoise_to_a_zarr_file_and_cancel(make_napari_viewer, qtbot, gray_model, tmp_path):
    import dask.array as da

    viewer = make_napari_viewer()
    stack = _noisy((3, 64, 64))
    layer = viewer.add_image(stack, name="s", axis_labels=("z", "y", "x"))
    SESSION.add("m", gray_model)
    w = _dock(viewer, "Denoise")
    w.file_check.setChecked(True)
    w.file_edit.setText(str(tmp_path / "out.zarr"))
    w.denoise_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    out = _check_output(viewer, layer, "s_denoised", gray_model, 1, "ZYX")
    assert isinstance(out.data, da.Array)  # read back lazily from the store
    np.testing.assert_allclose(np.asarray(out.data), bsd.denoise(stack, gray_model, axes="ZYX"), atol=1e-3)
    assert out.metadata["napari_bsdenoise"]["output_file"].endswith("out.zarr")

    # Cancel: a 40-plane stack, cancelled after the first plane, adds no layer
    viewer.layers.remove(out)
    big = viewer.add_image(_noisy((40, 64, 64)), name="big", axis_labels=("z", "y", "x"))
    w.picker.set_layer(big)
    w.file_check.setChecked(False)
    n = len(_records())
    w.denoise_button.click()
    w.cancel_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    assert "big_denoised" not in viewer.layers
    assert "Cancelled" in w.status.text() and any("cancelled" in m for m in _records()[n:])


# -- distillation -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher():
    return bsd.train(_noisy((64, 64)), steps=3, network="tiny", blind_spot=1, patch_size=32, batch_size=2)


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
    want = bsd.denoise(data, student)
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
    np.testing.assert_allclose(out.data, want, atol=1e-4)
    np.testing.assert_array_equal(layer.data, before)
    denoise.model_combo.setCurrentText("cells model")  # back to the teacher: the slider is free again
    assert denoise.slider.isEnabled() and denoise.blind_spot_note.isHidden()

    path = w.save_student(str(tmp_path / "student.safetensors"))
    loaded = bsd.load_model(path)
    assert loaded.is_student
    np.testing.assert_allclose(bsd.denoise(data, loaded), want, atol=1e-5)


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
@pytest.fixture(scope="module")
def small_guide():
    return bsd.train(_noisy((48, 48)), steps=2, network="tiny", blind_spot=1)


@pytest.fixture(scope="module")
def small_bsgd(small_guide):
    return bsd.train(_noisy((48, 48)), method="bsgd", guide=small_guide, steps=2, network="tiny")


def test_refine_trains_the_branches_then_refines_the_layer(make_napari_viewer, qtbot, small_guide):
    viewer = make_napari_viewer()
    data = _noisy((48, 48))
    before = data.copy()
    layer = viewer.add_image(data, name="cells", scale=(0.5, 0.25), translate=(3.0, -2.0), units=("um", "um"),
                             contrast_limits=(20, 220))
    SESSION.add("g", small_guide)
    w = _dock(viewer, "Refine")
    assert isinstance(w, RefineWidget)
    assert "Experimental" in w.experimental_label.text() and "not yet beat its guide" in w.experimental_label.text()
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
    w.refine_button.click()
    assert w.refining and w.cancel_button.isEnabled() and not w.train_button.isEnabled()
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    out = viewer.layers["cells_refined"]
    want = bsd.refine(data, diff, guide=small_guide, sampling_steps=2, rounds=1, guidance=0.5, seed=3)
    np.testing.assert_allclose(out.data, want, atol=1e-4)
    assert not np.allclose(out.data, bsd.refine(data, diff, guide=small_guide, sampling_steps=2, rounds=1,
                                                guidance=0.5, seed=4), atol=1e-3)  # the seed is passed on
    np.testing.assert_allclose(out.scale, layer.scale)
    np.testing.assert_allclose(out.translate, layer.translate)
    assert tuple(out.units) == tuple(layer.units) and tuple(out.axis_labels) == tuple(layer.axis_labels)
    np.testing.assert_allclose(out.contrast_limits, (20, 220))
    meta = out.metadata["napari_bsdenoise"]
    assert meta["method"] == "bsgd" and meta["experimental"] and meta["model"] == "g bsgd" and meta["guide"] == "g"
    assert (meta["sampling_steps"], meta["rounds"], meta["guidance"], meta["seed"]) == (2, 1, 0.5, 3)
    assert meta["t_start"] == 0.3 and meta["replace"] == 0.16 and meta["source_layer"] == "cells"
    assert w.progress.value() == 1000 and "Added 'cells_refined'" in w.status.text()
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
