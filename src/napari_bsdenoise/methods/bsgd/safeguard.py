"""The refinement's safeguard (issue #17): does BSGD improve on its guide, estimated on the image itself?

The guide's result and the refined result are both functions of the noisy image (the guide model runs
first, then the seeded DDIM sampling, whose random numbers depend only on the seed and the pixel
coordinates), so Monte-Carlo SURE (:mod:`napari_bsdenoise.engine.sure`) estimates the error of each
against the clean image, with the same probe and the same noise level (read where the guide's
noise-blind output is flat).  :func:`napari_bsdenoise.refine` keeps the guide's result where the
refinement is not estimated to beat it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...axes import fold_channels, to_samples
from ...engine.inference import inference_layout, inference_network, resolve_hot_pixels
from ...inputs import match_normalization, normalize

#: Crops of the check (the refinement is costly: smaller crops than the denoise check's).
CHECK_CROP = 128
CHECK_CROPS = 2


@dataclass(frozen=True)
class RefineCheck:
    """Estimated PSNR gains over the noisy input (dB) of the guide's and the refined result."""

    guide_gain_db: float
    refined_gain_db: float
    noise_scale: float

    @property
    def keep_guide(self) -> bool:
        return not self.refined_gain_db > self.guide_gain_db

    def summary(self) -> str:
        verdict = ("the guide's result is kept" if self.keep_guide else "the refined result is used")
        return (f"refinement check: refined estimated {self.refined_gain_db:+.1f} dB over the input, the guide "
                f"{self.guide_gain_db:+.1f} dB (self-supervised, no clean image): {verdict}")

    def to_dict(self) -> dict:
        return {"guide_gain_db": round(self.guide_gain_db, 2), "refined_gain_db": round(self.refined_gain_db, 2),
                "noise_scale": round(self.noise_scale, 3), "keep_guide": self.keep_guide,
                "summary": self.summary()}


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


def refine_check(arr: np.ndarray, model, guide, refiner, *, axes, blind_spot, hot_pixels, device) -> RefineCheck:
    """Estimate the gains of ``guide``'s result and of the refinement (``refiner``: the
    :class:`~.sampling.RefineWindow` that :func:`~.refine.refine` runs at ``blind_spot``) on ``arr``."""
    from ... import registry
    from ...nn.fusion import fusion_params
    from ...engine.sure import estimate_risk, noise_scale

    gcfg = guide.config
    layout, g_spot = inference_layout(arr, guide, axes, None)
    norm = match_normalization(gcfg.normalization, layout)
    data = normalize(to_samples(arr, layout), norm)
    if gcfg.channel_mode == "independent":
        data = fold_channels(data)
    acf = np.asarray(gcfg.noise["autocorrelation"], float)
    knots = fusion_params(gcfg.noise, norm.mean, norm.std, gcfg.network.in_channels)
    common = dict(acf=acf, knots=knots, device=device, crop=CHECK_CROP, crops=CHECK_CROPS)
    guide_net = inference_network(guide, g_spot, norm, "auto", hot_pixels)
    try:
        guide_risk = estimate_risk(guide_net, data, blind_spot=g_spot, **common)
        k = 1.0
        ref = registry.get(guide.method).reference
        if ref is not None:
            s_ref, f_ref = ref(gcfg)
            ref_net = inference_network(guide, s_ref, norm, f_ref, hot_pixels)
            k = noise_scale([estimate_risk(ref_net, data, blind_spot=s_ref, probe=False, **common)])
        outliers = resolve_hot_pixels(model, norm, hot_pixels)
        refined = _Refined(guide_net, g_spot, refiner, blind_spot, outliers)
        refined_risk = estimate_risk(refined, data, blind_spot=blind_spot, **common)
    finally:
        guide.network.to("cpu")
        model.network.to("cpu")
    return RefineCheck(guide_risk.gain_db(k), refined_risk.gain_db(k), k)
