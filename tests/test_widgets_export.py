"""The Denoise panel's "Export to BioImage.IO…" in a real (hidden) napari viewer: the selected model at the
slider's blind spot and the fusion setting, the layer's centre as the test image, the file dialog, and
errors becoming notifications.  The package itself is checked in tests/test_export.py.

Runs headless (tests/widget_helpers.py starts the display); the tiny model is a session fixture in
tests/conftest.py.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import yaml
from widget_helpers import _clean_session, _dock, _noisy, _records  # noqa: F401

import napari_bsdenoise as bsd
from napari_bsdenoise.widgets import SESSION

pytestmark = pytest.mark.gui


def _package(path):
    import torch

    with zipfile.ZipFile(path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        x = np.load(io.BytesIO(zf.read("test_input.npy")))
        ts = torch.jit.load(io.BytesIO(zf.read("weights_torchscript.pt")))
    return rdf, x, ts


def test_export_writes_the_selected_model_at_the_slider_blind_spot(make_napari_viewer, qtbot, gray_model, tmp_path,
                                                                    monkeypatch):
    import torch
    from qtpy.QtWidgets import QFileDialog

    viewer = make_napari_viewer()
    data = _noisy((64, 64))
    before = data.copy()
    viewer.add_image(data, name="cells")
    SESSION.add("cells model", gray_model)
    w = _dock(viewer, "Denoise")
    assert w.export_button.isEnabled() and w.export_button.text() == "Export to BioImage.IO…"
    w.set_blind_spot(3)
    asked = {}

    def fake_dialog(parent, title, default, filters):
        asked.update(title=title, default=default, filters=filters)
        return str(tmp_path / default), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_dialog))
    w.export_button.click()
    qtbot.waitUntil(lambda: not w.export_busy, timeout=30_000)
    path = tmp_path / "cells model.zip"
    assert asked["default"] == "cells model.zip" and "*.zip" in asked["filters"] and "BioImage" in asked["title"]
    assert path.is_file() and "Exported to" in w.export_label.text() and w.export_button.isEnabled()
    rdf, x, ts = _package(path)
    assert rdf["config"]["napari_bsdenoise"]["blind_spot"] == 3
    fused = rdf["config"]["napari_bsdenoise"]["fusion"]
    np.testing.assert_array_equal(x[0, 0], data)  # the layer (small: whole) is the test image
    with torch.no_grad():
        got = ts(torch.from_numpy(x)).numpy()[0, 0]
    np.testing.assert_allclose(got, bsd.denoise(data, gray_model, blind_spot=3, hot_pixels="keep",
                                                fusion="auto" if fused else False), atol=1e-3)
    np.testing.assert_array_equal(data, before)

    # the fusion box: unticked, the network's output alone; an existing file is replaced (the dialog asked)
    w.fusion_check.setChecked(False)
    w.export_bioimageio(str(path))
    qtbot.waitUntil(lambda: not w.export_busy, timeout=30_000)
    rdf, _x, _ts = _package(path)
    assert rdf["config"]["napari_bsdenoise"]["fusion"] is False

    # a cancelled dialog writes nothing
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a: ("", "")))
    w.export_button.click()
    assert not w.export_busy and sorted(p.name for p in tmp_path.iterdir()) == ["cells model.zip"]


def test_export_errors_give_notifications(make_napari_viewer, qtbot, gray_model, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([_noisy((64, 64), seed=c, dtype=np.uint8) for c in range(3)], axis=-1), name="rgb")
    w = _dock(viewer, "Denoise")
    n = len(_records())
    w.export_bioimageio(str(tmp_path / "none.zip"))
    assert any("no model" in m for m in _records()[n:])
    SESSION.add("gray", gray_model)
    w.export_bioimageio(str(tmp_path / "rgb.zip"))  # a colour layer for a grey model: refused in the worker
    qtbot.waitUntil(lambda: not w.export_busy, timeout=30_000)
    assert any("exporting" in m and "1-channel images" in m for m in _records()[n:])
    assert w.export_label.text() == "Export failed." and w.export_button.isEnabled()
    assert not any(tmp_path.iterdir())
