"""The one progress-event type every long-running job yields (training, denoising, ...), and the
two ways to consume a job: :func:`run_events` (a callback; return False to stop) and
:func:`iter_events` (a call that takes ``callback=`` turned into a generator of its events, run in a
thread: what a GUI worker wants; closing the generator cancels the call at its next event)."""

from __future__ import annotations

import queue
import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """A snapshot of a long job.

    ``kind`` is ``"start"``, ``"step"``, ``"validation"``, ``"chunk"`` or ``"done"``;
    ``fraction`` (0-1) is what a progress bar shows; ``eta`` is in seconds.
    """

    kind: str
    step: int = 0
    total: int | None = None
    fraction: float = 0.0
    elapsed: float = 0.0
    eta: float | None = None
    loss: float | None = None
    val_loss: float | None = None
    best_val_loss: float | None = None
    learning_rate: float | None = None
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        parts = [f"{self.kind} {self.step}" + (f"/{self.total}" if self.total else "")]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4g}")
        if self.val_loss is not None:
            parts.append(f"val {self.val_loss:.4g}")
        if self.eta is not None:
            parts.append(f"eta {self.eta:.0f}s")
        if self.message:
            parts.append(self.message)
        return ", ".join(parts)


def run_events(gen, callback=None):
    """Drive a generator of :class:`ProgressEvent` to its return value.

    ``callback`` is called with each event; returning ``False`` closes the
    generator (its cleanup runs) and raises :class:`InterruptedError`.
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if callback is not None and callback(event) is False:
            gen.close()
            raise InterruptedError("cancelled")


_END = object()


def iter_events(fn, *args, **kwargs):
    """Generator: run ``fn(*args, callback=..., **kwargs)`` in a thread, yield its events, return its
    result (its exception is raised here).  Closing the generator makes the callback return False,
    which cancels ``fn`` at its next event, and waits for it to end."""
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()
    box: dict = {}

    def callback(event):
        if cancel.is_set():
            return False
        events.put(event)
        return True

    def run():
        try:
            box["result"] = fn(*args, callback=callback, **kwargs)
        except BaseException as exc:  # handed to the consumer
            box["error"] = exc
        finally:
            events.put(_END)

    thread = threading.Thread(target=run, name="napari-bsdenoise-job", daemon=True)
    thread.start()
    try:
        while (event := events.get()) is not _END:
            yield event
    finally:
        cancel.set()
        thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")
