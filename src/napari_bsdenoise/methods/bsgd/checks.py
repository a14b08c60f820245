"""BSGD (blind-spot guided diffusion): presets, sampling defaults and the checks of its models.

A reconstruction of Cheng et al., "Blind-Spot Guided Diffusion for Self-supervised Real-World Denoising"
(arXiv 2509.16091), of which only the abstract is verified; docs/bsgd.md lists every design choice and
the measured quality and cost.  **Experimental**: measured on 4 images per group, the default refinement
(low frequencies anchored to the guide, the safeguard on) is above its guide on SIDD and W2S and keeps the
guide on Nam; the distilled student is still better on camera noise::

    import napari_bsdenoise as bsd
    bsn = bsd.train(noisy, steps=300)                        # the guiding blind-spot network
    diff = bsd.train_bsgd(noisy, guide=bsn, steps=600)       # both diffusion branches, same noisy data
    out = bsd.refine(noisy, diff, guide=bsn, seed=0)         # guided DDIM refinement of the BSN result
    diff.save("bsgd.safetensors")                            # saves/loads like any model

Networks: :mod:`napari_bsdenoise.nn.bsgd`; diffusion and sampler: :mod:`napari_bsdenoise.methods.bsgd.sampling`.
"""

from __future__ import annotations

from ...errors import InputError
from ...model import BlindSpotModel

NAME = "bsgd"
#: Sizes of *each* branch (encoder width, pooling levels).  "tiny" (CPU default) trains both branches at
#: about 2-3 steps/s (batch 8 of 64x64 RGB patches, one busy CPU thread); "small" is the GPU default.
BSGD_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"width": 16, "depth": 3},
    "small": {"width": 32, "depth": 4},
    "paper": {"width": 48, "depth": 5},
}
DEFAULT_BSGD_LEARNING_RATE = 1e-3
# Sampling defaults (chosen by the ablation in benchmarks/bench_bsgd.py, docs/bsgd.md).
DEFAULT_SAMPLING_STEPS = 2
DEFAULT_GUIDANCE = 0.75
DEFAULT_ROUNDS = 2
DEFAULT_T_START = 0.3
DEFAULT_REPLACE = 0.16
#: Gaussian sigma (pixels) below which the refinement keeps the guide's low frequencies (0: off).
DEFAULT_ANCHOR = 1.0


def check_bsgd_model(model) -> BlindSpotModel:
    if not isinstance(model, BlindSpotModel):
        raise InputError(f"model must be a BlindSpotModel (from train_bsgd or load_model), got {type(model).__name__}")
    if model.method != NAME:
        raise InputError(f"model is a {model.method!r} model; refine needs a BSGD model from train_bsgd "
                         "(pass the blind-spot model as guide=)")
    return model


def check_guide_model(guide) -> BlindSpotModel:
    if not isinstance(guide, BlindSpotModel):
        raise InputError(f"guide must be a BlindSpotModel (from train/distill/load_model), got {type(guide).__name__}")
    if guide.method == NAME:
        raise InputError("guide must be a blind-spot model or a student, not another BSGD model")
    return guide


