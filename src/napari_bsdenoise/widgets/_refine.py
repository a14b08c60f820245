"""The Refine widget (experimental): blind-spot guided diffusion (BSGD) refinement of a layer.

A thin shell over :func:`napari_bsdenoise.make_trainer` with ``method="bsgd"`` (train the two
diffusion branches next to a guide model of the session) and :func:`napari_bsdenoise.refine`
(guided DDIM refinement of the guide's result).  Training runs in a napari generator worker over
the trainer's progress events (Stop acts after the current step, the best model is kept) and the
result is added to the session as "<guide> bsgd"; Continue trains the selected BSGD model further
(``make_trainer(model=...)``) and Save model… writes it; refinement runs through
:func:`napari_bsdenoise.jobs.iter_events` (Cancel acts after the current DDIM step) into a new
``<layer>_refined`` layer.  docs/bsgd.md: the method does not yet beat its guide.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .. import api, bsgd, tiling
from ..errors import InputError
from ._layers import (
    LayerPicker,
    alive,
    axes_from,
    check_layer,
    detect_axes,
    layer_data,
    load_into_session,
    model_metadata,
    output_layer_kwargs,
    put_layer,
    refill_combo,
    report,
    save_model_file,
    start_worker,
)
from ._run import BudgetRow, format_seconds, job_rows, progress_rows, relay_events, show_event, trainer_events
from ._session import SESSION

if TYPE_CHECKING:
    import napari

NETWORKS = ("auto", *bsgd.BSGD_PRESETS)
EXPERIMENTAL = ("<b>Experimental.</b> Our reconstruction of BSGD does <b>not yet beat its guide</b>: on the "
                "measured camera images the refined result is 0.5–10 dB below the guiding blind-spot model "
                "(docs/bsgd.md). For the best result use the guide or its distilled student.")


class RefineWidget(QWidget):
    """Refine an image layer by blind-spot guided diffusion (napari dock widget "Refine")."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.trainer = None  # the BSGD trainer of the last Train or Continue
        self._train_worker = None
        self._refine_worker = None
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._pending_name: str | None = None
        self._continuing = False  # the running training continues a session model (replaced, not added)
        self._build()
        SESSION.changed.connect(self._reset_models)
        self._reset_models()
        self.picker.layer_changed.connect(self._on_layer_changed)
        self._on_layer_changed(self.picker.layer())
        self._update_buttons()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        self.experimental_label = QLabel(EXPERIMENTAL)
        self.experimental_label.setWordWrap(True)
        root.addWidget(self.experimental_label)

        box = QGroupBox("Data and guide")
        form = QFormLayout(box)
        self.picker = LayerPicker(self.viewer)
        self.picker.setToolTip("The noisy layer to train the diffusion branches on and to refine")
        form.addRow("Image layer", self.picker)
        self.axes_edit = QLineEdit()
        self.axes_edit.setToolTip("Axes of the layer's data among T, Z, C, Y, X (RGB: ...YXC); detected, editable")
        form.addRow("Axes", self.axes_edit)
        self.guide_combo = QComboBox()
        self.guide_combo.setToolTip("The blind-spot model (or student) of this session whose result is refined; "
                                    "the diffusion branches reuse its normalisation and blind spots")
        form.addRow("Guide", self.guide_combo)
        root.addWidget(box)

        box = QGroupBox("Train diffusion branches")
        col = QVBoxLayout(box)
        form = QFormLayout()
        self.network_combo = QComboBox()
        self.network_combo.addItems(NETWORKS)
        self.network_combo.setToolTip("Size of each branch; auto = tiny on the CPU, small on a GPU")
        form.addRow("Network", self.network_combo)
        self.budget_row = BudgetRow(steps=300)
        self.budget_kind, self.steps_spin, self.minutes_spin = (self.budget_row.kind, self.budget_row.steps,
                                                                self.budget_row.minutes)
        form.addRow("Budget", self.budget_row)
        col.addLayout(form)
        row = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Train both diffusion branches on the layer, next to the guide; the result is "
                                     "added to the session as '<guide> bsgd'")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; the best model so far is kept")
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("Train the selected BSGD model further by the budget (a loaded one on "
                                        "the selected layer); it is updated in the session")
        self.train_button.clicked.connect(self.train)
        self.stop_button.clicked.connect(self.stop)
        self.continue_button.clicked.connect(self.continue_training)
        row.addWidget(self.train_button, 1)
        row.addWidget(self.stop_button)
        row.addWidget(self.continue_button)
        col.addLayout(row)
        self.train_progress, self.train_status, self.loss_plot, self.device_label = progress_rows(col)
        self.loss_plot.setToolTip("Diffusion loss (x0 regression of both branches): training and held-out")
        root.addWidget(box)

        box = QGroupBox("Refine")
        col = QVBoxLayout(box)
        form = QFormLayout()
        row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("BSGD models of this session (trained above or loaded)")
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Load a BSGD model (.safetensors)")
        self.load_button.clicked.connect(lambda: self.load_model())
        self.save_button = QPushButton("Save model…")
        self.save_button.setToolTip("Write the selected BSGD model to a .safetensors file (+ its JSON config)")
        self.save_button.clicked.connect(lambda: self.save_model())
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.load_button)
        row.addWidget(self.save_button)
        form.addRow("BSGD model", row)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        form.addRow(self.model_label)
        self.steps_box = QSpinBox()
        self.steps_box.setRange(1, 256)
        self.steps_box.setValue(bsgd.DEFAULT_SAMPLING_STEPS)
        self.steps_box.setToolTip("Deterministic (DDIM) steps from t_start to 0")
        self.guidance_box = QDoubleSpinBox()
        self.guidance_box.setRange(-1.0, 2.0)
        self.guidance_box.setSingleStep(0.05)
        self.guidance_box.setValue(bsgd.DEFAULT_GUIDANCE)
        self.guidance_box.setToolTip("Guidance weight w: 0 = conventional branch only, 1 = blind-spot branch only")
        self.rounds_box = QSpinBox()
        self.rounds_box.setRange(1, 64)
        self.rounds_box.setValue(bsgd.DEFAULT_ROUNDS)
        self.rounds_box.setToolTip("Rounds with complementary random replacement, averaged")
        self.t_start_box = QDoubleSpinBox()
        self.t_start_box.setDecimals(3)
        self.t_start_box.setRange(0.001, 1.0)
        self.t_start_box.setSingleStep(0.05)
        self.t_start_box.setValue(bsgd.DEFAULT_T_START)
        self.t_start_box.setToolTip("Diffusion time the start image is noised to (0-1)")
        self.replace_box = QDoubleSpinBox()
        self.replace_box.setRange(0.0, 1.0)
        self.replace_box.setSingleStep(0.02)
        self.replace_box.setValue(bsgd.DEFAULT_REPLACE)
        self.replace_box.setToolTip("Fraction of values replaced by the noisy input in each round")
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, 2**31 - 1)
        self.seed_box.setToolTip("Seeds the diffusion noise and the replacement masks (reproducible)")
        for label, w in (("Sampling steps", self.steps_box), ("Guidance", self.guidance_box),
                         ("Rounds", self.rounds_box), ("t_start", self.t_start_box),
                         ("Replace", self.replace_box), ("Seed", self.seed_box)):
            form.addRow(label, w)
        col.addLayout(form)
        row = QHBoxLayout()
        self.refine_button = QPushButton("Refine layer")
        self.refine_button.setToolTip("Refine the guide's result for the layer into '<layer>_refined'")
        self.refine_button.clicked.connect(self.refine_layer)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel after the current DDIM step (no layer is added)")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.refine_button, 1)
        row.addWidget(self.cancel_button)
        col.addLayout(row)
        self.progress, self.status = job_rows(col)
        root.addWidget(box)
        root.addStretch(1)

    # -- state -------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        """True while the diffusion branches train in the background."""
        return self._train_worker is not None

    @property
    def refining(self) -> bool:
        """True while a refinement runs in the background."""
        return self._refine_worker is not None

    @property
    def busy(self) -> bool:
        return self.training or self.refining

    def _update_buttons(self) -> None:
        # one job at a time: both compete for the same CPU cores
        idle, has = not self.busy, self.bsgd_model() is not None
        self.train_button.setEnabled(idle)
        self.stop_button.setEnabled(self.training)
        self.continue_button.setEnabled(idle and has)
        self.refine_button.setEnabled(idle)
        self.cancel_button.setEnabled(self.refining)
        self.load_button.setEnabled(idle)
        self.save_button.setEnabled(idle and has)

    def axes(self) -> str:
        return axes_from(self.axes_edit)

    def guide(self):
        return SESSION.get(self.guide_combo.currentText())

    def bsgd_model(self):
        return SESSION.get(self.model_combo.currentText())

    def _reset_models(self) -> None:
        if not alive(self):  # this widget was closed (its Qt object is gone)
            SESSION.changed.disconnect(self._reset_models)
            return
        names = SESSION.names()
        refill_combo(self.guide_combo, [n for n in names if SESSION.get(n).method != bsgd.METHOD])
        models = [n for n in names if SESSION.get(n).method == bsgd.METHOD]
        # a newly added BSGD model is selected; otherwise the selection stays
        refill_combo(self.model_combo, models, select_last=len(models) > self.model_combo.count())
        self._on_model_changed()

    def _on_model_changed(self, *_) -> None:
        self._update_buttons()
        model = self.bsgd_model()
        if model is None:
            self.model_label.setText("No BSGD model: train the diffusion branches above or load one.")
            self.model_label.setToolTip("")
            return
        lines = model.summary().splitlines()
        guide = ((model.config.training or {}).get("bsgd") or {}).get("guide")
        trained_with = f"; trained next to a {guide['method']} guide" if guide else ""
        self.model_label.setText(f"{lines[1] if len(lines) > 1 else lines[0]}{trained_with}")
        self.model_label.setToolTip("\n".join(lines))

    def _on_layer_changed(self, layer) -> None:
        self.axes_edit.setText(detect_axes(layer) if layer is not None else "")

    def load_model(self, path: str | None = None):
        """Read a BSGD model from a ``.safetensors`` file into the session and select it (another
        kind of model is refused with a notification)."""

        def refuse(model, name):
            if model.method != bsgd.METHOD:
                return (f"{name} is a {model.method!r} model, not a BSGD model: train the diffusion branches in "
                        "this widget (or with napari_bsdenoise.train_bsgd)")
            return None

        return load_into_session(self, self.model_combo, path, refuse)

    def save_model(self, path: str | None = None):
        """Write the selected BSGD model to a ``.safetensors`` file (asks for the path when not given;
        the default file name is the model's session name, "<guide> bsgd"); nothing while busy."""
        if self.busy:
            return None
        return save_model_file(self, self.bsgd_model(), f"{self.model_combo.currentText() or 'bsgd'}.safetensors",
                               path)

    def _data(self, model):
        """The selected layer's data and axes, checked against ``model`` (an :class:`InputError` when
        they cannot be used)."""
        layer = self.picker.layer()
        check_layer(layer)
        data, axes = layer_data(layer), self.axes()
        if tiling.is_lazy_input(data):
            raise InputError(f"layer {layer.name!r} is lazy (dask/zarr): BSGD refinement takes in-memory data "
                             "only; refine a crop (e.g. layer.data[...].compute() as a new layer)")
        api.check_image(data, name=f"layer {layer.name!r}")
        layout, _ = api._inference_layout(data, model, axes, None)  # axes and channels: fail here, at once
        return layer, data, axes, layout

    # -- training ----------------------------------------------------------------------------
    def _training_data(self, model):
        """The selected layer's data and axes to train on, checked against ``model`` (the guide, or the
        BSGD model continued) and for a trainable size."""
        _layer, data, axes, layout = self._data(model)
        api._check_trainable_size(layout)
        return data, axes

    def train(self) -> None:
        """Train the diffusion branches on the selected layer next to the selected guide."""
        if self.busy:
            return
        try:
            guide = self.guide()
            if guide is None:
                raise InputError("no guide: train a blind-spot model in the Train widget (or load one there)")
            data, axes = self._training_data(guide)
            kwargs = {"method": bsgd.METHOD, "guide": guide, "axes": axes,
                      "network": self.network_combo.currentText(), **self.budget_row.budget()}
        except Exception as exc:
            report(exc, "training the diffusion branches")
            return
        self.trainer = None
        self.loss_plot.clear()
        self._start(lambda: api.make_trainer(data, **kwargs), {}, f"{self.guide_combo.currentText()} bsgd",
                    continuing=False)

    def continue_training(self) -> None:
        """Train the selected BSGD model further by the budget: the last trainer when the model is its
        result (optimiser state kept), otherwise (a loaded model) a new trainer on the selected layer."""
        if self.busy:
            return
        try:
            model = self.bsgd_model()
            if model is None:
                raise InputError("there is no BSGD model to continue: press Train first (or 'Load…' one)")
            budget = self.budget_row.budget()
            if self.trainer is not None and self.trainer.model is model:
                trainer = self.trainer
                make = lambda: trainer  # noqa: E731
            else:
                data, axes = self._training_data(model)
                kwargs = {"method": bsgd.METHOD, "model": model, "axes": axes, **budget}
                make = lambda: api.make_trainer(data, **kwargs)  # noqa: E731
                budget = {}
                self.trainer = None
                self.loss_plot.clear()  # a new trainer counts its steps from 0
        except Exception as exc:
            report(exc, "training the diffusion branches")
            return
        self._start(make, budget, self.model_combo.currentText(), continuing=True)

    def _start(self, make, budget: dict, name: str, *, continuing: bool) -> None:
        self._pending_name, self._continuing = name, continuing
        self._stop.clear()
        self.train_progress.setValue(0)
        self.train_status.setText("Preparing (reading the data)…")
        self._train_worker = start_worker(
            self, trainer_events, make, budget, self._stop,
            yielded=self._on_train_yielded, errored=lambda exc: report(exc, "training the diffusion branches"),
            finished=self._on_train_finished)
        self._update_buttons()

    def stop(self) -> None:
        """Stop training after the current step (the best model so far is kept)."""
        if self._train_worker is not None:
            self._stop.set()
            self.train_status.setText("Stopping…")

    def _on_train_yielded(self, item) -> None:
        from ..engine.progress import ProgressEvent

        if not isinstance(item, ProgressEvent):  # the trainer, once built
            self.trainer = item
            self.device_label.setText(f"Device: {item.device} ({item.precision})")
            return
        show_event(item, self.train_progress, self.train_status, self.loss_plot)

    def _on_train_finished(self) -> None:
        self._train_worker = None
        t = self.trainer
        if t is not None and t.model is not None:
            if self._stop.is_set():
                self.train_status.setText(f"Stopped at step {t.step}; the best model (step {t.best_step}) is kept.")
            if self._continuing and SESSION.get(self._pending_name) is not None:
                SESSION.set(self._pending_name, t.model)  # the continued model, updated in place
                name = self._pending_name
            else:
                name = SESSION.add(self._pending_name or "bsgd", t.model)
            self.model_combo.setCurrentText(name)
        self._update_buttons()

    # -- refinement --------------------------------------------------------------------------
    def refine_settings(self) -> dict:
        """The sampling keywords of :func:`napari_bsdenoise.refine` set in the widget."""
        return {"sampling_steps": self.steps_box.value(), "guidance": round(self.guidance_box.value(), 6),
                "rounds": self.rounds_box.value(), "t_start": round(self.t_start_box.value(), 6),
                "replace": round(self.replace_box.value(), 6), "seed": self.seed_box.value()}

    def refine_layer(self) -> None:
        """Refine the selected layer into ``<layer>_refined`` (in the background, cancellable)."""
        from ..jobs import iter_events

        if self.busy:
            return
        try:
            model = self.bsgd_model()
            if model is None:
                raise InputError("no BSGD model: train the diffusion branches above or press 'Load…'")
            guide = self.guide()
            layer, data, axes, _layout = self._data(model)
            if guide is not None:
                self._data(guide)  # the guide must fit the layer too
            settings = self.refine_settings()
            meta = {**model_metadata(self.model_combo.currentText(), model), "method": bsgd.METHOD,
                    "experimental": True, "guide": self.guide_combo.currentText() if guide is not None else None,
                    **settings, "axes": axes, "source_layer": layer.name}
            kwargs = output_layer_kwargs(layer, f"{layer.name}_refined", meta)
            gen = iter_events(bsgd.refine, data, model, guide=guide, axes=axes, **settings)
        except Exception as exc:
            report(exc, "refinement")
            return
        self._cancel.clear()
        self.progress.setValue(0)
        self.status.setText(f"Refining {layer.name!r}…" if guide is not None
                            else f"Refining {layer.name!r} from the noisy image (no guide)…")
        t0 = time.perf_counter()

        def yielded(ev):
            self.progress.setValue(int(round(1000 * ev.fraction)))
            what = "guide" if ev.kind == "chunk" else "DDIM step"
            self.status.setText(f"Refining {layer.name!r}: {what} {ev.step}/{ev.total or '?'}, "
                                f"{format_seconds(time.perf_counter() - t0)}, ETA {format_seconds(ev.eta)}")

        def returned(result):
            put_layer(self.viewer, result, kwargs)
            self.progress.setValue(1000)
            self.status.setText(f"Added {kwargs['name']!r} in {time.perf_counter() - t0:.1f} s")

        def errored(exc):
            self.status.setText("Cancelled." if isinstance(exc, InterruptedError) else f"Failed: {exc}")
            report(exc, "refinement")

        def finished():
            self._refine_worker = None
            self._update_buttons()

        self._refine_worker = start_worker(self, relay_events, gen, self._cancel, yielded=yielded,
                                           returned=returned, errored=errored, finished=finished)
        self._update_buttons()

    def cancel(self) -> None:
        """Cancel the refinement after the current DDIM step."""
        if self._refine_worker is not None:
            self._cancel.set()
            self.status.setText("Cancelling…")
