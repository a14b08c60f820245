"""The Train widget: pick a layer, read the noise diagnostic, train, watch the losses, save the model.

A thin shell over :func:`napari_bsdenoise.api.make_trainer`: training runs in a napari
generator worker over the trainer's progress events, so the UI stays responsive and Stop
acts after the current step; the trainer always holds the best model so far.
"""

from __future__ import annotations

import functools
from pathlib import Path

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QVBoxLayout

from .. import api
from ..config import NETWORK_PRESETS, VOLUME_PRESETS
from ..errors import InputError
from .layers import (check_layer, layer_data, load_model_file, model_metadata, output_layer_kwargs, put_layer,
                     report, save_model_file, start_worker)
from .panel import Panel, action, add_rows, advanced_box, button, combo, hrow, label, show_summary
from .plots import NoisePlot
from .run import BudgetRow, auto_events, loop_spins, show_stage_event, spin
from .session import SESSION

BLIND_SPOTS = ("auto", "1", "3", "5", "7", "9", "1x9", "9x1")  # editable: any odd N or YxX
AXES_TIP = ("Axes of the layer's data among T, Z, C, Y, X (RGB: ...YXC). Detected from the layer; edit to "
            "override. T and Z slices are independent 2-D samples (Z is a network axis with Dimensions 3D); C is "
            "joint for RGB, independent otherwise.")
DIMS = {"2D (Y-X slices)": 2, "3D (Z-Y-X volumes)": 3, "auto": "auto"}  # -> train(spatial_dims=)


class TrainWidget(Panel):
    """Train a blind-spot denoiser on an image layer (napari dock widget "Train")."""

    def setup(self) -> None:
        self.trainer = None
        self.model = None
        self.noise = None
        self._model_name: str | None = None
        self._layer_name = ""
        self._noise_worker = None

    # -- layout ------------------------------------------------------------------------------
    def build(self, root) -> None:
        data = QGroupBox("Data")
        self.add_layer_rows(QFormLayout(data), axes_tip=AXES_TIP)
        root.addWidget(data)
        self.build_auto(root)

        noise = QGroupBox("Noise diagnostic")
        outer = QVBoxLayout(noise)
        self.noise_plot = NoisePlot()
        self.noise_plot.setToolTip("Noise autocorrelation at lags up to 4 px (centre: lag 0). Bright cells off "
                                   "the centre are correlated noise; the green square is the recommended "
                                   "training blind spot, which must cover them.")
        col = QVBoxLayout()
        self.noise_verdict = label()
        col.addWidget(self.noise_verdict, 1)
        self.noise_button = button("Check noise", lambda: self.check_noise(notify=True),
                                   "Measure the spatial correlation of the noise and recommend blind spots")
        col.addWidget(self.noise_button)
        row = QHBoxLayout()
        row.addWidget(self.noise_plot)
        row.addLayout(col, 1)
        outer.addLayout(row)
        self.noise_label = label("Pick an image layer.")
        outer.addWidget(self.noise_label)
        root.addWidget(noise)

        train = QGroupBox("Training")
        form = QFormLayout(train)
        self.method_combo = combo(
            api.TRAIN_METHODS, current=api.DEFAULT_METHOD,
            tip="atbsn: tunable blind spot (correlated noise); dbsn: 1-pixel blind spot with a noise model, fused "
                "with the noisy pixel (pixel-independent noise); auto: chosen by the noise diagnostic")
        self.blind_spot_combo = combo(BLIND_SPOTS, "Training blind spot (odd side, pixels, or YxX sides such as "
                                      "1x9 for noise correlated along x). 'auto' uses the noise diagnostic: 1 for "
                                      "pixel-independent noise, more for correlated noise, per axis where it differs.")
        self.blind_spot_combo.setEditable(True)
        self.dims_combo = combo(tuple(DIMS), "2D trains a network on each Y-X slice; 3D a network on Z-Y-X volumes "
                                "(it sees the neighbouring slices; a ZxYxX blind spot such as 1x3x3); auto: 3D "
                                "with at least 16 Z slices. Needs a Z in the axes.")
        self.axes_edit.textChanged.connect(self._update_dims)
        self.budget_row = BudgetRow()
        self.budget_kind, self.steps_spin, self.minutes_spin = (self.budget_row.kind, self.budget_row.steps,
                                                                self.budget_row.minutes)
        add_rows(form, (("Method", self.method_combo), ("Dimensions", self.dims_combo),
                        ("Blind spot", self.blind_spot_combo), ("Budget", self.budget_row)))
        self._update_dims()
        root.addWidget(train)

        self.advanced, form = advanced_box("Unchecked: the defaults below are used")
        self.network_combo = combo(("auto", *NETWORK_PRESETS, *VOLUME_PRESETS),
                                   "Network size; auto = tiny on the CPU, small on a GPU. With Dimensions 3D the "
                                   "sizes are the 2.5-D network (each plane blind, two planes on each side seen "
                                   "whole); *-full3d is the full 3-D network (volumes only)")
        self.loss_combo = combo(("auto", "l2", "l1"), "auto = L1 for RGB camera images, L2 otherwise")
        self.patch_spin, self.batch_spin, self.lr_spin, self.seed_spin = loop_spins(api.DEFAULT_PATCH_SIZE)
        add_rows(form, (("Network", self.network_combo), ("Loss", self.loss_combo), ("Patch size", self.patch_spin),
                        ("Batch size", self.batch_spin), ("Learning rate", self.lr_spin), ("Seed", self.seed_spin)))
        self.advanced.toggled.connect(self._on_advanced)
        self._on_advanced(False)
        root.addWidget(self.advanced)

        self.train_button = button("Train", self.train, "Train a new model on the layer")
        self.stop_button = button("Stop", self.stop, "Stop after the current step; the best model so far is kept")
        self.continue_button = button("Continue", self.continue_training,
                                      "Train the current model further by the budget above")
        self.reset_button = button("Reset", self.reset, "Forget the current model")
        root.addLayout(hrow(self.train_button, self.stop_button, self.continue_button, self.reset_button))
        self.job = self.add_job("training", root, training=True)
        self.progress, self.status, self.loss_plot = self.job.progress, self.job.status, self.job.loss_plot
        self.device_label = self.job.device_label

        self.save_button = button("Save model…", self.save_model)
        self.load_button = button("Load model…", self.load_model)
        root.addLayout(hrow(self.save_button, self.load_button))
        self.model_label = label("No model yet.")
        root.addWidget(self.model_label)
        root.addStretch(1)

    def build_auto(self, root) -> None:
        """The one-button section: diagnose, pick the method, train, distil and denoise in N seconds."""
        box = QGroupBox("Auto: one button")
        col = QVBoxLayout(box)
        self.auto_seconds = spin(30, 24 * 3600, api.DEFAULT_AUTO_SECONDS,
                                 "Total wall time, inference included: split between the teacher, the student "
                                 "and denoising (docs/auto.md)")
        self.auto_button = button("Auto denoise", self.auto_denoise,
                                  "Noise diagnostic, method (D-BSN or AT-BSN + student), training and denoising "
                                  "within the time budget; adds '<layer>_denoised' and the models to the session")
        self.auto_stop_button = button("Stop", lambda: self.auto_job.stop(),
                                       "Stop after the current step; the models trained so far are kept")
        self.auto_method = combo(api.AUTO_METHODS, current="auto",
                                 tip="auto: chosen by the noise diagnostic (D-BSN for pixel-independent noise, "
                                     "AT-BSN + student for correlated noise); atbsn or dbsn: forced")
        col.addLayout(hrow(label("Seconds"), self.auto_seconds, label("Method"), self.auto_method))
        col.addLayout(hrow(self.auto_button, self.auto_stop_button))
        self.auto_job = self.add_job("auto denoising", col)
        self.auto_label = label("")
        col.addWidget(self.auto_label)
        root.addWidget(box)

    @action("auto denoising")
    def auto_denoise(self) -> None:
        """Run :func:`napari_bsdenoise.auto_denoise` on the layer in the background."""
        layer, data = self.layer_input()
        if api.is_lazy_input(data):
            raise InputError("Auto works on layers in memory; for a lazy (dask/zarr) layer train here, then use "
                             "the Denoise panel")
        axes, seconds, method = self.axes(), float(self.auto_seconds.value()), self.auto_method.currentText()
        meta_base = {"source_layer": layer.name, "axes": axes}

        def done(result):
            self._auto_done(layer, result, meta_base)

        self.auto_job.start(auto_events, data, axes, seconds, method, message=f"Auto: {seconds:.0f} s on {layer.name!r}…",
                            yielded=lambda ev: show_stage_event(ev, self.auto_job.progress, self.auto_job.status),
                            returned=done)

    def _auto_done(self, layer, result, meta_base: dict) -> None:
        names = [SESSION.add(f"{layer.name} auto {role}", m) for role, m in
                 (("teacher", result.teacher), ("student", result.student)) if m is not None]
        self.auto_label.setText(result.summary())
        if result.denoised is None:
            self.auto_job.status.setText(f"Stopped; kept {', '.join(names) or 'no model'} in the session")
            return
        meta = {**model_metadata(names[-1], result.model), **meta_base, "auto": result.choices}
        put_layer(self.viewer, result.denoised, output_layer_kwargs(layer, f"{layer.name}_denoised", meta))
        self.auto_job.progress.setValue(1000)
        self.auto_job.status.setText(f"Added '{layer.name}_denoised' in {result.choices['seconds']['total']:.0f} s "
                                     f"({result.choices['method']}); models: {', '.join(names)}")

    def _on_advanced(self, on: bool) -> None:
        for w in (self.network_combo, self.loss_combo, self.patch_spin, self.batch_spin, self.lr_spin, self.seed_spin):
            w.setEnabled(on)

    # -- state -------------------------------------------------------------------------------
    def update_buttons(self) -> None:
        busy, has = self.busy, self.trainer is not None or self.model is not None
        self.train_button.setEnabled(not busy)
        self.auto_button.setEnabled(not busy)
        self.auto_stop_button.setEnabled(self.auto_job.running)
        self.stop_button.setEnabled(busy)
        self.continue_button.setEnabled(not busy and has)
        self.reset_button.setEnabled(not busy and has)
        self.save_button.setEnabled(self.model is not None)
        self.load_button.setEnabled(not busy)

    def on_layer_changed(self, layer) -> None:
        super().on_layer_changed(layer)
        self.noise = None
        self.noise_plot.set_result(None, 0)
        self.noise_verdict.setText("")
        if layer is None:
            self.noise_label.setText("Pick an image layer.")
            return
        self.noise_label.setText("Measuring the noise…")
        QTimer.singleShot(200, self.check_noise)

    # -- noise diagnostic --------------------------------------------------------------------
    def check_noise(self, notify: bool = False) -> None:
        """Run the noise-correlation diagnostic on the layer (in the background)."""
        if self._noise_worker is not None:
            return
        layer = self.picker.layer()
        try:
            check_layer(layer)
            data, axes = layer_data(layer), self.axes()
        except Exception as exc:
            self.noise_label.setText(str(exc))
            if notify:
                report(exc, "noise diagnostic")
            return

        def done(result):
            if self.picker.layer() is layer:
                self.noise = result
                self.noise_plot.set_result(result.autocorrelation, result.train_blind_spot)
                train, infer = (api.format_blind_spot(s) for s in (result.train_blind_spot,
                                                                   result.inference_blind_spot))
                self.noise_label.setText(f"{result.summary()}.")
                self.noise_verdict.setText(
                    f"<b>{'Pixel-independent' if result.pixel_independent else 'Correlated'} noise</b><br>"
                    f"Blind spot <b>{train}</b> to train, <b>{infer}</b> to denoise"
                    + (" (Y x X)" if "x" in train + infer else ""))

        def failed(exc):
            self.noise_label.setText(f"Noise diagnostic failed: {exc}")
            if notify:
                report(exc, "noise diagnostic")

        def finished():
            self._noise_worker = None
            if self.picker.layer() is not layer and self.picker.layer() is not None:
                self.check_noise()  # the layer changed meanwhile

        self._noise_worker = start_worker(self, functools.partial(api.estimate_noise_correlation, axes=axes), data,
                                          returned=done, errored=failed, finished=finished)

    # -- training ----------------------------------------------------------------------------
    def training_kwargs(self) -> dict:
        """The keywords for :func:`napari_bsdenoise.api.make_trainer` set in the widget."""
        bs = self.blind_spot_combo.currentText().strip().lower()
        kw: dict = {"axes": self.axes(), "blind_spot": "auto" if bs in ("auto", "") else api.parse_blind_spot(bs),
                    "method": self.method_combo.currentText()}
        if self.dims_combo.isEnabled():
            kw["spatial_dims"] = DIMS[self.dims_combo.currentText()]
        kw.update(self.budget())
        if self.advanced.isChecked():
            kw.update(network=self.network_combo.currentText(), loss=self.loss_combo.currentText(),
                      patch_size=self.patch_spin.value(), batch_size=self.batch_spin.value(),
                      learning_rate=self.lr_spin.value(), seed=self.seed_spin.value())
        return kw

    def _update_dims(self, *_) -> None:
        """The 2D/3D choice applies to axes with a Z only (shown with the axes)."""
        has_z = "Z" in self.axes_edit.text().upper()
        self.dims_combo.setEnabled(has_z)
        if not has_z:
            self.dims_combo.setCurrentText(next(iter(DIMS)))

    def budget(self) -> dict:
        return self.budget_row.budget()

    @action("training")
    def train(self) -> None:
        """Train a new model on the selected layer."""
        layer, data = self.layer_input()  # NaNs, dtype: fail here, at once
        kwargs = self.training_kwargs()
        self.trainer = None
        self.model = None
        self._model_name = None
        self.loss_plot.clear()
        self._layer_name = layer.name
        self._start(lambda: api.make_trainer(data, **kwargs), {})

    @action("training")
    def continue_training(self) -> None:
        """Train the current model further by the budget set in the widget."""
        budget = self.budget()
        if self.trainer is not None:
            trainer = self.trainer
            make = lambda: trainer  # noqa: E731
        elif self.model is not None:  # a loaded model: train it further on the selected layer
            layer = self.picker.layer()
            check_layer(layer)
            data, kwargs, model = layer_data(layer), self.training_kwargs(), self.model
            kwargs["blind_spot"] = model.train_blind_spot if kwargs["blind_spot"] == "auto" else kwargs["blind_spot"]
            kwargs.pop("method")  # a loaded model continues with its own method
            self._layer_name = layer.name
            make = lambda: api.make_trainer(data, model=model, **kwargs)  # noqa: E731
            budget = {}
        else:
            raise InputError("there is no model to continue: press Train first")
        self._start(make, budget)

    def _start(self, make, budget: dict) -> None:
        self.job.train(make, budget, "Preparing (reading the data, noise diagnostic)…", built=self._built,
                       finished=self._on_finished)

    def stop(self) -> None:
        """Stop training after the current step (the best model so far is kept)."""
        self.job.stop()

    @action("reset")
    def reset(self) -> None:
        """Forget the trainer and the model (the session keeps models already listed)."""
        self.trainer = self.model = None
        self._model_name = None
        self.loss_plot.clear()
        self.progress.setValue(0)
        self.status.setText("")
        self.model_label.setText("No model yet.")
        self.update_buttons()

    def _built(self, trainer) -> None:
        self.trainer = trainer

    def _on_finished(self) -> None:
        if self.trainer is not None:
            self.model = self.trainer.model
            if self.job.stopped:
                t = self.trainer
                self.status.setText(f"Stopped at step {t.step}; the best model (step {t.best_step}, "
                                    f"validation loss {t.best_val_loss:.4g}) is kept.")
            self._register()

    def _register(self) -> None:
        if self.model is None:
            return
        self._model_name = SESSION.keep(self.model, self._model_name or f"{self._layer_name or 'model'} model",
                                        replace=self._model_name is not None)
        show_summary(self.model_label, self.model, f"Model “{self._model_name}” (listed in the Denoise widget): ")

    # -- files -------------------------------------------------------------------------------
    def save_model(self, path: str | None = None):
        """Write the model to a ``.safetensors`` file (asks for the path when not given)."""
        return save_model_file(self, self.model, f"{self._layer_name or 'model'}.safetensors", path)

    def load_model(self, path: str | None = None):
        """Read a ``.safetensors`` model (asks for the path when not given); Continue trains it further."""
        loaded = load_model_file(self, path)
        if loaded is None:
            return None
        model, path = loaded
        self.trainer, self.model = None, model
        self._model_name = None
        self._layer_name = Path(path).stem
        self._register()
        self.update_buttons()
        return model
