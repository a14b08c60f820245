"""BSGD refinement: guided DDIM sampling of the guide's result with the two diffusion branches."""

from __future__ import annotations

import time

import numpy as np

from ...axes import fold_channels, from_samples, to_samples, unfold_channels
from ...engine.inference import inference_layout, resolve_hot_pixels
from ...engine.denoise import denoise_array
from ...errors import InputError
from ...inputs import check_image, denormalize, match_normalization, normalize
from ...model import BlindSpotModel
from .checks import (DEFAULT_ANCHOR, DEFAULT_GUIDANCE, DEFAULT_REPLACE, DEFAULT_ROUNDS, DEFAULT_SAMPLING_STEPS,
                     DEFAULT_T_START, check_bsgd_model, check_guide_model)


def _start_image(arr, guide, layout, axes, device, callback, hot_pixels, check):
    """``(start, settings)``: the guide's result for ``arr`` in image units (``None`` without a guide) and,
    for a guide model, the ``(blind_spot, fusion)`` it ran with.  With ``check`` on, a guide model's result
    is what :func:`napari_bsdenoise.denoise` gives (its safety check may choose another setting);
    ``settings`` is ``None`` when that check keeps the input, which is then the start (and the result)."""
    if guide is None:
        return None, None
    if isinstance(guide, BlindSpotModel):
        from ...engine.safety import checked_settings, kept_input

        check_guide_model(guide)
        axes = layout.axes if axes is None else axes
        spot, fusion, report = checked_settings(arr, guide, check="auto" if check is not False else False,
                                                axes=axes, blind_spot=None, fusion="auto", hot_pixels=hot_pixels,
                                                device=device, callback=callback)
        if report is not None and report.keeps_input:
            return kept_input(arr, guide, axes=axes, hot_pixels=hot_pixels), None
        return denoise_array(arr, guide, axes=axes, blind_spot=spot, fusion=fusion, device=device,
                             callback=callback, hot_pixels=hot_pixels), (spot, fusion)
    g = check_image(guide, name="guide")
    if g.shape != arr.shape:
        raise InputError(f"the guide result has shape {g.shape} and the image {arr.shape}; they must match")
    return g, None


def _safeguard(check, arr, model, guide, refiner, *, axes, blind_spot, hot_pixels, device, callback,
               guide_settings=(None, "auto")) -> bool:
    """Run the refinement's safeguard where ``check`` asks for it; True: keep the guide's result."""
    import warnings

    from ...engine.progress import ProgressEvent
    from ...engine.safety import SafetyWarning
    from .safeguard import refine_check

    if check is False:  # (validated by refine)
        return False
    usable = (isinstance(guide, BlindSpotModel) and bool(guide.config.noise)
              and guide.config.normalization == model.config.normalization)
    if not usable:
        if check is True:
            raise InputError("check=True needs a guide model with a noise estimate and the BSGD model's "
                             "normalisation (train_bsgd(..., guide=model)); a precomputed guide result cannot "
                             "be checked")
        return False
    result = refine_check(arr, model, guide, refiner, axes=axes, blind_spot=blind_spot, hot_pixels=hot_pixels,
                          device=device, guide_settings=guide_settings)
    if callback is not None:
        callback(ProgressEvent("check", message=result.summary()))
    if result.keep_guide:
        warnings.warn(result.summary(), SafetyWarning, stacklevel=3)
    return result.keep_guide


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
    anchor: float = DEFAULT_ANCHOR,
    blind_spot: int | None = None,
    seed: int = 0,
    device=None,
    tile_size: int | None = None,
    callback=None,
    hot_pixels="auto",
    check="auto",
) -> np.ndarray:
    """Refine ``image`` by blind-spot guided diffusion sampling with a model from :func:`train_bsgd`.

    Each of ``rounds`` rounds replaces a complementary random subset (fraction ``replace``) of the start
    image with the noisy input, diffuses it to ``t_start`` and runs ``sampling_steps`` deterministic DDIM
    steps with ``x0 = x0_conv + guidance * (x0_bsn - x0_conv)`` (the same as mixing the predicted noise);
    the rounds are averaged, and their mean keeps the start image's low frequencies (below a Gaussian of
    sigma ``anchor`` pixels).  The random numbers are a function of ``seed`` and the global pixel
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
    anchor : float
        Gaussian sigma in pixels: the refined result's difference from the start image is kept only
        above this scale (``x - G * (x - start)``), so the refinement adds local detail and cannot shift
        the intensities or slow variations (measured: docs/bsgd.md); 0 turns it off.
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
    hot_pixels : {"auto", "keep", "remove"}
        As in :func:`napari_bsdenoise.denoise`: hot and dead pixels are repaired in the guide's input and
        in the noisy values re-injected each round (``"keep"``: not).
    check : {"auto", True, False}
        The safeguard (:mod:`.safeguard`): with a guide *model*, estimate on the image itself (Monte-Carlo
        SURE, no clean reference) whether the refined result beats the guide's, and return the guide's
        result where it does not, with a :class:`~napari_bsdenoise.engine.safety.SafetyWarning` and a
        ``"check"`` progress event.  The guide's result is then the one :func:`napari_bsdenoise.denoise`
        gives, with its own safety check (which may choose another setting, or keep the input: then so
        does the refinement); with ``False``, the guide's default setting unchecked.  ``"auto"`` (default): when the guide is a model with a noise estimate;
        ``True`` insists; ``False`` never.  It costs about two refinements of two 128x128 crops.

    Returns
    -------
    numpy.ndarray
        float32, the input's shape and units.
    """
    from ...device import resolve_device
    from ...engine.predict import predict_iter, tile_plan, tile_starts
    from ...engine.progress import ProgressEvent, run_events
    from ...engine.safety import CHECKS
    from .sampling import RefineWindow, check_sampling, window_data

    model = check_bsgd_model(model)
    arr = check_image(image)
    try:
        check_sampling(sampling_steps, guidance, rounds, t_start, replace, anchor)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")
    cfg = model.config
    layout, s = inference_layout(arr, model, axes, blind_spot)
    norm = match_normalization(cfg.normalization, layout)
    if check not in CHECKS:
        raise InputError(f"check must be one of {CHECKS}, got {check!r}")
    start_img, guide_settings = _start_image(arr, guide, layout, axes, device, callback, hot_pixels, check)
    if isinstance(guide, BlindSpotModel) and guide_settings is None:
        return np.array(start_img, dtype=np.float32)  # the guide's check keeps the input: so does refining
    y = normalize(to_samples(arr, layout), norm)
    outliers = resolve_hot_pixels(model, norm, hot_pixels)
    if outliers is not None:  # the noisy values re-injected each round, with hot pixels repaired
        import torch

        from ...nn.outliers import repair

        y = repair(torch.from_numpy(np.ascontiguousarray(y, np.float32)), outliers).numpy()
    start = y if start_img is None else normalize(to_samples(start_img, layout), norm)
    independent = cfg.channel_mode == "independent"
    if independent:
        y, start = fold_channels(y), fold_channels(start)
    data = window_data(y, start)
    dev = resolve_device(device)

    n, _c, h, w = y.shape
    refiner = RefineWindow(model.network, channels=y.shape[1], steps=sampling_steps, guidance=float(guidance),
                           rounds=rounds, t_start=float(t_start), replace=float(replace), seed=int(seed),
                           anchor=float(anchor))
    tile, _halo = tile_plan(refiner, s, tile_size, None)
    total = n * len(tile_starts(h, tile)) * len(tile_starts(w, tile)) * rounds * sampling_steps
    state = {"done": 0, "t0": time.perf_counter()}

    def on_step(_round, _step):
        state["done"] += 1
        done, elapsed = state["done"], time.perf_counter() - state["t0"]
        frac = done / total
        event = ProgressEvent("step", done, total, frac, elapsed, elapsed * (1 - frac) / frac,
                              message="BSGD refinement")
        if callback is not None and callback(event) is False:
            raise InterruptedError("refinement was cancelled")

    def check_step(_round, _step):  # the safeguard's own refinements: cancellable too
        event = ProgressEvent("step", 0, total, 0.0, time.perf_counter() - state["t0"], None,
                              message="checking whether refining helps")
        if callback is not None and callback(event) is False:
            raise InterruptedError("refinement was cancelled")

    refiner.on_step = check_step
    keep_guide = _safeguard(check, arr, model, guide, refiner, axes=axes, blind_spot=s, hot_pixels=hot_pixels,
                            device=dev, callback=callback, guide_settings=guide_settings or (None, "auto"))
    if keep_guide:
        return np.array(start_img, dtype=np.float32)
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
    return np.ascontiguousarray(from_samples(denormalize(out, norm), layout), dtype=np.float32)
