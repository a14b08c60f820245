"""The Denoise widget: a model, a layer, a blind-spot slider with a live preview of the visible
area, and "Denoise layer" for the whole layer (tiled, lazily for dask/zarr layers, optionally
to a zarr/TIFF file).

A thin shell over :class:`napari_bsdenoise.preview.Preview` (features of the view computed
once in the background; a slider move re-runs only the network's head) and
:func:`napari_bsdenoise.api.denoise` / :func:`~napari_bsdenoise.api.denoise_iter`.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from .. import api
from ..errors import InputError
from ._layers import (
    LayerPicker,
    alive,
    axes_from,
    camera,
    canvas_size,
    check_layer,
    detect_axes,
    layer_data,
    load_into_session,
    model_metadata,
    output_layer_kwargs,
    put_layer,
    refill_combo,
    report,
    start_worker,
)
from ._run import job_rows, relay_events
from ._session import SESSION

if TYPE_CHECKING:
    import napari

#: Inference blind spots offered by the slider (0 = the network sees every pixel).
BLIND_SPOTS = (0, 1, 3, 5, 7, 9, 11, 13, 15)
#: The preview covers at most this many pixels per side of the visible area (centred).
MAX_VIEW = 1024


class DenoiseWidget(QWidget):
    """Denoise an image layer with a trained or loaded model (napari dock widget "Denoise")."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.preview = None  # napari_bsdenoise.preview.Preview of the current view
        self.preview_seconds: float | None = None  # last slider-move-to-updated-layer latency
        self._preview_key = None
        self._preview_worker = None
        self._preview_again = False
        self._preview_info = None
        self._worker = None
        self._cancel = threading.Event()
        self._build()
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(250)
        self._preview_timer.timeout.connect(self.refresh_preview)
        SESSION.changed.connect(self._reset_models)
        self._reset_models()
        self.picker.layer_changed.connect(self._on_layer_changed)
        self._on_layer_changed(self.picker.layer())
        camera(self.viewer).events.center.connect(self._schedule_preview)
        camera(self.viewer).events.zoom.connect(self._schedule_preview)
        self.viewer.dims.events.current_step.connect(self._schedule_preview)
        self._update_buttons()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        box = QGroupBox("Model and data")
        form = QFormLayout(box)
        row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("Models of this session: trained in the Train widget or loaded from files")
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Load a .safetensors model file")
        self.load_button.clicked.connect(lambda: self.load_model())
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.load_button)
        form.addRow("Model", row)
        self.picker = LayerPicker(self.viewer)
        form.addRow("Image layer", self.picker)
        self.axes_edit = QLineEdit()
        self.axes_edit.setToolTip("Axes of the layer's data among T, Z, C, Y, X (RGB: ...YXC); detected, editable")
        self.axes_edit.editingFinished.connect(self._schedule_preview)
        form.addRow("Axes", self.axes_edit)
        root.addWidget(box)

        box = QGroupBox("Blind spot")
        col = QVBoxLayout(box)
        row = QHBoxLayout()
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, len(BLIND_SPOTS) - 1)
        self.slider.setValue(1)
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TicksBelow)
        self.slider.setToolTip("Inference blind spot: 0 sees every pixel (sharpest, may keep noise); "
                               "larger hides more neighbours (smoother). No retraining needed.")
        self.slider.valueChanged.connect(self._on_slider)
        self.slider_label = QLabel()
        self.slider_label.setMinimumWidth(24)
        row.addWidget(self.slider, 1)
        row.addWidget(self.slider_label)
        col.addLayout(row)
        self.blind_spot_note = QLabel("")
        self.blind_spot_note.setWordWrap(True)
        self.blind_spot_note.setVisible(False)
        col.addWidget(self.blind_spot_note)
        self.fusion_check = QCheckBox("Keep detail the blind spot misses (fuse with the input)")
        self.fusion_check.setChecked(True)
        self.fusion_check.setToolTip(
            "AT-BSN on correlated noise: put the noisy input back where the blind-spot output differs from it "
            "by more than the noise the model measured (fine texture, weak noise). Off: the blind-spot output "
            "alone.")
        self.fusion_check.toggled.connect(self._on_fusion_toggled)
        col.addWidget(self.fusion_check)
        self.preview_check = QCheckBox("Live preview of the visible area")
        self.preview_check.setToolTip("Denoise what the viewer shows (current slice, current view) into a "
                                      "'<layer>_preview' layer and update it as the slider moves")
        self.preview_check.toggled.connect(self._on_preview_toggled)
        col.addWidget(self.preview_check)
        self.preview_label = QLabel("")
        self.preview_label.setWordWrap(True)
        col.addWidget(self.preview_label)
        root.addWidget(box)

        box = QGroupBox("Whole layer")
        col = QVBoxLayout(box)
        row = QHBoxLayout()
        self.file_check = QCheckBox("Write to")
        self.file_check.setToolTip("Also write the result to a .zarr store (resumable) or a .tif file, chunk "
                                   "by chunk; the new layer then reads it lazily")
        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("result.zarr or result.tif")
        self.browse_button = QPushButton("…")
        self.browse_button.clicked.connect(self._browse)
        row.addWidget(self.file_check)
        row.addWidget(self.file_edit, 1)
        row.addWidget(self.browse_button)
        col.addLayout(row)
        row = QHBoxLayout()
        self.denoise_button = QPushButton("Denoise layer")
        self.denoise_button.setToolTip("Denoise the whole layer into '<layer>_denoised' (dask/zarr layers: lazily)")
        self.denoise_button.clicked.connect(self.denoise_layer)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.denoise_button, 1)
        row.addWidget(self.cancel_button)
        col.addLayout(row)
        self.progress, self.status = job_rows(col)
        root.addWidget(box)
        root.addStretch(1)
        self._on_slider(self.slider.value())

    # -- state -------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a whole-layer denoising runs."""
        return self._worker is not None

    @property
    def preview_busy(self) -> bool:
        """True while the features of the view are being computed."""
        return self._preview_worker is not None or self._preview_timer.isActive()

    def _update_buttons(self) -> None:
        self.denoise_button.setEnabled(not self.busy)
        self.cancel_button.setEnabled(self.busy)

    def model(self):
        return SESSION.get(self.model_combo.currentText())

    def blind_spot(self) -> int:
        return BLIND_SPOTS[self.slider.value()]

    def fusion(self):
        """``fusion=`` for the API: "auto" when the box is ticked (applies to AT-BSN at blind spots >= 1)."""
        return "auto" if self.fusion_check.isChecked() else False

    def set_blind_spot(self, s: int) -> None:
        self.slider.setValue(BLIND_SPOTS.index(int(s)))

    @staticmethod
    def allowed_blind_spots(model) -> tuple[int, ...]:
        """Blind spots ``model`` can be applied at: a student only 0; D-BSN 0 (fused) or 1 (its mean)."""
        if model is None:
            return BLIND_SPOTS
        if model.is_student:
            return (0,)
        if model.method == "dbsn":
            return (0, 1)
        return BLIND_SPOTS

    def axes(self) -> str:
        return axes_from(self.axes_edit)

    def _reset_models(self) -> None:
        if not alive(self):  # this widget was closed (its Qt object is gone)
            SESSION.changed.disconnect(self._reset_models)
            return
        names = SESSION.names()
        # a newly added model is selected; otherwise the selection stays
        refill_combo(self.model_combo, names, select_last=len(names) > self.model_combo.count())
        self._on_model_changed()

    def _on_model_changed(self, *_) -> None:
        model = self.model()
        allowed = self.allowed_blind_spots(model)
        # the slider's indices follow BLIND_SPOTS, so limiting its maximum limits the blind spot
        self.slider.setMaximum(len(allowed) - 1)
        if model is not None:
            self.set_blind_spot(min(allowed, key=lambda b: abs(b - model.inference_blind_spot)))
        # a distilled student is non-blind: blind spot 0 is its only setting
        student = model is not None and model.is_student
        dbsn = model is not None and model.method == "dbsn"
        self.slider.setEnabled(not student)
        self.fusion_check.setEnabled(model is None or model.method == "atbsn")
        self.blind_spot_note.setVisible(student or dbsn)
        self.blind_spot_note.setText(
            "Distilled student: non-blind, blind spot fixed at 0 (use its teacher to tune a blind spot)." if student
            else "D-BSN: 0 = its prediction fused with the noisy pixel (posterior mean), 1 = the blind-spot "
            "prediction alone." if dbsn else "")
        self._preview_key = None
        self._schedule_preview()

    def _on_fusion_toggled(self, _on: bool) -> None:
        self._preview_key = None
        self._schedule_preview()

    def _on_layer_changed(self, layer) -> None:
        self.axes_edit.setText(detect_axes(layer) if layer is not None else "")
        self._schedule_preview()

    def _on_slider(self, _value) -> None:
        self.slider_label.setText(str(self.blind_spot()))
        if self.preview_check.isChecked() and self.preview is not None:
            self.render_preview()

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Write the result to", "", "zarr or TIFF (*.zarr *.tif *.tiff)")
        if path:
            self.file_edit.setText(path)
            self.file_check.setChecked(True)

    def load_model(self, path: str | None = None):
        """Read a ``.safetensors`` model into the session and select it."""
        return load_into_session(self, self.model_combo, path)

    # -- preview -----------------------------------------------------------------------------
    def _on_preview_toggled(self, on: bool) -> None:
        if on:
            self._preview_key = None
            self.refresh_preview()
        else:
            self.preview = None
            self.preview_label.setText("")

    def _schedule_preview(self, *_) -> None:
        if alive(self) and self.preview_check.isChecked():
            self._preview_timer.start()

    def _view(self, layer, axes: str):
        """The current 2-D slice of ``layer`` (lazy), its axes, the visible Y/X region and the
        T/Z indices of the slice: ``(slice, axes2d, region, index)``."""
        data = layer_data(layer)
        if len(axes) != data.ndim:
            raise InputError(f"axes {axes!r} has {len(axes)} letters but the layer's data has {data.ndim} "
                             f"dimensions {tuple(data.shape)}")
        layer_axes = axes[:-1] if layer.rgb else axes  # the layer's (napari) dimensions
        if "Y" not in layer_axes or "X" not in layer_axes:
            raise InputError(f"axes {axes!r} must contain Y and X")
        pos = np.asarray(layer.world_to_data(self.viewer.dims.point), float)
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
        world_ndim, displayed = self.viewer.dims.ndim, list(self.viewer.dims.displayed)
        offset = world_ndim - layer.ndim
        if self.viewer.dims.ndisplay == 2 and [d - offset for d in displayed] == [iy, ix]:
            ch, cw = canvas_size(self.viewer)
            zoom = max(camera(self.viewer).zoom, 1e-6)
            center = list(camera(self.viewer).center)[-2:]
            p0, p1 = list(self.viewer.dims.point), list(self.viewer.dims.point)
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
        if y1 - y0 > MAX_VIEW:
            c = (y0 + y1) // 2
            y0, y1 = c - MAX_VIEW // 2, c + MAX_VIEW // 2
        if x1 - x0 > MAX_VIEW:
            c = (x0 + x1) // 2
            x0, x1 = c - MAX_VIEW // 2, c + MAX_VIEW // 2
        return data[tuple(sl)], axes2d, (y0, y1, x0, x1), index

    def refresh_preview(self) -> None:
        """Compute the features of the visible area in the background, then show the preview."""

        from ..preview import Preview

        if not self.preview_check.isChecked():
            return
        if self._preview_worker is not None:
            self._preview_again = True
            return
        try:
            model, layer = self.model(), self.picker.layer()
            if model is None:
                raise InputError("no model: train one (Train widget) or load one")
            check_layer(layer)
            axes = self.axes()
            view, axes2d, region, index = self._view(layer, axes)
        except Exception as exc:
            self.preview_label.setText(f"No preview: {exc}")
            return
        fusion = self.fusion()
        key = (id(model), id(layer), axes, region, tuple(sorted(index.items())), fusion)
        if key == self._preview_key and self.preview is not None:
            self.render_preview()
            return
        self.preview_label.setText("Computing the features of the visible area…")
        view = np.asarray(view)  # one slice, cropped to at most MAX_VIEW + margins by Preview

        def done(preview):
            self.preview, self._preview_key = preview, key
            self._preview_info = (layer, axes, region, index)
            self.render_preview()

        def finished():
            self._preview_worker = None
            if self._preview_again:
                self._preview_again = False
                self.refresh_preview()

        self._preview_worker = start_worker(
            self, functools.partial(Preview, axes=axes2d, region=region, fusion=fusion), model, view, returned=done,
            errored=lambda exc: self.preview_label.setText(f"No preview: {exc}"), finished=finished)

    def render_preview(self):
        """Show the preview at the slider's blind spot (cached features: only the head runs)."""
        if self.preview is None or self._preview_info is None:
            return None
        t0 = time.perf_counter()
        layer, axes, (y0, y1, x0, x1), index = self._preview_info
        s = self.blind_spot()
        try:
            out = self.preview.render(s)
        except Exception as exc:
            report(exc, "preview")
            return None
        for i in sorted(index):  # back to the layer's dimensions: T/Z of size 1 at the slice
            out = np.expand_dims(out, i)
        layer_axes = axes[:-1] if layer.rgb else axes
        offset = np.zeros(layer.ndim)
        for i, a in enumerate(layer_axes):
            offset[i] = index.get(i, {"Y": y0, "X": x0}.get(a, 0))
        kw = output_layer_kwargs(layer, f"{layer.name}_preview", {"preview": True, "blind_spot": s,
                                                                  "region": [y0, y1, x0, x1]})
        kw["translate"] = tuple(np.asarray(layer.translate) + offset * np.asarray(layer.scale))
        put_layer(self.viewer, out, kw)
        self.preview_seconds = time.perf_counter() - t0
        p = self.preview
        self.preview_label.setText(
            f"Preview {y1 - y0}x{x1 - x0} px at blind spot {s}: {1000 * self.preview_seconds:.0f} ms "
            f"({'student, one pass' if p.model.is_student else 'cached features' if p.cached else 'full network'}; "
            f"features took {p.features_seconds:.1f} s)")
        return out

    # -- the whole layer ---------------------------------------------------------------------
    def out_path(self) -> str | None:
        if not self.file_check.isChecked():
            return None
        text = self.file_edit.text().strip()
        if not text:
            raise InputError("give a file to write to (.zarr or .tif), or uncheck 'Write to'")
        return text

    def denoise_layer(self) -> None:
        """Denoise the whole layer into ``<layer>_denoised`` (in the background, or lazily)."""

        from .. import tiling
        from ..jobs import iter_events

        if self.busy:
            return
        try:
            model = self.model()
            if model is None:
                raise InputError("no model: train one in the Train widget or load a .safetensors file")
            layer = self.picker.layer()
            check_layer(layer)
            data, axes, s, out = layer_data(layer), self.axes(), self.blind_spot(), self.out_path()
            fusion = self.fusion()
            lazy = tiling.is_lazy_input(data)
            api._inference_layout(data, model, axes, s)  # axes, channels, size: fail here, at once
            if not lazy:
                api.check_image(data, name=f"layer {layer.name!r}")
            meta = {**model_metadata(self.model_combo.currentText(), model),
                    "blind_spot": s, "axes": axes, "source_layer": layer.name, "output_file": out,
                    "fusion": api._fusion(model, s, model.config.normalization, fusion) is not None}
            kwargs = output_layer_kwargs(layer, f"{layer.name}_denoised", meta)
            if lazy and out is None:  # a lazy dask array: nothing is computed until napari shows it
                result = api.denoise(data, model, axes=axes, blind_spot=s, fusion=fusion)
                self._add_output(result, kwargs)
                self.status.setText(f"Added {kwargs['name']!r} (lazy: computed as you view it)")
                return
            if out is not None:
                gen = api.denoise_iter(data, model, out=out, axes=axes, blind_spot=s, fusion=fusion)
            else:
                gen = iter_events(api.denoise, data, model, axes=axes, blind_spot=s, fusion=fusion)
        except Exception as exc:
            report(exc, "denoising")
            return
        self._cancel.clear()
        self.progress.setValue(0)
        self.status.setText(f"Denoising {layer.name!r}…")
        t0 = time.perf_counter()

        def yielded(ev):
            self.progress.setValue(int(round(1000 * ev.fraction)))
            self.status.setText(f"Denoising {layer.name!r}: {ev.step}/{ev.total or '?'} tiles, "
                                f"{time.perf_counter() - t0:.0f} s")

        def returned(result):
            if isinstance(result, (str, Path)):
                result = tiling.open_input(str(result)).array
            self._add_output(result, kwargs)
            self.progress.setValue(1000)
            self.status.setText(f"Added {kwargs['name']!r} in {time.perf_counter() - t0:.1f} s"
                                + (f" (written to {out})" if out else ""))

        def errored(exc):
            self.status.setText("Cancelled." if isinstance(exc, InterruptedError) else f"Failed: {exc}")
            report(exc, "denoising")

        def finished():
            self._worker = None
            self._update_buttons()

        self._worker = start_worker(self, relay_events, gen, self._cancel, yielded=yielded, returned=returned,
                                    errored=errored, finished=finished)
        self._update_buttons()

    def cancel(self) -> None:
        """Cancel the whole-layer denoising after the current tile (a zarr output can be resumed)."""
        if self._worker is not None:
            self._cancel.set()
            self.status.setText("Cancelling…")

    def _add_output(self, result, kwargs: dict):
        return put_layer(self.viewer, result, kwargs)
