"""The models of this napari session, shared by the Train and Denoise widgets.

Plain Python (psygnal only): no Qt, no torch.  The Train widget adds each model it
trains or loads; the Denoise widget lists them and follows :attr:`ModelRegistry.changed`.
"""

from __future__ import annotations

from psygnal import Signal


class ModelRegistry:
    """Named models, in the order they were added; ``changed`` fires on every change."""

    changed = Signal()

    def __init__(self):
        self._models: dict[str, object] = {}

    def add(self, name: str, model) -> str:
        """Add (or replace, when ``model`` is the same object) ``model`` under a unique name."""
        for key, value in self._models.items():
            if value is model:
                return key
        unique, i = name, 2
        while unique in self._models:
            unique, i = f"{name} ({i})", i + 1
        self._models[unique] = model
        self.changed.emit()
        return unique

    def set(self, name: str, model) -> None:
        """Put ``model`` under ``name`` (replacing what was there)."""
        self._models[name] = model
        self.changed.emit()

    def keep(self, model, name: str, *, replace: bool) -> str:
        """Put ``model`` under ``name`` when ``replace`` and that name is listed (a model trained
        further), else add it under a unique name made from ``name``; the name it is listed under."""
        if replace and name in self._models:
            self.set(name, model)
            return name
        return self.add(name, model)

    def remove(self, name: str) -> None:
        if self._models.pop(name, None) is not None:
            self.changed.emit()

    def get(self, name: str):
        return self._models.get(name)

    def names(self) -> list[str]:
        return list(self._models)

    def name_of(self, model) -> str | None:
        return next((k for k, v in self._models.items() if v is model), None)

    def clear(self) -> None:
        self._models.clear()
        self.changed.emit()


#: The registry both widgets use.
SESSION = ModelRegistry()
