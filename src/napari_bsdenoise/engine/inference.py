"""What runs at inference: the checked layout and blind spot, and the module (the network, fused with
the noisy input and given an input whose hot pixels are repaired, where those apply) for a model.  Shared by in-memory denoising, tiling, the preview
and distillation; method-specific rules come from the method registry.
"""

from __future__ import annotations

from .. import registry
from ..axes import SampleLayout
from ..config import Normalization, blind_spot_sides, check_blind_spot, format_blind_spot
from ..errors import InputError
from ..inputs import sample_layout


def inference_layout(x, model, axes: str | None, blind_spot) -> tuple[SampleLayout, int]:
    """Layout and blind spot for denoising ``x`` (any array-like with shape) with ``model``, checked."""
    cfg = model.config
    ndim = cfg.network.spatial_dims
    layout = sample_layout(x, axes, cfg.channel_mode, ndim)
    s = cfg.inference_blind_spot if blind_spot is None else check_blind_spot(blind_spot)
    if isinstance(s, tuple) and len(s) != ndim:
        raise InputError(f"a {ndim}-D model takes a blind spot of {'(y, x)' if ndim == 2 else '(z, y, x)'} sides, "
                         f"got {s!r}")
    registry.get(model.method).check_inference_blind_spot(s)
    sides = blind_spot_sides(s, ndim)
    size = ((layout.n_slices,) if ndim == 3 else ()) + layout.spatial_shape
    if any(n <= max(v, 2) for n, v in zip(size, sides)):
        raise InputError(f"the image ({'x'.join(map(str, size))} pixels) is too small for a blind spot of "
                         f"{format_blind_spot(s)} pixels")
    if cfg.channel_mode == "joint" and layout.n_channels != cfg.network.in_channels:
        raise InputError(
            f"the model takes {cfg.network.in_channels}-channel images and this one has {layout.n_channels} "
            f"(axes {layout.axes}, shape {tuple(x.shape)})"
        )
    return layout, s


def model_input(arr, model, axes: str | None = None, blind_spot=None, *, renormalize: bool = False):
    """``(layout, blind_spot, norm, data)``: ``arr`` as ``model`` takes it, checked (:func:`inference_layout`),
    normalised (by the model's statistics, or with ``renormalize`` by ``arr``'s own) and, for a model of
    independent channels, with the channels folded into samples: what every inference path starts from."""
    from ..axes import fold_channels, to_samples
    from ..inputs import match_normalization, normalization_of, normalize

    layout, s = inference_layout(arr, model, axes, blind_spot)
    samples = to_samples(arr, layout)
    norm = normalization_of(samples) if renormalize else match_normalization(model.config.normalization, layout)
    data = normalize(samples, norm)
    if model.config.channel_mode == "independent":
        data = fold_channels(data)
    return layout, s, norm, data


def resolve_fusion(model, blind_spot: int, norm: Normalization, fusion):
    """The :class:`~napari_bsdenoise.nn.fusion.FusionParams` for denoising with ``model`` at
    ``blind_spot`` in the units of ``norm``, or None when the output is the network's alone.

    ``fusion``: ``"auto"`` (the method decides), ``True`` (insist, and say why it cannot), ``False``.
    """
    if fusion not in ("auto", True, False):
        raise InputError(f"fusion must be 'auto', True or False, got {fusion!r}")
    if fusion is False:
        return None
    spec = registry.get(model.method)
    if spec.fusion is None:
        why_not = f"a {model.method} model ({spec.no_fusion_reason})"
    else:
        params, why_not = spec.fusion(model, blind_spot, norm, fusion)
        if why_not is None:
            return params
    if fusion is True:
        raise InputError(f"fusion=True does not apply to {why_not}")
    return None


HOT_PIXELS = ("auto", "keep", "remove")


def resolve_hot_pixels(model, norm: Normalization, hot_pixels):
    """The :class:`~napari_bsdenoise.nn.outliers.OutlierParams` that repair isolated outliers (hot and
    dead pixels, cosmic rays) in the input before ``model`` runs, in the units of ``norm``, or None.

    ``"auto"`` (default) and ``"remove"`` repair them against the model's measured noise curve
    (``"remove"`` insists, and says why it cannot); ``"keep"`` leaves the input as it is.
    """
    if hot_pixels not in HOT_PIXELS:
        raise InputError(f"hot_pixels must be one of {HOT_PIXELS}, got {hot_pixels!r}")
    if hot_pixels == "keep":
        return None
    why_not = no_outlier_repair(model)
    if why_not is not None:
        if hot_pixels == "remove":
            raise InputError(f"hot_pixels='remove' cannot be used: {why_not} (use hot_pixels='keep')")
        return None
    from ..nn.outliers import outlier_params

    cfg = model.config
    return outlier_params(cfg.noise, norm.mean, norm.std, cfg.network.in_channels)


def no_outlier_repair(model) -> str | None:
    """Why ``model`` repairs no outliers (hot pixels), or None when it does: the one rule behind
    :func:`resolve_hot_pixels`, :func:`repairs_outliers` and :func:`napari_bsdenoise.find_hot_pixels`."""
    cfg = model.config
    if not cfg.noise or "autocorrelation" not in cfg.noise:
        return "this model has no noise estimate of its training data to find outliers against (train it again)"
    return None


def repairs_outliers(model) -> bool:
    """Whether ``hot_pixels="auto"`` repairs outliers with ``model`` (a 2-D model with a noise estimate of its
    training data), so that counting them (:func:`napari_bsdenoise.find_hot_pixels`) means something."""
    return no_outlier_repair(model) is None


def wrap_network(network, fusion_params=None, outlier_params=None):
    """``network``, fused with the noisy input (:class:`~napari_bsdenoise.nn.fusion.FusedNetwork`) and
    given a repaired input (:class:`~napari_bsdenoise.nn.outliers.OutlierGuard`) where those apply."""
    if fusion_params is not None:
        from ..nn.fusion import FusedNetwork

        network = FusedNetwork(network, fusion_params)
    if outlier_params is not None:
        from ..nn.outliers import OutlierGuard

        network = OutlierGuard(network, outlier_params)
    return network


def inference_network(model, blind_spot: int, norm: Normalization, fusion, hot_pixels="auto"):
    """The module that denoises: the model's network, wrapped in the noisy-input fusion and the
    outlier repair where they apply."""
    return wrap_network(model.network, resolve_fusion(model, blind_spot, norm, fusion),
                        resolve_hot_pixels(model, norm, hot_pixels))
