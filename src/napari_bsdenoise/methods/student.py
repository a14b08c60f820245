"""The non-blind student of multi-teacher distillation (AT-BSN (D), Chen et al. 2024).

A plain UNet trained on the noisy data to agree with a frozen blind-spot teacher run at several blind
spots (:class:`~napari_bsdenoise.engine.distill.DistillTrainer`); it sees the pixel it predicts, keeps
detail every blind spot loses and runs several times faster than its teacher.
"""

from __future__ import annotations

import copy
import dataclasses

from .. import registry
from ..axes import fold_channels, to_samples
from ..config import (NETWORK_PRESETS, ModelConfig, NetworkConfig, blind_spot_side, blind_spot_sort_key,
                      check_blind_spot, check_unet_depth)
from ..defaults import (DEFAULT_BATCH_SIZE, DEFAULT_DISTILL_PATCH_SIZE, DEFAULT_LEARNING_RATE,
                        DEFAULT_VALIDATION_FRACTION)
from ..engine.inference import inference_layout, resolve_fusion, resolve_hot_pixels
from ..errors import InputError
from ..inputs import check_budget, check_image, check_trainable_size, loop_settings, match_normalization, normalize
from ..model import BlindSpotModel
from ..registry import Method
from .blindspot import network_fields
from ..version import __version__

NAME = "student"


def build_network(cfg):
    from ..nn.student import StudentUNet

    return StudentUNet(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)


def check_inference_blind_spot(s: int) -> None:
    if s != 0:
        raise InputError(f"blind_spot={s} does not apply: this model is a non-blind distilled student "
                         "(use its teacher for a tunable blind spot)")


def describe(model) -> str:
    c, t = model.config, model.config.training
    d = t.get("distillation", {})
    teacher = "a D-BSN (its fused output)" if d.get("teacher_method") == "dbsn" else "an AT-BSN"
    return (f"non-blind student distilled from {teacher} trained at blind spot {c.train_blind_spot} "
            f"(teachers at {d.get('teacher_blind_spots', '?')})")


def _teacher_blind_spots(teacher, teacher_blind_spots) -> tuple[int, ...]:
    spec = registry.get(teacher.method)
    if isinstance(teacher_blind_spots, str):
        if teacher_blind_spots != "auto":
            raise InputError(f"teacher_blind_spots must be 'auto' or a list of blind spots, got {teacher_blind_spots!r}")
        return tuple(spec.teacher_blind_spots(teacher.config))
    try:
        blind_spots = tuple(sorted({check_blind_spot(b, "teacher_blind_spots") for b in teacher_blind_spots},
                                   key=blind_spot_sort_key))
    except TypeError:
        raise InputError(f"teacher_blind_spots must be 'auto' or a list of blind spots, "
                         f"got {teacher_blind_spots!r}") from None
    if not blind_spots:
        raise InputError("teacher_blind_spots is empty")
    for b in blind_spots:
        spec.check_inference_blind_spot(b)  # e.g. a D-BSN teacher runs at 0 (fused) or 1 only
    return blind_spots


def _student_fields(student, teacher, device) -> dict:
    if student == "auto":  # the teacher's size (its UNet weights can then start the student)
        return registry.get(teacher.method).student_network(teacher.config)
    if isinstance(student, (str, dict)):
        try:
            return network_fields(student, NETWORK_PRESETS, device)
        except InputError:
            pass
    raise InputError(f"student must be 'auto', one of {sorted(NETWORK_PRESETS)}, a dict or a "
                     f"student model, got {student!r}")


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
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    precompute=False,
    fusion="auto",
    hot_pixels="auto",
):
    """Prepare distillation and return a :class:`~napari_bsdenoise.engine.distill.DistillTrainer`
    (arguments as :func:`napari_bsdenoise.distill`)."""
    from ..device import resolve_device
    from ..engine.distill import MODES, DistillTrainer

    arr = check_image(image)
    if not isinstance(teacher, BlindSpotModel):
        raise InputError(f"teacher must be a BlindSpotModel (from train or load_model), got {type(teacher).__name__}")
    tspec = registry.get(teacher.method)
    if tspec.teacher_blind_spots is None:
        raise InputError("the teacher must be a blind-spot model (AT-BSN or D-BSN), not a distilled student")
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    steps = check_budget(steps, seconds, patch_size, batch_size, learning_rate)
    tcfg = teacher.config
    blind_spots = _teacher_blind_spots(teacher, teacher_blind_spots)
    widest = max(blind_spots, key=blind_spot_sort_key)
    layout, _ = inference_layout(arr, teacher, axes, widest)
    check_trainable_size(layout)

    if isinstance(student, BlindSpotModel):
        if not student.is_student:
            raise InputError("student= must be a distilled student (or a size name), not a blind-spot model")
        if student.config.network.in_channels != tcfg.network.in_channels:
            raise InputError("the student and the teacher take different numbers of channels")
        start = BlindSpotModel(ModelConfig.from_dict(student.config.to_dict()),
                               copy.deepcopy(student.network))
    else:
        net_kwargs = _student_fields(student, teacher, resolve_device(device))
        config = ModelConfig.from_dict(tcfg.to_dict())
        config.network = NetworkConfig(method=NAME, in_channels=tcfg.network.in_channels,
                                       out_channels=tcfg.network.out_channels, **net_kwargs)
        config.inference_blind_spot = 0
        if config.loss not in METHOD.losses:  # a D-BSN teacher's nll: the student learns its output by L2
            config.loss = "l2"
        config.version = __version__
        config.validate()
        import torch

        torch.manual_seed(seed)
        start = BlindSpotModel(config)
        warm_start = bool(warm_start) and tspec.teacher_warm_start
        if warm_start:
            start.network.warm_start(teacher.network)
    config = start.config
    config.training = {
        "data_shape": list(arr.shape), "data_dtype": str(arr.dtype), "data_axes": layout.axes,
        "distillation": {
            "teacher_blind_spots": [list(b) if isinstance(b, tuple) else b for b in blind_spots], "mode": mode, "warm_start": bool(warm_start),
            "teacher_method": teacher.method,
            "teacher_train_blind_spot": (list(tcfg.train_blind_spot) if isinstance(tcfg.train_blind_spot, tuple)
                                         else tcfg.train_blind_spot),
            "teacher_network": dataclasses.asdict(tcfg.network),
            "teacher_training": {k: v for k, v in tcfg.training.items() if k != "history"},
        },
    }
    norm = match_normalization(config.normalization, layout)
    # the teachers' blind-spot targets fused with the noisy input (in the data's normalised units) as
    # denoise fuses the teacher's output
    fused = resolve_fusion(teacher, 1, norm, fusion)
    config.training["distillation"]["fused_targets"] = fused is not None
    outliers = resolve_hot_pixels(teacher, norm, hot_pixels)  # the teacher's input repaired as denoise does
    config.training["distillation"]["hot_pixels"] = "repaired" if outliers is not None else "kept"
    samples = to_samples(arr, layout)
    data = normalize(samples, norm)
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
        outliers=outliers,
        **loop_settings(steps, seconds, max(patch_size, 8 * blind_spot_side(widest)), batch_size, learning_rate, seed,
                        dev, precision, validation_fraction),
    )


METHOD = Method(
    name=NAME,
    title="Student: a non-blind UNet distilled from a blind-spot teacher (fast)",
    presets=NETWORK_PRESETS,
    build_network=build_network,
    describe=describe,
    check_inference_blind_spot=check_inference_blind_spot,
    validate_config=check_unet_depth,
    losses=("l1", "l2"),
    no_fusion_reason=("fusion with the noisy input applies to AT-BSN blind-spot outputs; D-BSN fuses with its "
                      "own noise model and students see the noisy pixel already"),
)
