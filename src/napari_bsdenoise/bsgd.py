"""BSGD (blind-spot guided diffusion) refinement: train the two diffusion branches, refine with them.

A reconstruction of Cheng et al., "Blind-Spot Guided Diffusion for Self-supervised Real-World Denoising"
(arXiv 2509.16091), of which only the abstract is verified; docs/bsgd.md lists every design choice and
the measured quality and cost.  **Experimental**: measured, the refinement does not yet beat its guiding
blind-spot model (use the guide or its distilled student for the best result)::

    import napari_bsdenoise as bsd
    bsn = bsd.train(noisy, steps=300)                        # the guiding blind-spot network
    diff = bsd.train_bsgd(noisy, guide=bsn, steps=600)       # both diffusion branches, same noisy data
    out = bsd.refine(noisy, diff, guide=bsn, seed=0)         # guided DDIM refinement of the BSN result
    diff.save("bsgd.safetensors")                            # saves/loads like any model

Networks: :mod:`napari_bsdenoise.nn.bsgd`; diffusion and sampler: :mod:`napari_bsdenoise.engine.bsgd_sample`.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from ._version import __version__
from .api import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PATCH_SIZE,
    _check_budget,
    _check_trainable_size,
    _inference_layout,
    _layout,
    _loop_settings,
    _match_normalization,
    _normalization,
    _normalize,
    check_image,
    denoise,
)
from .axes import fold_channels, from_samples, to_samples, unfold_channels
from .config import ModelConfig, NetworkConfig, check_blind_spot
from .errors import InputError
from .model import BlindSpotModel

METHOD = "bsgd"
#: Sizes of *each* branch (encoder width, pooling levels).  "tiny" (CPU default) trains both branches at
#: about 2-3 steps/s (batch 8 of 64x64 RGB patches, one busy CPU thread); "small" is the GPU default.
BSGD_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"width": 16, "depth": 3},
    "small": {"width": 32, "depth": 4},
    "paper": {"width": 48, "depth": 5},
}
DEFAULT_BSGD_LEARNING_RATE = 1e-3
# Sampling defaults (chosen by the ablation in benchmarks/bench_bsgd.py, docs/bsgd.md).
DEFAULT_SAMPLING_STEPS = 4
DEFAULT_GUIDANCE = 0.75
DEFAULT_ROUNDS = 2
DEFAULT_T_START = 0.3
DEFAULT_REPLACE = 0.16


def _check_bsgd_model(model) -> BlindSpotModel:
    if not isinstance(model, BlindSpotModel):
        raise InputError(f"model must be a BlindSpotModel (from train_bsgd or load_model), got {type(model).__name__}")
    if model.method != METHOD:
        raise InputError(f"model is a {model.method!r} model; refine needs a BSGD model from train_bsgd "
                         "(pass the blind-spot model as guide=)")
    return model


def _check_guide_model(guide) -> BlindSpotModel:
    if not isinstance(guide, BlindSpotModel):
        raise InputError(f"guide must be a BlindSpotModel (from train/distill/load_model), got {type(guide).__name__}")
    if guide.method == METHOD:
        raise InputError("guide must be a blind-spot model or a student, not another BSGD model")
    return guide


# -- training ---------------------------------------------------------------------------------
def make_bsgd_trainer(
    image,
    *,
    guide: BlindSpotModel | None = None,
    axes: str | None = None,
    blind_spot="auto",
    inference_blind_spot: int | None = None,
    steps: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    device=None,
    network: str | dict = "auto",
    patch_size: int = DEFAULT_PATCH_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_BSGD_LEARNING_RATE,
    t_max: float | None = None,
    channels: str | None = None,
    model: BlindSpotModel | None = None,
    validation_fraction: float = 0.1,
    warm_start: bool = True,
):
    """Prepare BSGD training and return a :class:`~napari_bsdenoise.engine.bsgd_train.BSGDTrainer`.

    Iterate over it for :class:`ProgressEvent` items; ``trainer.model`` is the best model so far.
    Arguments are those of :func:`train_bsgd`.
    """
    import torch

    from .device import resolve_device
    from .engine.bsgd_train import BSGDTrainer
    from .noise import estimate_noise_correlation_samples

    arr = check_image(image)
    steps = _check_budget(steps, seconds, patch_size, batch_size, learning_rate)
    previous, record = None, {}  # record: the "bsgd" training record this run starts from
    if model is not None:
        _check_bsgd_model(model)
        previous = model.config.training or {}
        record = previous.get("bsgd") or {}  # continuing keeps its t_max, guide and warm-start record
    if t_max is None:
        t_max = record.get("t_max", 1.0)
    if not (isinstance(t_max, (int, float)) and 0 < t_max <= 1):
        raise InputError(f"t_max must be in (0, 1], got {t_max!r}")
    if model is not None:
        layout, _ = _inference_layout(arr, model, axes, None)
        _check_trainable_size(layout)
        start = BlindSpotModel(ModelConfig.from_dict(model.config.to_dict()), copy.deepcopy(model.network))
        config = start.config
        samples = to_samples(arr, layout)
    else:
        if guide is not None:
            _check_guide_model(guide)
            layout, _ = _inference_layout(arr, guide, axes, None)
            norm = guide.config.normalization
        else:
            layout = _layout(arr, axes, channels)
        _check_trainable_size(layout)
        samples = to_samples(arr, layout)
        noise = estimate_noise_correlation_samples(samples)
        if guide is None:
            norm = _normalization(samples)
        if blind_spot == "auto":
            s_train = guide.config.train_blind_spot if guide is not None else noise.train_blind_spot
        else:
            s_train = check_blind_spot(blind_spot, "blind_spot")
            if s_train == 0:
                raise InputError("blind_spot=0 cannot be used for the blind-spot branch: it would see the pixel "
                                 "it predicts (use 1 or more)")
        if inference_blind_spot is None:
            s_inf = guide.config.inference_blind_spot if guide is not None else noise.inference_blind_spot
            s_inf = min(max(1, s_inf), s_train)
        else:
            s_inf = check_blind_spot(inference_blind_spot, "inference_blind_spot")
        h, w = layout.spatial_shape
        if min(h, w) <= 2 * s_train:
            raise InputError(f"the image ({h}x{w}) is too small for a training blind spot of {s_train} pixels")
        dev = resolve_device(device)
        warm = warm_start and guide is not None and guide.method == "atbsn"
        if network == "auto" and warm:  # the guide's size, so both branches can start from it
            network = {"width": guide.config.network.width, "depth": guide.config.network.depth}
        elif network == "auto":
            network = "tiny" if dev.type == "cpu" else "small"
        if isinstance(network, str):
            if network not in BSGD_PRESETS:
                raise InputError(f"network must be one of {sorted(BSGD_PRESETS)} or a dict, got {network!r}")
            net_kwargs = dict(BSGD_PRESETS[network])
        elif isinstance(network, dict):
            net_kwargs = dict(network)
        else:
            raise InputError(f"network must be one of {sorted(BSGD_PRESETS)} or a dict, got {network!r}")
        n_in = layout.n_channels if layout.channel_mode == "joint" else 1
        config = ModelConfig(
            network=NetworkConfig(method=METHOD, in_channels=n_in, out_channels=n_in, **net_kwargs),
            normalization=copy.deepcopy(norm),
            channel_mode=layout.channel_mode,
            train_blind_spot=s_train,
            inference_blind_spot=s_inf,
            loss="l2",
            axes=layout.axes,
            noise={**noise.to_dict(), "summary": noise.summary()},
            version=__version__,
        ).validate()
        torch.manual_seed(seed)
        start = BlindSpotModel(config)
        gnet = guide.config.network if warm else None
        same_size = warm and (gnet.width, gnet.depth, gnet.in_channels) == (net_kwargs.get("width"),
                                                                             net_kwargs.get("depth"), n_in)
        record = {"warm_start": start.network.warm_start(guide.network) if same_size else None}
    guide_info = record.get("guide")
    if guide is not None:
        gc = _check_guide_model(guide).config
        guide_info = {"method": guide.method, "network": gc.network.__dict__.copy(),
                      "train_blind_spot": gc.train_blind_spot, "inference_blind_spot": gc.inference_blind_spot}
    config.training = {
        "data_shape": list(arr.shape), "data_dtype": str(arr.dtype), "data_axes": layout.axes, "method": METHOD,
        # warm_start: tensors copied from the guide per branch, or None
        "bsgd": {**record, "schedule": "cosine", "parameterization": "x0", "t_max": float(t_max),
                 "guide": guide_info},
    }
    if previous is not None:
        config.training["continued_from"] = {
            "steps": int(previous.get("total_steps", previous.get("steps", 0))),
            "best_val_loss": previous.get("best_val_loss"), "data_shape": previous.get("data_shape")}
    data = _normalize(samples, _match_normalization(config.normalization, layout))
    if config.channel_mode == "independent":
        data = fold_channels(data)
    dev = resolve_device(device)
    settings = _loop_settings(steps, seconds, max(patch_size, 8 * config.train_blind_spot), batch_size,
                              learning_rate, seed, dev, "fp32", validation_fraction)
    return BSGDTrainer(data, start, t_max=t_max, **settings)


def train_bsgd(image, *, callback=None, **kwargs) -> BlindSpotModel:
    """Train the two BSGD diffusion branches on a noisy image or stack (no clean reference).

    Parameters
    ----------
    image : array_like
        Noisy data with axes among T, Z, C, Y, X (as for :func:`napari_bsdenoise.train`).
    guide : BlindSpotModel, optional
        The blind-spot model (AT-BSN, D-BSN or a student) whose result :func:`refine` will refine.  Its
        normalisation, channel mode and blind spots are reused so the two work in the same units.
    axes, seed, device, patch_size, batch_size, channels : optional
        As in :func:`napari_bsdenoise.train`.
    blind_spot : "auto" or int
        Training blind spot of the blind-spot branch (``"auto"``: the guide's, else the noise diagnostic's).
    inference_blind_spot : int, optional
        Blind spot used when sampling (default: the guide's inference blind spot, at least 1).
    steps, seconds : optional
        Budget (2000 steps when both are None); one step trains both branches on one batch.
    network : {"auto", "tiny", "small", "paper"} or dict
        Size of each branch (``BSGD_PRESETS``); ``auto`` is ``tiny`` on the CPU, ``small`` on a GPU.
    learning_rate : float
        Adam learning rate (1e-3).
    t_max : float, optional
        Diffusion times are drawn uniformly in ``[0, t_max]``; refinement never goes above its ``t_start``.
        Default 1, or the ``t_max`` a continued ``model`` was trained with.
    warm_start : bool
        Start both branches from an AT-BSN ``guide`` (default): the blind-spot branch then *is* the guide
        at every diffusion time before training, and the conventional branch starts from the guide's UNet
        (as a distilled student).  Needs the same width and depth (``network="auto"`` takes the guide's);
        ``config.training["bsgd"]["warm_start"]`` records what was copied (``None``: nothing).
    model : BlindSpotModel, optional
        A BSGD model to continue training (its network, normalisation and blind spots are kept; ``network``,
        ``blind_spot`` and ``inference_blind_spot`` do not apply).  It starts as the best model, so the
        held-out loss can only fall; ``config.training`` keeps its guide and ``t_max`` and records the
        run it continues (``continued_from``; ``total_steps`` counts both).
    callback : callable, optional
        Called with each :class:`ProgressEvent`; return ``False`` to stop early.

    Returns
    -------
    BlindSpotModel
        Method ``"bsgd"``, the lowest held-out diffusion loss; ``save``/``load_model`` as any model.
    """
    trainer = make_bsgd_trainer(image, **kwargs)
    for event in trainer:
        if callback is not None and callback(event) is False:
            break
    return trainer.model


# -- refinement -------------------------------------------------------------------------------
def _start_image(arr, guide, layout, axes, device, callback):
    """The guide's result for ``arr`` in image units (``None`` without a guide)."""
    if guide is None:
        return None
    if isinstance(guide, BlindSpotModel):
        _check_guide_model(guide)
        return denoise(arr, guide, axes=layout.axes if axes is None else axes, device=device, callback=callback)
    g = check_image(guide, name="guide")
    if g.shape != arr.shape:
        raise InputError(f"the guide result has shape {g.shape} and the image {arr.shape}; they must match")
    return g


def refine(
    image,
    model: BlindSpotModel,
    *,
    guide=None,
    axes: str | None = None,
    sampling_steps: int = DEFAULT_SAMPLING_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    rounds: int = DEFAULT_ROUNDS,
    t_start: float = DEFAULT_T_START,
    replace: float = DEFAULT_REPLACE,
    blind_spot: int | None = None,
    seed: int = 0,
    device=None,
    tile_size: int | None = None,
    callback=None,
) -> np.ndarray:
    """Refine ``image`` by blind-spot guided diffusion sampling with a model from :func:`train_bsgd`.

    Each of ``rounds`` rounds replaces a complementary random subset (fraction ``replace``) of the start
    image with the noisy input, diffuses it to ``t_start`` and runs ``sampling_steps`` deterministic DDIM
    steps with ``x0 = x0_conv + guidance * (x0_bsn - x0_conv)`` (the same as mixing the predicted noise);
    the rounds are averaged.  The random numbers are a function of ``seed`` and the global pixel
    coordinates, so the result is reproducible and identical for any tiling.

    Parameters
    ----------
    image : array_like
        Noisy image or stack (numpy), axes among T, Z, C, Y, X.
    model : BlindSpotModel
        A BSGD model (``method == "bsgd"``).
    guide : BlindSpotModel or array_like, optional
        Start from this model's result (it is run first) or from this precomputed result (same shape as
        ``image``); ``None`` starts from the noisy image itself (then use a larger ``t_start``).
    sampling_steps, guidance, rounds, t_start, replace : optional
        DDIM steps, guidance weight ``w`` (0: conventional branch only, 1: blind-spot branch only), rounds
        averaged, start time in (0, 1] and fraction of values re-injected from the noisy image per round.
    blind_spot : int, optional
        Blind spot of the blind-spot branch while sampling (default: the model's inference blind spot).
    seed : int
        Seeds the diffusion noise and replacement masks.
    device, tile_size : optional
        As in :func:`napari_bsdenoise.denoise`; the tile halo is ``sampling_steps`` times the branches'
        receptive radius.
    callback : callable, optional
        Called with a :class:`ProgressEvent` after every DDIM step (and the guide's tiles); return
        ``False`` to cancel (raises :class:`InterruptedError`).

    Returns
    -------
    numpy.ndarray
        float32, the input's shape and units.
    """
    from .device import resolve_device
    from .engine.bsgd_sample import RefineWindow, check_sampling, window_data
    from .engine.predict import _starts, predict_iter, tile_plan
    from .engine.progress import ProgressEvent, run_events

    model = _check_bsgd_model(model)
    arr = check_image(image)
    try:
        check_sampling(sampling_steps, guidance, rounds, t_start, replace)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")
    cfg = model.config
    layout, s = _inference_layout(arr, model, axes, blind_spot)
    norm = _match_normalization(cfg.normalization, layout)
    start_img = _start_image(arr, guide, layout, axes, device, callback)
    y = _normalize(to_samples(arr, layout), norm)
    start = y if start_img is None else _normalize(to_samples(start_img, layout), norm)
    independent = cfg.channel_mode == "independent"
    if independent:
        y, start = fold_channels(y), fold_channels(start)
    data = window_data(y, start)
    dev = resolve_device(device)

    n, _c, h, w = y.shape
    refiner = RefineWindow(model.network, channels=y.shape[1], steps=sampling_steps, guidance=float(guidance),
                           rounds=rounds, t_start=float(t_start), replace=float(replace), seed=int(seed))
    tile, _halo = tile_plan(refiner, s, tile_size, None)
    total = n * len(_starts(h, tile)) * len(_starts(w, tile)) * rounds * sampling_steps
    state = {"done": 0, "t0": time.perf_counter()}

    def on_step(_round, _step):
        state["done"] += 1
        done, elapsed = state["done"], time.perf_counter() - state["t0"]
        frac = done / total
        event = ProgressEvent("step", done, total, frac, elapsed, elapsed * (1 - frac) / frac,
                              message="BSGD refinement")
        if callback is not None and callback(event) is False:
            raise InterruptedError("refinement was cancelled")

    refiner.on_step = on_step
    try:
        out = run_events(predict_iter(refiner, data, blind_spot=s, device=dev, precision="fp32", tile=tile_size))
    finally:
        model.network.to("cpu")
    if callback is not None:
        callback(ProgressEvent("done", total, total, 1.0, time.perf_counter() - state["t0"], 0.0,
                               message="BSGD refinement done"))
    if independent:
        out = unfold_channels(out, layout.n_channels)
    mean = np.asarray(norm.mean, np.float32)[None, :, None, None]
    std = np.asarray(norm.std, np.float32)[None, :, None, None]
    return np.ascontiguousarray(from_samples(out * std + mean, layout), dtype=np.float32)
