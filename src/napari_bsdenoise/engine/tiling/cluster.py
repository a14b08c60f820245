"""The dask.distributed worker plugin that installs a model in every worker process once (imported
only when a cluster ``client=`` is used, so that importing the package does not load distributed)."""

from __future__ import annotations

from .models import CACHE_LOCK, MODEL_CACHE, ModelRef, model_from_payload, model_payload

try:  # the cluster path is optional
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover
    _WorkerPluginBase = object


class ModelPlugin(_WorkerPluginBase):
    """Installs a model in every worker process once (also on workers that join later)."""

    def __init__(self, key: str, payload: bytes):
        self.key, self.payload = key, payload

    def setup(self, worker=None):
        with CACHE_LOCK:
            if self.key not in MODEL_CACHE:
                MODEL_CACHE[self.key] = model_from_payload(self.payload)


def install_model(model, client) -> ModelRef:
    """A :class:`~.models.ModelRef` for ``model``, installed on ``client``'s workers once so tasks carry
    only the key."""
    key, payload = model_payload(model)
    client.register_plugin(ModelPlugin(key, payload), name=f"napari-bsdenoise-model-{key}")
    return ModelRef(key, None)
