"""The Denoise widget: a model, a layer, a blind-spot slider with a live preview of the visible
area, and "Denoise layer" for the whole layer (tiled, lazily for dask/zarr layers, optionally
to a zarr/TIFF file).

A thin shell over :class:`napari_bsdenoise.api.Preview` (features of the view computed
once in the background; a slider move re-runs only the network's head) and
:func:`napari_bsdenoise.api.denoise` / :func:`~napari_bsdenoise.api.denoise_iter`.
"Export to BioImage.IO…" writes the selected model at the slider's blind spot with
:func:`napari_bsdenoise.api.export_bioimageio` (in the background).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QFileDialog, QFormLayout, QGroupBox, QLineEdit, QSlider, QVBoxLayout

from .. import api
from ..errors import InputError
from .layers import alive, camera, check_layer, load_into_session, model_metadata, output_layer_kwargs, put_layer
from .layers import refill_combo, report, start_worker, visible_slice
from .panel import Panel, action, button, check_box, combo, hrow, label, need
from .session import SESSION

if TYPE_CHECKING:
    import napari

#: Inference blind spots offered by the slider (0 = the network sees every pixel).
BLIND_SPOTS = (0, 1, 3, 5, 7, 9, 11, 13, 15)
#: The preview covers at most this many pixels per side of the visible area (centred).
MAX_VIEW = 1024
NO_MODEL = "no model: train one in the Train widget or load a .safetensors file"


class DenoiseWidget(Panel):
    """Denoise an image layer with a trained or loaded model (napari dock widget "Denoise")."""

    follows_session = True

    def setup(self) -> None:
        self.preview = None  # napari_bsdenoise.api.Preview of the current view
        self.preview_seconds: float | None = None  # last slider-move-to-updated-layer latency
        self._preview_key = None
        self._preview_worker = None
        self._preview_again = False
        self._preview_info = None
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(250)
        self._preview_timer.timeout.connect(self.refresh_preview)
        self._export_worker = None

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)  # the preview follows the view:
        camera(self.viewer).events.center.connect(self._schedule_preview)
        camera(self.viewer).events.zoom.connect(self._schedule_preview)
        self.viewer.dims.events.current_step.connect(self._schedule_preview)

    # -- layout ------------------------------------------------------------------------------
    def build(self, root) -> None:
        box = QGroupBox("Model and data")
        form = QFormLayout(box)
        self.model_combo = combo(tip="Models of this session: trained in the Train widget or loaded from files",
                                 changed=self._on_model_changed)
        self.load_button = button("Load…", self.load_model, "Load a .safetensors model file")
        form.addRow("Model", hrow(self.model_combo, self.load_button, stretch_first=True))
        self.add_layer_rows(form)
        self.axes_edit.editingFinished.connect(self._schedule_preview)
        root.addWidget(box)

        box = QGroupBox("Blind spot")
        col = QVBoxLayout(box)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, len(BLIND_SPOTS) - 1)
        self.slider.setValue(1)
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TicksBelow)
        self.slider.setToolTip("Inference blind spot: 0 sees every pixel (sharpest, may keep noise); "
                               "larger hides more neighbours (smoother). No retraining needed.")
        self.slider.valueChanged.connect(self._on_slider)
        self.slider_label = label()
        self.slider_label.setWordWrap(False)
        self.slider_label.setMinimumWidth(24)
        col.addLayout(hrow(self.slider, self.slider_label, stretch_first=True))
        # a (y, x) blind spot for noise correlated along one axis: the slider above is then Y, this one X
        self.axis_check = check_box("Per axis (Y × X)", False,
                                    "AT-BSN: a rectangular blind spot, for noise correlated more along one axis "
                                    "than the other (set by the noise diagnostic when it finds so). The slider "
                                    "above is then its height (Y), this one its width (X).", self._on_axis_toggled)
        self.slider_x = QSlider(Qt.Horizontal)
        self.slider_x.setRange(1, len(BLIND_SPOTS) - 1)
        self.slider_x.setPageStep(1)
        self.slider_x.setTickPosition(QSlider.TicksBelow)
        self.slider_x.setToolTip("Blind spot width along X (per-axis blind spot)")
        self.slider_x.valueChanged.connect(self._on_slider)
        self.slider_x.setVisible(False)
        col.addLayout(hrow(self.axis_check, self.slider_x, stretch_first=False))
        self.blind_spot_note = label()
        self.blind_spot_note.setVisible(False)
        col.addWidget(self.blind_spot_note)
        self.fusion_check = check_box(
            "Keep detail the blind spot misses (fuse with the input)", True,
            "AT-BSN on correlated noise: put the noisy input back where the blind-spot output differs from it "
            "by more than the noise the model measured (fine texture, weak noise). Off: the blind-spot output "
            "alone.", self._on_fusion_toggled)
        col.addWidget(self.fusion_check)
        self.hot_pixels_check = check_box(
            "Repair hot and dead pixels", True,
            "Replace isolated outliers (hot/dead pixels, cosmic rays: more than 6 noise sigma from their "
            "surroundings, at most 2x2 pixels) by their local median before denoising, so the fusion does not "
            "put them back. Lines, spots and edges are kept. The count goes into the output layer's metadata.",
            self._on_fusion_toggled)  # both change what the preview shows
        col.addWidget(self.hot_pixels_check)
        self.check_box = check_box(
            "Safety check (keep the input where it would not improve)", True,
            "At the model's default setting (the slider where the model put it, fusion on), estimate on the layer "
            "itself (no clean image: SURE against the model's noise estimate) whether the result improves on the "
            "input; where it does not, use the model's best other setting, or keep the input, and say so. The "
            "verdict goes into the output layer's metadata. Costs a few seconds; not for lazy or written-to-file "
            "results.")
        col.addWidget(self.check_box)
        self.preview_check = check_box("Live preview of the visible area", False,
                                       "Denoise what the viewer shows (current slice, current view) into a "
                                       "'<layer>_preview' layer and update it as the slider moves",
                                       self._on_preview_toggled)
        col.addWidget(self.preview_check)
        self.preview_label = label()
        col.addWidget(self.preview_label)
        root.addWidget(box)

        box = QGroupBox("Whole layer")
        col = QVBoxLayout(box)
        self.file_check = check_box("Write to", False, "Also write the result to a .zarr store (resumable) or a .tif "
                                    "file, chunk by chunk; the new layer then reads it lazily")
        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("result.zarr or result.tif")
        self.browse_button = button("…", self._browse)
        row = hrow(self.file_check, self.file_edit, self.browse_button)
        row.setStretchFactor(self.file_edit, 1)
        col.addLayout(row)
        self.bf16_check = check_box(
            "Fast inference (bf16)", False,
            "Run the network in bfloat16 (its output layer and the fusion stay fp32): measured 1.3-1.9x faster for a "
            "distilled student on a CPU with AVX512-BF16, within 0.014 dB of fp32 on the benchmark images "
            "(docs/speed.md). Off: fp32 on the CPU (bf16 on a GPU that has it). The preview stays fp32.")
        col.addWidget(self.bf16_check)
        self.denoise_button = button("Denoise layer", self.denoise_layer,
                                     "Denoise the whole layer into '<layer>_denoised' (dask/zarr layers: lazily)")
        self.cancel_button = button("Cancel", self.cancel)
        col.addLayout(hrow(self.denoise_button, self.cancel_button, stretch_first=True))
        self.job = self.add_job("denoising", col, stopping="Cancelling…", failures=True)
        self.progress, self.status = self.job.progress, self.job.status
        root.addWidget(box)
        self.export_button = button("Export to BioImage.IO…", self.export_bioimageio,
                                    "Write the model at the slider's blind spot (with the fusion setting above) as a "
                                    "BioImage Model Zoo package (.zip); the layer's centre is its test image")
        root.addWidget(self.export_button)
        self.export_label = label()
        root.addWidget(self.export_label)
        root.addStretch(1)
        self._on_slider(self.slider.value())

    # -- state -------------------------------------------------------------------------------
    @property
    def preview_busy(self) -> bool:
        """True while the features of the view are being computed."""
        return self._preview_worker is not None or self._preview_timer.isActive()

    def update_buttons(self) -> None:
        self.denoise_button.setEnabled(not self.busy)
        self.cancel_button.setEnabled(self.busy)

    @property
    def export_busy(self) -> bool:
        """True while a BioImage.IO package is being written."""
        return self._export_worker is not None

    def model(self):
        return SESSION.get(self.model_combo.currentText())

    def blind_spot(self):
        """The slider's blind spot: an int, or ``(y, x)`` with "Per axis" ticked; for a 3-D model
        ``(z, y, x)``, the sliders' in-plane sides with the Z side of the model's default (its Z
        planes are what the noise correlation along Z allows, not a detail to tune)."""
        y = BLIND_SPOTS[self.slider.value()]
        x = BLIND_SPOTS[self.slider_x.value()] if self.axis_check.isChecked() else y
        z = self._z_side()
        if z is not None and y != 0:
            return (z, y, x)
        return y if y == x else (y, x)

    def _z_side(self):
        """The Z side of the selected 3-D model's default blind spot (None for a 2-D model)."""
        model = self.model()
        if model is None or model.config.network.spatial_dims != 3:
            return None
        s = model.inference_blind_spot
        return int(s[0]) if isinstance(s, tuple) else int(s)

    def fusion(self):
        """``fusion=`` for the API: "auto" when the box is ticked (applies to AT-BSN at blind spots >= 1)."""
        return "auto" if self.fusion_check.isChecked() else False

    def hot_pixels(self) -> str:
        """``hot_pixels=`` for the API."""
        return "auto" if self.hot_pixels_check.isChecked() else "keep"

    def set_blind_spot(self, s) -> None:
        if isinstance(s, (tuple, list)) and len(s) == 3:  # a 3-D model's (z, y, x): the sliders are in-plane
            s = s[1] if s[1] == s[2] else tuple(s[1:])
        per_axis = isinstance(s, (tuple, list))
        if self.axis_check.isChecked() != per_axis:
            self.axis_check.setChecked(per_axis)  # (shows or hides the X slider)
        if per_axis:
            self.slider.setValue(BLIND_SPOTS.index(int(s[0])))
            self.slider_x.setValue(BLIND_SPOTS.index(int(s[1])))
        else:
            self.slider.setValue(BLIND_SPOTS.index(int(s)))

    def _on_axis_toggled(self, on: bool) -> None:
        self.slider_x.setVisible(on)
        if on:  # both sides blind: 0 on one axis would see the pixel
            self.slider.setMinimum(1)
            self.slider_x.setValue(max(1, self.slider.value()))
        else:
            self.slider.setMinimum(0)
        self._on_slider(self.slider.value())

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

    def session_changed(self) -> None:
        names = SESSION.names()
        # a newly added model is selected; otherwise the selection stays
        refill_combo(self.model_combo, names, select_last=len(names) > self.model_combo.count())
        self._on_model_changed()

    def _on_model_changed(self, *_) -> None:
        model = self.model()
        allowed = self.allowed_blind_spots(model)
        # the slider's indices follow BLIND_SPOTS, so limiting its maximum limits the blind spot
        self.slider.setMaximum(len(allowed) - 1)
        atbsn = model is not None and model.method == "atbsn"
        self.axis_check.setEnabled(model is None or atbsn)
        if model is not None:
            s = model.inference_blind_spot
            if atbsn and isinstance(s, tuple) and all(v in BLIND_SPOTS for v in s[-2:]):
                self.set_blind_spot(s)
            else:
                side = max(s) if isinstance(s, tuple) else s
                self.set_blind_spot(min(allowed, key=lambda b: abs(b - side)))
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

    def on_layer_changed(self, layer) -> None:
        super().on_layer_changed(layer)
        self._schedule_preview()

    def _on_slider(self, _value) -> None:
        self.slider_label.setText(api.format_blind_spot(self.blind_spot()))
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

    def refresh_preview(self) -> None:
        """Compute the features of the visible area in the background, then show the preview."""
        if not self.preview_check.isChecked():
            return
        if self._preview_worker is not None:
            self._preview_again = True
            return
        try:
            model = need(self.model(), "no model: train one (Train widget) or load one")
            layer = self.picker.layer()
            check_layer(layer)
            axes = self.axes()
            view, axes2d, region, index = visible_slice(self.viewer, layer, axes, MAX_VIEW)
        except Exception as exc:
            self.preview_label.setText(f"No preview: {exc}")
            return
        fusion, hot_pixels = self.fusion(), self.hot_pixels()
        key = (id(model), id(layer), axes, region, tuple(sorted(index.items())), fusion, hot_pixels)
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
            self, functools.partial(api.Preview, axes=axes2d, region=region, fusion=fusion, hot_pixels=hot_pixels),
            model, view,
            returned=done, errored=lambda exc: self.preview_label.setText(f"No preview: {exc}"), finished=finished)

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

    @action("denoising")
    def denoise_layer(self) -> None:
        """Denoise the whole layer into ``<layer>_denoised`` (in the background, or lazily)."""
        model = need(self.model(), NO_MODEL)
        layer, data = self.layer_input()
        axes, s, out, fusion = self.axes(), self.blind_spot(), self.out_path(), self.fusion()
        hot = self.hot_pixels()
        api.inference_layout(data, model, axes, s)  # axes, channels, size: fail here, at once
        meta = {**model_metadata(self.model_combo.currentText(), model),
                "blind_spot": s, "axes": axes, "source_layer": layer.name, "output_file": out,
                "fusion": api.resolve_fusion(model, s, model.config.normalization, fusion) is not None,
                "hot_pixels": hot}
        if hot != "keep" and api.repairs_outliers(model) and not api.is_lazy_input(data):  # cheap: no network
            meta["hot_pixels_repaired"] = int(api.find_hot_pixels(data, model, axes=axes).sum())
        precision = "bf16" if self.bf16_check.isChecked() else "auto"
        meta["precision"] = precision
        common = dict(axes=axes, blind_spot=s, fusion=fusion, hot_pixels=hot, precision=precision)
        kwargs = output_layer_kwargs(layer, f"{layer.name}_denoised", meta)
        if isinstance(s, tuple):
            meta["blind_spot"] = list(s)
        # as the API's check="auto": the model's default setting of an in-memory result (a blind spot or
        # fusion the user chose is what they get)
        default = s == model.inference_blind_spot and fusion == "auto"
        checked = self.check_box.isChecked() and default and out is None and not api.is_lazy_input(data)
        meta["safety_check"] = "pending" if checked else (
            "off" if not self.check_box.isChecked() else "not run (a setting other than the model's default, "
            "a file output or a lazy layer)")
        if out is None and not api.is_lazy_input(data):
            common["check"] = checked
        if api.is_lazy_input(data) and out is None:  # a lazy dask array: nothing is computed until napari shows it
            put_layer(self.viewer, api.denoise(data, model, **common), kwargs)
            self.status.setText(f"Added {kwargs['name']!r} (lazy: computed as you view it)")
            return
        if out is not None:
            gen = api.denoise_iter(data, model, out=out, **common)
        else:
            gen = api.iter_events(api.denoise, data, model, **common)
        def describe(ev, t):
            if ev.kind == "check":  # the safety check's verdict, kept with the result
                kwargs["metadata"]["napari_bsdenoise"]["safety_check"] = ev.message
                return ev.message
            return f"Denoising {layer.name!r}: {ev.step}/{ev.total or '?'} tiles, {t:.0f} s"

        self.job.relay(gen, f"Denoising {layer.name!r}…", describe,
                       kwargs, read=lambda r: api.open_input(str(r)).array if isinstance(r, (str, Path)) else r,
                       note=f" (written to {out})" if out else "")

    def cancel(self) -> None:
        """Cancel the whole-layer denoising after the current tile (a zarr output can be resumed)."""
        self.job.stop()

    # -- export ------------------------------------------------------------------------------
    @action("exporting")
    def export_bioimageio(self, path: str | None = None) -> None:
        """Write the selected model at the slider's blind spot as a BioImage Model Zoo package (asks for
        the file when ``path`` is None; an existing file is replaced, as the dialog confirmed); the
        selected layer's centre, when there is one, is the package's test image and cover."""
        if self._export_worker is not None:
            return
        model = need(self.model(), NO_MODEL)
        image = axes = None
        if self.picker.layer() is not None:
            _layer, image = self.layer_input()
            axes = self.axes()
        name = self.model_combo.currentText()
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export to BioImage.IO", f"{name}.zip",
                                                  "BioImage.IO packages (*.zip)")
            if not path:
                return
        export = functools.partial(api.export_bioimageio, blind_spot=self.blind_spot(), fusion=self.fusion(),
                                   image=image, axes=axes, overwrite=True)
        self.export_label.setText(f"Exporting “{name}” at blind spot {self.blind_spot()}…")
        self.export_button.setEnabled(False)

        def done(written):
            self.export_label.setText(f"Exported to {written} (check it with 'bioimageio test')")

        def failed(exc):
            self.export_label.setText("Export failed.")
            report(exc, "exporting")

        def finished():
            self._export_worker = None
            self.export_button.setEnabled(True)

        self._export_worker = start_worker(self, export, model, path, returned=done, errored=failed,
                                           finished=finished)
