"""What the widgets share: spin boxes and the budget row, the worker bodies that drive a trainer's progress events
(Train, Distill, Refine) or relay a cancellable job's events (Denoise, Refine), the device text and
the progress/status/loss-plot update."""

from __future__ import annotations

import threading

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QProgressBar, QSpinBox, QWidget

from .. import api
from .plots import LossPlot


def format_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def trainer_events(make_trainer, budget: dict, stop: threading.Event):
    """Worker body: build the trainer (in the worker: it reads the data), yield it, then its
    progress events until done or ``stop`` is set (checked after every step)."""
    trainer = make_trainer()
    yield trainer
    for event in trainer.run(**budget):
        yield event
        if stop.is_set():
            break
    return trainer


def relay_events(gen, cancel: threading.Event):
    """Worker body: relay ``gen``'s progress events and return its value; ``cancel`` (checked after
    every event) closes it, which cancels a :func:`napari_bsdenoise.api.iter_events` job."""
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            yield event
            if cancel.is_set():
                raise InterruptedError("cancelled")
    finally:
        gen.close()


def auto_events(data, axes: str, seconds: float, method: str, stop: threading.Event):
    """Worker body: :class:`napari_bsdenoise.api.AutoDenoiser` over ``data``; its events until done or
    ``stop`` is set (then the result holds the models trained so far); returns the result."""
    pipeline = api.AutoDenoiser(data, axes=axes, seconds=seconds, method=method)
    try:
        return (yield from relay_events(pipeline.run(), stop))
    except InterruptedError:
        return pipeline.result


def show_stage_event(ev, progress, status) -> None:
    """Show one event of a multi-stage job (``message`` names the stage) in a progress bar and a label."""
    progress.setValue(int(round(1000 * ev.fraction)))
    stage = ev.message.split(":")[0] if ev.message else ev.kind
    total = f"/{ev.total}" if ev.total else ""
    loss = f", loss {ev.loss:.4g}" if ev.loss is not None else ""
    status.setText(f"{stage}: step {ev.step}{total}{loss}, {format_seconds(ev.elapsed)}")


def device_text() -> str:
    """The device training would use, for a label."""
    return api.device_description()


def spin(lo, hi, value=None, tip: str | None = None, *, step=None, decimals: int | None = None):
    """A spin box over ``lo``-``hi`` (a ``QDoubleSpinBox`` when ``lo`` is a float) set to ``value``."""
    box = QDoubleSpinBox() if isinstance(lo, float) else QSpinBox()
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(lo, hi)
    if step is not None:
        box.setSingleStep(step)
    if value is not None:
        box.setValue(value)
    if tip:
        box.setToolTip(tip)
    return box


def loop_spins(patch_size: int):
    """Spin boxes for the optimisation settings: ``(patch_size, batch_size, learning_rate, seed)``."""
    return (spin(16, 1024, patch_size), spin(1, 1024, api.DEFAULT_BATCH_SIZE),
            spin(1e-5, 0.5, api.DEFAULT_LEARNING_RATE, step=5e-4, decimals=5), spin(0, 2**31 - 1))


class BudgetRow(QWidget):
    """A budget in steps or minutes: ``budget()`` gives ``{"steps": n}`` or ``{"seconds": s}``."""

    def __init__(self, steps: int = api.DEFAULT_STEPS, minutes: float = 5.0, parent=None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.kind = QComboBox()
        self.kind.addItems(["steps", "minutes"])
        self.steps = spin(1, 1_000_000, steps)
        self.minutes = spin(0.1, 10_000, minutes)
        self.minutes.setVisible(False)
        self.kind.currentTextChanged.connect(self._on_kind)
        row.addWidget(self.steps, 1)
        row.addWidget(self.minutes, 1)
        row.addWidget(self.kind)

    def _on_kind(self, kind: str) -> None:
        self.steps.setVisible(kind == "steps")
        self.minutes.setVisible(kind == "minutes")

    def budget(self) -> dict:
        if self.kind.currentText() == "steps":
            return {"steps": self.steps.value()}
        return {"seconds": 60.0 * self.minutes.value()}


def job_rows(layout):
    """Add a progress bar (0-1000) and a status label to ``layout``; returns both."""
    progress = QProgressBar()
    progress.setRange(0, 1000)
    progress.setFormat("%p%")
    status = QLabel("")
    status.setWordWrap(True)
    layout.addWidget(progress)
    layout.addWidget(status)
    return progress, status


def progress_rows(layout):
    """Add a progress bar (0-1000), a status label, a :class:`LossPlot` and the device in use to
    ``layout``; returns the four widgets."""
    progress, status = job_rows(layout)
    loss_plot = LossPlot()
    device = QLabel(f"Device: {device_text()}")
    layout.addWidget(loss_plot)
    layout.addWidget(device)
    return progress, status, loss_plot, device


def show_event(ev, progress, status, loss_plot) -> None:
    """Show one :class:`~napari_bsdenoise.api.ProgressEvent` of a training loop in a
    progress bar (range 0-1000), a status label (step, loss, ETA) and a :class:`LossPlot`."""
    progress.setValue(int(round(1000 * ev.fraction)))
    if ev.kind == "start":
        status.setText(ev.message)
        return
    if ev.kind == "done":
        status.setText(f"Done: {ev.step} steps in {format_seconds(ev.elapsed)}; {ev.message}")
        return
    loss_plot.add(ev.step, ev.loss, ev.val_loss)
    total = f"/{ev.total}" if ev.total else ""
    val = f", validation {ev.best_val_loss:.4g} (best)" if ev.best_val_loss is not None else ""
    status.setText(f"Step {ev.step}{total}, loss {ev.loss:.4g}{val}, "
                   f"elapsed {format_seconds(ev.elapsed)}, ETA {format_seconds(ev.eta)}")
