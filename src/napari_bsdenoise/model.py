"""The model object users hold: a network plus its config (normalisation, blind spots, provenance)."""

from __future__ import annotations

from pathlib import Path

from . import modelfile, registry
from .config import ModelConfig
from .errors import ModelFileError

#: Writers of other formats, by name, registered by the engine when the package is imported
#: (``"bioimageio"``: :mod:`napari_bsdenoise.engine.export`); the model layer does not import the
#: engine (docs/architecture.md), as the methods reach it through :mod:`napari_bsdenoise.registry`.
EXPORTERS: dict = {}


def register_exporter(name: str, export) -> None:
    """Make ``export(model, path, **options)`` the writer of format ``name``
    (:meth:`BlindSpotModel.export_bioimageio`)."""
    EXPORTERS[name] = export


class BlindSpotModel:
    """A trained denoiser.

    Use :func:`napari_bsdenoise.denoise` to apply it,
    :meth:`save` to write it and :func:`napari_bsdenoise.load_model` to read it.

    Attributes
    ----------
    config : ModelConfig
        Architecture, normalisation, blind spots, loss and training provenance.
    network : torch.nn.Module
        The torch module (on the CPU unless moved).
    """

    def __init__(self, config: ModelConfig, network=None):
        self.config = config.validate()
        self.network = network if network is not None else registry.build_network(config.network)
        self.network.eval()

    # -- convenience -------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.config.network.method

    @property
    def is_student(self) -> bool:
        """True for a non-blind student from :func:`napari_bsdenoise.distill` (no tunable blind spot)."""
        return self.config.network.method == "student"

    @property
    def train_blind_spot(self) -> int:
        return self.config.train_blind_spot

    @property
    def inference_blind_spot(self) -> int:
        return self.config.inference_blind_spot

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.network.parameters())

    def summary(self) -> str:
        c = self.config
        t = c.training
        lines = [
            f"napari-bsdenoise model ({c.network.method}), {self.n_parameters / 1e6:.3f} M parameters, "
            f"width {c.network.width}, depth {c.network.depth}, {c.network.in_channels} channel(s) in"
            + ("" if c.network.spatial_dims != 3 else
               f", 2.5-D network for 3-D volumes (Z, Y, X; each plane blind, {c.network.z_context} plane(s) on each "
               "side seen whole)"
               if c.network.z_context else ", 3-D (Z, Y, X volumes)"),
            registry.get(c.network.method).describe(self),
            f"data axes {c.axes}, channels {c.channel_mode}, loss {c.loss}, "
            f"normalisation mean {[round(m, 4) for m in c.normalization.mean]} std "
            f"{[round(s, 4) for s in c.normalization.std]}",
        ]
        if t:
            lines.append(
                f"trained {t.get('steps', '?')} steps in {t.get('seconds', 0):.0f} s on {t.get('device', '?')}, "
                f"best validation loss {t.get('best_val_loss', float('nan')):.5g} at step {t.get('best_step', '?')}"
            )
        if c.noise:
            lines.append(f"noise diagnostic: {c.noise.get('summary', '')}")
        auto = (t or {}).get("auto")
        if auto:
            lines.append(f"made by auto_denoise: {auto.get('method')} ({auto.get('method_reason', '')}); "
                         f"{'distilled' if auto.get('distill') else 'no student'}; budget "
                         f"{auto.get('budget', {}).get('total', 0):.0f} s")
        hot = (t or {}).get("hot_pixels")
        if hot:
            lines.append(f"training data: {hot['repaired']} hot/dead pixel(s) repaired before training; denoise "
                         "repairs its input the same way (hot_pixels='auto')")
        lines.append(f"written by napari-bsdenoise {c.version}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"BlindSpotModel(method={c.network.method!r}, channels={c.network.in_channels}, "
            f"train_blind_spot={c.train_blind_spot}, inference_blind_spot={c.inference_blind_spot})"
        )

    # -- files -------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model to ``path`` (``.safetensors``; weights + JSON config, no pickle)."""
        return modelfile.write(path, self.network.state_dict(), self.config.to_dict())

    def export_bioimageio(self, path, **options) -> Path:
        """Write the model as a BioImage Model Zoo package (``.zip``) and return its path: see
        :func:`napari_bsdenoise.export_bioimageio` for the options (``blind_spot=``, ``format=``, ``image=`` ...)."""
        return EXPORTERS["bioimageio"](self, path, **options)

    @classmethod
    def load(cls, path) -> BlindSpotModel:
        tensors, raw = modelfile.read(path)
        try:
            config = ModelConfig.from_dict(raw)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: the model config is invalid ({exc})") from None
        model = cls(config)
        try:
            model.network.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            msg = str(exc).splitlines()[0]
            raise ModelFileError(f"{path}: weights do not match the stored architecture ({msg})") from None
        model.network.eval()
        return model


def load_model(path) -> BlindSpotModel:
    """Load a model file written by :meth:`BlindSpotModel.save`.

    Nothing in the file is executed; a missing, truncated, corrupted or foreign
    file (e.g. a PyTorch pickle) raises :class:`~napari_bsdenoise.errors.ModelFileError`.
    """
    return BlindSpotModel.load(path)
