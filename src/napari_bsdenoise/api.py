"""The public API: validate inputs, pick defaults, call the engine.

Scripts, the napari console, the CLI and the widgets all go through these
functions; nothing heavy happens here.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ._version import __version__
from .axes import (
    SampleLayout,
    default_channel_mode,
    fold_channels,
    from_samples,
    to_samples,
    unfold_channels,
    validate_axes,
)
from .config import DBSN_PRESETS, NETWORK_PRESETS, ModelConfig, NetworkConfig, Normalization, check_blind_spot
from .errors import InputError
from .model import BlindSpotModel

# Defaults chosen by measurement (benchmarks/bench_speed.py, docs/benchmarks.md).
DEFAULT_STEPS = 2000
DEFAULT_PATCH_SIZE = 64
DEFAULT_BATCH_SIZE = 8
DEFAULT_LEARNING_RATE = 3e-3
MIN_TRAIN_SIDE = 16


# -- input checks -----------------------------------------------------------------------------
def check_image(image, *, name: str = "image") -> np.ndarray:
    """Return ``image`` as an array (no copy when possible) or raise a specific :class:`InputError`."""
    if image is None:
        raise InputError(f"{name} is None")
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        raise InputError(f"{name} is a path; read it first (e.g. tifffile.imread) or use the CLI")
    arr = np.asarray(image)
    if arr.dtype == object:
        raise InputError(f"{name} must be a numeric array, got an object array (ragged list?)")
    if arr.dtype == bool:
        raise InputError(f"{name} is boolean (a mask?); denoising needs intensities (uint8, uint16, float ...)")
    if np.iscomplexobj(arr):
        raise InputError(f"{name} is complex; pass the magnitude or the real part explicitly")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{name} has unsupported dtype {arr.dtype}")
    if arr.ndim < 2:
        raise InputError(f"{name} must have at least 2 dimensions (Y, X), got shape {arr.shape}")
    if arr.ndim > 5:
        raise InputError(
            f"{name} is {arr.ndim}-D (shape {arr.shape}); at most 5 axes among T, Z, C, Y, X are supported"
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(arr.size - finite.sum() - n_nan)
            raise InputError(
                f"{name} contains {n_nan} NaN and {n_inf} infinite values; replace them (e.g. np.nan_to_num) first"
            )
    return arr


def _layout(arr: np.ndarray, axes: str | None, channels: str | None) -> SampleLayout:
    axes = validate_axes(axes, arr.shape)
    mode = channels or default_channel_mode(axes, arr.shape, arr.dtype)
    if mode not in ("joint", "independent"):
        raise InputError(f"channels must be 'joint', 'independent' or None, got {channels!r}")
    return SampleLayout(axes, tuple(arr.shape), mode)


def _inference_layout(x, model: BlindSpotModel, axes: str | None, blind_spot) -> tuple[SampleLayout, int]:
    """Layout and blind spot for denoising ``x`` (any array-like with shape) with ``model``, checked."""
    cfg = model.config
    layout = _layout(x, axes, cfg.channel_mode)
    s = cfg.inference_blind_spot if blind_spot is None else check_blind_spot(blind_spot)
    if model.method == "dbsn" and s > 1:
        raise InputError(f"blind_spot={s} does not apply: D-BSN has a fixed 1-pixel blind spot (0 = the "
                         "posterior-mean fusion with the noisy pixel, the default; 1 = the blind-spot mean alone)")
    if model.is_student and s != 0:
        raise InputError(f"blind_spot={s} does not apply: this model is a non-blind distilled student "
                         "(use its teacher for a tunable blind spot)")
    h, w = layout.spatial_shape
    if min(h, w) <= max(s, 2):
        raise InputError(f"the image ({h}x{w} pixels) is too small for a blind spot of {s} pixels")
    if cfg.channel_mode == "joint" and layout.n_channels != cfg.network.in_channels:
        raise InputError(
            f"the model takes {cfg.network.in_channels}-channel images and this one has {layout.n_channels} "
            f"(axes {layout.axes}, shape {tuple(x.shape)})"
        )
    return layout, s


def _fusion(model: BlindSpotModel, blind_spot: int, norm: Normalization, fusion):
    """The :class:`~napari_bsdenoise.nn.fusion.FusionParams` for denoising with ``model`` at
    ``blind_spot``, or None when the output is the network's alone.

    ``fusion="auto"`` fuses AT-BSN outputs at blind spots >= 1 when the model's training data had
    spatially correlated noise (camera sRGB; measured: +1.3 dB on Nam, +0.4 dB on SIDD); for
    pixel-independent noise it lost 0.3 dB on W2S, where the noisy pixel adds little to a 1-pixel blind
    spot.  ``True`` insists (and explains why it cannot), ``False`` never.
    """
    from .nn.fusion import fusion_params

    if fusion not in ("auto", True, False):
        raise InputError(f"fusion must be 'auto', True or False, got {fusion!r}")
    cfg = model.config
    if fusion is False:
        return None
    why_not = None
    if cfg.network.method != "atbsn":
        why_not = (f"a {model.method} model (fusion with the noisy input applies to AT-BSN blind-spot outputs; "
                   "D-BSN fuses with its own noise model and students see the noisy pixel already)")
    elif blind_spot == 0:
        why_not = "blind_spot=0 (the non-blind output already sees the noisy pixel)"
    elif not cfg.noise:
        why_not = "a model without a noise estimate of its training data"
    if why_not is not None:
        if fusion is True:
            raise InputError(f"fusion=True does not apply to {why_not}")
        return None
    if fusion == "auto" and int(cfg.noise.get("correlation_length", 1)) == 0:
        return None  # pixel-independent noise: no measured gain (docs/fusion.md)
    return fusion_params(cfg.noise, norm.mean, norm.std, cfg.network.in_channels)


def _inference_network(model: BlindSpotModel, blind_spot: int, norm: Normalization, fusion):
    """The module that denoises: the model's network, wrapped in the noisy-input fusion if it applies."""
    from .nn.fusion import FusedNetwork

    params = _fusion(model, blind_spot, norm, fusion)
    return model.network if params is None else FusedNetwork(model.network, params)


def _normalization(samples: np.ndarray) -> Normalization:
    """Per-channel mean/std of ``(N, C, Y, X)`` data (subsampled for big data)."""
    flat = samples.transpose(1, 0, 2, 3).reshape(samples.shape[1], -1)
    if flat.shape[1] > 4_000_000:
        flat = flat[:, :: flat.shape[1] // 4_000_000]
    mean = flat.mean(axis=1, dtype=np.float64)
    std = flat.std(axis=1, dtype=np.float64)
    if np.any(std <= 0):
        raise InputError("the image is constant (zero variance): there is no noise to learn from")
    return Normalization([float(m) for m in mean], [float(s) for s in std])


def _normalize(samples: np.ndarray, norm: Normalization) -> np.ndarray:
    mean = np.asarray(norm.mean, np.float32)[None, :, None, None]
    std = np.asarray(norm.std, np.float32)[None, :, None, None]
    return (samples - mean) / std


# -- training ---------------------------------------------------------------------------------
def _check_budget(steps, seconds, patch_size, batch_size, learning_rate) -> int | None:
    """Validate the optimisation settings shared by training and distillation; returns ``steps``."""
    for name, v in (("steps", steps), ("patch_size", patch_size), ("batch_size", batch_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise InputError(f"seconds must be a positive number, got {seconds!r}")
    if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < 1):
        raise InputError(f"learning_rate must be in (0, 1), got {learning_rate!r}")
    return DEFAULT_STEPS if steps is None and seconds is None else steps


def _loop_settings(steps, seconds, patch_size, batch_size, learning_rate, seed, device, precision,
                   validation_fraction) -> dict:
    """Keyword arguments of a Trainer / DistillTrainer, the precision resolved for training."""
    from .device import resolve_precision

    return dict(steps=steps, seconds=seconds, patch_size=patch_size, batch_size=batch_size,
                learning_rate=learning_rate, seed=seed, device=device,
                precision=resolve_precision(precision, device, training=True), val_fraction=validation_fraction)


def _check_trainable_size(layout: SampleLayout) -> None:
    h, w = layout.spatial_shape
    if min(h, w) < MIN_TRAIN_SIDE:
        raise InputError(f"the image is too small to train on: {h}x{w} pixels (Y, X); at least "
                         f"{MIN_TRAIN_SIDE}x{MIN_TRAIN_SIDE} is needed")


TRAIN_METHODS = ("atbsn", "dbsn", "auto")
DEFAULT_METHOD = "atbsn"


def recommended_method(noise) -> str:
    """``"dbsn"`` for pixel-independent noise (a 1-pixel blind spot plus a noise model is optimal),
    ``"atbsn"`` for spatially correlated noise (it needs a larger, tunable blind spot)."""
    return "dbsn" if noise.pixel_independent else "atbsn"


def choose_method(method: str, blind_spot, noise) -> tuple[str, str]:
    """The method to train and why (a sentence stored in the model and shown in the progress)."""
    if method != "auto":
        why = f"method={method!r} chosen by the user"
        if method == "dbsn" and not noise.pixel_independent:
            why += (f"; note: the noise looks spatially correlated over ~{noise.correlation_length} px, which a "
                    "1-pixel blind spot copies (method='atbsn' suits it)")
        return method, why
    if blind_spot != "auto":
        if blind_spot == 1:
            return "dbsn", "auto: blind_spot=1 given (pixel-independent noise): D-BSN"
        return "atbsn", f"auto: blind_spot={blind_spot} given (correlated noise): AT-BSN"
    if noise.pixel_independent:
        return "dbsn", (f"auto: the noise looks pixel-independent (lag-1 correlation x {noise.lag1_x:.2f}, "
                        f"y {noise.lag1_y:.2f}): D-BSN, 1-pixel blind spot with noise model and fusion")
    return "atbsn", (f"auto: the noise looks spatially correlated over ~{noise.correlation_length} px (lag-1 "
                     f"correlation x {noise.lag1_x:.2f}, y {noise.lag1_y:.2f}): AT-BSN with blind spot "
                     f"{noise.train_blind_spot}")


def make_trainer(
    image,
    *,
    axes: str | None = None,
    method: str | None = None,
    blind_spot="auto",
    inference_blind_spot: int | None = None,
    steps: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    device=None,
    network: str | dict = "auto",
    loss: str = "auto",
    patch_size: int = DEFAULT_PATCH_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    precision: str = "auto",
    channels: str | None = None,
    model: BlindSpotModel | None = None,
    validation_fraction: float = 0.1,
    guide: BlindSpotModel | None = None,
):
    """Prepare training and return a :class:`~napari_bsdenoise.engine.train.Trainer`.

    Iterate over the trainer to train (each item is a
    :class:`~napari_bsdenoise.engine.progress.ProgressEvent`); stop whenever you
    like; ``trainer.model`` is the best model so far.  Arguments are those of
    :func:`train`.
    """
    from .device import resolve_device
    from .engine.dbsn import DBSNTrainer
    from .engine.train import Trainer
    from .noise import estimate_noise_correlation_samples

    if method == "bsgd" or (method is None and isinstance(model, BlindSpotModel) and model.method == "bsgd"):
        from .bsgd import make_bsgd_trainer

        if loss != "auto" or precision != "auto":
            raise InputError("BSGD trains with its own diffusion loss in fp32: loss and precision do not apply")
        return make_bsgd_trainer(
            image, guide=guide, axes=axes, blind_spot=blind_spot, inference_blind_spot=inference_blind_spot,
            steps=steps, seconds=seconds, seed=seed, device=device, network=network, patch_size=patch_size,
            batch_size=batch_size, learning_rate=learning_rate, channels=channels, model=model,
            validation_fraction=validation_fraction)
    if guide is not None:
        raise InputError("guide= is for method='bsgd' (the blind-spot model that the diffusion refinement refines)")
    arr = check_image(image)
    if method is None:  # continuing: the model's own method
        method = model.method if isinstance(model, BlindSpotModel) and not model.is_student else DEFAULT_METHOD
    if method not in TRAIN_METHODS:
        raise InputError(f"unknown method {method!r}; available: {', '.join(map(repr, TRAIN_METHODS))}")
    if isinstance(model, BlindSpotModel) and method == "auto" and not model.is_student:
        method = model.method
    steps = _check_budget(steps, seconds, patch_size, batch_size, learning_rate)
    layout = _layout(arr, axes, channels)
    _check_trainable_size(layout)
    h, w = layout.spatial_shape
    if isinstance(blind_spot, str):
        if blind_spot != "auto":
            raise InputError(f"blind_spot must be 'auto' or an odd integer, got {blind_spot!r}")
    else:
        s_train = check_blind_spot(blind_spot, "blind_spot")
        if s_train == 0:
            raise InputError("blind_spot=0 cannot be used for training: a network that sees the pixel it "
                             "predicts learns the identity (train with 1 or more)")
    if inference_blind_spot is not None:
        check_blind_spot(inference_blind_spot, "inference_blind_spot")
    samples = to_samples(arr, layout)
    noise = estimate_noise_correlation_samples(samples)
    method, reason = choose_method(method, blind_spot, noise)
    if method == "dbsn":
        if blind_spot != "auto" and s_train != 1:
            raise InputError(f"D-BSN has a fixed 1-pixel blind spot; blind_spot={s_train} needs method='atbsn'")
        if inference_blind_spot is not None and inference_blind_spot > 1:
            raise InputError("a D-BSN model is applied at blind spot 0 (fused with the noisy pixel) or 1 "
                             f"(the blind-spot mean alone), not {inference_blind_spot}")
        s_train, s_inf = 1, 0
    elif blind_spot == "auto":
        s_train, s_inf = noise.train_blind_spot, noise.inference_blind_spot
    else:
        s_inf = min(noise.inference_blind_spot, s_train)
    if inference_blind_spot is not None:
        s_inf = int(inference_blind_spot)
    if min(h, w) <= 2 * s_train:
        raise InputError(f"the image ({h}x{w}) is too small for a training blind spot of {s_train} pixels")

    dev = resolve_device(device)
    if model is not None:
        if not isinstance(model, BlindSpotModel):
            raise InputError(f"model must be a BlindSpotModel (from train or load_model), got {type(model).__name__}")
        if model.is_student:
            raise InputError("this model is a distilled student: continue it with distill(image, teacher, "
                             "student=model), not with train")
        if model.method != method:
            raise InputError(f"this model is {model.method!r}; it cannot be continued with method={method!r}")
        config = ModelConfig.from_dict(model.config.to_dict())
        config.train_blind_spot, config.inference_blind_spot = s_train, s_inf
        norm = config.normalization
        n_data_c = layout.n_channels
        if config.channel_mode == "joint" and config.network.in_channels != n_data_c:
            raise InputError(f"the model takes {config.network.in_channels} channels, the image has {n_data_c}")
        start = BlindSpotModel(config, copy.deepcopy(model.network))
    else:
        if method == "dbsn":
            if loss not in ("auto", "nll"):
                raise InputError(f"loss={loss!r} does not apply to D-BSN (it trains with the Gaussian NLL: "
                                 "loss='auto' or 'nll')")
            loss = "nll"
        elif loss == "nll":
            raise InputError("loss='nll' is D-BSN's (method='dbsn'); AT-BSN trains with 'l1' or 'l2'")
        if loss == "auto":
            loss = "l1" if (layout.channel_mode == "joint" and layout.n_channels >= 3) else "l2"
        if network == "auto":
            network = "tiny" if dev.type == "cpu" else "small"
        presets = DBSN_PRESETS if method == "dbsn" else NETWORK_PRESETS
        if isinstance(network, str):
            if network not in presets:
                raise InputError(f"network must be one of {sorted(presets)} or a dict, got {network!r}")
            net_kwargs = dict(presets[network])
        else:
            net_kwargs = dict(network)
        n_in = layout.n_channels if layout.channel_mode == "joint" else 1
        norm = _normalization(samples)
        config = ModelConfig(
            network=NetworkConfig(method=method, in_channels=n_in, out_channels=n_in, **net_kwargs),
            normalization=norm,
            channel_mode=layout.channel_mode,
            train_blind_spot=s_train,
            inference_blind_spot=s_inf,
            loss=loss,
            axes=layout.axes,
            version=__version__,
        )
        config.validate()
        import torch

        torch.manual_seed(seed)  # weight initialisation is part of a seeded run
        start = BlindSpotModel(config)
        if method == "dbsn":
            # start the noise model at the diagnostic's noise level (normalised units): the heads then
            # only refine it (signal dependence, uncertainty) instead of spending the budget finding it
            var_n = float(np.mean([(noise.noise_std / s) ** 2 for s in norm.std]))
            start.network.set_initial_variances(var_mu=0.5 * var_n, var_n=var_n)
    config.noise = noise.to_dict()
    config.noise["summary"] = noise.summary()
    config.noise["recommended_method"] = recommended_method(noise)
    config.training = {"data_shape": list(arr.shape), "data_dtype": str(arr.dtype), "data_axes": layout.axes,
                       "method": method, "method_reason": reason}
    data = _normalize(samples, _match_normalization(norm, layout))
    if config.channel_mode == "independent":
        data = fold_channels(data)
    # a patch must hold plenty of context around a large blind spot: with s=9 on
    # 32-px patches most of what a branch sees is padding and training fails
    patch_size = max(patch_size, 8 * s_train)
    return (DBSNTrainer if method == "dbsn" else Trainer)(
        data,
        start,
        **_loop_settings(steps, seconds, patch_size, batch_size, learning_rate, seed, dev, precision,
                         validation_fraction),
    )


def train(image, *, callback=None, **kwargs) -> BlindSpotModel:
    """Train a blind-spot denoiser on a noisy image or stack, with no clean reference.

    Parameters
    ----------
    image : array_like
        Noisy data, uint8/uint16/float, with axes among T, Z, C, Y, X.
    axes : str, optional
        Axes of ``image`` (e.g. ``"ZYX"``, ``"TCYX"``, ``"YXC"`` for RGB).
        Inferred only for 2-D (``YX``) and RGB (``YXC``) arrays.
    method : {"atbsn", "dbsn", "auto"}, optional
        The network family.  ``"atbsn"`` (default): asymmetric tunable blind spot,
        right for spatially correlated noise.  ``"dbsn"``: D-BSN, a 1-pixel dilated
        blind-spot network with a learned noise model whose prediction is fused with
        the noisy pixel at inference (posterior mean), right for pixel-independent
        (raw camera, Poisson-Gaussian) noise; its models are applied at blind spot 0
        (fused, the default) or 1 (the blind-spot mean alone).  ``"auto"`` picks D-BSN
        when :func:`estimate_noise_correlation` finds pixel-independent noise and
        AT-BSN otherwise, and records why (``model.config.training["method_reason"]``).
        When continuing a ``model``, the default is that model's method.  ``"bsgd"``
        trains the two diffusion branches of blind-spot guided diffusion for
        :func:`napari_bsdenoise.refine` (``guide=`` the blind-spot model it refines;
        docs/bsgd.md; experimental).
    blind_spot : "auto" or int
        Training blind spot (odd side in pixels).  ``"auto"`` uses
        :func:`estimate_noise_correlation`: 1 for pixel-independent noise, larger
        for spatially correlated noise.
    inference_blind_spot : int, optional
        Default blind spot stored in the model for :func:`denoise`.
    steps, seconds : int, float, optional
        Training budget; training stops at whichever comes first
        (``steps=2000`` when both are None).  Only a ``steps`` budget is
        exactly reproducible.
    seed : int
        Seeds weights initialisation and patch sampling.
    device : str or torch.device, optional
        ``None`` picks CUDA, then Apple MPS, then the CPU.
    network : {"auto", "tiny", "small", "paper"} or dict
        Size preset, or ``{"width": w, "depth": d}`` (for D-BSN: branch width and
        dilated blocks per branch, ``config.DBSN_PRESETS``).  ``auto`` is ``tiny`` on
        the CPU (about 3x more steps per second than ``small``, which matters
        under a minutes-long budget) and ``small`` on a GPU.
    loss : {"auto", "l2", "l1", "nll"}
        ``auto`` is L1 for RGB camera images, L2 (mean estimate, right for
        photon counts) otherwise; D-BSN always uses ``"nll"`` (L2 for its mean,
        Gaussian NLL for its uncertainty and noise level).
    patch_size, batch_size, learning_rate : optional
        Optimisation settings (patches are at least ``8 * blind_spot`` pixels).
    precision : {"auto", "fp32", "bf16"}
        Autocast precision.
    channels : {"joint", "independent"}, optional
        ``joint`` trains one multi-channel network (RGB); ``independent``
        treats channels as separate images (fluorophores).  Default: joint for
        RGB, independent otherwise.
    model : BlindSpotModel, optional
        Continue training this model instead of starting afresh.
    guide : BlindSpotModel, optional
        ``method="bsgd"`` only: the model whose result the refinement starts from
        (its normalisation and channel mode are reused).
    callback : callable, optional
        Called with each :class:`ProgressEvent`; return ``False`` to stop early.

    Returns
    -------
    BlindSpotModel
        The model with the lowest held-out validation loss.

    Examples
    --------
    >>> import numpy as np, napari_bsdenoise as bsd
    >>> rng = np.random.default_rng(0)
    >>> noisy = (rng.normal(100, 10, (64, 64))).astype("float32")
    >>> model = bsd.train(noisy, steps=5, network="tiny", blind_spot=1)
    >>> bsd.denoise(noisy, model).shape
    (64, 64)
    """
    trainer = make_trainer(image, **kwargs)
    for event in trainer:
        if callback is not None and callback(event) is False:
            break
    return trainer.model


# -- distillation -----------------------------------------------------------------------------
DEFAULT_DISTILL_PATCH_SIZE = 96


def make_distiller(
    image,
    teacher: BlindSpotModel,
    *,
    axes: str | None = None,
    student: str | dict | BlindSpotModel = "auto",
    teacher_blind_spots="auto",
    mode: str = "multi",
    warm_start: bool = True,
    steps: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    device=None,
    patch_size: int = DEFAULT_DISTILL_PATCH_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    precision: str = "auto",
    validation_fraction: float = 0.1,
    precompute=False,
    fusion="auto",
):
    """Prepare distillation and return a :class:`~napari_bsdenoise.engine.distill.DistillTrainer`.

    Iterate over it for :class:`ProgressEvent` items; ``distiller.model`` is the best
    student so far.  Arguments are those of :func:`distill`.
    """
    from .device import resolve_device
    from .engine.distill import MODES, DistillTrainer, default_teacher_blind_spots

    arr = check_image(image)
    if not isinstance(teacher, BlindSpotModel):
        raise InputError(f"teacher must be a BlindSpotModel (from train or load_model), got {type(teacher).__name__}")
    if teacher.is_student:
        raise InputError("the teacher must be a blind-spot model (AT-BSN or D-BSN), not a distilled student")
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    steps = _check_budget(steps, seconds, patch_size, batch_size, learning_rate)
    tcfg = teacher.config
    dbsn = teacher.method == "dbsn"
    if isinstance(teacher_blind_spots, str):
        if teacher_blind_spots != "auto":
            raise InputError(f"teacher_blind_spots must be 'auto' or a list of blind spots, got {teacher_blind_spots!r}")
        # a D-BSN teacher's target is its fused (posterior-mean) output, its blind spot 0
        blind_spots = (0,) if dbsn else default_teacher_blind_spots(tcfg.train_blind_spot)
    else:
        try:
            blind_spots = tuple(sorted({check_blind_spot(b, "teacher_blind_spots") for b in teacher_blind_spots}))
        except TypeError:
            raise InputError(f"teacher_blind_spots must be 'auto' or a list of blind spots, "
                             f"got {teacher_blind_spots!r}") from None
        if not blind_spots:
            raise InputError("teacher_blind_spots is empty")
        if dbsn and not set(blind_spots) <= {0, 1}:
            raise InputError("a D-BSN teacher runs at blind spot 0 (fused, the default target) or 1 (its "
                             f"blind-spot mean), not {list(blind_spots)}")
    layout, _ = _inference_layout(arr, teacher, axes, max(blind_spots))
    _check_trainable_size(layout)

    if isinstance(student, BlindSpotModel):
        if not student.is_student:
            raise InputError("student= must be a distilled student (or a size name), not a blind-spot model")
        if student.config.network.in_channels != tcfg.network.in_channels:
            raise InputError("the student and the teacher take different numbers of channels")
        start = BlindSpotModel(ModelConfig.from_dict(student.config.to_dict()),
                               copy.deepcopy(student.network))
    else:
        if student == "auto" and dbsn:  # the UNet preset of the same name as the teacher's D-BSN preset
            name = next((k for k, v in DBSN_PRESETS.items()
                         if v == {"width": tcfg.network.width, "depth": tcfg.network.depth}), "tiny")
            net_kwargs = dict(NETWORK_PRESETS[name])
        elif student == "auto":
            net_kwargs = {"width": tcfg.network.width, "depth": tcfg.network.depth}
        elif isinstance(student, str):
            if student not in NETWORK_PRESETS:
                raise InputError(f"student must be 'auto', one of {sorted(NETWORK_PRESETS)}, a dict or a "
                                 f"student model, got {student!r}")
            net_kwargs = dict(NETWORK_PRESETS[student])
        elif isinstance(student, dict):
            net_kwargs = dict(student)
        else:
            raise InputError(f"student must be 'auto', a size name, a dict or a student model, got {student!r}")
        config = ModelConfig.from_dict(tcfg.to_dict())
        config.network = NetworkConfig(method="student", in_channels=tcfg.network.in_channels,
                                       out_channels=tcfg.network.out_channels, **net_kwargs)
        config.inference_blind_spot = 0
        if dbsn:
            config.loss = "l2"
        config.version = __version__
        config.validate()
        import torch

        torch.manual_seed(seed)
        start = BlindSpotModel(config)
        warm_start = bool(warm_start) and not dbsn  # D-BSN shares no UNet weights with the student
        if warm_start:
            start.network.warm_start(teacher.network)
    config = start.config
    config.training = {
        "data_shape": list(arr.shape), "data_dtype": str(arr.dtype), "data_axes": layout.axes,
        "distillation": {
            "teacher_blind_spots": list(blind_spots), "mode": mode, "warm_start": bool(warm_start),
            "teacher_method": teacher.method,
            "teacher_train_blind_spot": tcfg.train_blind_spot,
            "teacher_network": dataclasses.asdict(tcfg.network),
            "teacher_training": {k: v for k, v in tcfg.training.items() if k != "history"},
        },
    }
    norm = _match_normalization(config.normalization, layout)
    # the teachers' blind-spot targets fused with the noisy input (in the data's normalised units) as
    # denoise fuses the teacher's output
    fused = _fusion(teacher, 1, norm, fusion)
    config.training["distillation"]["fused_targets"] = fused is not None
    samples = to_samples(arr, layout)
    data = _normalize(samples, norm)
    if config.channel_mode == "independent":
        data = fold_channels(data)
    dev = resolve_device(device)
    if precompute not in ("auto", True, False):
        raise InputError(f"precompute must be True, False or 'auto', got {precompute!r}")
    return DistillTrainer(
        data,
        start,
        teacher=teacher.network,
        blind_spots=blind_spots,
        mode=mode,
        precompute=precompute,
        fusion=fused,
        **_loop_settings(steps, seconds, max(patch_size, 8 * max(blind_spots)), batch_size, learning_rate, seed,
                         dev, precision, validation_fraction),
    )


def distill(image, teacher: BlindSpotModel, *, callback=None, **kwargs) -> BlindSpotModel:
    """Distil a trained blind-spot ``teacher`` into a fast non-blind student (AT-BSN (D)).

    The frozen teacher, run at several blind-spot sizes, gives several targets per
    patch of ``image`` (the same noisy data, no clean reference); the student learns
    to be close to all of them.  It sees the pixel it predicts, so it keeps detail the
    blind spots lose, and one pass of a plain UNet costs several times less than the
    teacher's four rotated passes: the student is what to run over big stacks.

    Parameters
    ----------
    image : array_like
        Noisy data (as for :func:`train`; usually the teacher's own training data).
    teacher : BlindSpotModel
        An AT-BSN or D-BSN model from :func:`train` or :func:`load_model`.  A D-BSN
        teacher's target is its fused (posterior-mean) output.
    axes : str, optional
        As in :func:`train`.
    student : {"auto", "tiny", "small", "paper"}, dict or BlindSpotModel
        Student size (``"auto"``: the teacher's width and depth, so its UNet weights
        give a warm start; ``"paper"`` is the paper's 1 M-parameter student C), or a
        student model to continue distilling.
    teacher_blind_spots : "auto" or list of int
        Blind spots at which the teacher is run.  ``"auto"``: ``0, 1, 3, ...`` up to two
        beyond the teacher's training blind spot for correlated noise (the paper's
        SIDD set is 0-11), the 1-pixel teacher alone for pixel-independent noise.
    mode : {"multi", "mean"}
        ``multi``: mean of the L1/L2 distances to every teacher output (the paper);
        ``mean``: distance to the average teacher output.
    warm_start : bool
        Start from the teacher's UNet weights where shapes match.
    precompute : bool or "auto"
        ``True``: run the teacher once over the whole images (averaged over the 8 dihedral transforms)
        before training and crop its outputs with each patch; each step then costs only the student's
        pass (measured 3.6x faster per step, about equal PSNR at equal time, 0.15-0.2 dB lower at equal
        steps: docs/distillation.md).  ``False`` (default, what the published tables measure): run the
        teacher on every batch.  ``"auto"``: precompute when the inputs plus the teachers' outputs fit
        1 GB and 32 megapixels.  ``config.training["teacher_targets"]`` records which was used.
    fusion : {"auto", True, False}
        Fuse the teacher's blind-spot targets (blind spots >= 1) with the noisy input, as
        :func:`denoise` fuses the teacher's output (``"auto"``: AT-BSN teachers trained on
        spatially correlated noise); the student then learns to keep the detail the blind
        spots miss (measured +1.1 dB on a Nam DSLR crop: docs/fusion.md).  Recorded as
        ``config.training["distillation"]["fused_targets"]``.
    steps, seconds, seed, device, patch_size, batch_size, learning_rate, precision
        As in :func:`train` (patches default to 96 pixels).
    callback : callable, optional
        Called with each :class:`ProgressEvent`; return ``False`` to stop early.

    Returns
    -------
    BlindSpotModel
        The student with the lowest held-out distillation loss; :func:`denoise`,
        ``save`` and :func:`load_model` treat it like any model (it has no blind spot).

    Examples
    --------
    >>> import numpy as np, napari_bsdenoise as bsd
    >>> noisy = np.random.default_rng(0).normal(100, 10, (64, 64)).astype("float32")
    >>> teacher = bsd.train(noisy, steps=5, blind_spot=1)
    >>> student = bsd.distill(noisy, teacher, steps=5)
    >>> student.is_student, bsd.denoise(noisy, student).shape
    (True, (64, 64))
    """
    distiller = make_distiller(image, teacher, **kwargs)
    for event in distiller:
        if callback is not None and callback(event) is False:
            break
    return distiller.model


# -- inference --------------------------------------------------------------------------------
def _match_normalization(norm: Normalization, layout: SampleLayout) -> Normalization:
    """The normalisation to apply to data with ``layout`` (broadcast a single channel's stats)."""
    c = layout.n_channels
    if len(norm.mean) == c:
        return norm
    if len(norm.mean) == 1:
        return Normalization(norm.mean * c, norm.std * c)
    raise InputError(
        f"the model was trained on {len(norm.mean)} channels and the image has {c}; "
        "pass renormalize=True to normalise with the image's own statistics"
    )


def denoise(
    image,
    model: BlindSpotModel,
    *,
    axes: str | None = None,
    blind_spot: int | None = None,
    device=None,
    precision: str = "auto",
    tile_size: int | None = None,
    renormalize: bool = False,
    callback=None,
    out=None,
    dtype: str = "float32",
    chunk_size: int | None = None,
    memory=None,
    scheduler=None,
    client=None,
    overwrite: bool = False,
    fusion="auto",
):
    """Denoise ``image`` with a trained ``model``.

    Parameters
    ----------
    image : array_like, dask/zarr array, or path
        Noisy data with axes among T, Z, C, Y, X (any number of slices).  A dask or
        zarr array, or a path to a ``.zarr`` store or a TIFF file (read lazily with
        ``tifffile``'s zarr interface) is never loaded whole: without ``out=`` the
        result is a lazy dask array (nothing is computed until you ask).
    model : BlindSpotModel
        From :func:`train` or :func:`load_model`.
    axes : str, optional
        As in :func:`train`; inferred for 2-D and RGB arrays.
    blind_spot : int, optional
        Inference blind spot (0 = non-blind, 1, 3, 5, ...); default: the
        model's recommended ``inference_blind_spot``.
    device, precision : optional
        As in :func:`train`.
    tile_size : int, optional
        Tile side for inference (default 768; smaller uses less memory).
    renormalize : bool
        Normalise with this image's own statistics instead of the model's
        (only when the new data's intensities differ from the training data).
    callback : callable, optional
        Called with a :class:`ProgressEvent` after each tile (or output chunk); return
        ``False`` to cancel (a ``.zarr`` output can then be resumed by the same call).
    out : str or Path, optional
        Write the result chunk by chunk to a ``.zarr`` store (resumable; marked complete
        only at the end) or a ``.tif``/``.ome.tif`` file (written as ``.partial`` and renamed
        when done) and return its path.  Axes and pixel sizes of the input are recorded.
    dtype : {"float32", "input"} or numpy dtype
        Output type; ``"input"`` rounds and clips to the input's integer type.
    chunk_size, memory : optional
        Y/X chunk side of the dask graph / output store (default: the tile) and the
        activation-memory budget per running chunk (bytes or "2GB"; default from the
        available RAM) from which the tile is derived when ``tile_size`` is None.
    scheduler, client : optional
        dask scheduler for lazy and ``out=`` runs: ``"threads"`` (default), ``"sync"``, a
        ``dask.distributed.Client`` (``client=``) or a scheduler address
        (``scheduler="tcp://host:8786"``).  On a cluster the model is installed once per
        worker (docs/large_data.md).
    overwrite : bool
        Replace an existing ``out`` instead of resuming it.
    fusion : {"auto", True, False}
        Put the noisy input back where the blind-spot output misses detail: a local
        Wiener gain on the residual (input minus output) against the noise level the
        model measured in its training data (:mod:`napari_bsdenoise.nn.fusion`).
        ``"auto"`` (default) fuses AT-BSN outputs at blind spots >= 1 when the model's
        training data had spatially correlated noise; it matters most for weak noise,
        where a blind spot alone loses more detail than it removes noise.  ``True`` also
        fuses for pixel-independent noise; ``False`` gives the network's output alone.

    Returns
    -------
    numpy.ndarray, dask.array.Array or Path
        float32 array of the input's shape, in the input's units (not clipped), for numpy
        input; a lazy dask array for dask/zarr/path input; the output path with ``out=``.
    """
    from .device import resolve_device, resolve_precision
    from .engine.predict import predict_iter

    if not isinstance(model, BlindSpotModel):
        raise InputError(f"model must be a BlindSpotModel (from train or load_model), got {type(model).__name__}")
    from . import tiling

    big = dict(axes=axes, blind_spot=blind_spot, device=device, precision=precision, tile_size=tile_size,
               renormalize=renormalize, dtype=dtype, chunk_size=chunk_size, memory=memory, fusion=fusion)
    if isinstance(scheduler, str) and "://" in scheduler and client is None and out is None:
        from distributed import Client

        client = Client(scheduler)
    if out is not None:
        if not tiling.is_lazy_input(image):
            image = check_image(image)
        gen = tiling.denoise_iter(image, model, out=out, overwrite=overwrite, scheduler=scheduler,
                                  client=client, **big)
        return _drive(gen, callback)
    if tiling.is_lazy_input(image):
        return tiling.denoise_lazy(image, model, client=client, **big)
    arr = check_image(image)
    if client is not None:
        return np.asarray(tiling.denoise_lazy(arr, model, client=client, **big).compute())
    if dtype not in ("float32", "input"):
        np.dtype(dtype)  # fail early on a bad dtype
    cfg = model.config
    layout, s = _inference_layout(arr, model, axes, blind_spot)
    samples = to_samples(arr, layout)
    norm = _normalization(samples) if renormalize else _match_normalization(cfg.normalization, layout)
    data = _normalize(samples, norm)
    independent = cfg.channel_mode == "independent"
    if independent:
        data = fold_channels(data)
    dev = resolve_device(device)
    net = _inference_network(model, s, norm, fusion)
    gen = predict_iter(net, data, blind_spot=s, device=dev,
                       precision=resolve_precision(precision, dev), tile=tile_size)
    out = _drive(gen, callback)
    model.network.to("cpu")
    if independent:
        out = unfold_channels(out, layout.n_channels)
    mean = np.asarray(norm.mean, np.float32)[None, :, None, None]
    std = np.asarray(norm.std, np.float32)[None, :, None, None]
    out = out * std + mean
    result = np.ascontiguousarray(from_samples(out, layout), dtype=np.float32)
    if dtype != "float32":
        result = tiling._convert(result, arr.dtype if dtype == "input" else dtype)
    return result


def _drive(gen, callback):
    """Run a denoising generator to its result; ``callback`` returning False cancels."""
    from .engine.progress import run_events

    try:
        return run_events(gen, callback)
    except InterruptedError:
        raise InterruptedError("denoising was cancelled") from None


def denoise_iter(image, model: BlindSpotModel, *, out, **kwargs):
    """Generator of :class:`ProgressEvent` (one per output chunk) that denoises ``image`` into
    ``out`` (``.zarr``, ``.tif``, ``.ome.tif``); returns the output path.  Closing it cancels.

    Keywords as :func:`denoise`.  For the napari widget: drive it from a ``GeneratorWorker``.
    """
    from . import tiling

    if not isinstance(model, BlindSpotModel):
        raise InputError(f"model must be a BlindSpotModel (from train or load_model), got {type(model).__name__}")
    if not tiling.is_lazy_input(image):
        image = check_image(image)
    return (yield from tiling.denoise_iter(image, model, out=out, **kwargs))


def load_model(path) -> BlindSpotModel:
    """Load a model file (safetensors + JSON config; never executes code from the file)."""
    return BlindSpotModel.load(path)


def estimate_noise_correlation(image, *, axes: str | None = None, max_lag: int = 4):
    """Estimate the spatial autocorrelation of the noise and recommend blind spots.

    See :func:`napari_bsdenoise.noise.estimate_noise_correlation`.
    """
    from .noise import estimate_noise_correlation as _est

    return _est(check_image(image), axes=axes, max_lag=max_lag)
