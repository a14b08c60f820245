"""Training of the blind-spot methods (AT-BSN, D-BSN): data, noise diagnostic, method choice, start
model and trainer, with the method-specific rules in each method's :class:`BlindSpotTraining`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass


from .. import registry
from ..axes import fold_channels, to_samples
from ..config import (NETWORK_PRESETS_3D, ModelConfig, NetworkConfig, blind_spot_side, blind_spot_sides,
                      check_blind_spot, format_blind_spot, per_axis)
from ..engine.inference import resolve_hot_pixels
from ..defaults import (DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE, DEFAULT_PATCH_SIZE,
                        DEFAULT_VALIDATION_FRACTION)
from ..errors import InputError
from ..inputs import (check_budget, check_image, check_trainable_size, loop_settings, match_normalization,
                      normalization_of, normalize, sample_layout)
from ..model import BlindSpotModel
from ..version import __version__


@dataclass(frozen=True)
class BlindSpotTraining:
    """How one blind-spot method trains (``Method.extras["training"]``).

    ``blind_spots(blind_spot, s_train, inference_blind_spot, noise) -> (s_train, s_inf)`` resolves the
    training and default inference blind spots (``s_train`` is None for ``blind_spot="auto"``);
    ``loss(loss, layout) -> loss`` resolves ``loss="auto"`` and refuses what does not apply;
    ``initialise(model, noise)`` may set up a new model from the noise diagnostic.
    """

    trainer: type
    blind_spots: Callable
    loss: Callable
    initialise: Callable | None = None


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


def network_fields(network, presets, device) -> dict:
    """NetworkConfig fields from a size name (``"auto"``: tiny on the CPU, small on a GPU) or a dict."""
    if network == "auto":
        network = "tiny" if device.type == "cpu" else "small"
    if isinstance(network, str):
        if network not in presets:
            raise InputError(f"network must be one of {sorted(presets)} or a dict, got {network!r}")
        return dict(presets[network])
    if isinstance(network, dict):
        return dict(network)
    raise InputError(f"network must be one of {sorted(presets)} or a dict, got {network!r}")


def make_blindspot_trainer(
    image,
    *,
    method: str,
    axes: str | None = None,
    blind_spot="auto",
    inference_blind_spot: int | None = None,
    steps: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    device=None,
    network: str | dict = "auto",
    loss: str = "auto",
    patch_size: int | None = None,
    batch_size: int | None = None,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    precision: str = "auto",
    channels: str | None = None,
    model: BlindSpotModel | None = None,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    hot_pixels="auto",
    noise=None,
    spatial_dims=2,
    patch_depth: int | None = None,
):
    """A trainer of ``method`` (``"atbsn"``, ``"dbsn"`` or ``"auto"``: chosen from the noise
    diagnostic) on ``image``; arguments as :func:`napari_bsdenoise.train`."""
    from ..device import resolve_device
    from ..nn.outliers import repair_samples
    from ..noise import estimate_noise_correlation_samples, estimate_noise_correlation_volumes
    from ..noise.estimate import z_noise_correlation

    arr = check_image(image)
    spatial_dims = resolve_spatial_dims(spatial_dims, arr, axes, method, model)
    volumes = spatial_dims == 3
    planar = volumes and z_context_of(network, model) > 0  # the 2.5-D network: 2-D patches, a few planes deep
    patch_size = patch_size or (DEFAULT_PATCH_SIZE_3D if volumes and not planar else DEFAULT_PATCH_SIZE)
    batch_size = batch_size or (DEFAULT_BATCH_SIZE_25D if planar else DEFAULT_BATCH_SIZE_3D if volumes
                                else DEFAULT_BATCH_SIZE)
    steps = check_budget(steps, seconds, patch_size, batch_size, learning_rate)
    layout = sample_layout(arr, axes, channels, spatial_dims)
    check_trainable_size(layout)
    if volumes and layout.n_slices < MIN_TRAIN_SLICES:
        raise InputError(f"a 3-D network needs at least {MIN_TRAIN_SLICES} slices along Z to train on, this "
                         f"volume has {layout.n_slices} (use spatial_dims=2)")
    h, w = layout.spatial_shape
    s_train = None
    if isinstance(blind_spot, str):
        if blind_spot != "auto":
            raise InputError(f"blind_spot must be 'auto', an odd integer or a (y, x) pair, got {blind_spot!r}")
    else:
        s_train = check_blind_spot(blind_spot, "blind_spot")
        if s_train == 0:
            raise InputError("blind_spot=0 cannot be used for training: a network that sees the pixel it "
                             "predicts learns the identity (train with 1 or more)")
    if inference_blind_spot is not None:
        check_blind_spot(inference_blind_spot, "inference_blind_spot")
    samples = to_samples(arr, layout)
    z_noise = None
    if volumes and noise is None:
        noise, z_noise = estimate_noise_correlation_volumes(samples)
    elif volumes:  # the caller's diagnostic of this image is the in-plane one
        z_noise = z_noise_correlation(samples)
    elif noise is None:  # (a caller that already ran the diagnostic on this image passes it)
        noise = estimate_noise_correlation_samples(samples)
    if volumes and method == "auto":
        method, reason = "atbsn", "auto: a 3-D network (spatial_dims=3): AT-BSN, the method with a 3-D network"
    else:
        method, reason = choose_method(method, blind_spot, noise)
    spec = registry.get(method)
    NetworkConfig(method=method, spatial_dims=spatial_dims).validate()  # a method without a 3-D network
    rules: BlindSpotTraining = spec.extras["training"]
    s_train, s_inf = rules.blind_spots(blind_spot, s_train, inference_blind_spot, noise)
    if volumes:
        s_train, s_inf = volume_blind_spots(blind_spot, s_train, s_inf, inference_blind_spot, z_noise,
                                            keep_z=planar)
    elif isinstance(s_train, tuple) and len(s_train) == 3:
        raise InputError(f"a (z, y, x) blind spot {s_train} needs a 3-D network (spatial_dims=3)")
    *sz, sy, sx = blind_spot_sides(s_train, spatial_dims)
    if h <= 2 * sy or w <= 2 * sx or (sz and layout.n_slices <= 2 * sz[0]):
        raise InputError(f"the image ({'x'.join(map(str, (layout.n_slices,) * volumes + (h, w)))}) is too small "
                         f"for a training blind spot of {format_blind_spot(s_train)} pixels")

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
        loss = rules.loss(loss, layout)
        net_kwargs = network_fields(network, NETWORK_PRESETS_3D if volumes else spec.presets, dev)
        n_in = layout.n_channels if layout.channel_mode == "joint" else 1
        norm = normalization_of(samples)
        config = ModelConfig(
            network=NetworkConfig(method=method, in_channels=n_in, out_channels=n_in, spatial_dims=spatial_dims,
                                  **net_kwargs),
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
        if rules.initialise is not None:
            rules.initialise(start, noise)
    config.noise = noise.to_dict()
    config.noise["summary"] = noise.summary()
    config.noise["recommended_method"] = recommended_method(noise)
    if z_noise is not None:
        config.noise["along_z"] = z_noise.to_dict()
    config.training = {"data_shape": list(arr.shape), "data_dtype": str(arr.dtype), "data_axes": layout.axes,
                       "method": method, "method_reason": reason}
    data_norm = match_normalization(norm, layout)
    data = normalize(samples, data_norm)
    if config.channel_mode == "independent":
        data = fold_channels(data)
    # hot and dead pixels out of the training data, as denoise takes them out of its input: a +500
    # outlier costs an L2 loss thousands of times a noisy pixel's, and no blind spot can predict it
    outliers = resolve_hot_pixels(start, data_norm, hot_pixels)
    if outliers is not None:
        data, hot = repair_samples(data, outliers)
        config.training["hot_pixels"] = {"mode": hot_pixels, "repaired": int(hot.sum())}
    # a patch must hold plenty of context around a large blind spot: with s=9 on
    # 32-px patches most of what a branch sees is padding and training fails
    patch_size = max(patch_size, 8 * max(sy, sx))
    extra = {}
    if planar:  # the planes the loss counts and the context planes on both sides (nn/atbsn25d.py)
        reach = max(1, (sz[0] + 1) // 2) + config.network.z_context - 1
        extra["patch_depth"] = min(layout.n_slices, patch_depth or 2 * reach + DEFAULT_PLANES_25D)
    elif volumes:  # patches as deep as 4 blind spots along Z, or the volume
        extra["patch_depth"] = min(layout.n_slices, max(patch_depth or DEFAULT_PATCH_DEPTH, 4 * sz[0]))
    return rules.trainer(
        data,
        start,
        **loop_settings(steps, seconds, patch_size, batch_size, learning_rate, seed, dev, precision,
                        validation_fraction),
        **extra,
    )


#: Z slices from which ``spatial_dims="auto"`` trains a 3-D network (issue #15), and below which one cannot
AUTO_3D_SLICES = 16
MIN_TRAIN_SLICES = 8
DEFAULT_PATCH_SIZE_3D, DEFAULT_PATCH_DEPTH, DEFAULT_BATCH_SIZE_3D = 32, 16, 4  # 16k voxels, 4 per step
#: Planes of a 2.5-D training patch that the loss counts (besides their context), and patches per step:
#: 2 x 4 planes of 64x64, a 2-D step's 8 (a step then costs 1.15x a 2-D one; with 4 patches 2.5x).
DEFAULT_PLANES_25D, DEFAULT_BATCH_SIZE_25D = 4, 2


def z_context_of(network, model) -> int:
    """The ``z_context`` (planes seen whole on each side) that ``network`` (a volume preset name or a
    dict) or a continued ``model`` gives; 0 for the full 3-D network."""
    if model is not None:
        return int(getattr(model.config.network, "z_context", 0))
    if isinstance(network, dict):
        return int(network.get("z_context", 0) or 0)
    preset = NETWORK_PRESETS_3D.get("tiny" if network == "auto" else network, {})
    return int(preset.get("z_context", 0))


def resolve_spatial_dims(spatial_dims, arr, axes, method, model) -> int:
    """2 or 3: a continued model keeps its own; ``"auto"`` is 3 for AT-BSN (or ``method="auto"``) on data
    with a Z axis of at least :data:`AUTO_3D_SLICES` slices, else 2."""
    if model is not None and isinstance(model, BlindSpotModel):
        own = model.config.network.spatial_dims
        if spatial_dims not in ("auto", own):
            raise InputError(f"this model is {own}-D; it cannot be continued with spatial_dims={spatial_dims!r}")
        return own
    if spatial_dims == "auto":
        try:
            ax = sample_layout(arr, axes, None)
        except InputError:
            return 2
        z = ax.n_slices if "Z" in ax.axes else 0
        return 3 if (z >= AUTO_3D_SLICES and method in ("auto", "atbsn")) else 2
    if spatial_dims not in (2, 3) or isinstance(spatial_dims, bool):
        raise InputError(f"spatial_dims must be 2, 3 or 'auto', got {spatial_dims!r}")
    return int(spatial_dims)


def volume_blind_spots(blind_spot, s_train, s_inf, inference_blind_spot, z_noise, *, keep_z: bool = False):
    """The ``(z, y, x)`` blind spots of a 3-D network: the in-plane sides of ``s_train``/``s_inf`` and, for
    ``blind_spot="auto"``, Z sides from the noise correlation between slices
    (:func:`~napari_bsdenoise.noise.estimate.z_noise_correlation`); a given cube or box is kept as it is.
    ``keep_z`` (the 2.5-D network, whose context planes sit just beyond the Z side) infers at the
    training Z side."""
    if isinstance(blind_spot, str):  # "auto" (the caller refused any other string)
        z_train, z_inf = z_noise.train_side, z_noise.inference_side
    else:  # the given blind spot (``s_train``, checked) keeps its Z side
        z_train, z_inf = blind_spot_sides(s_train, 3)[0], 1
    train = check_blind_spot((z_train,) + blind_spot_sides(s_train, 3)[1:])
    if inference_blind_spot is not None:
        return train, check_blind_spot(inference_blind_spot)
    inf = blind_spot_sides(s_inf, 3)
    z = inf[0] if isinstance(s_inf, tuple) and len(s_inf) == 3 else (z_train if keep_z else min(z_inf, z_train))
    return train, check_blind_spot((z,) + inf[1:])


def atbsn_blind_spots(blind_spot, s_train, inference_blind_spot, noise) -> tuple[int, int]:
    """AT-BSN: the diagnostic's blind spots for ``"auto"``; a given training blind spot keeps the
    diagnostic's inference blind spot when that is smaller."""
    if s_train is None:
        s_train, s_inf = noise.train_blind_spot, noise.inference_blind_spot
    else:
        s_inf = per_axis(min, noise.inference_blind_spot, s_train)
    return s_train, (s_inf if inference_blind_spot is None else check_blind_spot(inference_blind_spot))


def atbsn_loss(loss, layout) -> str:
    """AT-BSN: L1 for RGB camera images, L2 (the mean, right for photon counts) otherwise."""
    if loss == "nll":
        raise InputError("loss='nll' is D-BSN's (method='dbsn'); AT-BSN trains with 'l1' or 'l2'")
    if loss == "auto":
        loss = "l1" if (layout.channel_mode == "joint" and layout.n_channels >= 3) else "l2"
    return loss


