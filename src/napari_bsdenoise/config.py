"""Validated configuration of a model: what is stored in every model file.

One dataclass per concern; ``to_dict``/``from_dict`` give the JSON stored in
the safetensors header and printed by ``napari-bsdenoise info``.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field, fields

from .errors import InputError

# Network size presets: (encoder width, pooling levels).  "tiny" is the CPU
# default and "small" the GPU default (network="auto", api.py; speeds in
# docs/speed.md); "paper" is the published AT-BSN teacher (1.27 M parameters for RGB).
NETWORK_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"width": 16, "depth": 3},
    "small": {"width": 32, "depth": 4},
    "paper": {"width": 48, "depth": 5},
}
# The same preset names for D-BSN (method="dbsn"): (branch width, dilated blocks per branch).  "tiny"
# trains at ~5 steps/s (batch 8 of 64x64 grey patches, one CPU thread); "paper" has the official
# width and depth (with lighter blocks than the official 6.6 M-parameter network).
DBSN_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"width": 24, "depth": 2},
    "small": {"width": 48, "depth": 4},
    "paper": {"width": 96, "depth": 8},
}
MAX_DBSN_DEPTH = 16
LOSSES = ("l1", "l2", "nll")  # nll: D-BSN (L2 for the blind-spot mean, Gaussian NLL for the variances)
# atbsn: tunable blind spot; dbsn: 1-pixel dilated blind spot + noise model + fusion;
# student: non-blind UNet distilled from an AT-BSN or D-BSN teacher
METHODS = ("atbsn", "dbsn", "student", "bsgd")  # bsgd: the two diffusion branches of napari_bsdenoise.bsgd
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class NetworkConfig:
    """Architecture of the network (enough to rebuild it before loading weights)."""

    method: str = "atbsn"
    in_channels: int = 1
    out_channels: int = 1
    width: int = 32
    depth: int = 4

    def validate(self) -> NetworkConfig:
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}; choose one of {METHODS}")
        for name in ("in_channels", "out_channels", "width", "depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(f"network {name} must be a positive integer, got {v!r}")
        if self.method == "dbsn":
            if self.depth > MAX_DBSN_DEPTH:
                raise InputError(f"D-BSN depth must be at most {MAX_DBSN_DEPTH} blocks, got {self.depth}")
            if self.in_channels != self.out_channels:
                raise InputError("D-BSN needs as many output channels as input channels")
        elif self.depth > 6:
            raise InputError(f"network depth must be at most 6 pooling levels, got {self.depth}")
        return self


@dataclass
class Normalization:
    """Per-channel affine normalisation ``(x - mean) / std`` fixed at training time."""

    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])

    def validate(self) -> Normalization:
        if len(self.mean) != len(self.std) or not self.mean:
            raise InputError("normalisation mean and std must be non-empty lists of equal length")
        if any(not (s > 0) for s in self.std):
            raise InputError(f"normalisation std must be positive, got {self.std}")
        return self


@dataclass
class ModelConfig:
    """Everything needed to use a trained model on new data."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    normalization: Normalization = field(default_factory=Normalization)
    channel_mode: str = "joint"  # "joint" (RGB: one multi-channel network) or "independent"
    train_blind_spot: int = 1
    inference_blind_spot: int = 1
    loss: str = "l2"
    axes: str = "YX"  # axes of the training data
    noise: dict | None = None  # the noise-correlation diagnostic of the training data
    training: dict = field(default_factory=dict)  # provenance: steps, seconds, losses, seed, data
    version: str = ""
    format_version: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown model config keys {sorted(unknown)}")
        d["network"] = NetworkConfig(**d.get("network", {}))
        d["normalization"] = Normalization(**d.get("normalization", {}))
        return cls(**d).validate()

    def validate(self) -> ModelConfig:
        self.network.validate()
        self.normalization.validate()
        if self.channel_mode not in ("joint", "independent"):
            raise InputError(f"channel_mode must be 'joint' or 'independent', got {self.channel_mode!r}")
        if self.loss not in LOSSES:
            raise InputError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if (self.loss == "nll") != (self.network.method == "dbsn") and self.network.method != "student":
            raise InputError(f"loss {self.loss!r} does not apply to method {self.network.method!r} "
                             "(D-BSN trains with 'nll', AT-BSN with 'l1' or 'l2')")
        if self.network.method == "dbsn" and (self.train_blind_spot != 1 or self.inference_blind_spot > 1):
            raise InputError("D-BSN has a fixed 1-pixel blind spot: it is trained at 1 and applied at 0 "
                             "(fused with the noisy pixel) or 1 (the blind-spot mean alone)")
        for name in ("train_blind_spot", "inference_blind_spot"):
            check_blind_spot(getattr(self, name), name)
        return self


def check_blind_spot(value, name: str = "blind_spot") -> int:
    """Validate a blind-spot side: 0 (non-blind) or an odd positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be 0 or an odd integer (1, 3, 5, ...), got {value!r}")
    v = int(value)
    if v < 0 or (v > 0 and v % 2 == 0):
        raise InputError(
            f"{name} must be 0 or an odd integer (1, 3, 5, ...), got {v}: the blind spot is a square of "
            "odd side centred on the pixel"
        )
    if v > 63:
        raise InputError(f"{name}={v} is larger than any sensible blind spot (at most 63)")
    return v
