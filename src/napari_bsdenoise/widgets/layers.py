"""Layers to arrays and back: axes from a layer, the image-layer picker, the visible slice,
output-layer metadata, model files, workers and user-facing error reporting (napari notifications)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox

from .. import api
from ..errors import BSDenoiseError, InputError

# axis-label spellings (lower case) -> our letters
_LABELS = {
    "t": "T", "time": "T", "frame": "T", "frames": "T",
    "z": "Z", "depth": "Z", "plane": "Z", "planes": "Z", "slice": "Z",
    "c": "C", "channel": "C", "channels": "C", "ch": "C",
    "y": "Y", "row": "Y", "rows": "Y",
    "x": "X", "column": "X", "columns": "X", "col": "X",
}


def layer_data(layer):
    """The layer's full-resolution data, never materialised (numpy, dask or zarr stays as is)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def detect_axes(layer) -> str:
    """Axes letters (T, Z, C, Y, X) of ``layer``'s data from its axis labels, ``rgb`` and shape.

    Real axis labels (``("z", "y", "x")``, ``("time", "c", "y", "x")``) are used when all of
    them are recognised; otherwise: 2-D ``YX``, RGB ``...YXC``, 3-D ``ZYX`` (``CYX`` when the
    first axis has at most 4 entries), 4-D ``TZYX``, 5-D ``TZCYX``.  The result is a guess
    to show the user, who can override it; the API validates it.
    """
    shape = tuple(layer_data(layer).shape)
    rgb = bool(getattr(layer, "rgb", False))
    ndim = len(shape) - (1 if rgb else 0)
    labels = [str(a).strip().lower() for a in getattr(layer, "axis_labels", ())]
    letters = [_LABELS.get(a) for a in labels]
    if len(letters) == ndim and all(letters) and len(set(letters)) == len(letters) \
            and {"Y", "X"} <= set(letters) and not (rgb and "C" in letters):
        return "".join(letters) + ("C" if rgb else "")
    if rgb:
        return {2: "YXC", 3: "ZYXC", 4: "TZYXC"}.get(ndim, "?" * len(shape))
    if ndim == 3 and shape[0] <= 4:
        return "CYX"
    return {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TZCYX"}.get(ndim, "?" * len(shape))


def check_layer(layer) -> None:
    """Raise an :class:`InputError` naming what is wrong with ``layer`` as denoising input."""
    from napari.layers import Image

    if layer is None:
        raise InputError("choose an image layer first (File > Open Sample > Blind-Spot Denoise has examples)")
    if not isinstance(layer, Image):
        raise InputError(f"layer {layer.name!r} is a {type(layer).__name__} layer; choose an image layer")
    data = layer_data(layer)
    if data.ndim > 5 + (1 if layer.rgb else 0):
        raise InputError(f"layer {layer.name!r} is {data.ndim}-D (shape {tuple(data.shape)}); at most 5 axes "
                         "among T, Z, C, Y, X are supported: split it first")


def axes_from(edit) -> str:
    """The axes typed in ``edit`` (a ``QLineEdit``), upper case; an :class:`InputError` when empty."""
    text = edit.text().strip().upper()
    if not text:
        raise InputError("give the layer's axes (letters among T, Z, C, Y, X, e.g. ZYX)")
    return text


def refill_combo(combo, names: list[str], *, select_last: bool = False) -> None:
    """Replace ``combo``'s items by ``names`` (signals blocked), keeping the current item when it is
    still there, else (or when ``select_last``) selecting the last one."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if names:
        combo.setCurrentIndex(len(names) - 1 if select_last or current not in names else names.index(current))
    combo.blockSignals(False)


def output_layer_kwargs(layer, name: str, metadata: dict) -> dict:
    """``add_image`` keywords that keep ``layer``'s geometry, units, labels and contrast."""
    kw = {
        "name": name,
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "units": tuple(layer.units),
        "axis_labels": tuple(layer.axis_labels),
        "contrast_limits": tuple(layer.contrast_limits),
        "rgb": layer.rgb,
        "metadata": {**dict(layer.metadata), "napari_bsdenoise": metadata},
    }
    if not layer.rgb:
        kw["colormap"] = layer.colormap.name
    return kw


def model_metadata(name: str, model) -> dict:
    """Output-layer metadata naming ``model``: its session name, full config (without the loss
    history) and the plugin version."""
    from ..version import __version__

    config = model.config.to_dict()
    config.get("training", {}).pop("history", None)
    return {"model": name, "model_config": config, "version": __version__}


def put_layer(viewer, data, kwargs: dict):
    """Add an image layer, or replace the data and metadata of the existing layer of that name."""
    name = kwargs["name"]
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.data.shape == data.shape and getattr(layer, "rgb", None) == kwargs.get("rgb"):
            layer.data = data
            layer.metadata = kwargs["metadata"]
            layer.translate = kwargs["translate"]
            return layer
        viewer.layers.remove(layer)
    return viewer.add_image(data, **kwargs)


def report(exc: BaseException, what: str = "") -> None:
    """Show ``exc`` as a napari notification: our own errors with their message, others with their type."""
    from napari.utils.notifications import show_error, show_warning

    if isinstance(exc, InterruptedError):
        show_warning(f"{what} cancelled" if what else str(exc))
    elif isinstance(exc, (BSDenoiseError, MemoryError, FloatingPointError)):
        show_error(f"{what}: {exc}" if what else str(exc))
    else:
        show_error(f"{what} failed: {type(exc).__name__}: {exc}" if what else f"{type(exc).__name__}: {exc}")


def load_model_file(parent, path: str | None = None):
    """``(model, path)`` read from ``path`` (asked with a file dialog when None), or None when the
    user cancels or the file is not a model (the error is shown as a notification)."""
    from qtpy.QtWidgets import QFileDialog

    if path is None:
        path, _ = QFileDialog.getOpenFileName(parent, "Load model", "", "Model files (*.safetensors)")
        if not path:
            return None
    try:
        return api.load_model(path), path
    except Exception as exc:
        report(exc, "loading the model")
        return None


def save_model_file(parent, model, default_name: str, path: str | None = None):
    """Write ``model`` to ``path`` (asked with a file dialog when None, starting at ``default_name``);
    the written path, or None when the user cancels or writing fails (shown as a notification)."""
    from qtpy.QtWidgets import QFileDialog

    if model is None:
        report(InputError("there is no model to save yet"))
        return None
    if path is None:
        path, _ = QFileDialog.getSaveFileName(parent, "Save model", default_name, "Model files (*.safetensors)")
        if not path:
            return None
    try:
        written = model.save(path)
    except Exception as exc:
        report(exc, "saving the model")
        return None
    from napari.utils.notifications import show_info

    show_info(f"model saved to {written}")
    return written


def load_into_session(parent, combo, path: str | None = None, refuse=None):
    """Read a model (asked with a file dialog when ``path`` is None) into the session under the file's
    name and select it in ``combo``; ``refuse(model, file_name)`` may return why the model does not
    fit (shown as a notification; nothing is added).  The model, or None."""
    from pathlib import Path

    from .session import SESSION

    loaded = load_model_file(parent, path)
    if loaded is None:
        return None
    model, path = loaded
    why = refuse(model, Path(path).name) if refuse is not None else None
    if why:
        report(InputError(why), "loading the model")
        return None
    combo.setCurrentText(SESSION.add(Path(path).stem, model))
    return model


def alive(widget) -> bool:
    """False once the Qt object behind ``widget`` has been deleted (its dock widget was closed)."""
    try:
        from qtpy import sip

        return not sip.isdeleted(widget)
    except ImportError:  # PySide
        import shiboken6

        return shiboken6.isValid(widget)


def when_alive(widget, fn):
    """``fn`` wrapped to do nothing once ``widget`` is deleted (for worker signals arriving late)."""

    def call(*args):
        if alive(widget):
            return fn(*args)
        return None

    return call


def start_worker(widget, fn, *args, **handlers):
    """Run ``fn(*args)`` in a napari worker (a generator function: a cancellable generator worker)
    with ``handlers`` (``yielded=``, ``returned=``, ``errored=``, ``finished=``) connected; they
    are ignored once ``widget`` is deleted, and errors go only to ``errored`` (no re-raise)."""
    from napari.qt.threading import create_worker

    worker = create_worker(fn, *args, _start_thread=False, _ignore_errors=True)
    for signal, handler in handlers.items():
        getattr(worker, signal).connect(when_alive(widget, handler))
    worker.start()
    return worker


class LayerPicker(QComboBox):
    """A combo box of the viewer's image layers that follows layers being added, removed,
    reordered and renamed, and keeps its selection when it can."""

    layer_changed = Signal(object)

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self._layers: list = []
        self.setToolTip("The image layer to use (image layers of the viewer)")
        events = viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.connect(self.reset_choices)
        self.currentIndexChanged.connect(lambda _i: self.layer_changed.emit(self.layer()))
        self.reset_choices()

    def layer(self):
        i = self.currentIndex()
        return self._layers[i] if 0 <= i < len(self._layers) else None

    def set_layer(self, layer) -> None:
        if layer in self._layers:
            self.setCurrentIndex(self._layers.index(layer))

    def reset_choices(self, event=None) -> None:
        from napari.layers import Image

        if not alive(self):
            return
        current = self.layer()
        layers = [lyr for lyr in self.viewer.layers if isinstance(lyr, Image)]
        for lyr in layers:
            lyr.events.name.disconnect(self.reset_choices)
            lyr.events.name.connect(self.reset_choices)
        self.blockSignals(True)
        self.clear()
        self._layers = layers
        self.addItems([lyr.name for lyr in layers])
        if current in layers:
            self.setCurrentIndex(layers.index(current))
        elif layers:
            selected = [lyr for lyr in self.viewer.layers.selection if lyr in layers]
            self.setCurrentIndex(layers.index(selected[0]) if selected else len(layers) - 1)
        self.blockSignals(False)
        if self.layer() is not current:
            self.layer_changed.emit(self.layer())


def ensure_display() -> None:
    """Give Qt an X display to draw on when there is none (tests and screenshot scripts).

    napari's canvas needs OpenGL, which Qt only provides through an X server here: start
    ``Xvfb`` (installed by ``scripts/setup.sh testing``) if ``DISPLAY`` is unset, and draw on it
    with Qt's ``xcb`` platform (``offscreen`` over Xvfb intermittently gets no OpenGL context:
    ``glGetString(GL_EXTENSIONS)`` is None on the first canvas; the windows stay on the virtual
    screen either way).
    """
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or not shutil.which("Xvfb"):
        return
    r, w = os.pipe()
    # a watchdog shell ends the server when this process has gone (after Qt has closed its
    # connection: killing it earlier, at exit, would make Qt abort on the lost display)
    script = (f"Xvfb -displayfd {w} -screen 0 1600x1200x24 -nolisten tcp >/dev/null 2>&1 & x=$!; "
              f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; kill $x")
    subprocess.Popen(["sh", "-c", script], pass_fds=(w,), stdin=subprocess.DEVNULL, start_new_session=True)
    os.close(w)
    with os.fdopen(r) as fh:
        number = fh.readline().strip()
    if number:
        os.environ["DISPLAY"] = f":{number}"
        os.environ["QT_QPA_PLATFORM"] = "xcb"


def canvas_size(viewer) -> tuple[int, int]:
    """(height, width) of the viewer's canvas in screen pixels (``viewer.canvas.size`` from napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    size = getattr(canvas, "size", None) if canvas is not None else None
    if size is None:
        size = getattr(viewer, "_canvas_size", (512, 512))
    return int(size[0]), int(size[1])


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def visible_slice(viewer, layer, axes: str, max_side: int):
    """The 2-D slice of ``layer`` that ``viewer`` shows (lazy), its axes, the visible Y/X region
    (at most ``max_side`` pixels a side, centred) and the T/Z indices of the slice:
    ``(slice, axes2d, (y0, y1, x0, x1), index)``."""
    data = layer_data(layer)
    if len(axes) != data.ndim:
        raise InputError(f"axes {axes!r} has {len(axes)} letters but the layer's data has {data.ndim} "
                         f"dimensions {tuple(data.shape)}")
    layer_axes = axes[:-1] if layer.rgb else axes  # the layer's (napari) dimensions
    if "Y" not in layer_axes or "X" not in layer_axes:
        raise InputError(f"axes {axes!r} must contain Y and X")
    pos = np.asarray(layer.world_to_data(viewer.dims.point), float)
    index, sl = {}, []
    for i, a in enumerate(axes):
        if a in "TZ":
            index[i] = int(np.clip(round(pos[i]), 0, data.shape[i] - 1))
            sl.append(index[i])
        else:
            sl.append(slice(None))
    axes2d = "".join(a for a in axes if a not in "TZ")
    iy, ix = layer_axes.index("Y"), layer_axes.index("X")
    h, w = data.shape[iy], data.shape[ix]
    region = (0, h, 0, w)
    world_ndim, displayed = viewer.dims.ndim, list(viewer.dims.displayed)
    offset = world_ndim - layer.ndim
    if viewer.dims.ndisplay == 2 and [d - offset for d in displayed] == [iy, ix]:
        ch, cw = canvas_size(viewer)
        zoom = max(camera(viewer).zoom, 1e-6)
        center = list(camera(viewer).center)[-2:]
        p0, p1 = list(viewer.dims.point), list(viewer.dims.point)
        for d, c, half in zip(displayed, center, (ch / zoom / 2, cw / zoom / 2)):
            p0[d], p1[d] = c - half, c + half
        d0, d1 = layer.world_to_data(p0), layer.world_to_data(p1)
        ys = sorted((d0[iy], d1[iy]))
        xs = sorted((d0[ix], d1[ix]))
        y0, y1 = int(np.clip(np.floor(ys[0]), 0, h - 1)), int(np.clip(np.ceil(ys[1]) + 1, 1, h))
        x0, x1 = int(np.clip(np.floor(xs[0]), 0, w - 1)), int(np.clip(np.ceil(xs[1]) + 1, 1, w))
        if y1 > y0 and x1 > x0:
            region = (y0, y1, x0, x1)
    y0, y1, x0, x1 = region
    if y1 - y0 > max_side:
        c = (y0 + y1) // 2
        y0, y1 = c - max_side // 2, c + max_side // 2
    if x1 - x0 > max_side:
        c = (x0 + x1) // 2
        x0, x1 = c - max_side // 2, c + max_side // 2
    return data[tuple(sl)], axes2d, (y0, y1, x0, x1), index


def as_array_summary(data) -> str:
    """``'512x512 uint16'``-style description of an array-like."""
    return "x".join(str(s) for s in data.shape) + f" {np.dtype(data.dtype)}"
