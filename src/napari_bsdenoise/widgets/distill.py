"""The Distill widget: distil a trained blind-spot teacher into a fast non-blind student.

A thin shell over :func:`napari_bsdenoise.api.make_distiller`: the teacher comes from the
session (models trained in the Train widget or loaded) or from a ``.safetensors`` file;
distillation runs in a napari generator worker over the distiller's progress events (Stop
acts after the current step, the best student so far is kept), and the student is added to
the session, where the Denoise widget lists it.
"""

from __future__ import annotations

from qtpy.QtWidgets import QFormLayout, QGroupBox, QLineEdit

from .. import api
from ..errors import InputError
from .layers import load_into_session, refill_combo, save_model_file
from .panel import Panel, action, add_rows, advanced_box, button, check_box, combo, hrow, label, need, show_summary
from .run import BudgetRow, loop_spins
from .session import SESSION

STUDENTS = ("auto", "tiny", "small", "paper")
MODES = ("multi", "mean")
NO_TEACHER = "No teacher: train one in the Train widget or load one."


def parse_blind_spots(text: str):
    """``"auto"`` or a comma list of blind spots (``"0, 1, 3"``) as :func:`make_distiller` takes them."""
    text = text.strip().lower()
    if text in ("", "auto"):
        return "auto"
    try:
        return [api.parse_blind_spot(v, "teacher blind spots") for v in text.replace(";", ",").split(",") if v.strip()]
    except InputError:
        raise InputError(f"teacher blind spots must be 'auto' or a comma list of odd sizes or 0 "
                         f"(e.g. 0, 1, 3, 5), got {text!r}") from None


class DistillWidget(Panel):
    """Distil a blind-spot teacher into a non-blind student (napari dock widget "Distill")."""

    follows_session = True

    def setup(self) -> None:
        self.distiller = None
        self.model = None  # the best student so far
        self._model_name: str | None = None
        self._pending_name: str | None = None

    # -- layout ------------------------------------------------------------------------------
    def build(self, root) -> None:
        box = QGroupBox("Teacher and data")
        form = QFormLayout(box)
        self.teacher_combo = combo(tip="Blind-spot models of this session (trained in the Train widget or loaded); "
                                       "students are not offered", changed=self._on_teacher_changed)
        self.load_button = button("Load teacher…", self.load_teacher,
                                  "Load a blind-spot model (.safetensors) to distil")
        form.addRow("Teacher", hrow(self.teacher_combo, self.load_button, stretch_first=True))
        self.teacher_label = label(NO_TEACHER)
        form.addRow(self.teacher_label)
        self.add_layer_rows(form, "The noisy data to distil on (usually the teacher's own training data)")
        root.addWidget(box)

        box = QGroupBox("Student")
        form = QFormLayout(box)
        self.student_combo = combo(STUDENTS, "Student size: auto = the teacher's width and depth (warm start from its "
                                   "weights); tiny ~0.1 M, paper = the paper's ~1 M-parameter student")
        self.blind_spots_edit = QLineEdit("auto")
        self.blind_spots_edit.setToolTip("Blind spots at which the teacher is run, e.g. 0, 1, 3, 5. auto: 1, 3 for "
                                         "pixel-independent noise; 0, 1, 3, ... two beyond the training blind "
                                         "spot for correlated noise")
        self.mode_combo = combo(MODES, "multi: close to every teacher output (the paper); mean: close to their average")
        self.budget_row = BudgetRow(steps=1000)
        self.budget_kind, self.steps_spin, self.minutes_spin = (self.budget_row.kind, self.budget_row.steps,
                                                                self.budget_row.minutes)
        add_rows(form, (("Size", self.student_combo), ("Teacher blind spots", self.blind_spots_edit),
                        ("Mode", self.mode_combo), ("Budget", self.budget_row)))
        root.addWidget(box)

        self.advanced, form = advanced_box("Unchecked: the API's defaults are used")
        self.patch_spin, self.batch_spin, self.lr_spin, self.seed_spin = loop_spins(api.DEFAULT_DISTILL_PATCH_SIZE)
        self.warm_check = check_box("Warm start from the teacher's weights", True)
        self.whole_check = check_box("Whole-image teacher targets (faster steps)", False,
                                     "Run the teacher once over the whole layer (8 transforms averaged) instead of "
                                     "on every batch: ~3.6x faster per step, about equal quality at equal time")
        self.fused_check = check_box("Fused teacher targets (keep the detail blind spots miss)", True,
                                     "Learn the teacher's blind-spot outputs fused with the noisy input, as the "
                                     "Denoise panel shows them (AT-BSN teachers on correlated noise)")
        self.hot_check = check_box("Teacher input with hot pixels repaired", True,
                                   "The teacher's targets are computed with hot/dead pixels replaced by their local "
                                   "median, as the Denoise panel does, so the student does not learn them")
        add_rows(form, (("Patch size", self.patch_spin), ("Batch size", self.batch_spin),
                        ("Learning rate", self.lr_spin), ("Seed", self.seed_spin), ("", self.warm_check),
                        ("", self.whole_check), ("", self.fused_check), ("", self.hot_check)))
        root.addWidget(self.advanced)

        self.distill_button = button("Distill", self.distill, "Distil the teacher into a new student on the layer")
        self.stop_button = button("Stop", self.stop, "Stop after the current step; the best student so far is kept")
        self.continue_button = button("Continue", self.continue_distilling,
                                      "Distil the current student further by the budget above")
        root.addLayout(hrow(self.distill_button, self.stop_button, self.continue_button))
        self.job = self.add_job("distillation", root, training=True)
        self.progress, self.status, self.loss_plot = self.job.progress, self.job.status, self.job.loss_plot
        self.device_label = self.job.device_label
        self.loss_plot.setToolTip("Distillation loss (distance to the teacher outputs): training and held-out")
        self.save_button = button("Save student…", self.save_student)
        root.addWidget(self.save_button)
        self.model_label = label("No student yet.")
        root.addWidget(self.model_label)
        root.addStretch(1)

    # -- state -------------------------------------------------------------------------------
    def update_buttons(self) -> None:
        busy = self.busy
        self.distill_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.continue_button.setEnabled(not busy and self.distiller is not None)
        self.save_button.setEnabled(self.model is not None)
        self.load_button.setEnabled(not busy)

    def teacher(self):
        return SESSION.get(self.teacher_combo.currentText())

    def session_changed(self) -> None:
        refill_combo(self.teacher_combo, [n for n in SESSION.names() if not SESSION.get(n).is_student])
        self._on_teacher_changed()

    def _on_teacher_changed(self, *_) -> None:
        teacher = self.teacher()
        if teacher is None:
            self.teacher_label.setText(NO_TEACHER)
            self.teacher_label.setToolTip("")
            return
        show_summary(self.teacher_label, teacher)

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
                      fusion=self.fused_check.isChecked() and "auto",
                      hot_pixels="auto" if self.hot_check.isChecked() else "keep")
        return kw

    @action("distillation")
    def distill(self) -> None:
        """Distil the selected teacher into a new student on the selected layer."""
        teacher = need(self.teacher(), "no teacher: train a model in the Train widget or press 'Load teacher…'")
        if teacher.is_student:
            raise InputError("the teacher must be a blind-spot model, not a distilled student")
        _layer, data = self.layer_input()
        kwargs = self.distill_kwargs()
        layout, _ = api.inference_layout(data, teacher, kwargs["axes"], 0)  # axes, channels: fail at once
        api.check_trainable_size(layout)
        self.distiller = self.model = None
        self._model_name = None
        self.loss_plot.clear()
        self.model_label.setText("No student yet.")
        name = f"{self.teacher_combo.currentText()} student"
        self._start(lambda: api.make_distiller(data, teacher, **kwargs), {}, name)

    @action("distillation")
    def continue_distilling(self) -> None:
        """Distil the current student further by the budget set in the widget."""
        if self.distiller is None:
            return
        distiller = self.distiller
        self._start(lambda: distiller, self.budget_row.budget(), self._model_name)

    def _start(self, make, budget: dict, name: str | None) -> None:
        self._pending_name = name
        self.job.train(make, budget, "Preparing (reading the data)…", built=self._built, finished=self._on_finished)

    def stop(self) -> None:
        """Stop after the current step (the best student so far is kept)."""
        self.job.stop()

    def _built(self, distiller) -> str:
        self.distiller = distiller
        return f"; teacher blind spots {', '.join(map(str, distiller.blind_spots))}"

    def _on_finished(self) -> None:
        d = self.distiller
        if d is not None:
            self.model = d.model
            if self.job.stopped:
                self.status.setText(f"Stopped at step {d.step}; the best student (step {d.best_step}, "
                                    f"validation loss {d.best_val_loss:.4g}) is kept.")
            self._model_name = SESSION.keep(self.model, self._model_name or self._pending_name or "student",
                                            replace=self._model_name is not None)
            show_summary(self.model_label, self.model,
                         f"Student “{self._model_name}” (listed in the Denoise widget): ")

    def save_student(self, path: str | None = None):
        """Write the student to a ``.safetensors`` file (asks for the path when not given)."""
        return save_model_file(self, self.model, f"{self._model_name or 'student'}.safetensors", path)
