"""The refinement's safeguard (issue #17): does BSGD improve on its guide, estimated on the image itself?

The guide's result and the refined result are both functions of the noisy image (the guide model runs
first, then the seeded DDIM sampling, whose random numbers depend only on the seed and the pixel
coordinates), so Monte-Carlo SURE (:mod:`napari_bsdenoise.engine.sure`) estimates the error of each
against the clean image, with the same probe and the same noise level (read where the guide's
noise-blind output is flat).  :func:`napari_bsdenoise.refine` keeps the guide's result where the
refinement is not estimated to beat it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...engine.inference import inference_network, model_input, resolve_fusion, resolve_hot_pixels

#: Crops of the check (the refinement is costly: smaller crops than the denoise check's).
CHECK_CROP = 128
CHECK_CROPS = 2


@dataclass(frozen=True)
class RefineCheck:
    """Estimated PSNR gains over the noisy input (dB) of the guide's and the refined result, and the
    estimated difference of their mean squared errors relative to the input's noise variance."""

    guide_gain_db: float
    refined_gain_db: float
    noise_scale: float
    mse_difference: float = float("nan")  # (refined - guide) / noise variance; < 0: the refinement helps

    @property
    def keep_guide(self) -> bool:
        # decided on the difference of the two risk estimates, an unbiased estimate of the difference of
        # the errors even where each estimate dips below zero and both gains read as the cap (high SNR)
        if math.isfinite(self.mse_difference):
            return not self.mse_difference < 0
        return not self.refined_gain_db > self.guide_gain_db

    def summary(self) -> str:
        verdict = ("the guide's result is kept" if self.keep_guide else "the refined result is used")
        diff = (f"; error {100 * self.mse_difference:+.1f} % of the noise variance"
                if math.isfinite(self.mse_difference) else "")
        return (f"refinement check: refined estimated {self.refined_gain_db:+.1f} dB over the input, the guide "
                f"{self.guide_gain_db:+.1f} dB{diff} (self-supervised, no clean image): {verdict}")

    def to_dict(self) -> dict:
        return {"guide_gain_db": round(self.guide_gain_db, 2), "refined_gain_db": round(self.refined_gain_db, 2),
                "mse_difference": round(self.mse_difference, 4), "noise_scale": round(self.noise_scale, 3),
                "keep_guide": self.keep_guide, "summary": self.summary()}


class _Refined:
    """The whole refinement as one function of the normalised noisy input, for the SURE estimate."""

    def __init__(self, guide_net, guide_spot, refiner, spot, outliers):
        self.guide_net, self.guide_spot, self.refiner, self.spot = guide_net, guide_spot, refiner, spot
        self.outliers = outliers

    def to(self, device):
        self.guide_net = self.guide_net.to(device)
        self.refiner = self.refiner.to(device)
        return self

    def eval(self):
        return self

    def __call__(self, x, _blind_spot=None):
        import torch

        from .sampling import window_data

        start = self.guide_net(x, self.guide_spot).float()
        y = x
        if self.outliers is not None:
            from ...nn.outliers import repair

            y = repair(x, self.outliers)
        window = torch.from_numpy(window_data(y.cpu().numpy(), start.cpu().numpy())).to(x.device)
        return self.refiner(window, self.spot)


def refine_check(arr: np.ndarray, model, guide, refiner, *, axes, blind_spot, hot_pixels, device,
                 guide_settings=(None, "auto")) -> RefineCheck:
    """Estimate the gains of ``guide``'s result (at ``guide_settings``, the ``(blind_spot, fusion)`` its
    result was computed with) and of the refinement (``refiner``: the :class:`~.sampling.RefineWindow`
    that :func:`~.refine.refine` runs at ``blind_spot``) on ``arr``."""
    from ...engine.safety import image_noise, noise_model
    from ...engine.sure import estimate_risk

    g_spot, g_fusion = guide_settings
    _layout, g_spot, norm, data = model_input(arr, guide, axes, g_spot)
    acf, knots = noise_model(guide, norm)
    crops = dict(crop=CHECK_CROP, crops=CHECK_CROPS)
    common = dict(acf=acf, knots=knots, device=device, **crops)
    guide_net = inference_network(guide, g_spot, norm, g_fusion, hot_pixels)
    try:
        guide_risk = estimate_risk(guide_net, data, blind_spot=g_spot, **common)
        # (the probes here are per channel, so the guide's estimate may serve as the reference)
        fused = resolve_fusion(guide, g_spot, norm, g_fusion) is not None
        k, _ = image_noise(guide, data, norm, hot_pixels=hot_pixels, default=((g_spot, fused), guide_risk), **common)
        outliers = resolve_hot_pixels(model, norm, hot_pixels)
        refined = _Refined(guide_net, g_spot, refiner, blind_spot, outliers)
        refined_risk = estimate_risk(refined, data, blind_spot=blind_spot, **common)
    finally:
        guide.network.to("cpu")
        model.network.to("cpu")
    diff = (refined_risk.mse(k) - guide_risk.mse(k)) / max(guide_risk.mse_input(k), 1e-12)
    return RefineCheck(guide_risk.gain_db(k), refined_risk.gain_db(k), k, diff if math.isfinite(diff) else math.nan)
