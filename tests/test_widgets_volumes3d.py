"""The 2D/3D choice of the Train panel in a real (hidden) napari viewer, and a 3-D model in the Denoise panel."""

from __future__ import annotations

import numpy as np
import pytest
from widget_helpers import _check_output, _clean_session, _dock, _noisy  # noqa: F401

import napari_bsdenoise as bsd

pytestmark = pytest.mark.gui


def test_train_a_3d_network_and_denoise_the_volume(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    data = _noisy((16, 48, 48))
    before = data.copy()
    layer = viewer.add_image(data, name="stack", scale=(3.0, 0.5, 0.5), axis_labels=("z", "y", "x"))
    w = _dock(viewer, "Train")
    assert w.axes_edit.text() == "ZYX" and w.dims_combo.isEnabled()
    w.dims_combo.setCurrentText("3D (Z-Y-X volumes)")
    w.blind_spot_combo.setCurrentText("1x3x3")
    w.budget_kind.setCurrentText("steps")
    w.steps_spin.setValue(2)
    assert w.training_kwargs()["spatial_dims"] == 3
    w.train_button.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    model = w.model
    assert model is not None and model.config.network.spatial_dims == 3
    assert model.config.train_blind_spot == (1, 3, 3) and "3-D" in w.model_label.text() + model.summary()
    assert type(model.network).__name__ == "ATBSN25D" and "2.5-D" in model.summary()  # the default volume network

    d = _dock(viewer, "Denoise")
    assert d.model() is model
    assert model.inference_blind_spot == 1 and d.blind_spot() == (1, 1, 1)  # the model's default, a cube
    d.set_blind_spot(3)
    assert d.blind_spot() == (1, 3, 3) and d.slider_label.text() == "1x3x3"  # in-plane; Z stays the model's
    d.set_blind_spot(1)
    d.denoise_button.click()
    qtbot.waitUntil(lambda: not d.busy, timeout=60_000)
    out = _check_output(viewer, layer, "stack_denoised", model, [1, 1, 1], "ZYX")
    np.testing.assert_allclose(out.data, bsd.denoise(data, model, axes="ZYX", blind_spot=1), atol=1e-4)
    np.testing.assert_array_equal(layer.data, before)
    w.advanced.setChecked(True)  # the full 3-D network is a choice of the Network box
    w.network_combo.setCurrentText("tiny-full3d")
    assert w.training_kwargs()["network"] == "tiny-full3d"


def test_the_choice_needs_a_z_axis(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(_noisy((48, 48)), name="plane")
    w = _dock(viewer, "Train")
    assert not w.dims_combo.isEnabled() and "spatial_dims" not in w.training_kwargs()
    w.axes_edit.setText("ZYX")  # typed axes enable it
    assert w.dims_combo.isEnabled()
