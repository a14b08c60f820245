"""What the four panels (Train, Denoise, Distill, Refine) share: :class:`Panel`, the base that holds
the viewer, the image-layer picker and its axes row, the session's model lists, the background
:class:`Job` s (busy guard, start, Stop/Cancel, progress bar and status) and the error notifications,
and the small widget factories the panels lay themselves out with."""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import api
from ..errors import InputError
from .layers import LayerPicker, alive, axes_from, check_layer, detect_axes, layer_data, put_layer, report
from .layers import start_worker
from .run import job_rows, progress_rows, relay_events, show_event, trainer_events
from .session import SESSION

if TYPE_CHECKING:
    import napari

AXES_TIP = "Axes of the layer's data among T, Z, C, Y, X (RGB: ...YXC); detected, editable"


# -- widget factories -------------------------------------------------------------------------
def _dressed(widget, tip: str | None, signal=None, slot=None):
    """``widget`` with the tooltip ``tip`` and ``signal`` connected to ``slot`` (each when given)."""
    if tip:
        widget.setToolTip(tip)
    if slot is not None:
        signal.connect(slot)
    return widget


def button(text: str, slot=None, tip: str | None = None) -> QPushButton:
    """A push button calling ``slot()`` (without Qt's ``checked`` argument) when clicked."""
    b = QPushButton(text)
    return _dressed(b, tip, b.clicked, None if slot is None else lambda *_: slot())


def combo(items=(), tip: str | None = None, current: str | None = None, changed=None) -> QComboBox:
    """A combo box of ``items`` (``current`` selected); ``changed`` follows its current index."""
    c = QComboBox()
    c.addItems(list(items))
    if current is not None:
        c.setCurrentText(current)
    return _dressed(c, tip, c.currentIndexChanged, changed)


def check_box(text: str, checked: bool = False, tip: str | None = None, toggled=None) -> QCheckBox:
    """A check box (``toggled`` follows it)."""
    box = QCheckBox(text)
    box.setChecked(checked)
    return _dressed(box, tip, box.toggled, toggled)


def label(text: str = "") -> QLabel:
    """A word-wrapping label."""
    lbl = QLabel(text)
    lbl.setWordWrap(True)
    return lbl


def hrow(*widgets, stretch_first: bool = False) -> QHBoxLayout:
    """A row of ``widgets`` (the first one stretched when ``stretch_first``)."""
    row = QHBoxLayout()
    for i, w in enumerate(widgets):
        row.addWidget(w, 1 if stretch_first and i == 0 else 0)
    return row


def add_rows(form: QFormLayout, rows) -> None:
    """``form.addRow(label, widget)`` for each ``(label, widget)`` pair."""
    for text, w in rows:
        form.addRow(text, w)


def advanced_box(tip: str) -> tuple[QGroupBox, QFormLayout]:
    """A checkable, unchecked "Advanced settings" group box and its form layout."""
    box = QGroupBox("Advanced settings")
    box.setCheckable(True)
    box.setChecked(False)
    box.setToolTip(tip)
    return box, QFormLayout(box)


def show_summary(lbl: QLabel, model, prefix: str = "", suffix: str = "") -> None:
    """Show the one-line summary of ``model`` in ``lbl`` (between ``prefix`` and ``suffix``), the full
    summary as its tooltip."""
    lines = model.summary().splitlines()
    lbl.setText(f"{prefix}{lines[1] if len(lines) > 1 else lines[0]}{suffix}")
    lbl.setToolTip("\n".join(lines))


def need(value, message: str):
    """``value``, or an :class:`InputError` with ``message`` when it is None."""
    if value is None:
        raise InputError(message)
    return value


def action(what: str):
    """Decorator for a panel's button handler: it does nothing while the panel is busy, and an
    exception it raises is shown as a notification about ``what`` (e.g. "training")."""

    def wrap(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            if self.busy:
                return None
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                report(exc, what)
                return None

        return guarded

    return wrap


# -- background jobs --------------------------------------------------------------------------
class Job:
    """One kind of background work of a panel (training, denoising, refinement): its napari worker,
    the flag its Stop or Cancel button sets (checked by the worker after every step), and the rows it
    reports to: a progress bar and a status label, plus a loss plot and the device for training."""

    def __init__(self, panel: Panel, what: str, layout, *, training: bool = False, stopping: str = "Stopping…",
                 failures: bool = False):
        self.panel, self.what, self.stopping, self.failures = panel, what, stopping, failures
        self.worker = None
        self.flag = threading.Event()
        self.loss_plot = self.device_label = None
        if training:
            self.progress, self.status, self.loss_plot, self.device_label = progress_rows(layout)
        else:
            self.progress, self.status = job_rows(layout)

    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def stopped(self) -> bool:
        """True when Stop (or Cancel) was pressed during the last run."""
        return self.flag.is_set()

    def stop(self) -> None:
        """Ask the running job to end after its current step."""
        if self.worker is not None:
            self.flag.set()
            self.status.setText(self.stopping)

    def failed(self, exc: BaseException) -> None:
        if self.failures:
            self.status.setText("Cancelled." if isinstance(exc, InterruptedError) else f"Failed: {exc}")
        report(exc, self.what)

    def start(self, body, *args, message: str, finished=None, **handlers) -> None:
        """Run ``body(*args, flag)`` in a napari worker with ``handlers`` (``yielded=``, ``returned=``);
        errors become notifications, and ``finished()`` runs before the panel's buttons are updated."""
        self.flag.clear()
        self.progress.setValue(0)
        self.status.setText(message)

        def end():
            self.worker = None
            if finished is not None:
                finished()
            self.panel.update_buttons()

        handlers = {k: v for k, v in handlers.items() if v is not None}
        self.worker = start_worker(self.panel, body, *args, self.flag, errored=self.failed, finished=end, **handlers)
        self.panel.update_buttons()

    def train(self, make, budget: dict, message: str, *, built, finished) -> None:
        """Drive a trainer: ``make()`` builds it in the worker and ``built(trainer)`` gets it (and may
        return a note for the device row); its progress events fill the bar, the status and the loss
        plot until done or stopped, then ``finished()`` runs."""

        def yielded(item):
            if isinstance(item, api.ProgressEvent):
                show_event(item, self.progress, self.status, self.loss_plot)
                return
            note = built(item)  # the trainer, once built
            self.device_label.setText(f"Device: {item.device} ({item.precision}){note or ''}")

        self.start(trainer_events, make, budget, message=message, yielded=yielded, finished=finished)

    def relay(self, gen, message: str, describe, layer_kwargs: dict, *, read=None, note: str = "") -> None:
        """Relay a cancellable job's progress events (the status says ``describe(event, seconds)``)
        and add its result as the image layer of ``layer_kwargs`` (``read(result)`` first, if given)."""
        t0 = time.perf_counter()

        def yielded(ev):
            self.progress.setValue(int(round(1000 * ev.fraction)))
            self.status.setText(describe(ev, time.perf_counter() - t0))

        def returned(result):
            put_layer(self.panel.viewer, read(result) if read is not None else result, layer_kwargs)
            self.progress.setValue(1000)
            self.status.setText(f"Added {layer_kwargs['name']!r} in {time.perf_counter() - t0:.1f} s{note}")

        self.start(relay_events, gen, message=message, yielded=yielded, returned=returned)


# -- the base panel ---------------------------------------------------------------------------
class Panel(QWidget):
    """A dock panel over an image layer of the viewer.

    Subclasses set their state in :meth:`setup`, lay themselves out in :meth:`build` (calling
    :meth:`add_layer_rows` and :meth:`add_job`), update their buttons in :meth:`update_buttons` and,
    with ``follows_session``, refill their model lists in :meth:`session_changed`.
    """

    #: True: :meth:`session_changed` runs now and whenever the session's models change
    follows_session = False

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.jobs: list[Job] = []
        self.setup()
        self.build(QVBoxLayout(self))
        if self.follows_session:
            SESSION.changed.connect(self._on_session)
            self._on_session()
        self.picker.layer_changed.connect(self.on_layer_changed)
        self.on_layer_changed(self.picker.layer())
        self.update_buttons()

    # -- hooks -------------------------------------------------------------------------------
    def setup(self) -> None:
        """Set the panel's state (before :meth:`build`)."""

    def build(self, root: QVBoxLayout) -> None:
        raise NotImplementedError

    def update_buttons(self) -> None:
        """Enable the buttons that apply now."""

    def session_changed(self) -> None:
        """Refill the model lists from the session."""

    def on_layer_changed(self, layer) -> None:
        """The picker chose ``layer`` (or None): show its detected axes."""
        self.axes_edit.setText(detect_axes(layer) if layer is not None else "")

    # -- parts -------------------------------------------------------------------------------
    def add_layer_rows(self, form: QFormLayout, tip: str | None = None, axes_tip: str = AXES_TIP) -> None:
        """Add the "Image layer" picker (``self.picker``) and the "Axes" edit (``self.axes_edit``)."""
        self.picker = LayerPicker(self.viewer)
        if tip:
            self.picker.setToolTip(tip)
        form.addRow("Image layer", self.picker)
        self.axes_edit = QLineEdit()
        self.axes_edit.setToolTip(axes_tip)
        form.addRow("Axes", self.axes_edit)

    def add_job(self, what: str, layout, **kwargs) -> Job:
        """A :class:`Job` reporting to new rows of ``layout``; while it runs the panel is busy."""
        job = Job(self, what, layout, **kwargs)
        self.jobs.append(job)
        return job

    # -- state -------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a job of this panel runs in the background."""
        return any(job.running for job in self.jobs)

    def axes(self) -> str:
        return axes_from(self.axes_edit)

    def layer_input(self):
        """``(layer, data)`` of the selected layer, checked (an :class:`InputError` says what is wrong;
        data in memory is checked for NaNs and its type at once, lazy data as it is read)."""
        layer = self.picker.layer()
        check_layer(layer)
        data = layer_data(layer)
        if not api.is_lazy_input(data):
            api.check_image(data, name=f"layer {layer.name!r}")
        return layer, data

    def _on_session(self) -> None:
        if not alive(self):  # this panel was closed (its Qt object is gone)
            SESSION.changed.disconnect(self._on_session)
            return
        self.session_changed()
