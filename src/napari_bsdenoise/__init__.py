"""napari-bsdenoise: self-supervised blind-spot denoising for microscopy and camera images.

The public API (napari-free; importable from scripts, the napari console and the CLI)::

    import napari_bsdenoise as bsd
    model = bsd.train(noisy, axes="YX", seconds=120)      # learn from the noisy data itself
    clean = bsd.denoise(noisy, model, blind_spot=1)       # any blind spot, no retraining
    student = bsd.distill(noisy, model, seconds=60)        # fast non-blind student for big stacks
    model.save("cells.safetensors"); model = bsd.load_model("cells.safetensors")
    bsd.export_bioimageio(model, "cells.zip", image=noisy)  # a BioImage Model Zoo package
    bsd.estimate_noise_correlation(noisy).summary()
"""

from .version import __version__
from .api import (
    AutoResult,
    auto_denoise,
    denoise,
    denoise_iter,
    distill,
    estimate_noise_correlation,
    export_bioimageio,
    find_hot_pixels,
    format_blind_spot,
    load_model,
    make_distiller,
    make_trainer,
    parse_blind_spot,
    refine,
    safety_check,
    SafetyReport,
    SafetyWarning,
    train,
    train_bsgd,
)
from .engine.progress import ProgressEvent
from .errors import BSDenoiseError, InputError, ModelFileError
from .model import BlindSpotModel

__all__ = [
    "AutoResult",
    "auto_denoise",
    "__version__",
    "BlindSpotModel",
    "BSDenoiseError",
    "InputError",
    "ModelFileError",
    "ProgressEvent",
    "denoise",
    "denoise_iter",
    "distill",
    "estimate_noise_correlation",
    "export_bioimageio",
    "find_hot_pixels",
    "format_blind_spot",
    "load_model",
    "parse_blind_spot",
    "safety_check",
    "SafetyReport",
    "SafetyWarning",
    "refine",
    "make_distiller",
    "make_trainer",
    "train",
    "train_bsgd",
]
