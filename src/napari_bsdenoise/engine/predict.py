"""In-memory inference over ``(N, C, Y, X)`` data, tile by tile with overlap.

Tiles start on multiples of the network's pooling factor so the pooling grid
is the one of the whole image, and each tile carries a halo that is cropped
away after the pass (crop-and-stitch), so seams do not show.
"""

from __future__ import annotations

import numpy as np

from ..device import autocast
from .progress import ProgressEvent, run_events


DEFAULT_TILE = 768
DEFAULT_TILE_3D = 64  # a cube: with its halo, a 144^3 window of the tiny 3-D network (~3 M voxels)
# the 2.5-D network runs plane by plane: its tiles are a few planes of a 2-D-sized tile, and only the
# tile's own planes go through it (the Z halo is read, not computed)
# measured (benchmarks/bench_volume_speed.py): one plane at a time runs fastest on a CPU (1.8x a 2-D pass)
PLANES_25D = 1
DEFAULT_TILE_25D = (PLANES_25D, 512)  # (planes, in-plane side)


#: Activation memory of one forward pass, bytes per input pixel per unit of network width
#: (measured: tiny 3.2 kB, small 6.8 kB, paper 9.4 kB per pixel on the CPU in fp32).
BYTES_PER_PIXEL_PER_WIDTH = 200


def tile_starts(size: int, tile: int, start: int = 0) -> list[int]:
    return list(range(start, size, tile)) if size - start > tile else [start]


def window_bytes(network, side_y: int, side_x: int) -> int:
    """Estimated peak activation memory of one forward pass on a ``side_y x side_x`` window."""
    unet = getattr(network, "unet", None)
    width = getattr(unet, "out_channels", 96) // 2
    return int(BYTES_PER_PIXEL_PER_WIDTH * width * side_y * side_x)


def auto_tile(network, blind_spot: int, memory_bytes: int) -> int:
    """The largest tile side (a multiple of the pooling factor) whose window (tile + 2 halos) fits
    ``memory_bytes`` of activations; at least one pooling multiple."""
    multiple = getattr(network, "multiple", 1)
    halo = -(-network.receptive_radius(blind_spot) // multiple) * multiple
    per_px = max(1, window_bytes(network, 1, 1))
    side = int((memory_bytes / per_px) ** 0.5)
    tile = (side - 2 * halo) // multiple * multiple
    # below one halo the halo overhead explodes (a window of 3 halos for each tile): the budget
    # then yields to a tile of one halo
    return max(halo, multiple, min(tile, 4096))


def chunk_sizes(size: int, chunk: int, halo: int) -> tuple[int, ...]:
    """Split ``size`` into chunks starting at multiples of ``chunk``; a last remainder shorter than
    ``halo`` is merged into the previous chunk, so every chunk is at least ``halo`` long (dask's
    ``map_overlap`` then never rechunks, which would move chunk starts off the pooling grid)."""
    if size <= chunk:
        return (size,)
    n, r = divmod(size, chunk)
    sizes = [chunk] * n
    if r and r < halo:
        sizes[-1] += r
    elif r:
        sizes.append(r)
    return tuple(sizes)


def tile_plan(network, blind_spot: int, tile: int | None, halo: int | None):
    """``(tile, halo)`` rounded to the network's pooling multiple.

    The default halo is the network's receptive radius, so tiles reproduce the
    untiled result up to float rounding.
    """
    multiple = getattr(network, "multiple", 1)
    if tile is None:
        tile = DEFAULT_TILE_3D if getattr(network, "spatial_dims", 2) == 3 else DEFAULT_TILE
    tile = int(tile)
    halo = network.receptive_radius(blind_spot) if halo is None else int(halo)
    tile = max(multiple, -(-tile // multiple) * multiple)
    halo = -(-halo // multiple) * multiple
    return tile, halo


def predict_iter(network, data: np.ndarray, *, blind_spot: int, device, precision: str = "fp32",
                 tile: int | None = None, halo: int | None = None, batch_size: int = 1, roi=None):
    """Generator: yields :class:`ProgressEvent` per tile and returns the ``(N, C_out, Y, X)`` result.

    ``roi=(y0, y1, x0, x1)`` (for volumes ``(z0, z1, y0, y1, x0, x1)``) predicts only that region (the result then has the roi's shape);
    the rest of ``data`` is context.  ``data``'s origin and ``y0``/``x0`` must lie on the
    network's pooling grid (multiples of ``network.multiple`` in the whole image's frame) for
    the result to equal the untiled one; this is how :mod:`napari_bsdenoise.engine.tiling` runs one
    dask chunk with its halo.
    """
    import torch

    from ..nn.fast_unet import inference_form

    if data.ndim == 5:
        return (yield from _predict_volumes(network, data, blind_spot=blind_spot, device=device,
                                            precision=precision, tile=tile, halo=halo, roi=roi))
    n, _c, h, w = data.shape
    tile, halo = tile_plan(network, blind_spot, tile, halo)
    ry0, ry1, rx0, rx1 = (0, h, 0, w) if roi is None else (int(v) for v in roi)
    multiple = getattr(network, "multiple", 1)
    if ry0 % multiple or rx0 % multiple:
        raise ValueError(f"roi start ({ry0}, {rx0}) is not on the pooling grid (multiples of {multiple})")
    ys = [y for y in tile_starts(ry1, tile, ry0)]
    xs = [x for x in tile_starts(rx1, tile, rx0)]
    h_out, w_out = ry1 - ry0, rx1 - rx0
    out = None
    total = n * len(ys) * len(xs)
    done = 0
    network = inference_form(network.to(device).eval(), precision)
    with torch.no_grad(), autocast(device, precision):
        for i in range(n):
            for y0 in ys:
                for x0 in xs:
                    y1, x1 = min(y0 + tile, ry1), min(x0 + tile, rx1)
                    ya, xa = max(0, y0 - halo), max(0, x0 - halo)
                    yb, xb = min(h, y1 + halo), min(w, x1 + halo)
                    x = torch.from_numpy(np.ascontiguousarray(data[i : i + 1, :, ya:yb, xa:xb])).to(device)
                    pred = network(x, blind_spot).float().cpu().numpy()
                    if out is None:
                        out = np.empty((n, pred.shape[1], h_out, w_out), dtype=np.float32)
                    out[i, :, y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0] = pred[0, :, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
                    done += 1
                    yield ProgressEvent("chunk", done, total, done / total)
    return out


def volume_halos(network, blind_spot, halo) -> tuple[int, int, int]:
    """The ``(z, y, x)`` halos of a 3-D network's tiles on the pooling grid: ``halo`` (an int for all
    three axes, or a triple) or, by default, the network's receptive radius along each axis (a 2.5-D
    network reaches only a few planes along Z)."""
    if halo is None:
        radii = (network.receptive_radii(blind_spot) if hasattr(network, "receptive_radii")
                 else (network.receptive_radius(blind_spot),) * 3)
    else:
        radii = tuple(halo) if isinstance(halo, (tuple, list)) else (int(halo),) * 3
    return tuple(-(-int(r) // m) * m for r, m in zip(radii, volume_grid(network)))


def volume_grid(network) -> tuple[int, int, int]:
    """The ``(z, y, x)`` pooling multiples of a 3-D network: the plane-wise 2.5-D one does not pool
    along Z."""
    multiple = getattr(network, "multiple", 1)
    return (1 if getattr(network, "plane_wise", False) else multiple, multiple, multiple)


def volume_tiles(network, tile=None) -> tuple[int, int, int]:
    """The ``(z, y, x)`` tile sides of a 3-D network, on its pooling grid.

    ``tile`` is a triple, or an int: the cube side of the full 3-D network, the in-plane side of the
    2.5-D one (which then takes :data:`PLANES_25D` planes per pass).  ``None``: the defaults
    (:data:`DEFAULT_TILE_3D`, :data:`DEFAULT_TILE_25D`).
    """
    plane_wise = getattr(network, "plane_wise", False)
    if tile is None:
        tile = (PLANES_25D, DEFAULT_TILE_25D[1], DEFAULT_TILE_25D[1]) if plane_wise else DEFAULT_TILE_3D
    if isinstance(tile, (tuple, list)):
        sides = tuple(int(v) for v in tile)
    else:
        sides = (PLANES_25D if plane_wise else int(tile), int(tile), int(tile))
    if len(sides) != 3 or min(sides) < 1:
        raise ValueError(f"a volume's tile is a positive side or (z, y, x) sides, got {tile!r}")
    return tuple(max(m, -(-v // m) * m) for v, m in zip(sides, volume_grid(network)))


def _predict_volumes(network, data: np.ndarray, *, blind_spot, device, precision, tile, halo, roi=None):
    """:func:`predict_iter` for ``(N, C, Z, Y, X)`` volumes and a 3-D network: tiles of
    :func:`volume_tiles` sides on the pooling grid, each with a halo in Z, Y and X
    (:func:`volume_halos`) that is cropped after the pass.  A plane-wise (2.5-D) network computes only
    the tile's own planes: its Z halo is context that is read, never predicted."""
    import itertools

    import torch

    n = data.shape[0]
    size = data.shape[2:]
    tiles = volume_tiles(network, tile)
    halos = volume_halos(network, blind_spot, halo)
    plane_wise = getattr(network, "plane_wise", False)
    bounds = [(0, s) for s in size] if roi is None else [(int(a), int(b)) for a, b in zip(roi[::2], roi[1::2])]
    grid = volume_grid(network)
    if any(a % m for (a, _), m in zip(bounds, grid)):
        raise ValueError(f"roi start {tuple(a for a, _ in bounds)} is not on the pooling grid (multiples of {grid})")
    starts = list(itertools.product(*(tile_starts(b, t, a) for (a, b), t in zip(bounds, tiles))))
    out = None
    total, done = n * len(starts), 0
    from ..nn.fast_unet import inference_form

    network = inference_form(network.to(device).eval(), precision)  # (the 2.5-D network's fast form)
    with torch.no_grad(), autocast(device, precision):
        for i in range(n):
            for start in starts:
                stop = [min(a + t, b) for a, t, (_, b) in zip(start, tiles, bounds)]
                lo = [max(0, a - r) for a, r in zip(start, halos)]
                hi = [min(s, b + r) for b, s, r in zip(stop, size, halos)]
                window = (i, slice(None)) + tuple(slice(a, b) for a, b in zip(lo, hi))
                x = torch.from_numpy(np.ascontiguousarray(data[window])[None]).to(device)
                if plane_wise:
                    planes = slice(start[0] - lo[0], stop[0] - lo[0])
                    pred = network(x, blind_spot, planes=planes).float().cpu().numpy()[0]
                    lo = [start[0]] + lo[1:]  # the prediction starts at the tile's first plane
                else:
                    pred = network(x, blind_spot).float().cpu().numpy()[0]
                if out is None:
                    out = np.empty((n, pred.shape[0]) + tuple(b - a for a, b in bounds), dtype=np.float32)
                inner = (slice(None),) + tuple(slice(a - c, b - c) for a, b, c in zip(start, stop, lo))
                place = tuple(slice(a - r0, b - r0) for a, b, (r0, _) in zip(start, stop, bounds))
                out[(i, slice(None)) + place] = pred[inner]
                done += 1
                yield ProgressEvent("chunk", done, total, done / total)
    return out


def predict(network, data: np.ndarray, **kwargs) -> np.ndarray:
    """Run :func:`predict_iter` to completion and return the result."""
    return run_events(predict_iter(network, data, **kwargs))
