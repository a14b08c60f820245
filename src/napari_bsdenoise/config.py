"""Validated configuration of a model: what is stored in every model file.

One dataclass per concern; ``to_dict``/``from_dict`` give the JSON stored in
the safetensors header and printed by ``napari-bsdenoise info``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields

from . import registry
from .errors import InputError

# Network size presets: (encoder width, pooling levels).  "tiny" is the CPU
# default and "small" the GPU default (network="auto", api.py; speeds in
# docs/speed.md); "paper" is the published AT-BSN teacher (1.27 M parameters for RGB).
NETWORK_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"width": 16, "depth": 3},
    "small": {"width": 32, "depth": 4},
    "paper": {"width": 48, "depth": 5},
}
# Volumes (spatial_dims=3): the 2.5-D AT-BSN (nn/atbsn25d.py: each plane blind, z_context planes on each
# side seen whole) at the 2-D sizes, ahead of the full 3-D network at equal time (docs/volumes.md); and,
# "-full3d", the full 3-D network, narrower and shallower: a 3x3x3 convolution costs 3x a 3x3 one, six
# looks run instead of four, and each level pools Z too (Z is padded to 2**depth).
NETWORK_PRESETS_3D: dict[str, dict[str, int]] = {
    "tiny": {"width": 16, "depth": 3, "z_context": 2},  # z_context 1 / 2 / 3: 38.67 / 38.98 / 38.80 dB
    "small": {"width": 32, "depth": 4, "z_context": 2},
    "paper": {"width": 48, "depth": 5, "z_context": 2},
    "tiny-full3d": {"width": 8, "depth": 2},  # 37.9 dB vs 37.5 for width 12 at 120 s on membranes_pg
    "small-full3d": {"width": 16, "depth": 3},
    "paper-full3d": {"width": 32, "depth": 4},
}
#: Network names that only volumes take (the CLI's and the Train panel's choices).
VOLUME_PRESETS = tuple(k for k in NETWORK_PRESETS_3D if k not in NETWORK_PRESETS)
# The same preset names for D-BSN (method="dbsn"): (branch width, dilated blocks per branch).  "tiny"
# trains at ~5 steps/s (batch 8 of 64x64 grey patches, one CPU thread); "paper" has the official
# width and depth (with lighter blocks than the official 6.6 M-parameter network).
DBSN_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"width": 24, "depth": 2},
    "small": {"width": 48, "depth": 4},
    "paper": {"width": 96, "depth": 8},
}
MAX_DBSN_DEPTH = 16
MAX_UNET_DEPTH = 6  # pooling levels of the UNets (AT-BSN, student, BSGD branches)
LOSSES = ("l1", "l2", "nll")  # nll: D-BSN (L2 for the blind-spot mean, Gaussian NLL for the variances)
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class NetworkConfig:
    """Architecture of the network (enough to rebuild it before loading weights)."""

    method: str = "atbsn"
    in_channels: int = 1
    out_channels: int = 1
    width: int = 32
    depth: int = 4
    spatial_dims: int = 2  # 2: slices (Z and T are samples); 3: volumes, Z is a network axis
    z_context: int = 0  # 3-D only: planes seen whole on each side (the 2.5-D network); 0: the full 3-D one

    def validate(self) -> NetworkConfig:
        spec = registry.get(self.method)  # an InputError naming the registered methods
        for name in ("in_channels", "out_channels", "width", "depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(f"network {name} must be a positive integer, got {v!r}")
        if self.spatial_dims not in spec.spatial_dims:
            raise InputError(f"method {self.method!r} has no {self.spatial_dims}-D network (spatial_dims "
                             f"{' or '.join(map(str, spec.spatial_dims))}); 3-D volumes train with method='atbsn'")
        if isinstance(self.z_context, bool) or not isinstance(self.z_context, int) or self.z_context < 0:
            raise InputError(f"network z_context must be a non-negative integer, got {self.z_context!r}")
        if self.z_context and self.spatial_dims != 3:
            raise InputError(f"network z_context={self.z_context} (planes seen on each side) needs a 3-D network "
                             "(spatial_dims=3)")
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
    train_blind_spot: int | tuple = 1  # odd side, or (y, x) sides (config.check_blind_spot)
    inference_blind_spot: int | tuple = 1
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
        if self.loss not in registry.get(self.network.method).losses:
            raise InputError(f"loss {self.loss!r} does not apply to method {self.network.method!r} "
                             "(D-BSN trains with 'nll', AT-BSN with 'l1' or 'l2')")
        registry.get(self.network.method).validate_config(self)
        for name in ("train_blind_spot", "inference_blind_spot"):  # a JSON list becomes a (y, x) tuple
            spot = check_blind_spot(getattr(self, name), name)
            n = self.network.spatial_dims
            if isinstance(spot, tuple) and len(spot) != n:
                raise InputError(f"{name}={spot} does not fit a {n}-D network (sides {'(y, x)' if n == 2 else '(z, y, x)'})")
            setattr(self, name, spot)
        return self


def _check_side(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be 0 or an odd integer (1, 3, 5, ...), or a (y, x) pair of them, got {value!r}")
    v = int(value)
    if v < 0 or (v > 0 and v % 2 == 0):
        raise InputError(
            f"{name} must be 0 or an odd integer (1, 3, 5, ...), got {v}: the blind spot is a rectangle of "
            "odd sides centred on the pixel"
        )
    if v > 63:
        raise InputError(f"{name}={v} is larger than any sensible blind spot (at most 63)")
    return v


def check_blind_spot(value, name: str = "blind_spot"):
    """Validate a blind spot: 0 (non-blind), an odd side ``s`` (an ``s x s`` square) or a ``(y, x)`` pair
    of odd sides (a rectangle, for noise correlated more along one axis than the other).

    Returns an ``int`` for a square (``(5, 5)`` becomes ``5``) and a ``(y, x)`` tuple otherwise, so
    square blind spots keep their 0.1 form in model files.

    >>> check_blind_spot(3), check_blind_spot([1, 9]), check_blind_spot((5, 5))
    (3, (1, 9), 5)
    """
    if isinstance(value, (tuple, list)):
        if len(value) not in (2, 3):
            raise InputError(f"{name} must be an odd integer, a (y, x) pair or, for a 3-D model, a (z, y, x) "
                             f"triple, got {len(value)} values {value!r}")
        sides = tuple(_check_side(v, name) for v in value)
        if len({v == 0 for v in sides}) > 1:
            raise InputError(f"{name}={tuple(value)} mixes 0 with a blind side: a blind spot of 0 along one axis "
                             "sees the pixel it predicts; use 0 (non-blind) or odd sides >= 1 on every axis")
        return sides[0] if len(set(sides)) == 1 else sides
    return _check_side(value, name)


def parse_blind_spot(text: str, name: str = "blind_spot"):
    """A blind spot from text, as the CLI and the widgets take it: ``"3"`` or ``"1x9"`` (y x x).

    >>> parse_blind_spot("1x9"), parse_blind_spot(" 5 ")
    ((1, 9), 5)
    """
    parts = str(text).lower().replace(" ", "").replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"{name} must be an odd number such as 3, or YxX odd sides such as 1x9, got {text!r}") from None
    return check_blind_spot(values[0] if len(values) == 1 else values, name)


def blind_spot_sides(value, ndim: int = 2) -> tuple[int, ...]:
    """``(y, x)`` sides of a validated blind spot (an int is a square), ``(z, y, x)`` with ``ndim=3`` (an int
    is a cube; a 2-D ``(y, x)`` spot is one slice thick).  A ``(z, y, x)`` triple is returned as it is."""
    if isinstance(value, tuple):
        return (1,) * (ndim - len(value)) + value if len(value) < ndim else value
    return (int(value),) * ndim


def per_axis(f, *spots):
    """The blind spot whose side along each axis is ``f`` of the given blind spots' sides there
    (``per_axis(min, (1, 9), 3) == (1, 3)``), validated."""
    ndim = max(len(s) if isinstance(s, tuple) else 2 for s in spots)
    return check_blind_spot([f(*sides) for sides in zip(*(blind_spot_sides(s, ndim) for s in spots))])


def blind_spot_side(value) -> int:
    """The larger side of a validated blind spot (what patch sizes and halos must hold)."""
    return max(blind_spot_sides(value))


def blind_spot_sort_key(value) -> tuple[int, int, int]:
    """Orders blind spots by their larger side, then area (``sorted(spots, key=blind_spot_sort_key)``)."""
    sides = blind_spot_sides(value)
    return max(sides), math.prod(sides), sides[-2]


def format_blind_spot(value) -> str:
    """``"3"`` for a square (or cube), ``"1x9"`` (y x x) for a rectangle, ``"1x3x3"`` (z x y x x) for a box."""
    sides = blind_spot_sides(value)
    return str(sides[0]) if len(set(sides)) == 1 else "x".join(map(str, sides))


def check_unet_depth(cfg: ModelConfig) -> None:
    """The rule every UNet-based method shares: at most :data:`MAX_UNET_DEPTH` pooling levels."""
    if cfg.network.depth > MAX_UNET_DEPTH:
        raise InputError(f"network depth must be at most {MAX_UNET_DEPTH} pooling levels, got {cfg.network.depth}")
