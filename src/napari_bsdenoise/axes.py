"""Axes strings and moving data to ``(samples, channels, Y, X)`` and back.

An axes string names every axis of an array with one letter among ``T``, ``Z``,
``C``, ``Y``, ``X`` (RGB images are ``YXC``).  The engine only ever sees 4-D
``(N, C, Y, X)`` float arrays: T and Z are folded into the sample axis N (each
slice is an independent 2-D sample), or, for a 3-D network (``spatial_dims=3``), ``(N, C, Z, Y, X)``
volumes with only T folded into N; C is either kept as
network channels (``"joint"``, e.g. RGB) or folded into N as well
(``"independent"``, e.g. separate fluorophores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

VALID_AXES = "TZCYX"
CHANNEL_MODES = ("joint", "independent")


def infer_axes(shape: tuple[int, ...], *, rgb: bool | None = None) -> str:
    """Infer the axes of an array of ``shape`` where that is unambiguous.

    2-D arrays are ``YX``; 3-D arrays whose last axis has 3 or 4 entries are
    ``YXC`` when ``rgb`` is not False.  Anything else needs explicit axes.
    """
    ndim = len(shape)
    if ndim == 2:
        return "YX"
    if ndim == 3 and (rgb or (rgb is None and shape[-1] in (3, 4))):
        return "YXC"
    if ndim > 5:
        raise InputError(
            f"a {ndim}-D array cannot be denoised: at most 5 axes among T, Z, C, Y, X are supported "
            f"(got shape {tuple(shape)})"
        )
    raise InputError(
        f"cannot tell the axes of an array of shape {tuple(shape)}; pass axes=, "
        f"e.g. axes={'ZYX' if ndim == 3 else 'TZYX' if ndim == 4 else 'TZCYX'!r} "
        "(letters among T, Z, C, Y, X; RGB as YXC)"
    )


def validate_axes(axes: str | None, shape: tuple[int, ...], *, rgb: bool | None = None) -> str:
    """Return a validated, upper-case axes string for an array of ``shape``."""
    if axes is None:
        return infer_axes(shape, rgb=rgb)
    if not isinstance(axes, str):
        raise InputError(f"axes must be a string such as 'YX' or 'ZYX', got {axes!r}")
    axes = axes.upper()
    if len(shape) > 5:
        raise InputError(f"a {len(shape)}-D array cannot be denoised: at most 5 axes (T, Z, C, Y, X) are supported")
    bad = sorted(set(axes) - set(VALID_AXES))
    if bad:
        raise InputError(f"axes {axes!r} contains {''.join(bad)!r}; use only the letters T, Z, C, Y, X")
    if len(set(axes)) != len(axes):
        raise InputError(f"axes {axes!r} names an axis twice")
    if len(axes) != len(shape):
        raise InputError(f"axes {axes!r} has {len(axes)} letters but the array has {len(shape)} dimensions {tuple(shape)}")
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"axes {axes!r} must contain both Y and X")
    return axes


def default_channel_mode(axes: str, shape: tuple[int, ...], dtype) -> str:
    """``joint`` for colour images (YXC with 3/4 channels, any integer type), else ``independent``."""
    if "C" not in axes:
        return "joint"  # a single channel: both modes coincide
    n_c = shape[axes.index("C")]
    if axes.endswith("C") and n_c in (3, 4):
        return "joint"
    return "independent"


@dataclass(frozen=True)
class SampleLayout:
    """How an array was folded into ``(N, C, Y, X)`` so it can be unfolded."""

    axes: str
    shape: tuple[int, ...]
    channel_mode: str
    spatial_dims: int = 2

    @property
    def order(self) -> str:
        """Axes order used internally: leading sample axes, then C, (Z,) Y, X."""
        if self.spatial_dims == 3:
            return "".join(a for a in self.axes if a == "T") + "CZYX"
        lead = "".join(a for a in self.axes if a in "TZ")
        return lead + "CYX"

    @property
    def n_channels(self) -> int:
        return self.shape[self.axes.index("C")] if "C" in self.axes else 1

    @property
    def spatial_shape(self) -> tuple[int, int]:
        return self.shape[self.axes.index("Y")], self.shape[self.axes.index("X")]

    @property
    def n_slices(self) -> int:
        return self.shape[self.axes.index("Z")] if "Z" in self.axes else 1


def to_samples(image, layout: SampleLayout) -> np.ndarray:
    """Fold ``image`` (with ``layout.axes``) into a float32 ``(N, C, Y, X)`` array.

    Channels stay on axis 1 whatever the channel mode; use :func:`fold_channels`
    after per-channel normalisation for independent channels.
    """
    arr = np.asarray(image)
    axes = layout.axes
    if "C" not in axes:
        arr = arr[..., None]
        axes = axes + "C"
    perm = [axes.index(a) for a in layout.order]
    arr = np.transpose(arr, perm)
    k = layout.spatial_dims + 1  # C and the network's spatial axes
    n = int(np.prod(arr.shape[:-k], dtype=np.int64)) if arr.ndim > k else 1
    return np.ascontiguousarray(arr.reshape((n,) + arr.shape[-k:]), dtype=np.float32)


def from_samples(samples: np.ndarray, layout: SampleLayout) -> np.ndarray:
    """Inverse of :func:`to_samples`: back to the array's own axes and shape."""
    axes = layout.axes if "C" in layout.axes else layout.axes + "C"
    shape = dict(zip(layout.axes, layout.shape))
    shape.setdefault("C", 1)
    internal_shape = tuple(shape[a] for a in layout.order)
    arr = samples.reshape(internal_shape)
    perm = [layout.order.index(a) for a in axes]
    arr = np.transpose(arr, perm)
    if "C" not in layout.axes:
        arr = arr[..., 0]
    return arr


def fold_channels(samples: np.ndarray) -> np.ndarray:
    """``(N, C, ...)`` -> ``(N*C, 1, ...)`` for channel-independent models."""
    n, c, *rest = samples.shape
    return samples.reshape(n * c, 1, *rest)


def unfold_channels(samples: np.ndarray, n_channels: int) -> np.ndarray:
    """Inverse of :func:`fold_channels`."""
    nc, _, *rest = samples.shape
    return samples.reshape(nc // n_channels, n_channels, *rest)


#: TIFF/OME series axis letters -> ours (``S`` = samples per pixel, i.e. colour channels).
TIFF_AXES = {"T": "T", "Z": "Z", "C": "C", "Y": "Y", "X": "X", "S": "C"}
