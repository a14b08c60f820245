"""Model shipping for chunk tasks: a per-process cache of networks keyed by the model's hash, the
picklable :class:`ModelRef` that tasks carry instead of a torch module, and the dask.distributed
:class:`~.cluster.ModelPlugin` that installs a model on every worker once."""

from __future__ import annotations

import hashlib
import json
import threading

# -- model shipping -------------------------------------------------------------------------
MODEL_CACHE: dict = {}
CACHE_LOCK = threading.Lock()
OOM_LOG: list[str] = []  # messages of tile halvings in this process (the driver shows them)


def model_payload(model) -> tuple[str, bytes]:
    """``(sha256 key, safetensors bytes)`` of a model (weights + JSON config, no pickle)."""
    from safetensors.torch import save

    from ...modelfile import METADATA_KEY

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.network.state_dict().items()}
    data = save(tensors, metadata={METADATA_KEY: json.dumps(model.config.to_dict())})
    return hashlib.sha256(data).hexdigest()[:24], data


def model_from_payload(data: bytes):
    """The network (eval mode, CPU) of :func:`model_payload`'s bytes."""
    from safetensors.torch import load

    from ...config import ModelConfig
    from ...model import BlindSpotModel
    from ...modelfile import METADATA_KEY

    n = int.from_bytes(data[:8], "little")
    config = ModelConfig.from_dict(json.loads(json.loads(data[8 : 8 + n])["__metadata__"][METADATA_KEY]))
    model = BlindSpotModel(config)
    model.network.load_state_dict(load(data), strict=True)
    return model.network.eval()


def _cache_put(key: str, network) -> None:
    with CACHE_LOCK:
        MODEL_CACHE.setdefault(key, network)


class ModelRef:
    """A picklable handle on a model: the hash key, plus the safetensors bytes unless the
    workers already hold the model (:class:`ModelPlugin` on a dask.distributed cluster).

    Each process loads the network once and caches it by key; tasks never carry a torch module.
    """

    def __init__(self, key: str, payload: bytes | None):
        self.key, self.payload = key, payload

    def __reduce__(self):
        return (ModelRef, (self.key, self.payload))

    def network(self, device):
        with CACHE_LOCK:
            net = MODEL_CACHE.get(self.key)
            if net is None:
                if self.payload is None:
                    raise RuntimeError(
                        f"model {self.key} is not loaded in this worker process; pass client= to "
                        "napari_bsdenoise.denoise so the model is installed on every worker")
                net = MODEL_CACHE[self.key] = model_from_payload(self.payload)
            dev_key = (self.key, str(device))
            if dev_key not in MODEL_CACHE:
                import copy

                MODEL_CACHE[dev_key] = (net if str(device) == "cpu" else copy.deepcopy(net)).to(device).eval()
            return MODEL_CACHE[dev_key]


def register_model(model) -> ModelRef:
    """A :class:`ModelRef` for ``model``, cached in this process (for a dask.distributed cluster see
    :func:`~.cluster.install_model`)."""
    key, payload = model_payload(model)
    import copy

    _cache_put(key, copy.deepcopy(model.network).to("cpu").eval())
    return ModelRef(key, payload)  # payload only travels with the 'processes' scheduler
