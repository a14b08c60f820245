"""The Denoise panel in a real (hidden) napari viewer: the live blind-spot preview (the slider,
D-BSN models, the current slice and view), denoising 2-D/RGB/3-D layers, fusion, dask layers,
writing to a zarr file, Cancel, and errors becoming notifications.

Runs headless (tests/widget_helpers.py starts the display); the tiny models are session fixtures
in tests/conftest.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from widget_helpers import _check_output, _clean_session, _dock, _noisy, _records  # noqa: F401

import napari_bsdenoise as bsd
from napari_bsdenoise.widgets import SESSION
from napari_bsdenoise.widgets.denoise import BLIND_SPOTS
from napari_bsdenoise.widgets.layers import camera

pytestmark = pytest.mark.gui


# -- errors become notifications --------------------------------------------------------------
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
    np.testing.assert_allclose(prev.data, bsd.denoise(data, dbsn, blind_spot=0)[y0:y1, x0:x1], atol=1e-4)
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


def test_denoise_hot_pixel_checkbox(make_napari_viewer, qtbot, gray_model):
    data = _noisy((64, 64))
    data[8, 40] += 5000  # a hot pixel (in the flat sky of the camera image)
    viewer = make_napari_viewer()
    viewer.add_image(data, name="in")
    SESSION.add("m", gray_model)
    w = _dock(viewer, "Denoise")
    assert w.hot_pixels_check.isChecked()
    w.fusion_check.setChecked(False)
    for checked, mode in ((True, "auto"), (False, "keep")):
        w.hot_pixels_check.setChecked(checked)
        w.set_blind_spot(0)  # non-blind: the hot pixel comes back unless it is repaired
        w.denoise_button.click()
        qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
        out = viewer.layers["in_denoised"]
        np.testing.assert_allclose(out.data, bsd.denoise(data, gray_model, blind_spot=0, hot_pixels=mode), atol=1e-4)
        meta = out.metadata["napari_bsdenoise"]
        assert meta["hot_pixels"] == mode and meta.get("hot_pixels_repaired", 0) == (1 if checked else 0)
    assert not np.allclose(bsd.denoise(data, gray_model, blind_spot=0),
                           bsd.denoise(data, gray_model, blind_spot=0, hot_pixels="keep"))


def test_per_axis_blind_spot_and_safety_check(make_napari_viewer, qtbot):
    """A model trained at (1, 9) opens the panel at its (1, 3) default with "Per axis" ticked; the
    result at the default is safety-checked (verdict in the metadata), a chosen setting is not."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:96, :96]
    clean = 100 + 40 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    data = (clean + 12 * ndi.convolve(rng.normal(size=(96, 96)), np.ones((1, 7)) / np.sqrt(7), mode="wrap"))
    data = data.astype(np.float32)
    model = bsd.train(data, steps=30, network="tiny", blind_spot=(1, 9), patch_size=48, batch_size=4)
    assert model.config.inference_blind_spot == (1, 3)
    viewer = make_napari_viewer()
    viewer.add_image(data, name="in")
    SESSION.add("axis", model)
    w = _dock(viewer, "Denoise")
    assert w.axis_check.isChecked() and not w.slider_x.isHidden() and w.blind_spot() == (1, 3)
    assert w.slider_label.text() == "1x3"
    w.denoise_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    out = viewer.layers["in_denoised"]
    meta = out.metadata["napari_bsdenoise"]
    assert meta["blind_spot"] == [1, 3] and meta["safety_check"].startswith("safety check")
    report = bsd.safety_check(data, model)
    expect = bsd.denoise(data, model, check=False, **({} if not report.fell_back or report.chosen is None else
                                                      {"blind_spot": report.chosen.blind_spot,
                                                       "fusion": report.chosen.fusion}))
    if report.fell_back and report.chosen is None:
        expect = data
    np.testing.assert_allclose(out.data, expect, atol=1e-4)
    # a chosen rectangle: no check, exactly what was asked for
    w.slider_x.setValue(BLIND_SPOTS.index(9))
    assert w.blind_spot() == (1, 9)
    w.denoise_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    out = viewer.layers["in_denoised"]
    assert out.metadata["napari_bsdenoise"]["safety_check"].startswith("not run")
    np.testing.assert_allclose(out.data, bsd.denoise(data, model, blind_spot=(1, 9)), atol=1e-4)
    # unticking gives a square again, and the preview renders rectangles
    w.axis_check.setChecked(False)
    assert isinstance(w.blind_spot(), int) and w.slider_x.isHidden()


def test_fast_bf16_inference_checkbox(make_napari_viewer, qtbot, teacher):
    data = _noisy((64, 64))
    student = bsd.distill(data, teacher, student="tiny", steps=1, patch_size=32, batch_size=2)
    viewer = make_napari_viewer()
    viewer.add_image(data, name="in")
    SESSION.add("s", student)
    w = _dock(viewer, "Denoise")
    w.check_box.setChecked(False)
    assert not w.bf16_check.isChecked()
    for checked, precision in ((False, "fp32"), (True, "bf16")):
        w.bf16_check.setChecked(checked)
        w.denoise_button.click()
        qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
        out = viewer.layers["in_denoised"]
        assert out.metadata["napari_bsdenoise"]["precision"] == ("bf16" if checked else "auto")
        np.testing.assert_allclose(out.data, bsd.denoise(data, student, precision=precision, check=False), atol=1e-5)
    # bf16 rounds the network's activations: a different (close) result, not the fp32 one
    fp32 = bsd.denoise(data, student, precision="fp32", check=False)
    assert not np.array_equal(out.data, fp32)
    assert np.abs(out.data - fp32).max() < 0.05 * data.std()
