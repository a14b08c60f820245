"""BSGD (blind-spot guided diffusion): a refinement stage whose DDIM sampling is guided by a
blind-spot branch (experimental; docs/bsgd.md).

- :mod:`.checks`: presets, sampling defaults, model checks;
- :mod:`.sampling`: the diffusion schedule, losses and the guided sampler (torch);
- :mod:`.training`: :class:`~.training.BSGDTrainer`, :func:`~.training.make_bsgd_trainer`;
- :mod:`.refine`: :func:`~.refine.refine`.
"""

from __future__ import annotations

from ...config import check_unet_depth
from ...registry import Method
from .checks import BSGD_PRESETS, NAME
from .training import make_trainer


def build_network(cfg):
    from ...nn.bsgd import BSGDNet

    return BSGDNet(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)


def describe(model) -> str:
    c = model.config
    return f"blind spot: trained at {c.train_blind_spot}, inference default {c.inference_blind_spot}"


METHOD = Method(
    name=NAME,
    title="BSGD: diffusion refinement guided by a blind-spot branch (experimental)",
    presets=BSGD_PRESETS,
    build_network=build_network,
    describe=describe,
    make_trainer=make_trainer,
    validate_config=check_unet_depth,
    losses=("l2",),
    no_fusion_reason=("fusion with the noisy input applies to AT-BSN blind-spot outputs; D-BSN fuses with its "
                      "own noise model and students see the noisy pixel already"),
    guided=True,
)
