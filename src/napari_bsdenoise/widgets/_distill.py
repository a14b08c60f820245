"""The Distill widget: distil a trained blind-spot teacher into a fast non-blind student.

A thin shell over :func:`napari_bsdenoise.api.make_distiller`: the teacher comes from the
session (models trained in the Train widget or loaded) or from a ``.safetensors`` file;
distillation runs in a napari generator worker over the distiller's progress events (Stop
acts after the current step, the best student so far is kept), and the student is added to
the session, where the Denoise widget lists it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from qtpy.QtWidgets import (
    QCheckBox,
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
    alive,
    axes_from,
    check_layer,
    detect_axes,
    layer_data,
    load_into_session,
    refill_combo,
    report,
    save_model_file,
    start_worker,
)
from ._run import BudgetRow, loop_spins, progress_rows, show_event, trainer_events
from ._session import SESSION

if TYPE_CHECKING:
    import napari

STUDENTS = ("auto", "tiny", "small", "paper")
MODES = ("multi", "mean")


def parse_blind_spots(text: str):
    """``"auto"`` or a comma list of blind spots (``"0, 1, 3"``) as :func:`make_distiller` takes them."""
    text = text.strip().lower()
    if text in ("", "auto"):
        return "auto"
    try:
        return [int(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"teacher blind spots must be 'auto' or a comma list of odd sizes or 0 "
                         f"(e.g. 0, 1, 3, 5), got {text!r}") from None


class DistillWidget(QWidget):
    """Distil a blind-spot teacher into a non-blind student (napari dock widget "Distill")."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.distiller = None
        self.model = None  # the best student so far
        self._model_name: str | None = None
        self._pending_name: str | None = None
        self._worker = None
        self._stop = threading.Event()
        self._build()
        SESSION.changed.connect(self._reset_teachers)
        self._reset_teachers()
        self.picker.layer_changed.connect(self._on_layer_changed)
        self._on_layer_changed(self.picker.layer())
        self._update_buttons()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        box = QGroupBox("Teacher and data")
        form = QFormLayout(box)
        row = QHBoxLayout()
        self.teacher_combo = QComboBox()
        self.teacher_combo.setToolTip("Blind-spot models of this session (trained in the Train widget or loaded); "
                                      "students are not offered")
        self.teacher_combo.currentIndexChanged.connect(self._on_teacher_changed)
        self.load_button = QPushButton("Load teacher…")
        self.load_button.setToolTip("Load a blind-spot model (.safetensors) to distil")
        self.load_button.clicked.connect(lambda: self.load_teacher())
        row.addWidget(self.teacher_combo, 1)
        row.addWidget(self.load_button)
        form.addRow("Teacher", row)
        self.teacher_label = QLabel("No teacher: train one in the Train widget or load one.")
        self.teacher_label.setWordWrap(True)
        form.addRow(self.teacher_label)
        self.picker = LayerPicker(self.viewer)
        self.picker.setToolTip("The noisy data to distil on (usually the teacher's own training data)")
        form.addRow("Image layer", self.picker)
        self.axes_edit = QLineEdit()
        self.axes_edit.setToolTip("Axes of the layer's data among T, Z, C, Y, X (RGB: ...YXC); detected, editable")
        form.addRow("Axes", self.axes_edit)
        root.addWidget(box)

        box = QGroupBox("Student")
        form = QFormLayout(box)
        self.student_combo = QComboBox()
        self.student_combo.addItems(STUDENTS)
        self.student_combo.setToolTip("Student size: auto = the teacher's width and depth (warm start from its "
                                      "weights); tiny ~0.1 M, paper = the paper's ~1 M-parameter student")
        form.addRow("Size", self.student_combo)
        self.blind_spots_edit = QLineEdit("auto")
        self.blind_spots_edit.setToolTip("Blind spots at which the teacher is run, e.g. 0, 1, 3, 5. auto: 1, 3 for "
                                         "pixel-independent noise; 0, 1, 3, ... two beyond the training blind "
                                         "spot for correlated noise")
        form.addRow("Teacher blind spots", self.blind_spots_edit)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(MODES)
        self.mode_combo.setToolTip("multi: close to every teacher output (the paper); mean: close to their average")
        form.addRow("Mode", self.mode_combo)
        self.budget_row = BudgetRow(steps=1000)
        self.budget_kind, self.steps_spin, self.minutes_spin = (self.budget_row.kind, self.budget_row.steps,
                                                                self.budget_row.minutes)
        form.addRow("Budget", self.budget_row)
        root.addWidget(box)

        self.advanced = QGroupBox("Advanced settings")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.advanced.setToolTip("Unchecked: the API's defaults are used")
        form = QFormLayout(self.advanced)
        self.patch_spin, self.batch_spin, self.lr_spin, self.seed_spin = loop_spins(api.DEFAULT_DISTILL_PATCH_SIZE)
        self.warm_check = QCheckBox("Warm start from the teacher's weights")
        self.warm_check.setChecked(True)
        self.whole_check = QCheckBox("Whole-image teacher targets (faster steps)")
        self.whole_check.setToolTip("Run the teacher once over the whole layer (8 transforms averaged) instead of "
                                    "on every batch: ~3.6x faster per step, about equal quality at equal time")
        self.fused_check = QCheckBox("Fused teacher targets (keep the detail blind spots miss)")
        self.fused_check.setChecked(True)
        self.fused_check.setToolTip("Learn the teacher's blind-spot outputs fused with the noisy input, as the "
                                    "Denoise panel shows them (AT-BSN teachers on correlated noise)")
        for label, w in (("Patch size", self.patch_spin), ("Batch size", self.batch_spin),
                         ("Learning rate", self.lr_spin), ("Seed", self.seed_spin), ("", self.warm_check),
                         ("", self.whole_check), ("", self.fused_check)):
            form.addRow(label, w)
        root.addWidget(self.advanced)

        buttons = QHBoxLayout()
        self.distill_button = QPushButton("Distill")
        self.stop_button = QPushButton("Stop")
        self.continue_button = QPushButton("Continue")
        self.distill_button.setToolTip("Distil the teacher into a new student on the layer")
        self.stop_button.setToolTip("Stop after the current step; the best student so far is kept")
        self.continue_button.setToolTip("Distil the current student further by the budget above")
        self.distill_button.clicked.connect(self.distill)
        self.stop_button.clicked.connect(self.stop)
        self.continue_button.clicked.connect(self.continue_distilling)
        for b in (self.distill_button, self.stop_button, self.continue_button):
            buttons.addWidget(b)
        root.addLayout(buttons)
        self.progress, self.status, self.loss_plot, self.device_label = progress_rows(root)
        self.loss_plot.setToolTip("Distillation loss (distance to the teacher outputs): training and held-out")
        self.save_button = QPushButton("Save student…")
        self.save_button.clicked.connect(lambda: self.save_student())
        root.addWidget(self.save_button)
        self.model_label = QLabel("No student yet.")
        self.model_label.setWordWrap(True)
        root.addWidget(self.model_label)
        root.addStretch(1)

    # -- state -------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while distillation (or its preparation) runs in the background."""
        return self._worker is not None

    def _update_buttons(self) -> None:
        busy = self.busy
        self.distill_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.continue_button.setEnabled(not busy and self.distiller is not None)
        self.save_button.setEnabled(self.model is not None)
        self.load_button.setEnabled(not busy)

    def teacher(self):
        return SESSION.get(self.teacher_combo.currentText())

    def axes(self) -> str:
        return axes_from(self.axes_edit)

    def _reset_teachers(self) -> None:
        if not alive(self):  # this widget was closed (its Qt object is gone)
            SESSION.changed.disconnect(self._reset_teachers)
            return
        refill_combo(self.teacher_combo, [n for n in SESSION.names() if not SESSION.get(n).is_student])
        self._on_teacher_changed()

    def _on_teacher_changed(self, *_) -> None:
        teacher = self.teacher()
        if teacher is None:
            self.teacher_label.setText("No teacher: train one in the Train widget or load one.")
            self.teacher_label.setToolTip("")
            return
        lines = teacher.summary().splitlines()
        self.teacher_label.setText(lines[1] if len(lines) > 1 else lines[0])
        self.teacher_label.setToolTip("\n".join(lines))

    def _on_layer_changed(self, layer) -> None:
        self.axes_edit.setText(detect_axes(layer) if layer is not None else "")

    def load_teacher(self, path: str | None = None):
        """Read a blind-spot model from a ``.safetensors`` file into the session and select it as
        the teacher (a distilled student is refused with a notification)."""
        def refuse(model, name):
            if model.is_student:
                return f"{name} is a distilled student: a teacher must be a blind-spot model (train one in the " \
                       "Train widget)"
            return None

        return load_into_session(self, self.teacher_combo, path, refuse)

    # -- distillation ------------------------------------------------------------------------
    def distill_kwargs(self) -> dict:
        """The keywords for :func:`napari_bsdenoise.api.make_distiller` set in the widget."""
        kw: dict = {"axes": self.axes(), "student": self.student_combo.currentText(),
                    "teacher_blind_spots": parse_blind_spots(self.blind_spots_edit.text()),
                    "mode": self.mode_combo.currentText()}
        kw.update(self.budget_row.budget())
        if self.advanced.isChecked():
            kw.update(patch_size=self.patch_spin.value(), batch_size=self.batch_spin.value(),
                      learning_rate=self.lr_spin.value(), seed=self.seed_spin.value(),
                      warm_start=self.warm_check.isChecked(), precompute=self.whole_check.isChecked(),
                      fusion=self.fused_check.isChecked() and "auto")
        return kw

    def distill(self) -> None:
        """Distil the selected teacher into a new student on the selected layer."""
        if self.busy:
            return
        try:
            teacher = self.teacher()
            if teacher is None:
                raise InputError("no teacher: train a model in the Train widget or press 'Load teacher…'")
            if teacher.is_student:
                raise InputError("the teacher must be a blind-spot model, not a distilled student")
            layer = self.picker.layer()
            check_layer(layer)
            data, kwargs = layer_data(layer), self.distill_kwargs()
            layout, _ = api._inference_layout(data, teacher, kwargs["axes"], 0)  # axes, channels: fail at once
            api._check_trainable_size(layout)
            if not hasattr(data, "compute"):
                api.check_image(data, name=f"layer {layer.name!r}")
        except Exception as exc:
            report(exc, "distillation")
            return
        self.distiller = self.model = None
        self._model_name = None
        self.loss_plot.clear()
        self.model_label.setText("No student yet.")
        name = f"{self.teacher_combo.currentText()} student"
        self._start(lambda: api.make_distiller(data, teacher, **kwargs), {}, name)

    def continue_distilling(self) -> None:
        """Distil the current student further by the budget set in the widget."""
        if self.busy or self.distiller is None:
            return
        distiller = self.distiller
        self._start(lambda: distiller, self.budget_row.budget(), self._model_name)

    def _start(self, make, budget: dict, name: str | None) -> None:
        self._stop.clear()
        self._pending_name = name
        self.progress.setValue(0)
        self.status.setText("Preparing (reading the data)…")
        self._worker = start_worker(self, trainer_events, make, budget, self._stop, yielded=self._on_yielded,
                                    errored=lambda exc: report(exc, "distillation"), finished=self._on_finished)
        self._update_buttons()

    def stop(self) -> None:
        """Stop after the current step (the best student so far is kept)."""
        if self._worker is not None:
            self._stop.set()
            self.status.setText("Stopping…")

    def _on_yielded(self, item) -> None:
        from ..engine.progress import ProgressEvent

        if not isinstance(item, ProgressEvent):  # the distiller, once built
            self.distiller = item
            self.device_label.setText(f"Device: {item.device} ({item.precision}); teacher blind spots "
                                      f"{', '.join(map(str, item.blind_spots))}")
            return
        show_event(item, self.progress, self.status, self.loss_plot)

    def _on_finished(self) -> None:
        self._worker = None
        d = self.distiller
        if d is not None:
            self.model = d.model
            if self._stop.is_set():
                self.status.setText(f"Stopped at step {d.step}; the best student (step {d.best_step}, "
                                    f"validation loss {d.best_val_loss:.4g}) is kept.")
            self._register(self._pending_name)
        self._update_buttons()

    def _register(self, name: str | None) -> None:
        if self._model_name is None:
            self._model_name = SESSION.add(name or "student", self.model)
        else:
            SESSION.set(self._model_name, self.model)
        lines = self.model.summary().splitlines()
        self.model_label.setText(f"Student “{self._model_name}” (listed in the Denoise widget): {lines[1]}")
        self.model_label.setToolTip("\n".join(lines))

    def save_student(self, path: str | None = None):
        """Write the student to a ``.safetensors`` file (asks for the path when not given)."""
        return save_model_file(self, self.model, f"{self._model_name or 'student'}.safetensors", path)
