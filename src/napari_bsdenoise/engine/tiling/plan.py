"""The plan of a tiled job: what every chunk task needs (:class:`Plan`), the memory budget, the
global normalisation of lazy data, and the reordering to and from the internal axis order
``(lead.., C, Y, X)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError


# -- the plan -------------------------------------------------------------------------------
def default_memory(n_workers: int = 1) -> int:
    """Activation-memory budget per concurrently running chunk: a quarter of the available RAM
    shared by the workers, between 256 MB and 4 GB."""
    try:
        import psutil

        avail = psutil.virtual_memory().available
    except Exception:  # pragma: no cover
        avail = 4 * 2**30
    return int(min(4 * 2**30, max(2**28, avail / 4 / max(1, n_workers))))


def parse_memory(v) -> int | None:
    """A memory budget in bytes: an int, or a string such as ``"600MB"`` (None stays None)."""
    if v is None:
        return None
    if isinstance(v, str):
        from dask.utils import parse_bytes

        return int(parse_bytes(v))
    return int(v)


@dataclass
class Plan:
    """Everything a chunk task needs (small and picklable)."""

    axes: str  # input axes
    order: str  # internal order: lead axes, C, (Z,) Y, X
    channel_mode: str
    mean: tuple
    std: tuple
    blind_spot: int | tuple
    tile: int | tuple  # a 3-D network's is (z, y, x)
    halo: int | tuple  # a 3-D network's is (z, y, x)
    chunk: int
    multiple: int
    device: str
    precision: str
    depth_y: int = 0
    depth_x: int = 0
    depth_z: int = 0
    spatial_dims: int = 2  # 3: chunks are (lead.., C, Z, Y, X) blocks of a 3-D network
    fusion: dict | None = None  # FusionParams as a dict: the noisy-input fusion of AT-BSN outputs
    outliers: dict | None = None  # OutlierParams as a dict: hot pixels repaired in the input

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def lazy_normalization(x, layout):
    """Global per-channel mean/std from an evenly spread subsample of a lazy ``(lead.., C, Y, X)`` array
    (or ``(lead.., C, Z, Y, X)`` for a 3-D network, whose Z planes are sampled as lead axes)."""
    from ...config import Normalization

    if layout.spatial_dims == 3:
        x = x.swapaxes(-4, -3)
    lead = x.shape[:-3]
    n_lead = int(np.prod(lead)) if lead else 1
    flat = x.reshape((n_lead,) + x.shape[-3:])
    take = np.unique(np.linspace(0, n_lead - 1, min(n_lead, 16)).astype(int))
    step = max(1, int((x.shape[-2] * x.shape[-1] * len(take) / 4_000_000) ** 0.5))
    sub = flat[take][:, :, ::step, ::step].astype(np.float64).compute()
    sub = sub.transpose(1, 0, 2, 3).reshape(sub.shape[1], -1)
    if not np.isfinite(sub).all():
        raise InputError("the image contains NaN or infinite values; replace them (e.g. with the median) first")
    std = sub.std(axis=1)
    if np.any(std <= 0):
        raise InputError("the image is constant (zero variance): there is no noise to learn from")
    return Normalization([float(m) for m in sub.mean(axis=1)], [float(s) for s in std])


def to_internal(x, axes: str, order: str):
    """An array in the input's ``axes`` -> the internal order (lead.., C, Y, X), adding a C axis of 1
    when the input has none (numpy or dask)."""
    full = axes if "C" in axes else axes + "C"
    if "C" not in axes:
        x = x[..., None]
    return x.transpose([full.index(a) for a in order])


def from_internal(y, axes: str, order: str):
    """The inverse of :func:`to_internal`."""
    full = axes if "C" in axes else axes + "C"
    y = y.transpose([order.index(a) for a in full])
    return y if "C" in axes else y[..., 0]
