"""In-memory inference over ``(N, C, Y, X)`` data, tile by tile with overlap.

Tiles start on multiples of the network's pooling factor so the pooling grid
is the one of the whole image, and each tile carries a halo that is cropped
away after the pass (crop-and-stitch), so seams do not show.
"""

from __future__ import annotations

import numpy as np

from ..device import autocast
from .progress import ProgressEvent


DEFAULT_TILE = 768


def _starts(size: int, tile: int) -> list[int]:
    return list(range(0, size, tile)) if size > tile else [0]


def tile_plan(network, blind_spot: int, tile: int | None, halo: int | None):
    """``(tile, halo)`` rounded to the network's pooling multiple.

    The default halo is the network's receptive radius, so tiles reproduce the
    untiled result up to float rounding.
    """
    multiple = getattr(network, "multiple", 1)
    tile = DEFAULT_TILE if tile is None else int(tile)
    halo = network.receptive_radius(blind_spot) if halo is None else int(halo)
    tile = max(multiple, -(-tile // multiple) * multiple)
    halo = -(-halo // multiple) * multiple
    return tile, halo


def predict_iter(network, data: np.ndarray, *, blind_spot: int, device, precision: str = "fp32",
                 tile: int | None = None, halo: int | None = None, batch_size: int = 1):
    """Generator: yields :class:`ProgressEvent` per tile and returns the ``(N, C_out, Y, X)`` result."""
    import torch

    n, _c, h, w = data.shape
    tile, halo = tile_plan(network, blind_spot, tile, halo)
    ys, xs = _starts(h, tile), _starts(w, tile)
    out = None
    total = n * len(ys) * len(xs)
    done = 0
    network = network.to(device).eval()
    with torch.no_grad(), autocast(device, precision):
        for i in range(n):
            for y0 in ys:
                for x0 in xs:
                    y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                    ya, xa = max(0, y0 - halo), max(0, x0 - halo)
                    yb, xb = min(h, y1 + halo), min(w, x1 + halo)
                    x = torch.from_numpy(np.ascontiguousarray(data[i : i + 1, :, ya:yb, xa:xb])).to(device)
                    pred = network(x, blind_spot).float().cpu().numpy()
                    if out is None:
                        out = np.empty((n, pred.shape[1], h, w), dtype=np.float32)
                    out[i, :, y0:y1, x0:x1] = pred[0, :, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
                    done += 1
                    yield ProgressEvent("chunk", done, total, done / total)
    return out


def predict(network, data: np.ndarray, **kwargs) -> np.ndarray:
    """Run :func:`predict_iter` to completion and return the result."""
    gen = predict_iter(network, data, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
