"""napari widgets (Qt): thin shells over the public API.  Nothing outside this package imports napari or Qt.

Dock them from the napari console with
``viewer.window.add_plugin_dock_widget("napari-bsdenoise", "Train")`` (or ``"Denoise"``, ``"Distill"``, ``"Refine"``).
"""

from ._denoise import DenoiseWidget
from ._distill import DistillWidget
from ._refine import RefineWidget
from ._session import SESSION, ModelRegistry
from ._train import TrainWidget

__all__ = ["SESSION", "DenoiseWidget", "DistillWidget", "ModelRegistry", "RefineWidget", "TrainWidget"]
