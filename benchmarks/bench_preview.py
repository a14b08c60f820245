"""Preview latency: slider move -> updated preview, on a 512x512 view, with the default model.

    python benchmarks/bench_preview.py [--view 512] [--image 1024] [--repeats 5] [--threads N]

The Denoise widget's preview (napari_bsdenoise.api.Preview, engine/preview.py) computes the network features of the
visible area plus a context margin once (when the view or slice changes), then a slider move only
applies the final shift and the 1x1 head.  This script times both on a ``--view`` square in the
middle of an ``--image`` square (so the margin is real context), with the default network
(``network="auto"``: ``tiny`` on the CPU), for every blind spot of the slider, and for comparison a
full network pass over the same crop (what a preview without the cache would cost per slider move).
Weights do not change the timing, so the model is trained for one step only.  Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--view", type=int, default=512)
    ap.add_argument("--image", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args(argv)

    import torch

    import napari_bsdenoise as bsd
    from napari_bsdenoise.api import Preview

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (args.image, args.image)).astype(np.float32)
    model = bsd.train(img[:256, :256], steps=1, network="auto", blind_spot=1)
    c = (args.image - args.view) // 2
    region = (c, c + args.view, c, c + args.view)

    feats = []
    for _ in range(max(2, args.repeats // 2)):
        p = Preview(model, img, region=region)
        feats.append(p.features_seconds)
    spots = (0, 1, 3, 5, 7, 9)
    p.render(1)  # warm-up
    renders = {s: [] for s in spots}
    for _ in range(args.repeats):
        for s in spots:
            t0 = time.perf_counter()
            p.render(s)
            renders[s].append(time.perf_counter() - t0)
    net = model.network.eval()
    full = []
    with torch.no_grad():
        for _ in range(max(2, args.repeats // 2)):
            t0 = time.perf_counter()
            net(p._x, 1)
            full.append(time.perf_counter() - t0)
    cy0, cy1, cx0, cx1 = p.crop
    cfg = model.config.network
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} torch threads")
    print(f"model: network auto -> width {cfg.width}, depth {cfg.depth} ({model.n_parameters / 1e6:.3f} M parameters); "
          f"view {args.view}x{args.view} in a {args.image}x{args.image} image, features of a "
          f"{cy1 - cy0}x{cx1 - cx0} crop (view + receptive-radius margin)\n")
    print("| step | median (s) | min (s) |")
    print("| --- | --- | --- |")
    print(f"| view change: features of the crop (once) | {statistics.median(feats):.3f} | {min(feats):.3f} |")
    for s in spots:
        print(f"| slider move to blind spot {s}: head only | {statistics.median(renders[s]):.3f} | "
              f"{min(renders[s]):.3f} |")
    allr = [t for v in renders.values() for t in v]
    print(f"| slider move, all blind spots | {statistics.median(allr):.3f} | {min(allr):.3f} |")
    print(f"| (no cache: whole network on the crop) | {statistics.median(full):.3f} | {min(full):.3f} |")


if __name__ == "__main__":
    main()
