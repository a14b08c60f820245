"""D-BSN: a one-pass dilated network with an exactly 1-pixel blind spot and a learned noise model.

Its prediction is fused with the noisy pixel by the posterior mean (blind spot 0, the default) or
used alone (blind spot 1): the right tool for pixel-independent noise (raw microscopy cameras).

Training: blind-spot mean by L2, uncertainty and noise level by a Gaussian NLL.  Per pixel and
channel (normalised units) the loss is

    (y - mu)^2  +  0.5 * ((y - mu')^2 / v + log var_n + var_mu / var_n),   v = var_mu + var_n,

where ``mu'`` is ``mu`` detached: the blind-spot mean is the plain self-supervised L2
estimator (the official code's stage a, kept on throughout), while the two variance heads
learn, from detached features, how far the noisy pixel scatters around it (stages b/c).
The second term is D-BSN's constrained NLL: ``log v`` replaced by its upper bound
``log var_n + var_mu / var_n`` (closed form for independent channels; no inverses;
variances exp-parametrised, clamped and floored).  The plain NLL
(``objective = "nll"``) only identifies ``var_mu + var_n``; measured on real data it put
noise into ``var_mu`` and its fusion let noise back in (W2S image 001_0: SI-PSNR 24.8 fused
vs 28.8 for the mean alone), while the bound never fused worse than the mean in our tests
(28.7 there; it gives up some of the plain NLL's gain at very high photon counts).
Training the heads on detached inputs keeps the mean from being bent to suit the
variances, and lets all three be trained in one run with the same budget, schedule,
validation and stop/continue behaviour as AT-BSN (:class:`~napari_bsdenoise.engine.train.Trainer`).
The validation loss is the same sum on held-out patches.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..config import DBSN_PRESETS, MAX_DBSN_DEPTH, NETWORK_PRESETS
from ..device import autocast
from ..engine.train import Trainer
from ..errors import InputError
from ..registry import Method
from .blindspot import BlindSpotTraining, make_blindspot_trainer

NAME = "dbsn"


class DBSNTrainer(Trainer):
    """Train a :class:`~napari_bsdenoise.nn.dbsn.DBSN` on normalised ``(N, C, Y, X)`` data."""

    #: "bound": the paper's constrained NLL (default); "nll": the plain Gaussian NLL
    objective = "bound"

    def _batch_loss(self, x):
        import torch.nn.functional as F

        from ..nn.dbsn import constrained_nll, gaussian_nll

        with autocast(self.device, self.precision):
            mu, feats = self.net.blind(x)
            var_mu, var_n = self.net.variances(mu.detach(), feats.detach())
        mu = mu.float()
        nll = constrained_nll if self.objective == "bound" else gaussian_nll
        return F.mse_loss(mu, x) + nll(x, mu.detach(), var_mu, var_n)

    def describe(self) -> str:
        return (f"training D-BSN on {self.device} ({self.precision}): 1-pixel dilated blind spot, noise "
                f"model and posterior-mean fusion{self._method_note()}")


def build_network(cfg):
    from ..nn.dbsn import DBSN

    return DBSN(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)


def validate_config(cfg) -> None:
    if cfg.network.depth > MAX_DBSN_DEPTH:
        raise InputError(f"D-BSN depth must be at most {MAX_DBSN_DEPTH} blocks, got {cfg.network.depth}")
    if cfg.network.in_channels != cfg.network.out_channels:
        raise InputError("D-BSN needs as many output channels as input channels")
    if cfg.train_blind_spot != 1 or cfg.inference_blind_spot not in (0, 1):
        raise InputError("D-BSN has a fixed 1-pixel blind spot: it is trained at 1 and applied at 0 "
                         "(fused with the noisy pixel) or 1 (the blind-spot mean alone)")


def check_inference_blind_spot(s) -> None:
    if s not in (0, 1):
        raise InputError(f"blind_spot={s} does not apply: D-BSN has a fixed 1-pixel blind spot (blind spot 0 = "
                         "the posterior-mean fusion with the noisy pixel, the default; 1 = the blind-spot mean alone)")


def blind_spots(blind_spot, s_train, inference_blind_spot, noise) -> tuple[int, int]:
    if s_train is not None and s_train != 1:
        raise InputError(f"D-BSN has a fixed 1-pixel blind spot; blind_spot={s_train} needs method='atbsn'")
    if inference_blind_spot is not None and inference_blind_spot not in (0, 1):
        raise InputError("a D-BSN model is applied at blind spot 0 (fused with the noisy pixel) or 1 "
                         f"(the blind-spot mean alone), not {inference_blind_spot}")
    return 1, (0 if inference_blind_spot is None else int(inference_blind_spot))


def loss(loss, layout) -> str:
    if loss not in ("auto", "nll"):
        raise InputError(f"loss={loss!r} does not apply to D-BSN (it trains with the Gaussian NLL: "
                         "loss='auto' or 'nll')")
    return "nll"


def initialise(model, noise) -> None:
    # start the noise model at the diagnostic's noise level (normalised units): the heads then
    # only refine it (signal dependence, uncertainty) instead of spending the budget finding it
    var_n = float(np.mean([(noise.noise_std / s) ** 2 for s in model.config.normalization.std]))
    model.network.set_initial_variances(var_mu=0.5 * var_n, var_n=var_n)


def describe(model) -> str:
    c = model.config
    mode = "fused with the noisy pixel (posterior mean)" if c.inference_blind_spot == 0 else \
        "the blind-spot mean alone"
    return (f"D-BSN: 1-pixel blind spot with noise model; inference default {c.inference_blind_spot} "
            f"({mode}; 0 = fused, 1 = blind-spot mean)")


def student_network(cfg) -> dict:
    """The UNet preset of the same name as the teacher's D-BSN preset."""
    name = next((k for k, v in DBSN_PRESETS.items()
                 if v == {"width": cfg.network.width, "depth": cfg.network.depth}), "tiny")
    return dict(NETWORK_PRESETS[name])


METHOD = Method(
    name=NAME,
    title="D-BSN: 1-pixel blind spot with a noise model, for pixel-independent noise (raw microscopy)",
    presets=DBSN_PRESETS,
    build_network=build_network,
    describe=describe,
    make_trainer=partial(make_blindspot_trainer, method=NAME),
    check_inference_blind_spot=check_inference_blind_spot,
    validate_config=validate_config,
    losses=("nll",),
    no_fusion_reason=("fusion with the noisy input applies to AT-BSN blind-spot outputs; D-BSN fuses with its "
                      "own noise model and students see the noisy pixel already"),
    # a D-BSN teacher's target is its fused (posterior-mean) output, its blind spot 0
    teacher_blind_spots=lambda cfg: (0,),
    fallbacks=lambda cfg: [(1, "auto"), (0, "auto")],
    reference=lambda cfg: (1, "auto"),  # the blind-spot mean (not fused at blind spot 1)  # the blind-spot mean alone, or the posterior mean
    student_network=student_network,
    teacher_warm_start=False,  # D-BSN shares no UNet weights with the student
    extras={"training": BlindSpotTraining(DBSNTrainer, blind_spots, loss, initialise)},
)
