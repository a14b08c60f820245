"""Hot pixels in volumes: a camera's fixed pattern (the same Y-X in every Z plane), repaired or kept.

    python benchmarks/bench_hot_volumes.py --run 3:auto --seconds 180 --blind-spot 1 --out benchmarks/results/hot_volumes.csv

A camera's hot pixels sit at the same Y-X in every plane of a stack, so along Z they look like
structure, and the 2.5-D network sees the planes above and below a voxel whole.  Each run injects
``--fraction`` hot pixels (``+--amplitude`` grey levels) at fixed Y-X into a benchmark volume
(``data3d.volume_cases``), trains with ``spatial_dims`` for ``--seconds`` on one thread and denoises
with ``hot_pixels`` (``auto`` repairs them in every plane, ``keep`` does not).  Rows: PSNR against the
clean volume, and the mean absolute error at the hot columns and elsewhere.  ``--blind-spot`` fixes the
training blind spot (the noise diagnostic is itself misled by dense hot pixels; docs/volumes.md).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

FIELDS = ["case", "spatial_dims", "hot_pixels", "blind_spot", "train_blind_spot", "steps", "psnr",
          "err_hot", "err_rest", "n_hot", "seconds"]


def hot_volume(noisy: np.ndarray, fraction: float, amplitude: float, seed: int = 7):
    """``(volume with hot columns, (Y, X) mask)``: ``fraction`` of the Y-X positions raised by
    ``amplitude`` in every Z plane (a copy)."""
    rng = np.random.default_rng(seed)
    _, h, w = noisy.shape
    n = max(1, int(fraction * h * w))
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    out = noisy.astype(np.float32).copy()
    out[:, ys, xs] += np.float32(amplitude)
    mask = np.zeros((h, w), bool)
    mask[ys, xs] = True
    return out, mask


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="membranes_pg")
    ap.add_argument("--run", action="append", required=True, help="DIMS:HOT, e.g. 3:auto, 3:keep, 2:auto")
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--blind-spot", default="auto", help="training blind spot (an odd int or 'auto')")
    ap.add_argument("--fraction", type=float, default=0.002)
    ap.add_argument("--amplitude", type=float, default=150.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch

    import napari_bsdenoise as bsd
    from data3d import psnr3d, volume_cases

    torch.set_num_threads(1)
    pair = [c for c in volume_cases(None) if c.name.split("/")[1] == args.case][0]
    noisy, clean = pair.load()
    hot, mask = hot_volume(noisy, args.fraction, args.amplitude)
    spot = args.blind_spot if args.blind_spot == "auto" else int(args.blind_spot)
    for run in args.run:
        dims, how = run.split(":")
        t = time.perf_counter()
        net = {"network": {"width": 16, "depth": 3, "z_context": 2}} if dims == "3" else {}
        model = bsd.train(hot, axes="ZYX", spatial_dims=int(dims), seconds=args.seconds, seed=0,
                          blind_spot=spot, **net)
        out = np.asarray(bsd.denoise(hot, model, axes="ZYX", hot_pixels=how, check=False))
        row = {"case": args.case, "spatial_dims": dims, "hot_pixels": how, "blind_spot": args.blind_spot,
               "train_blind_spot": str(model.config.train_blind_spot), "steps": model.config.training.get("steps"),
               "psnr": f"{psnr3d(clean, out):.2f}", "err_hot": f"{np.abs(out[:, mask] - clean[:, mask]).mean():.2f}",
               "err_rest": f"{np.abs(out[:, ~mask] - clean[:, ~mask]).mean():.2f}", "n_hot": int(mask.sum()),
               "seconds": f"{time.perf_counter() - t:.0f}"}
        print(row, flush=True)
        if args.out:
            new = not os.path.exists(args.out)
            with open(args.out, "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=FIELDS)
                if new:
                    w.writeheader()
                w.writerow(row)


if __name__ == "__main__":
    main()
