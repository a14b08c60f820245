"""The safety check of the default path: is the result better than its input, without a clean image?

:func:`safety_check` estimates the mean squared error of a model's result on the image itself
(:mod:`.sure`: Monte-Carlo SURE against the noise the model measured in its training data) and of the
noisy input.  Where the default settings are not estimated to gain at least :data:`MIN_GAIN_DB`, it
tries the method's other settings (the registry's ``fallbacks``: for AT-BSN the output without the
fusion and the training blind spot; for D-BSN the blind-spot mean) and picks the best; when even the
best is estimated more than :data:`KEEP_INPUT_DB` below the input, the input itself is the result,
and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import format_blind_spot
from .inference import inference_network, model_input, resolve_fusion

#: The default settings are kept when their estimated gain over the input is at least this (dB).
MIN_GAIN_DB = 0.5
#: The input is kept only when every setting is estimated this much (dB) or more below it.  The
#: estimate's error on mild real camera noise is 1-2 dB either way (docs/safety.md): on Nam
#: d800_iso1600_3 a teacher that gains +1.40 dB read -0.64, and keeping the input would lose it,
#: while the settings that really are worse than the input read -3.9 dB and below.
KEEP_INPUT_DB = 1.0
CHECKS = ("auto", True, False)


class SafetyWarning(UserWarning):
    """The safety check of :func:`napari_bsdenoise.denoise` changed the settings (or kept the input)."""


@dataclass(frozen=True)
class Candidate:
    """One setting of the model and its estimated PSNR gain over the input (dB)."""

    blind_spot: int | tuple
    fusion: object  # "auto" or False, as denoise takes it
    gain_db: float
    fused: bool  # whether the fusion actually applies at this setting

    def describe(self) -> str:
        return f"blind spot {format_blind_spot(self.blind_spot)}{', fused' if self.fused else ''}"


@dataclass
class SafetyReport:
    """What :func:`safety_check` estimated and chose.  ``chosen`` is None when the input is kept."""

    candidates: list = field(default_factory=list)
    chosen: Candidate | None = None
    fell_back: bool = False
    checked: bool = True
    reason: str = ""
    noise_scale: float = 1.0  # this image's noise variance over the training data's estimate

    @property
    def keeps_input(self) -> bool:
        """The check fell back and every setting is estimated clearly below the input (:data:`KEEP_INPUT_DB`):
        the result is the input."""
        return self.fell_back and self.chosen is None

    def summary(self) -> str:
        if not self.checked:
            return f"safety check skipped: {self.reason}"
        first = self.candidates[0]
        if not self.fell_back:
            return (f"safety check: {first.describe()} estimated {first.gain_db:+.1f} dB over the input "
                    "(self-supervised, no clean image)")
        tried = "; ".join(f"{c.describe()} {c.gain_db:+.1f} dB" for c in self.candidates)
        if self.chosen is first:
            within = (f", within the check's error (the input is kept below {-KEEP_INPUT_DB:+.1f} dB)"
                      if first.gain_db <= 0 else "")
            return (f"safety check: the default ({first.describe()}) is estimated at only {first.gain_db:+.1f} dB "
                    f"over the input, and no other setting does better ({tried}); it is kept{within}")
        if self.chosen is None:
            return (f"safety check: every setting of this model is estimated more than {KEEP_INPUT_DB:g} dB below "
                    f"the input ({tried}); the input is kept unchanged")
        return (f"safety check: the default ({first.describe()}) was estimated at {first.gain_db:+.1f} dB, below "
                f"{MIN_GAIN_DB} dB; using {self.chosen.describe()} instead ({tried})")

    def to_dict(self) -> dict:
        """JSON-friendly form (for a layer's metadata)."""
        pick = None if self.chosen is None else {"blind_spot": _json(self.chosen.blind_spot),
                                                 "fused": self.chosen.fused}
        return {"checked": self.checked, "fell_back": self.fell_back, "chosen": pick, "summary": self.summary(),
                "noise_scale": round(self.noise_scale, 3),
                "candidates": [{"blind_spot": _json(c.blind_spot), "fused": c.fused,
                                "gain_db": round(c.gain_db, 2)} for c in self.candidates]}


def _json(spot):
    return list(spot) if isinstance(spot, tuple) else int(spot)


def kept_input(arr, model, *, axes=None, hot_pixels="auto") -> np.ndarray:
    """The result when no setting beats the input: a float32 copy of it, with the hot and dead pixels
    ``hot_pixels`` asks to repair repaired (as every other result has them)."""
    from ..axes import from_samples, unfold_channels
    from ..inputs import denormalize
    from ..nn.outliers import repair_samples
    from .inference import resolve_hot_pixels

    out = np.array(arr, dtype=np.float32)
    layout, _, norm, data = model_input(arr, model, axes)
    params = resolve_hot_pixels(model, norm, hot_pixels)
    if params is None:
        return out
    repaired, mask = repair_samples(data, params)
    if not mask.any():
        return out
    mask = mask.astype(np.float32)
    if model.config.channel_mode == "independent":
        repaired, mask = (unfold_channels(a, layout.n_channels) for a in (repaired, mask))
    where = from_samples(mask, layout) > 0.5
    out[where] = from_samples(denormalize(repaired, norm), layout)[where]  # the rest stays the input, bit for bit
    return out


def noise_model(model, norm):
    """``(acf, knots)``: the model's measured noise autocorrelation and its noise curve in the units of
    ``norm``, as :func:`~.sure.estimate_risk` takes them; None when the model has no noise estimate."""
    from ..nn.fusion import fusion_params

    cfg = model.config
    if not cfg.noise or "autocorrelation" not in cfg.noise:
        return None
    return (np.asarray(cfg.noise["autocorrelation"], float),
            fusion_params(cfg.noise, norm.mean, norm.std, cfg.network.in_channels))


def image_noise(model, data, norm, *, acf, knots, device, hot_pixels, default=None, **crops):
    """``(k, channel_corr)``: this image's noise level relative to the model's curve, and (several joint
    channels) the noise's correlation between channels, read where the model's output blind to the noise
    (the registry's ``reference``) is flat; ``(1.0, None)`` for a method without one.  ``default``,
    ``((blind_spot, fused), risk)`` of an estimate already made without a channel correlation, serves as
    the reference when it is the same setting in effect (no pass is run twice); ``crops`` (``crop=``,
    ``crops=``) as :func:`~.sure.estimate_risk`."""
    from .. import registry
    from .sure import estimate_risk, noise_scale

    ref = registry.get(model.method).reference
    if ref is None:
        return 1.0, None
    s_ref, f_ref = ref(model.config)
    if default is not None and default[0] == (s_ref, resolve_fusion(model, s_ref, norm, f_ref) is not None):
        risk = default[1]
    else:
        risk = estimate_risk(inference_network(model, s_ref, norm, f_ref, hot_pixels), data, blind_spot=s_ref,
                             acf=acf, knots=knots, device=device, probe=False, **crops)
    return noise_scale([risk]), (risk.channel_correlation() if data.shape[1] > 1 else None)


def fallback_settings(model, blind_spot, fusion) -> list[tuple]:
    """``(blind_spot, fusion)`` pairs to try after the default, most detail-preserving first."""
    from .. import registry

    spec = registry.get(model.method)
    out = []
    for s, f in spec.fallbacks(model.config) if spec.fallbacks else []:
        if (s, f) != (blind_spot, fusion) and (s, f) not in out:
            out.append((s, f))
    return out


def checked_settings(arr, model, *, check, axes, blind_spot, fusion, hot_pixels, device, callback=None):
    """``(blind_spot, fusion, report)`` for :func:`napari_bsdenoise.denoise`'s ``check=``: the settings the
    check chose (``report`` None when ``check`` does not apply; ``report.chosen`` None: keep the input).
    A fallback is announced by a :class:`SafetyWarning`, every check by a ``"check"`` progress event."""
    import warnings

    from ..errors import InputError
    from .progress import ProgressEvent

    if check not in CHECKS:
        raise InputError(f"check must be one of {CHECKS}, got {check!r}")
    if not (check is True or (check == "auto" and blind_spot is None and fusion == "auto")):
        return blind_spot, fusion, None
    report = safety_check(arr, model, axes=axes, blind_spot=blind_spot, fusion=fusion, hot_pixels=hot_pixels,
                          device=device)
    if callback is not None:
        callback(ProgressEvent("check", message=report.summary()))
    if report.fell_back:
        warnings.warn(report.summary(), SafetyWarning, stacklevel=3)
        if report.chosen is not None:
            blind_spot, fusion = report.chosen.blind_spot, report.chosen.fusion
    return blind_spot, fusion, report


def safety_check(arr: np.ndarray, model, *, axes=None, blind_spot=None, fusion="auto", hot_pixels="auto",
                 device=None, full: bool = True, min_gain_db: float = MIN_GAIN_DB) -> SafetyReport:
    """Estimate how much ``model``'s result on ``arr`` improves on it, without a clean reference.

    Monte-Carlo SURE (:mod:`.sure`: Stein's unbiased risk estimate with a probe correlated like the
    noise the model measured in its training data, re-scaled to this image's noise level) gives the
    mean squared error of the result against the clean image it never sees; the input's is the noise
    variance.  When the given settings are estimated to gain less than ``min_gain_db``, the method's
    other settings are estimated too (``full``; the registry's ``fallbacks``) and the best is
    ``report.chosen`` (None when even the best is estimated ``KEEP_INPUT_DB`` or more below the
    input).  Needs a model with a noise estimate of its training data; otherwise the report says the
    check was skipped.  Measured bias (docs/safety.md): pessimistic by 0.4-2 dB on synthetic
    signal-dependent noise correlated along one axis and on mild real camera noise (Nam), optimistic by
    4-9 dB on real fluorescence and sRGB pairs; gross failures are caught.

    Returns
    -------
    SafetyReport
        ``.candidates`` (settings and estimated gains in dB), ``.chosen``, ``.fell_back``,
        ``.summary()`` and ``.to_dict()`` (what the napari layer's metadata records).
    """
    from ..device import resolve_device
    from .sure import estimate_risk

    if not model.config.noise or "autocorrelation" not in model.config.noise:
        return SafetyReport(checked=False, reason="the model has no noise estimate of its training data")
    if model.config.network.spatial_dims == 3:
        return SafetyReport(checked=False, reason="a 3-D model (the safety check is 2-D only in this version)")
    layout, s, norm, data = model_input(arr, model, axes, blind_spot)
    acf, knots = noise_model(model, norm)
    h, w = layout.spatial_shape
    if min(h, w) < acf.shape[0] + 8:
        return SafetyReport(checked=False, reason=f"the image ({h}x{w}) is too small for the estimate")
    dev = resolve_device(device)
    corr = None  # the noise's correlation between joint channels (image_noise)

    def effect(spot, fuse):
        return spot, resolve_fusion(model, spot, norm, fuse) is not None

    def estimate(spot, fuse):
        net = inference_network(model, spot, norm, fuse, hot_pixels)
        return effect(spot, fuse), fuse, estimate_risk(net, data, blind_spot=spot, acf=acf, knots=knots,
                                                       device=dev, channel_corr=corr)

    def report_of(done) -> SafetyReport:
        cands = [Candidate(spot, fuse, r.gain_db(k), fused) for (spot, fused), fuse, r in done]
        return SafetyReport(candidates=cands, chosen=cands[0], noise_scale=k)

    kw = dict(acf=acf, knots=knots, device=dev, hot_pixels=hot_pixels)
    try:
        if data.shape[1] == 1:  # the probe needs no channel correlation: the default may be the reference
            done = [estimate(s, fusion)]
            k, _ = image_noise(model, data, norm, default=(done[0][0], done[0][2]), **kw)
        else:  # the channel correlation first: the probes use it
            k, corr = image_noise(model, data, norm, **kw)
            done = [estimate(s, fusion)]
        report = report_of(done)
        if not full or report.candidates[0].gain_db >= min_gain_db:
            return report
        for spot, fuse in fallback_settings(model, s, fusion):
            if all(effect(spot, fuse) != d[0] for d in done):  # (no setting twice in effect)
                done.append(estimate(spot, fuse))
    finally:
        model.network.to("cpu")
    report = report_of(done)
    report.fell_back = True
    report.chosen = fallback_choice(report.candidates)
    return report


def fallback_choice(candidates) -> Candidate | None:
    """The best-estimated setting, or None (keep the input) when even it is estimated
    :data:`KEEP_INPUT_DB` or more below the input."""
    best = max(candidates, key=lambda c: c.gain_db)
    return best if best.gain_db > -KEEP_INPUT_DB else None
