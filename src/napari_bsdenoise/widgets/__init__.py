"""napari widgets (Qt): thin shells over the public API.  Nothing outside this package imports napari or Qt.

Dock them from the napari console with
``viewer.window.add_plugin_dock_widget("napari-bsdenoise", "Train")`` (or ``"Denoise"``, ``"Distill"``, ``"Refine"``).
"""

from .denoise import DenoiseWidget
from .distill import DistillWidget
from .refine import RefineWidget
from .session import SESSION, ModelRegistry
from .train import TrainWidget

__all__ = ["SESSION", "DenoiseWidget", "DistillWidget", "ModelRegistry", "RefineWidget", "TrainWidget"]
