"""The Train widget: pick a layer, read the noise diagnostic, train, watch the losses, save the model.

A thin shell over :func:`napari_bsdenoise.api.make_trainer`: training runs in a napari
generator worker over the trainer's progress events, so the UI stays responsive and Stop
acts after the current step; the trainer always holds the best model so far.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .. import api
from ..errors import InputError
from ._layers import (
    LayerPicker,
    axes_from,
    check_layer,
    detect_axes,
    layer_data,
    load_model_file,
    report,
    save_model_file,
    start_worker,
)
from ._plots import NoisePlot
from ._run import BudgetRow, loop_spins, progress_rows, show_event, trainer_events
from ._session import SESSION

if TYPE_CHECKING:
    import napari

BLIND_SPOTS = ("auto", "1", "3", "5", "7", "9")


class TrainWidget(QWidget):
    """Train a blind-spot denoiser on an image layer (napari dock widget "Train")."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.trainer = None
        self.model = None
        self.noise = None
        self._model_name: str | None = None
        self._layer_name = ""
        self._worker = None
        self._noise_worker = None
        self._stop = threading.Event()
        self._events: list = []
        self._build()
        self.picker.layer_changed.connect(self._on_layer_changed)
        self._on_layer_changed(self.picker.layer())
        self._update_buttons()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        data = QGroupBox("Data")
        form = QFormLayout(data)
        self.picker = LayerPicker(self.viewer)
        form.addRow("Image layer", self.picker)
        self.axes_edit = QLineEdit()
        self.axes_edit.setToolTip("Axes of the layer's data among T, Z, C, Y, X (RGB: ...YXC). "
                                  "Detected from the layer; edit to override. T and Z slices are "
                                  "independent 2-D samples; C is joint for RGB, independent otherwise.")
        form.addRow("Axes", self.axes_edit)
        root.addWidget(data)

        noise = QGroupBox("Noise diagnostic")
        outer = QVBoxLayout(noise)
        row = QHBoxLayout()
        self.noise_plot = NoisePlot()
        self.noise_plot.setToolTip("Noise autocorrelation at lags up to 4 px (centre: lag 0). Bright cells off "
                                   "the centre are correlated noise; the green square is the recommended "
                                   "training blind spot, which must cover them.")
        row.addWidget(self.noise_plot)
        col = QVBoxLayout()
        self.noise_verdict = QLabel("")
        self.noise_verdict.setWordWrap(True)
        col.addWidget(self.noise_verdict, 1)
        self.noise_button = QPushButton("Check noise")
        self.noise_button.setToolTip("Measure the spatial correlation of the noise and recommend blind spots")
        self.noise_button.clicked.connect(lambda: self.check_noise(notify=True))
        col.addWidget(self.noise_button)
        row.addLayout(col, 1)
        outer.addLayout(row)
        self.noise_label = QLabel("Pick an image layer.")
        self.noise_label.setWordWrap(True)
        outer.addWidget(self.noise_label)
        root.addWidget(noise)

        train = QGroupBox("Training")
        form = QFormLayout(train)
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(api.TRAIN_METHODS))
        self.method_combo.setCurrentText(api.DEFAULT_METHOD)
        self.method_combo.setToolTip("atbsn: tunable blind spot (correlated noise); dbsn: 1-pixel blind spot "
                                     "with a noise model, fused with the noisy pixel (pixel-independent noise); "
                                     "auto: chosen by the noise diagnostic")
        form.addRow("Method", self.method_combo)
        self.blind_spot_combo = QComboBox()
        self.blind_spot_combo.addItems(BLIND_SPOTS)
        self.blind_spot_combo.setToolTip("Training blind spot (odd side, pixels). 'auto' uses the noise "
                                         "diagnostic: 1 for pixel-independent noise, more for correlated noise.")
        form.addRow("Blind spot", self.blind_spot_combo)
        budget = BudgetRow()
        self.budget_kind, self.steps_spin, self.minutes_spin = budget.kind, budget.steps, budget.minutes
        self.budget_row = budget
        form.addRow("Budget", budget)
        root.addWidget(train)

        self.advanced = QGroupBox("Advanced settings")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.advanced.setToolTip("Unchecked: the defaults below are used")
        form = QFormLayout(self.advanced)
        self.network_combo = QComboBox()
        self.network_combo.addItems(["auto", "tiny", "small", "paper"])
        self.network_combo.setToolTip("Network size; auto = tiny on the CPU, small on a GPU")
        self.loss_combo = QComboBox()
        self.loss_combo.addItems(["auto", "l2", "l1"])
        self.loss_combo.setToolTip("auto = L1 for RGB camera images, L2 otherwise")
        self.patch_spin, self.batch_spin, self.lr_spin, self.seed_spin = loop_spins(api.DEFAULT_PATCH_SIZE)
        for label, w in (("Network", self.network_combo), ("Loss", self.loss_combo), ("Patch size", self.patch_spin),
                         ("Batch size", self.batch_spin), ("Learning rate", self.lr_spin), ("Seed", self.seed_spin)):
            form.addRow(label, w)
        self.advanced.toggled.connect(self._on_advanced)
        self._on_advanced(False)
        root.addWidget(self.advanced)

        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.stop_button = QPushButton("Stop")
        self.continue_button = QPushButton("Continue")
        self.reset_button = QPushButton("Reset")
        self.train_button.setToolTip("Train a new model on the layer")
        self.stop_button.setToolTip("Stop after the current step; the best model so far is kept")
        self.continue_button.setToolTip("Train the current model further by the budget above")
        self.reset_button.setToolTip("Forget the current model")
        self.train_button.clicked.connect(self.train)
        self.stop_button.clicked.connect(self.stop)
        self.continue_button.clicked.connect(self.continue_training)
        self.reset_button.clicked.connect(self.reset)
        for b in (self.train_button, self.stop_button, self.continue_button, self.reset_button):
            buttons.addWidget(b)
        root.addLayout(buttons)
        self.progress, self.status, self.loss_plot, self.device_label = progress_rows(root)

        files = QHBoxLayout()
        self.save_button = QPushButton("Save model…")
        self.load_button = QPushButton("Load model…")
        self.save_button.clicked.connect(lambda: self.save_model())
        self.load_button.clicked.connect(lambda: self.load_model())
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        root.addLayout(files)
        self.model_label = QLabel("No model yet.")
        self.model_label.setWordWrap(True)
        root.addWidget(self.model_label)
        root.addStretch(1)

    def _on_advanced(self, on: bool) -> None:
        for w in (self.network_combo, self.loss_combo, self.patch_spin, self.batch_spin, self.lr_spin, self.seed_spin):
            w.setEnabled(on)

    # -- state -------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while training (or preparing to) runs in the background."""
        return self._worker is not None

    def _update_buttons(self) -> None:
        busy, has = self.busy, self.trainer is not None or self.model is not None
        self.train_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.continue_button.setEnabled(not busy and has)
        self.reset_button.setEnabled(not busy and has)
        self.save_button.setEnabled(self.model is not None)
        self.load_button.setEnabled(not busy)

    def axes(self) -> str:
        return axes_from(self.axes_edit)

    def _on_layer_changed(self, layer) -> None:
        self.noise = None
        self.noise_plot.set_result(None, 0)
        self.noise_verdict.setText("")
        if layer is None:
            self.axes_edit.setText("")
            self.noise_label.setText("Pick an image layer.")
            return
        self.axes_edit.setText(detect_axes(layer))
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
                self.noise_label.setText(f"{result.summary()}.")
                self.noise_verdict.setText(
                    f"<b>{'Pixel-independent' if result.pixel_independent else 'Correlated'} noise</b><br>"
                    f"Blind spot <b>{result.train_blind_spot}</b> to train, <b>{result.inference_blind_spot}</b> "
                    "to denoise")

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
        bs = self.blind_spot_combo.currentText()
        kw: dict = {"axes": self.axes(), "blind_spot": "auto" if bs == "auto" else int(bs),
                    "method": self.method_combo.currentText()}
        kw.update(self.budget())
        if self.advanced.isChecked():
            kw.update(network=self.network_combo.currentText(), loss=self.loss_combo.currentText(),
                      patch_size=self.patch_spin.value(), batch_size=self.batch_spin.value(),
                      learning_rate=self.lr_spin.value(), seed=self.seed_spin.value())
        return kw

    def budget(self) -> dict:
        return self.budget_row.budget()

    def train(self) -> None:
        """Train a new model on the selected layer."""
        if self.busy:
            return
        try:
            layer = self.picker.layer()
            check_layer(layer)
            data = layer_data(layer)
            kwargs = self.training_kwargs()
            if not hasattr(data, "compute"):
                api.check_image(data, name=f"layer {layer.name!r}")  # NaNs, dtype: fail here, at once
        except Exception as exc:
            report(exc, "training")
            return
        self.trainer = None
        self.model = None
        self._model_name = None
        self.loss_plot.clear()
        self._layer_name = layer.name
        self._start(lambda: api.make_trainer(data, **kwargs), {})

    def continue_training(self) -> None:
        """Train the current model further by the budget set in the widget."""
        if self.busy:
            return
        try:
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
        except Exception as exc:
            report(exc, "training")
            return
        self._start(make, budget)

    def _start(self, make, budget: dict) -> None:

        self._stop.clear()
        self.progress.setValue(0)
        self.status.setText("Preparing (reading the data, noise diagnostic)…")
        self._worker = start_worker(self, trainer_events, make, budget, self._stop, yielded=self._on_yielded,
                                    errored=lambda exc: report(exc, "training"), finished=self._on_finished)
        self._update_buttons()

    def stop(self) -> None:
        """Stop training after the current step (the best model so far is kept)."""
        if self._worker is not None:
            self._stop.set()
            self.status.setText("Stopping…")

    def reset(self) -> None:
        """Forget the trainer and the model (the session keeps models already listed)."""
        if self.busy:
            return
        self.trainer = self.model = None
        self._model_name = None
        self.loss_plot.clear()
        self.progress.setValue(0)
        self.status.setText("")
        self.model_label.setText("No model yet.")
        self._update_buttons()

    def _on_yielded(self, item) -> None:
        from ..engine.progress import ProgressEvent

        if not isinstance(item, ProgressEvent):  # the trainer, once built
            self.trainer = item
            self.device_label.setText(f"Device: {item.device} ({item.precision})")
            return
        self._events.append(item)
        show_event(item, self.progress, self.status, self.loss_plot)

    def _on_finished(self) -> None:
        self._worker = None
        stopped = self._stop.is_set()
        if self.trainer is not None:
            self.model = self.trainer.model
            if stopped:
                t = self.trainer
                self.status.setText(f"Stopped at step {t.step}; the best model (step {t.best_step}, "
                                    f"validation loss {t.best_val_loss:.4g}) is kept.")
            self._register()
        self._update_buttons()

    def _register(self) -> None:
        if self.model is None:
            return
        if self._model_name is None:
            self._model_name = SESSION.add(f"{self._layer_name or 'model'} model", self.model)
        else:
            SESSION.set(self._model_name, self.model)
        lines = self.model.summary().splitlines()
        self.model_label.setText(f"Model “{self._model_name}” (listed in the Denoise widget): {lines[1]}")
        self.model_label.setToolTip("\n".join(lines))

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
        self._update_buttons()
        return model
