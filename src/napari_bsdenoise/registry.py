"""The registry of methods: one :class:`Method` record per network family, looked up by name.

Each method lives in its own module under :mod:`napari_bsdenoise.methods` and declares there, in
one place, its size presets, its network factory, its trainer and its inference rules; importing
:mod:`napari_bsdenoise.methods` registers them (one line each in ``methods/__init__.py``).  Lower
layers (the model object, the engine) reach a method only through this table, so the arrows of
the package keep pointing one way (docs/architecture.md).  No torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .errors import InputError


def _any_blind_spot(s: int) -> None:
    """Accept every inference blind spot (a tunable blind-spot network)."""


def _no_check(cfg) -> None:
    """No method-specific configuration rule."""


@dataclass(frozen=True)
class Method:
    """What the rest of the package needs to know about one method.

    Callables take the objects of the core (:class:`~napari_bsdenoise.config.ModelConfig`,
    :class:`~napari_bsdenoise.model.BlindSpotModel`) so that no layer needs to import a method.
    """

    name: str
    title: str  # one line, shown by the CLI and the widgets
    presets: Mapping[str, Mapping[str, int]]  # size name -> NetworkConfig fields (width, depth)
    build_network: Callable  # (NetworkConfig) -> torch.nn.Module
    describe: Callable  # (model) -> the blind-spot line of model.summary()
    make_trainer: Callable | None = None  # (image, **options) -> trainer; None: not made by train()
    check_inference_blind_spot: Callable[[int], None] = _any_blind_spot  # raises InputError
    validate_config: Callable = _no_check  # (ModelConfig) -> None, raises InputError
    losses: tuple[str, ...] = ("l1", "l2")
    # (model, blind_spot, norm, fusion) -> (FusionParams or None, reason it does not apply or None);
    # None: outputs are never fused with the noisy input, for ``no_fusion_reason``
    fusion: Callable | None = None
    no_fusion_reason: str = ""
    # as a distillation teacher: (ModelConfig) -> the default teacher blind spots; None: cannot teach
    teacher_blind_spots: Callable | None = None
    student_network: Callable | None = None  # (ModelConfig) -> student NetworkConfig fields for "auto"
    teacher_warm_start: bool = False  # its network's UNet weights can start a student (or a BSGD branch)
    guided: bool = False  # trained against a guide model (BSGD: train_bsgd, the Refine panel), not by the Train panel
    # (ModelConfig) -> [(blind_spot, fusion), ...]: what the safety check of denoise tries when the default
    # settings are not estimated to improve on the input (engine/safety.py); None: nothing else to try
    fallbacks: Callable | None = None
    # (ModelConfig) -> (blind_spot, fusion) of an output blind to the noise (its residual where the result is
    # flat is noise alone: the safety check reads this image's noise level there); None: the model has none
    reference: Callable | None = None
    spatial_dims: tuple[int, ...] = (2,)  # the network ranks it builds: 2 (slices), 3 (volumes)
    extras: Mapping[str, object] = field(default_factory=dict)


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (a name is registered once)."""
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"method {method.name!r} is registered twice")
    _METHODS[method.name] = method
    return method


def names(*, trainable: bool | None = None) -> tuple[str, ...]:
    """Registered method names (``trainable=True``: those that :func:`napari_bsdenoise.train` makes)."""
    return tuple(n for n, m in _METHODS.items() if trainable is None or (m.make_trainer is not None) == trainable)


def get(name: str) -> Method:
    """The registered method ``name``, or an :class:`InputError` that lists the known ones."""
    try:
        return _METHODS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown method {name!r}; available: {', '.join(map(repr, _METHODS))}") from None


def build_network(cfg):
    """Instantiate the network described by a :class:`~napari_bsdenoise.config.NetworkConfig`."""
    return get(cfg.method).build_network(cfg)
