"""Checks and conversions shared by every entry point: arrays, axes layouts, budgets, normalisation.

Public to the package (the API, the methods, the engine and the widgets use the same functions, so
a bad input gets the same clear :class:`~napari_bsdenoise.errors.InputError` wherever it comes in).
No torch, nothing of napari.
"""

from __future__ import annotations

import numpy as np

from .axes import SampleLayout, default_channel_mode, validate_axes
from .config import Normalization
from .defaults import DEFAULT_STEPS, MIN_TRAIN_SIDE
from .errors import InputError


def check_image(image, *, name: str = "image") -> np.ndarray:
    """Return ``image`` as an array (no copy when possible) or raise a specific :class:`InputError`."""
    if image is None:
        raise InputError(f"{name} is None")
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        raise InputError(f"{name} is a path; read it first (e.g. tifffile.imread) or use the CLI")
    arr = np.asarray(image)
    if arr.dtype == object:
        raise InputError(f"{name} must be a numeric array, got an object array (ragged list?)")
    if arr.dtype == bool:
        raise InputError(f"{name} is boolean (a mask?); denoising needs intensities (uint8, uint16, float ...)")
    if np.iscomplexobj(arr):
        raise InputError(f"{name} is complex; pass the magnitude or the real part explicitly")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{name} has unsupported dtype {arr.dtype}")
    if arr.ndim < 2:
        raise InputError(f"{name} must have at least 2 dimensions (Y, X), got shape {arr.shape}")
    if arr.ndim > 5:
        raise InputError(
            f"{name} is {arr.ndim}-D (shape {arr.shape}); at most 5 axes among T, Z, C, Y, X are supported"
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(arr.size - finite.sum() - n_nan)
            raise InputError(
                f"{name} contains {n_nan} NaN and {n_inf} infinite values; replace them (e.g. np.nan_to_num) first"
            )
    return arr


def sample_layout(arr, axes: str | None, channels: str | None, spatial_dims: int = 2) -> SampleLayout:
    """The validated :class:`~napari_bsdenoise.axes.SampleLayout` of ``arr`` (anything with shape and dtype);
    ``spatial_dims=3`` (a 3-D network) needs a Z axis."""
    axes = validate_axes(axes, arr.shape)
    mode = channels or default_channel_mode(axes, arr.shape, arr.dtype)
    if mode not in ("joint", "independent"):
        raise InputError(f"channels must be 'joint', 'independent' or None, got {channels!r}")
    if spatial_dims == 3 and "Z" not in axes:
        raise InputError(f"a 3-D network needs a Z axis and these axes are {axes!r} (shape {tuple(arr.shape)}); "
                         "pass axes= with a Z, e.g. 'ZYX', or use a 2-D model (spatial_dims=2)")
    return SampleLayout(axes, tuple(arr.shape), mode, spatial_dims)


def check_trainable_size(layout: SampleLayout) -> None:
    """Raise when the images of ``layout`` are too small to train on."""
    h, w = layout.spatial_shape
    if min(h, w) < MIN_TRAIN_SIDE:
        raise InputError(f"the image is too small to train on: {h}x{w} pixels (Y, X); at least "
                         f"{MIN_TRAIN_SIDE}x{MIN_TRAIN_SIDE} is needed")


def check_budget(steps, seconds, patch_size, batch_size, learning_rate) -> int | None:
    """Validate the optimisation settings shared by every trainer; returns ``steps`` (the default
    number when neither ``steps`` nor ``seconds`` is given)."""
    for name, v in (("steps", steps), ("patch_size", patch_size), ("batch_size", batch_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise InputError(f"seconds must be a positive number, got {seconds!r}")
    if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < 1):
        raise InputError(f"learning_rate must be in (0, 1), got {learning_rate!r}")
    return DEFAULT_STEPS if steps is None and seconds is None else steps


def loop_settings(steps, seconds, patch_size, batch_size, learning_rate, seed, device, precision,
                  validation_fraction) -> dict:
    """Keyword arguments of a trainer (:class:`~napari_bsdenoise.engine.train.Trainer` and its
    subclasses), with the precision resolved for training on ``device``."""
    from .device import resolve_precision

    return dict(steps=steps, seconds=seconds, patch_size=patch_size, batch_size=batch_size,
                learning_rate=learning_rate, seed=seed, device=device,
                precision=resolve_precision(precision, device, training=True), val_fraction=validation_fraction)


def normalization_of(samples: np.ndarray) -> Normalization:
    """Per-channel mean/std of ``(N, C, Y, X)`` data (subsampled for big data)."""
    flat = np.moveaxis(samples, 1, 0).reshape(samples.shape[1], -1)
    if flat.shape[1] > 4_000_000:
        flat = flat[:, :: flat.shape[1] // 4_000_000]
    mean = flat.mean(axis=1, dtype=np.float64)
    std = flat.std(axis=1, dtype=np.float64)
    if np.any(std <= 0):
        raise InputError("the image is constant (zero variance): there is no noise to learn from")
    return Normalization([float(m) for m in mean], [float(s) for s in std])


def normalize(samples: np.ndarray, norm: Normalization) -> np.ndarray:
    """``(samples - mean) / std`` per channel of ``(N, C, Y, X)`` data."""
    shape = (1, -1) + (1,) * (samples.ndim - 2)
    mean = np.asarray(norm.mean, np.float32).reshape(shape)
    std = np.asarray(norm.std, np.float32).reshape(shape)
    return (samples - mean) / std


def denormalize(samples: np.ndarray, norm: Normalization) -> np.ndarray:
    """The inverse of :func:`normalize`."""
    shape = (1, -1) + (1,) * (samples.ndim - 2)
    mean = np.asarray(norm.mean, np.float32).reshape(shape)
    std = np.asarray(norm.std, np.float32).reshape(shape)
    return samples * std + mean


def match_normalization(norm: Normalization, layout: SampleLayout) -> Normalization:
    """The normalisation to apply to data with ``layout`` (broadcast a single channel's stats)."""
    c = layout.n_channels
    if len(norm.mean) == c:
        return norm
    if len(norm.mean) == 1:
        return Normalization(norm.mean * c, norm.std * c)
    raise InputError(
        f"the model was trained on {len(norm.mean)} channels and the image has {c}; "
        "pass renormalize=True to normalise with the image's own statistics"
    )


def convert_dtype(block, dtype):
    """``block`` as ``dtype``: rounded and clipped to an integer type's range, or cast."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(block), info.min, info.max).astype(dtype)
    return block.astype(dtype, copy=False)
