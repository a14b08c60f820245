"""Inference speed of the 3-D networks against 2-D per slice, at several tile shapes, on this machine.

    python benchmarks/bench_volume_speed.py --out benchmarks/results/volume_speed.csv

Untrained networks of the ``tiny`` presets (the cost does not depend on the weights) denoise a random
``--shape`` volume through :func:`napari_bsdenoise.engine.predict.predict`, tiled as ``denoise`` tiles
it; each number is the best of ``--repeats`` timed runs after a warm-up.  The 2.5-D network computes
only a tile's own planes (its Z halo is read as context), so its cost is set by the in-plane tile:
the halo of its 2-D blind branch (81 px for the tiny preset) is paid on every side of every tile.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time

import numpy as np
import torch

from napari_bsdenoise.config import NETWORK_PRESETS, NETWORK_PRESETS_3D
from napari_bsdenoise.engine.predict import predict, volume_tiles
from napari_bsdenoise.nn import ATBSN
from napari_bsdenoise.nn.atbsn3d import ATBSN3D
from napari_bsdenoise.nn.atbsn25d import ATBSN25D

TILES_25D = [None, (1, 256, 256), (1, 384, 384), (2, 512, 512), (4, 512, 512), (1, 768, 768)]
TILES_3D = [None, (32, 32, 32), (96, 96, 96)]


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for i in range(repeats + 1):
        t = time.perf_counter()
        fn()
        if i:
            best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="16x512x512", help="ZxYxX of the volume")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--skip-full3d", action="store_true")
    ap.add_argument("--out", help="append rows to this CSV")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = tuple(int(v) for v in args.shape.split("x"))
    vol = np.random.default_rng(0).normal(size=(1, 1) + shape).astype(np.float32)
    mvox = vol.size / 1e6
    dev = torch.device("cpu")
    rows = []

    net2d = ATBSN(1, **NETWORK_PRESETS["tiny"]).eval()
    planes = vol[0].transpose(1, 0, 2, 3)  # Z planes as a batch of 2-D images
    t = best_time(lambda: predict(net2d, planes, blind_spot=1, device=dev), args.repeats)
    rows.append(("2-D per slice", "768 (default)", t))

    net25 = ATBSN25D(1, **NETWORK_PRESETS_3D["tiny"]).eval()
    for tile in TILES_25D:
        t = best_time(lambda: predict(net25, vol, blind_spot=1, device=dev, tile=tile), args.repeats)
        rows.append(("2.5-D", f"{volume_tiles(net25, tile)}" + (" (default)" if tile is None else ""), t))
    if not args.skip_full3d:
        net3 = ATBSN3D(1, **NETWORK_PRESETS_3D["tiny-full3d"]).eval()
        for tile in TILES_3D:
            t = best_time(lambda: predict(net3, vol, blind_spot=1, device=dev, tile=tile), args.repeats)
            rows.append(("full 3-D", f"{volume_tiles(net3, tile)}" + (" (default)" if tile is None else ""), t))

    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"volume {args.shape} ({mvox:.2f} Mvoxel), {machine}\n")
    print("| network | tile (z, y, x) | seconds | s per Mvoxel |\n| --- | --- | --- | --- |")
    for name, tile, t in rows:
        print(f"| {name} | {tile} | {t:.2f} | {t / mvox:.2f} |")
    if args.out:
        new = not os.path.exists(args.out)
        with open(args.out, "a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["shape", "network", "tile", "seconds", "s_per_mvox", "threads"])
            for name, tile, t in rows:
                w.writerow([args.shape, name, tile, f"{t:.3f}", f"{t / mvox:.3f}", torch.get_num_threads()])


if __name__ == "__main__":
    main()
