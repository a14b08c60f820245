"""AT-BSN: the asymmetric tunable blind-spot network (Chen et al., arXiv:2303.16783).

A shifted-convolution UNet whose blind spot is chosen per call: trained with a large blind spot
(breaks spatially correlated noise), applied with a small one (keeps detail).  Its outputs can be
fused with the noisy input where they miss detail (:mod:`napari_bsdenoise.nn.fusion`), and it
teaches a non-blind student at several blind spots (:mod:`napari_bsdenoise.methods.student`).
"""

from __future__ import annotations

from functools import partial

from ..config import NETWORK_PRESETS, check_unet_depth, format_blind_spot
from ..engine.distill import default_teacher_blind_spots
from ..engine.train import Trainer
from ..registry import Method
from .blindspot import BlindSpotTraining, atbsn_blind_spots, atbsn_loss, make_blindspot_trainer

NAME = "atbsn"


def build_network(cfg):
    if cfg.spatial_dims == 3 and cfg.z_context:
        from ..nn.atbsn25d import ATBSN25D

        return ATBSN25D(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth, z_context=cfg.z_context)
    if cfg.spatial_dims == 3:
        from ..nn.atbsn3d import ATBSN3D

        return ATBSN3D(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)
    from ..nn.atbsn import ATBSN

    return ATBSN(cfg.in_channels, cfg.out_channels, width=cfg.width, depth=cfg.depth)


def fusion(model, blind_spot: int, norm, mode):
    """``(FusionParams, None)`` when the noisy-input fusion applies, else ``(None, why not)``.

    ``mode="auto"`` fuses at blind spots >= 1 when the model's training data had spatially
    correlated noise (measured: +1.3 dB on Nam, +0.4 dB on SIDD); for pixel-independent noise it
    lost 0.3 dB on W2S, where the noisy pixel adds little to a 1-pixel blind spot (docs/fusion.md).
    """
    from ..nn.fusion import fusion_params

    cfg = model.config
    if cfg.network.spatial_dims == 3:
        return None, "a 3-D model (the noisy-input fusion is 2-D only in this version)"
    if blind_spot == 0:
        return None, "blind_spot=0 (the non-blind output already sees the noisy pixel)"
    if not cfg.noise:
        return None, "a model without a noise estimate of its training data"
    if mode == "auto" and int(cfg.noise.get("correlation_length", 1)) == 0:
        return None, "pixel-independent noise (fusion='auto' fuses correlated noise only)"
    return fusion_params(cfg.noise, norm.mean, norm.std, cfg.network.in_channels), None


#: The safety check reads the image's noise level on the output at the training blind spot, widened while
#: the nearest pixels it sees still carry noise correlated by more than this (that output copies part of
#: the noise, and the level reads low).  Measured (docs/safety.md): Nam d800_iso1600_3 (correlation 0.42
#: two pixels away) trains at the mild-noise cap 3; its noise level read at 3 was 0.53 of the diagnostic's
#: and a +1.42 dB model was estimated at -0.33 dB, read at 5 (0.64) at +0.74.  5dmark3_iso3200_1 (0.27):
#: 3 is right (+2.17 estimated, +1.92 true), 5 optimistic by 0.75 dB.
REFERENCE_CORRELATION = 0.3


def reference_blind_spot(cfg):
    """The blind spot whose output (unfused) the safety check reads the image's noise level on
    (:func:`napari_bsdenoise.engine.safety.image_noise`): the training one, widened (by 2, up to the
    diagnostic's range) while the nearest ring of pixels it sees correlates by more than
    :data:`REFERENCE_CORRELATION`.  A ``(y, x)`` or 3-D training blind spot is kept as it is."""
    import numpy as np

    s = cfg.train_blind_spot
    acf = (cfg.noise or {}).get("autocorrelation")
    if isinstance(s, tuple) or acf is None or cfg.network.spatial_dims != 2 or s < 1:
        return s
    a = np.abs(np.asarray(acf, float))
    L = (a.shape[0] - 1) // 2
    yy, xx = np.meshgrid(np.arange(-L, L + 1), np.arange(-L, L + 1), indexing="ij")
    ring = np.maximum(np.abs(yy), np.abs(xx))
    while (s + 1) // 2 <= L and a[ring == (s + 1) // 2].max() > REFERENCE_CORRELATION:
        s += 2
    return s


def describe(model) -> str:
    c = model.config
    fused = ""
    if c.noise and c.noise.get("correlation_length", 1) != 0 and c.network.spatial_dims == 2:  # as fusion()
        curve = "its noise curve" if c.noise.get("noise_curve") else "its average noise level (no curve)"
        fused = f"; outputs fused with the noisy input against {curve} (fusion='auto')"
    return (f"blind spot: trained at {format_blind_spot(c.train_blind_spot)}, inference default "
            f"{format_blind_spot(c.inference_blind_spot)}{fused}")


METHOD = Method(
    name=NAME,
    title="AT-BSN: tunable blind spot, for spatially correlated noise (camera sRGB)",
    presets=NETWORK_PRESETS,
    build_network=build_network,
    describe=describe,
    make_trainer=partial(make_blindspot_trainer, method=NAME),
    validate_config=check_unet_depth,
    fusion=fusion,
    teacher_blind_spots=lambda cfg: default_teacher_blind_spots(cfg.train_blind_spot),
    student_network=lambda cfg: {"width": cfg.network.width, "depth": cfg.network.depth},
    teacher_warm_start=True,
    # without the fusion, then the training blind spot (it hides all the noise correlation it was trained on)
    reference=lambda cfg: (reference_blind_spot(cfg), False),
    fallbacks=lambda cfg: [(cfg.inference_blind_spot, False), (cfg.train_blind_spot, "auto"),
                           (cfg.train_blind_spot, False)],
    no_fusion_reason="",
    spatial_dims=(2, 3),
    extras={"training": BlindSpotTraining(Trainer, atbsn_blind_spots, atbsn_loss)},
)
