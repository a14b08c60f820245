"""Shared helpers for the napari widget tests (``tests/test_widgets_*.py``): the headless display
set-up, test images, docking a panel, the notification log, the session clean-up fixture and the
checks several panels share.  The trained tiny models are session fixtures in ``conftest.py``.

Importing this module starts the headless display: Qt's ``offscreen`` platform with an X server
for OpenGL (``Xvfb`` is started when there is no ``DISPLAY``; scripts/setup.sh testing installs it).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_bsdenoise.widgets.layers import ensure_display

ensure_display()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from napari_bsdenoise.widgets import SESSION  # noqa: E402

PLUGIN = "napari-bsdenoise"


@pytest.fixture(autouse=True)
def _clean_session():
    """Autouse in every module that imports it: each test starts and ends with an empty session."""
    SESSION.clear()
    yield
    SESSION.clear()


def _noisy(shape, seed=0, dtype=np.float32):
    from skimage import data, transform

    rng = np.random.default_rng(seed)
    base = transform.resize(data.camera().astype(np.float32), shape[-2:], anti_aliasing=True, preserve_range=True)
    img = np.broadcast_to(base, shape) + rng.normal(0, 12, shape)
    return np.clip(img, 0, 255).astype(dtype)


def _dock(viewer, name):
    _dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def _records():
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records]


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


def _check_output(viewer, layer, out_name, model, blind_spot, axes):
    """The denoised layer matches its source layer's geometry and records how it was made."""
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
