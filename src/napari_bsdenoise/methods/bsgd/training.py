"""Training of the two BSGD branches on patches of the noisy data (no clean reference)."""

from __future__ import annotations

import copy

from ... import registry
from ...version import __version__
from ...axes import fold_channels, to_samples
from ...config import ModelConfig, NetworkConfig, blind_spot_side, check_blind_spot, per_axis
from ...defaults import DEFAULT_BATCH_SIZE, DEFAULT_PATCH_SIZE, DEFAULT_VALIDATION_FRACTION
from ...device import autocast
from ...engine.inference import inference_layout
from ...engine.train import Trainer
from ...errors import InputError
from ...inputs import (check_budget, check_image, check_trainable_size, loop_settings, match_normalization,
                       normalization_of, normalize, sample_layout)
from ...model import BlindSpotModel
from ..blindspot import network_fields
from .checks import BSGD_PRESETS, DEFAULT_BSGD_LEARNING_RATE, NAME, check_bsgd_model, check_guide_model

VALIDATION_SEED = 12345
VALIDATION_TIMES = 4


class BSGDTrainer(Trainer):
    """Both branches trained together (sum of their x0-prediction losses), with :class:`Trainer`'s budget,
    schedule, held-out validation and best-model keeping.

    Validation uses fixed stratified times and diffusion noise from a fixed generator, so the validation loss of two
    checkpoints is comparable (random ``t`` would make best-model selection a lottery).
    """

    def __init__(self, data, model, *, t_max: float = 1.0, **kwargs):
        super().__init__(data, model, **kwargs)
        self.t_max = float(t_max)
        self.last_losses = (float("nan"), float("nan"))

    def describe(self) -> str:
        return (f"training the BSGD diffusion branches on {self.device} ({self.precision}), x0-prediction, "
                f"cosine schedule, t in [0, {self.t_max:g}], blind spot {self.config.train_blind_spot}")

    def _validate(self) -> float:
        import torch

        self._val_gen = torch.Generator().manual_seed(VALIDATION_SEED)
        try:
            return super()._validate()
        finally:
            self._val_gen = None

    def _batch_loss(self, x):
        import torch

        from .sampling import diffusion_losses  # torch: imported when training starts

        gen = getattr(self, "_val_gen", None)
        t = None
        if gen is not None:  # validation: every patch at VALIDATION_TIMES stratified times in [0, t_max]
            k = VALIDATION_TIMES
            t = ((torch.arange(k, dtype=torch.float32) + 0.5) / k * self.t_max).repeat_interleave(len(x))
            x = x.repeat(k, 1, 1, 1)
        with autocast(self.device, self.precision):
            loss_c, loss_b = diffusion_losses(self.net, x, self.config.train_blind_spot, t_max=self.t_max,
                                              generator=gen, t=t)
        if gen is None:
            self.last_losses = (float(loss_c.detach()), float(loss_b.detach()))
        return loss_c + loss_b

    def _provenance(self) -> dict:
        before = (self.config.training.get("continued_from") or {}).get("steps", 0)
        return {**super()._provenance(), "total_steps": before + self.step,
                "last_branch_losses": {"conv": self.last_losses[0], "bsn": self.last_losses[1]}}


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
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    warm_start: bool = True,
):
    """Prepare BSGD training and return a :class:`~napari_bsdenoise.methods.bsgd.training.BSGDTrainer`.

    Iterate over it for :class:`ProgressEvent` items; ``trainer.model`` is the best model so far.
    Arguments are those of :func:`train_bsgd`.
    """
    import torch

    from ...device import resolve_device
    from ...noise import estimate_noise_correlation_samples

    arr = check_image(image)
    steps = check_budget(steps, seconds, patch_size, batch_size, learning_rate)
    previous, record = None, {}  # record: the "bsgd" training record this run starts from
    if model is not None:
        check_bsgd_model(model)
        previous = model.config.training or {}
        record = previous.get("bsgd") or {}  # continuing keeps its t_max, guide and warm-start record
    if t_max is None:
        t_max = record.get("t_max", 1.0)
    if not (isinstance(t_max, (int, float)) and 0 < t_max <= 1):
        raise InputError(f"t_max must be in (0, 1], got {t_max!r}")
    if model is not None:
        layout, _ = inference_layout(arr, model, axes, None)
        check_trainable_size(layout)
        start = BlindSpotModel(ModelConfig.from_dict(model.config.to_dict()), copy.deepcopy(model.network))
        config = start.config
        samples = to_samples(arr, layout)
    else:
        if guide is not None:
            check_guide_model(guide)
            layout, _ = inference_layout(arr, guide, axes, None)
            norm = guide.config.normalization
        else:
            layout = sample_layout(arr, axes, channels)
        check_trainable_size(layout)
        samples = to_samples(arr, layout)
        noise = estimate_noise_correlation_samples(samples)
        if guide is None:
            norm = normalization_of(samples)
        if blind_spot == "auto":
            s_train = guide.config.train_blind_spot if guide is not None else noise.train_blind_spot
        else:
            s_train = check_blind_spot(blind_spot, "blind_spot")
            if s_train == 0:
                raise InputError("blind_spot=0 cannot be used for the blind-spot branch: it would see the pixel "
                                 "it predicts (use 1 or more)")
        if inference_blind_spot is None:
            s_inf = guide.config.inference_blind_spot if guide is not None else noise.inference_blind_spot
            s_inf = per_axis(lambda a, b: min(max(1, a), b), s_inf, s_train)
        else:
            s_inf = check_blind_spot(inference_blind_spot, "inference_blind_spot")
        h, w = layout.spatial_shape
        if min(h, w) <= 2 * blind_spot_side(s_train):
            raise InputError(f"the image ({h}x{w}) is too small for a training blind spot of {s_train} pixels")
        dev = resolve_device(device)
        warm = warm_start and guide is not None and registry.get(guide.method).teacher_warm_start  # AT-BSN
        if network == "auto" and warm:  # the guide's size, so both branches can start from it
            network = {"width": guide.config.network.width, "depth": guide.config.network.depth}
        net_kwargs = network_fields(network, BSGD_PRESETS, dev)
        n_in = layout.n_channels if layout.channel_mode == "joint" else 1
        config = ModelConfig(
            network=NetworkConfig(method=NAME, in_channels=n_in, out_channels=n_in, **net_kwargs),
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
        gc = check_guide_model(guide).config
        guide_info = {"method": guide.method, "network": gc.network.__dict__.copy(),
                      "train_blind_spot": gc.train_blind_spot, "inference_blind_spot": gc.inference_blind_spot}
    config.training = {
        "data_shape": list(arr.shape), "data_dtype": str(arr.dtype), "data_axes": layout.axes, "method": NAME,
        # warm_start: tensors copied from the guide per branch, or None
        "bsgd": {**record, "schedule": "cosine", "parameterization": "x0", "t_max": float(t_max),
                 "guide": guide_info},
    }
    if previous is not None:
        config.training["continued_from"] = {
            "steps": int(previous.get("total_steps", previous.get("steps", 0))),
            "best_val_loss": previous.get("best_val_loss"), "data_shape": previous.get("data_shape")}
    data = normalize(samples, match_normalization(config.normalization, layout))
    if config.channel_mode == "independent":
        data = fold_channels(data)
    dev = resolve_device(device)
    settings = loop_settings(steps, seconds, max(patch_size, 8 * blind_spot_side(config.train_blind_spot)), batch_size,
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




def make_trainer(image, *, loss: str = "auto", precision: str = "auto", **kwargs):
    """``train(method="bsgd")``: :func:`make_bsgd_trainer`, refusing what does not apply."""
    if loss != "auto" or precision != "auto":
        raise InputError("BSGD trains with its own diffusion loss in fp32: loss and precision do not apply")
    return make_bsgd_trainer(image, **kwargs)
