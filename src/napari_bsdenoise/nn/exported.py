"""The self-contained denoiser written to a BioImage Model Zoo package (:mod:`napari_bsdenoise.engine.export`).

:class:`ExportedDenoiser` takes a ``(batch, channel, y, x)`` float tensor in the data's raw units and
returns the denoised tensor in the same units, computing what :func:`napari_bsdenoise.denoise` computes
for one 2-D image at one blind spot: the training data's normalisation, the network at that blind spot
(any height and width: the input is padded to the network's pooling multiple as the network pads
itself), the noisy-input fusion where it applies (:mod:`.fusion`), and channel-independent models
run channel by channel.  Not included: the hot-pixel repair of the input (:mod:`.outliers`) and
tiling (one pass over the whole input).

Its constructor takes JSON-compatible keywords only, so a ``pytorch_state_dict`` weights entry can
rebuild it from the package's ``rdf.yaml`` (``architecture: {import_from: napari_bsdenoise.nn.exported,
callable: ExportedDenoiser, kwargs: ...}``).  :meth:`ExportedDenoiser.to_torchscript` gives the
TorchScript module: the network is traced (shape-generic once the input is on its pooling grid),
everything around it (padding, cropping, normalisation, fusion) is scripted, so the module runs on
any device it is loaded to.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .. import registry
from ..config import NetworkConfig
from .fusion import FusionParams
from .student import StudentUNet


class AtBlindSpot(nn.Module):
    """``network(x, blind_spot)`` with the blind spot fixed (a one-input module, traceable)."""

    def __init__(self, network: nn.Module, blind_spot):
        super().__init__()
        self.network = network
        # an odd side, or (y, x) sides (a list, read back from YAML)
        self.blind_spot = tuple(map(int, blind_spot)) if isinstance(blind_spot, (list, tuple)) else int(blind_spot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x, self.blind_spot)


class NoiseFusion(nn.Module):
    """The noisy-input fusion of :func:`.fusion.fuse` (``forward(x, f)``), in TorchScript-compatible form
    with the noise curve's knots as buffers, so that the module follows its input's device.

    The same function as :func:`~.fusion.fuse` (a traced ``fuse`` would bake its knots in on the
    tracing device, and its ``searchsorted`` has no ONNX operator), equal up to float rounding;
    :func:`napari_bsdenoise.engine.export.export_bioimageio` checks the exported module against
    :func:`napari_bsdenoise.denoise` on the test image.
    """

    def __init__(self, params: FusionParams):
        super().__init__()
        self.register_buffer("intensities", torch.tensor(params.intensities, dtype=torch.float32))
        self.register_buffer("variances", torch.tensor(params.variances, dtype=torch.float32))
        self.knots = int(self.intensities.shape[1])
        self.window = int(params.window)
        self.margin = float(params.margin)

    def noise_variance(self, f: torch.Tensor) -> torch.Tensor:
        """The noise variance at intensity ``f`` (N, C, Y, X): piecewise linear between the knots and constant
        beyond them, per channel, as a sum of clamped ramps (elementwise operations only: no search, so
        that torch's ONNX exporter takes it too)."""
        c = f.shape[1]
        mu, var = self.intensities, self.variances
        if mu.shape[0] != c:
            mu, var = mu[:1].expand(c, -1), var[:1].expand(c, -1)
        out = torch.zeros_like(f) + var[:, 0].reshape(1, c, 1, 1)
        for k in range(self.knots - 1):
            lo, step = mu[:, k].reshape(1, c, 1, 1), (mu[:, k + 1] - mu[:, k]).reshape(1, c, 1, 1)
            rise = (var[:, k + 1] - var[:, k]).reshape(1, c, 1, 1)
            out = out + rise / step.clamp_min(1e-12) * torch.minimum(torch.relu(f - lo), step)
        return out

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        x, f = x.float(), f.float()
        r = x - f
        energy = (r * r / self.noise_variance(f)).mean(dim=1, keepdim=True)
        k = self.window
        v = F.avg_pool2d(energy, k, stride=1, padding=k // 2, count_include_pad=False)
        gain = (1.0 - self.margin / v.clamp_min(1e-12)).clamp(0.0, 1.0)
        return f + gain * r


class NoFusion(nn.Module):
    """The network's output alone (``forward(x, f)`` is ``f``)."""

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return f


def fusion_kwargs(params: FusionParams | None) -> dict | None:
    """``params`` as the JSON-compatible ``fusion=`` keyword of :class:`ExportedDenoiser`."""
    if params is None:
        return None
    return {"intensities": [list(map(float, r)) for r in params.intensities],
            "variances": [list(map(float, r)) for r in params.variances],
            "window": int(params.window), "margin": float(params.margin)}


class ExportedDenoiser(nn.Module):
    """Raw-unit ``(B, C, Y, X)`` in, denoised ``(B, C, Y, X)`` out (module docstring).

    Parameters
    ----------
    method, in_channels, out_channels, width, depth
        The network (:class:`~napari_bsdenoise.config.NetworkConfig` fields).
    blind_spot : int or [int, int]
        The fixed inference blind spot (an odd side, or ``(y, x)`` sides).
    mean, std : list of float
        The normalisation per data channel (``C`` of the input).
    independent : bool
        The network takes one channel and runs on each of the ``C`` data channels.
    fusion : dict, optional
        :class:`~napari_bsdenoise.nn.fusion.FusionParams` fields (:func:`fusion_kwargs`): fuse the
        output with the noisy input; None: the network's output alone.
    """

    __jit_unused_properties__ = ["network", "network_channels"]

    def __init__(self, method: str, in_channels: int, out_channels: int, width: int, depth: int,
                 blind_spot, mean: list, std: list, independent: bool = False, fusion: dict | None = None):
        super().__init__()
        network = registry.build_network(NetworkConfig(method=method, in_channels=int(in_channels),
                                                       out_channels=int(out_channels), width=int(width),
                                                       depth=int(depth)))
        self.core = AtBlindSpot(network.eval(), blind_spot)
        if fusion:
            params = FusionParams(tuple(tuple(map(float, r)) for r in fusion["intensities"]),
                                  tuple(tuple(map(float, r)) for r in fusion["variances"]),
                                  int(fusion["window"]), float(fusion["margin"]))
            self.fusion = NoiseFusion(params)
        else:
            self.fusion = NoFusion()
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).reshape(1, -1, 1, 1))
        self.independent = bool(independent)
        self.multiple = int(getattr(network, "multiple", 1))
        # pad as the network pads itself: zeros for the blind-spot networks (no pixel may leak into a
        # blind spot), reflection (replication when the image is too small) for the non-blind student
        self.reflect = isinstance(network, StudentUNet)

    @property
    def network(self) -> nn.Module:
        return self.core.network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        z = (x.float() - self.mean) / self.std
        if self.independent:
            z = z.reshape(b * c, 1, h, w)
        ph = (self.multiple - h % self.multiple) % self.multiple
        pw = (self.multiple - w % self.multiple) % self.multiple
        p = z
        if ph > 0 or pw > 0:
            if self.reflect and ph < h and pw < w:
                p = F.pad(z, [0, pw, 0, ph], mode="reflect")
            elif self.reflect:
                p = F.pad(z, [0, pw, 0, ph], mode="replicate")
            else:
                p = F.pad(z, [0, pw, 0, ph])
        f = self.core(p)[:, :, :h, :w]
        f = self.fusion(z, f)
        if self.independent:
            f = f.reshape(b, c, h, w)
        return f * self.std + self.mean

    def to_torchscript(self) -> torch.jit.ScriptModule:
        """This module in TorchScript (``self`` is unchanged).

        The network at its blind spot is traced on a non-square input on the pooling grid (AT-BSN's
        four rotations are then traced in the pairs that serve every shape); the padding, cropping,
        normalisation, channel folding and fusion of :meth:`forward` are scripted.
        """
        import copy

        m = self.multiple
        side = max(2, -(-32 // m)) * m
        example = torch.randn(1, self.network_channels, side, side + m, generator=torch.Generator().manual_seed(0))
        scripted = copy.copy(self)  # a shallow copy: the same weights, its own submodule slots
        scripted._modules = dict(self._modules)
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer's warnings are about the shape decisions that the scripted forward takes
            # (padding to the pooling grid) or that hold for every input on the grid (AT-BSN's
            # rotation pairs); engine.export checks the result against denoise on another shape
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*is deprecated.*")
            scripted.core = torch.jit.trace(self.core, example, check_trace=False)
            return torch.jit.script(scripted)

    @property
    def network_channels(self) -> int:
        """Channels the network takes (1 for channel-independent models)."""
        return 1 if self.independent else int(self.mean.shape[1])
