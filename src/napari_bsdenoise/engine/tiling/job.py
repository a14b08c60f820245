"""Planning a tiled job and building its lazy dask graph: :func:`build` (a :class:`LazyJob`) and
:func:`denoise_lazy` (its lazy result)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ...inputs import convert_dtype
from .models import ModelRef, register_model
from .plan import Plan, default_memory, from_internal, lazy_normalization, parse_memory, to_internal
from .runners import DirectChunks, block_denoise
from .sources import Source, check_lazy, open_input


@dataclass
class LazyJob:
    """The lazy result and how it was made."""

    result: object  # dask array in the input's axes
    plan: Plan
    source: Source
    layout: object
    ref: ModelRef
    key: str
    out_dtype: np.dtype
    direct: DirectChunks | None = None  # chunk by chunk without the dask graph, when the source allows


def build(image, model, *, axes=None, blind_spot=None, device=None, precision="auto", tile_size=None,
          chunk_size=None, memory=None, renormalize=False, dtype="float32", client=None,
          n_workers: int | None = None, fusion="auto", hot_pixels="auto") -> LazyJob:
    """Plan the job and build the lazy dask graph (nothing is computed except the statistics for
    ``renormalize=True``)."""
    import dask.array as da

    from ...device import resolve_device, resolve_precision
    from ...inputs import match_normalization
    from ...model import BlindSpotModel
    from ..inference import inference_layout, resolve_fusion, resolve_hot_pixels, wrap_network
    from ..predict import auto_tile, chunk_sizes, tile_plan, volume_halos, volume_tiles

    if not isinstance(model, BlindSpotModel):
        raise InputError(f"model must be a BlindSpotModel (from train or load_model), got {type(model).__name__}")
    src = image if isinstance(image, Source) else open_input(image)
    x = src.array
    check_lazy(x)
    cfg = model.config
    if axes is None and src.axes is not None and len(src.axes) == x.ndim:
        axes = src.axes
    layout, s = inference_layout(x, model, axes, blind_spot)
    nd = cfg.network.spatial_dims
    size = ((layout.n_slices,) if nd == 3 else ()) + layout.spatial_shape
    if dtype not in ("float32", "input"):
        out_dtype = np.dtype(dtype)
    else:
        out_dtype = np.dtype(np.float32) if dtype == "float32" else np.dtype(x.dtype)

    # internal order: lead (T, Z as they come), C, Y, X; for a 3-D network lead (T), C, Z, Y, X
    order = layout.order
    xin = to_internal(x, layout.axes, order)
    norm = (lazy_normalization(xin, layout) if renormalize else match_normalization(cfg.normalization, layout))

    fusion_params = resolve_fusion(model, s, norm, fusion)
    outlier_params = resolve_hot_pixels(model, norm, hot_pixels)
    net = wrap_network(model.network, fusion_params, outlier_params)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    n_workers = n_workers or (len(client.scheduler_info().get("workers", {})) if client is not None
                              else min(os.cpu_count() or 1, 4))
    mem = parse_memory(memory) or default_memory(n_workers)
    m = net.multiple
    if nd == 3:
        # a 3-D network tiles in boxes with a halo per axis; its chunks default to two tiles a side (at
        # least 16 planes for the plane-wise 2.5-D network, whose Z halo is read, not computed)
        tile = volume_tiles(net, tile_size)
        halos = volume_halos(net, s, None)
        halo = halos
        sides = tuple(2 * t for t in tile)
        sides = (max(sides[0], 16) if getattr(net, "plane_wise", False) else sides[0],) + sides[1:]
    else:
        tile, halo = tile_plan(net, s, auto_tile(net, s, mem) if tile_size is None else tile_size, None)
        halos = (halo, halo)
        sides = (tile, tile)
    if chunk_size is not None:
        sides = (int(chunk_size),) * nd
    sides = tuple(max(-(-c // m) * m, m, r) for c, r in zip(sides, halos))  # at least its halo along each axis
    chunk = max(sides)
    spatial_chunks = tuple(chunk_sizes(n, c, r) for n, c, r in zip(size, sides, halos))
    lead_chunks = tuple((1,) * n for n in xin.shape[: -nd - 1])
    cc = (layout.n_channels,) if cfg.channel_mode == "joint" else (1,) * layout.n_channels
    xin = xin.rechunk(lead_chunks + (cc,) + spatial_chunks)
    depths = [r if len(c) > 1 else 0 for c, r in zip(spatial_chunks, halos)]
    depth_z = depths[0] if nd == 3 else 0
    plan = Plan(layout.axes, order, cfg.channel_mode, tuple(norm.mean), tuple(norm.std), s, tile, halo, chunk, m,
                str(dev), prec, depth_y=depths[-2], depth_x=depths[-1], depth_z=depth_z, spatial_dims=nd,
                fusion=dataclasses.asdict(fusion_params) if fusion_params is not None else None,
                outliers=dataclasses.asdict(outlier_params) if outlier_params is not None else None)
    if client is not None:
        from .cluster import install_model  # dask.distributed, imported only for a cluster

        ref = install_model(model, client)
    else:
        ref = register_model(model)
    depth = {i: 0 for i in range(xin.ndim)}
    depth[xin.ndim - 3] = plan.depth_z
    depth[xin.ndim - 2], depth[xin.ndim - 1] = plan.depth_y, plan.depth_x
    meta = np.empty((0,) * xin.ndim, dtype=np.float32)
    if any(depth.values()):
        y = da.map_overlap(block_denoise, xin, depth=depth, boundary="none", trim=False, chunks=xin.chunks,
                           meta=meta, ref=ref, plan=plan, align_arrays=False, allow_rechunk=False)
    else:
        y = da.map_blocks(block_denoise, xin, chunks=xin.chunks, meta=meta, ref=ref, plan=plan)
    y = from_internal(y, layout.axes, order)  # back to the input's axes
    if out_dtype != np.float32:
        y = y.map_blocks(convert_dtype, out_dtype, dtype=out_dtype)
    direct = None
    if src.backing is not None and not (client is not None and src.in_memory):  # never ship a numpy per task
        direct = DirectChunks(src.backing, layout.axes, order, xin.chunks, plan, ref, out_dtype)
    return LazyJob(y, plan, src, layout, ref, ref.key, out_dtype, direct)


def denoise_lazy(image, model, **kwargs):
    """A lazy dask array of the denoised ``image`` (same shape and axes; nothing computed yet).

    Keywords as :func:`napari_bsdenoise.denoise`.  Compute it with any dask scheduler; with a
    dask.distributed ``client=``, the model is installed once per worker.
    """
    return build(image, model, **kwargs).result
