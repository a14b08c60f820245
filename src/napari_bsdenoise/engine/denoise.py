"""In-memory denoising of a numpy array with a model (the tiles of one pass; for larger-than-memory
data see :mod:`napari_bsdenoise.engine.tiling`)."""

from __future__ import annotations

import numpy as np

from ..axes import from_samples, unfold_channels
from ..inputs import convert_dtype, denormalize
from .inference import inference_network, model_input
from .progress import run_events


def drive(gen, callback):
    """Run a denoising generator to its result; ``callback`` returning False cancels."""
    try:
        return run_events(gen, callback)
    except InterruptedError:
        raise InterruptedError("denoising was cancelled") from None


def denoise_array(arr: np.ndarray, model, *, axes: str | None = None, blind_spot: int | None = None, device=None,
                  precision: str = "auto", tile_size: int | None = None, renormalize: bool = False,
                  callback=None, dtype: str = "float32", fusion="auto",
                  hot_pixels="auto") -> np.ndarray:
    """``arr`` (a checked numpy array) denoised by ``model``: float32 in the input's units and shape,
    or ``dtype`` (``"input"``: the input's type, rounded and clipped).  Keywords as
    :func:`napari_bsdenoise.denoise`."""
    from ..device import resolve_device, resolve_precision
    from .predict import predict_iter

    if dtype not in ("float32", "input"):
        np.dtype(dtype)  # fail early on a bad dtype
    layout, s, norm, data = model_input(arr, model, axes, blind_spot, renormalize=renormalize)
    independent = model.config.channel_mode == "independent"
    dev = resolve_device(device)
    net = inference_network(model, s, norm, fusion, hot_pixels)
    gen = predict_iter(net, data, blind_spot=s, device=dev, precision=resolve_precision(precision, dev),
                       tile=tile_size)
    out = drive(gen, callback)
    model.network.to("cpu")
    if independent:
        out = unfold_channels(out, layout.n_channels)
    result = np.ascontiguousarray(from_samples(denormalize(out, norm), layout), dtype=np.float32)
    if dtype != "float32":
        result = convert_dtype(result, arr.dtype if dtype == "input" else dtype)
    return result


def hot_pixel_mask(arr: np.ndarray, model, *, axes: str | None = None) -> np.ndarray:
    """Boolean mask (``arr``'s shape) of the outliers that ``hot_pixels="auto"`` repairs."""
    from ..errors import InputError
    from ..nn.outliers import repair_samples
    from .inference import no_outlier_repair, resolve_hot_pixels

    why_not = no_outlier_repair(model)
    if why_not is not None:
        raise InputError(why_not)
    layout, _, norm, data = model_input(arr, model, axes)
    params = resolve_hot_pixels(model, norm, "auto")
    independent = model.config.channel_mode == "independent"
    _, mask = repair_samples(data, params)
    mask = mask.astype(np.float32)
    if independent:
        mask = unfold_channels(mask, layout.n_channels)
    return from_samples(mask, layout) > 0.5
