"""Screenshots of the napari widgets for docs/napari.md, taken headlessly (regenerate with this script).

    OMP_NUM_THREADS=1 python scripts/screenshots.py [--steps 150] [--out docs/images]

Opens the 2-D microscopy sample, docks the Train widget and trains the ``tiny`` network, then
docks the Denoise widget with the live preview of a zoomed-in view, and denoises the layer, then
docks the Distill widget and distils the trained model into a tiny student, then docks the
Refine widget, trains the BSGD diffusion branches next to the trained model and refines the layer.
Needs an X server for napari's OpenGL canvas: an Xvfb server is started when there is no
DISPLAY (scripts/setup.sh testing installs it).  Writes train_widget.png, auto_widget.png, denoise_widget.png,
denoise_result_widget.png, distill_widget.png and refine_widget.png.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from napari_bsdenoise.widgets.layers import camera, ensure_display

ensure_display()
# with an X server (Xvfb), the xcb platform renders the OpenGL canvas; offscreen leaves it black
os.environ["QT_QPA_PLATFORM"] = "xcb" if os.environ.get("DISPLAY") else "offscreen"


def wait(app, cond, timeout=600.0):
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the widget did not finish in time")
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)


def shot(viewer, app, path: Path) -> None:
    """The whole window, with the canvas rendered by vispy pasted in (a window grab shows an
    empty canvas on Qt's offscreen platform)."""
    from qtpy.QtCore import QPoint
    from qtpy.QtGui import QImage, QPainter

    wait(app, lambda: True)
    window = viewer.window._qt_window
    image = window.grab().toImage()
    canvas = viewer.screenshot(canvas_only=True, flash=False)  # (h, w, 4) uint8 RGBA
    native = viewer.window._qt_viewer.canvas.native
    h, w = canvas.shape[:2]
    qimg = QImage(canvas.tobytes(), w, h, 4 * w, QImage.Format_RGBA8888)
    painter = QPainter(image)
    target = native.mapTo(window, QPoint(0, 0))
    painter.drawImage(target, qimg.scaled(native.width(), native.height()))
    painter.end()
    image.save(str(path))
    print(f"wrote {path}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--distill-steps", type=int, default=100)
    ap.add_argument("--bsgd-steps", type=int, default=60)
    ap.add_argument("--auto-seconds", type=int, default=60, help="budget of the Auto run (auto_widget.png)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import napari
    from napari.settings import get_settings
    from qtpy.QtWidgets import QApplication

    get_settings().application.gui_notification_level = "error"  # no toasts over the canvas
    viewer = napari.Viewer(show=True, title="napari-bsdenoise")
    app = QApplication.instance()
    viewer.window.resize(1500, 1000)
    viewer.open_sample("napari-bsdenoise", "microscopy")
    train_dock, train = viewer.window.add_plugin_dock_widget("napari-bsdenoise", "Train")
    wait(app, lambda: train.noise is not None)
    train.steps_spin.setValue(args.steps)
    train.advanced.setChecked(True)
    train.network_combo.setCurrentText("tiny")
    train.train_button.click()
    wait(app, lambda: not train.busy)
    shot(viewer, app, args.out / "train_widget.png")
    train.auto_seconds.setValue(args.auto_seconds)  # the one-button section, on the same layer
    train.auto_button.click()
    wait(app, lambda: not train.busy)
    shot(viewer, app, args.out / "auto_widget.png")
    viewer.layers.remove("nuclei (noisy)_denoised")

    viewer.window.remove_dock_widget(train_dock)  # the trained model stays in the session
    denoise_dock, denoise = viewer.window.add_plugin_dock_widget("napari-bsdenoise", "Denoise")
    layer = viewer.layers["nuclei (noisy)"]
    cam = camera(viewer)
    cam.center = (0.5 * 300, 0.5 * 220)  # world units: the layer's scale is 0.5 um
    cam.zoom = 4.0
    denoise.picker.set_layer(layer)
    denoise.set_blind_spot(1)
    denoise.preview_check.setChecked(True)
    wait(app, lambda: "nuclei (noisy)_preview" in viewer.layers and not denoise.preview_busy)
    shot(viewer, app, args.out / "denoise_widget.png")

    denoise.preview_check.setChecked(False)
    viewer.layers.remove("nuclei (noisy)_preview")
    denoise.denoise_button.click()
    wait(app, lambda: not denoise.busy)
    viewer.reset_view()
    layer.visible = False
    shot(viewer, app, args.out / "denoise_result_widget.png")

    viewer.window.remove_dock_widget(denoise_dock)
    viewer.layers.remove(f"{layer.name}_denoised")
    layer.visible = True
    distill_dock, distill = viewer.window.add_plugin_dock_widget("napari-bsdenoise", "Distill")
    distill.picker.set_layer(layer)
    distill.student_combo.setCurrentText("tiny")
    distill.steps_spin.setValue(args.distill_steps)
    distill.distill_button.click()
    wait(app, lambda: not distill.busy)
    shot(viewer, app, args.out / "distill_widget.png")

    viewer.window.remove_dock_widget(distill_dock)
    _, refine = viewer.window.add_plugin_dock_widget("napari-bsdenoise", "Refine")
    refine.picker.set_layer(layer)
    refine.guide_combo.setCurrentIndex(0)  # the Train widget's model
    refine.steps_spin.setValue(args.bsgd_steps)
    refine.train_button.click()
    wait(app, lambda: not refine.busy)
    refine.steps_box.setValue(2)  # the best measured variant (docs/bsgd.md), and quick
    refine.rounds_box.setValue(1)
    refine.refine_button.click()
    wait(app, lambda: not refine.busy)
    layer.visible = False
    shot(viewer, app, args.out / "refine_widget.png")
    viewer.close()


if __name__ == "__main__":
    main()
