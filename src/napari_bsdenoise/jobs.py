"""Turn a call that reports progress through ``callback=`` into a generator of its events.

:func:`napari_bsdenoise.denoise` reports progress with a callback (return False to cancel).
A GUI worker wants a generator instead: :func:`iter_events` runs the call in a thread, yields
each :class:`~napari_bsdenoise.engine.progress.ProgressEvent` and returns the call's result.
Closing the generator cancels the call at its next event.  No napari or Qt here.
"""

from __future__ import annotations

import queue
import threading

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
