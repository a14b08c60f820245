"""The one progress-event type every long-running job yields (training, denoising, ...)."""

from __future__ import annotations

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
