"""The npe2 manifest is valid and every sample-data command returns usable layers."""

from __future__ import annotations

import numpy as np
import pytest
from npe2 import PluginManifest

from napari_bsdenoise import sample_data as _sample_data


@pytest.fixture(scope="module")
def manifest():
    return PluginManifest.from_distribution("napari-bsdenoise")


def test_manifest_is_valid_and_imports(manifest):
    assert manifest.name == "napari-bsdenoise"
    assert manifest.display_name == "Blind-Spot Denoise"
    assert "Image Processing" in [str(c) for c in manifest.categories]
    manifest.validate_imports()  # every python_name resolves to a callable


def test_every_sample_has_a_command(manifest):
    commands = {c.id: c for c in manifest.contributions.commands}
    samples = manifest.contributions.sample_data
    assert {s.key for s in samples} == {"microscopy", "camera", "stack"}
    for sample in samples:
        assert sample.command in commands
    assert "napari-bsdenoise.sample_microscopy" in commands


def test_widgets_and_filter_menu(manifest):
    widgets = {w.display_name: w.command for w in manifest.contributions.widgets}
    assert widgets == {"Train": "napari-bsdenoise.train_widget", "Denoise": "napari-bsdenoise.denoise_widget",
                       "Distill": "napari-bsdenoise.distill_widget", "Refine": "napari-bsdenoise.refine_widget"}
    menu = [item.command for item in manifest.contributions.menus["napari/layers/filter"]]
    assert set(menu) == set(widgets.values()) and len(menu) == len(widgets)
    from napari_bsdenoise.widgets import DenoiseWidget, DistillWidget, RefineWidget, TrainWidget

    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands["napari-bsdenoise.train_widget"].endswith(":TrainWidget") and TrainWidget
    assert commands["napari-bsdenoise.denoise_widget"].endswith(":DenoiseWidget") and DenoiseWidget
    assert commands["napari-bsdenoise.distill_widget"].endswith(":DistillWidget") and DistillWidget
    assert commands["napari-bsdenoise.refine_widget"].endswith(":RefineWidget") and RefineWidget


def test_core_never_imports_napari_or_qt():
    import subprocess
    import sys

    code = ("import sys, napari_bsdenoise as b, napari_bsdenoise.api, napari_bsdenoise.engine.preview, "
            "napari_bsdenoise.engine.progress, napari_bsdenoise.engine.tiling, napari_bsdenoise.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


EXPECTED = {
    "sample_microscopy": ((512, 512), np.uint16),
    "sample_camera": ((512, 512, 3), np.uint8),
    "sample_stack": ((32, 128, 128), np.uint16),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_data(name):
    layers = getattr(_sample_data, name)()
    shape, dtype = EXPECTED[name]
    assert isinstance(layers, list) and len(layers) == 2
    (clean, clean_meta), (noisy, noisy_meta) = layers
    assert noisy.shape == shape and noisy.dtype == dtype
    assert clean.shape == shape
    assert isinstance(noisy_meta["name"], str) and isinstance(clean_meta["name"], str)
    assert clean_meta.get("visible") is False  # the reference is hidden; the noisy layer is shown
    # there is noise to remove, and it is deterministic
    assert np.abs(noisy.astype(np.float64) - clean).mean() > 1
    np.testing.assert_array_equal(getattr(_sample_data, name)()[1][0], noisy)


def test_camera_offset_and_no_clipping():
    noisy = _sample_data.sample_microscopy()[1][0]
    assert noisy.min() > 0  # the camera offset keeps read noise away from 0
    assert abs(float(np.median(noisy)) - _sample_data.CAMERA_OFFSET) < 30
