"""Training steps/s and inference megapixels/s of the AT-BSN presets, fp32 vs bf16, on this machine.

    python benchmarks/bench_speed.py --out docs/speed.md

Training: batch 8 of 64x64 single-channel patches, blind spot 1 (the cost does
not depend on it), Adam step included.  Inference: one 512x512 image, blind
spot 3, tiled exactly as ``napari_bsdenoise.denoise`` does it.  Each number is
the best of ``--repeats`` timed runs after a warm-up.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from napari_bsdenoise.config import NETWORK_PRESETS
from napari_bsdenoise.device import autocast, cpu_has_bf16
from napari_bsdenoise.engine.predict import predict
from napari_bsdenoise.nn import ATBSN


def time_training(net, precision, channels_last, repeats, batch=8, patch=64):
    dev = torch.device("cpu")
    x = torch.randn(batch, 1, patch, patch)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    best = float("inf")
    for i in range(repeats + 1):
        t = time.perf_counter()
        with autocast(dev, precision):
            y = net(x, 1)
        loss = torch.nn.functional.mse_loss(y.float(), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            best = min(best, time.perf_counter() - t)
    return 1.0 / best


def time_inference(net, precision, repeats, size=512):
    data = np.random.default_rng(0).normal(size=(1, 1, size, size)).astype(np.float32)
    best = float("inf")
    for i in range(repeats + 1):
        t = time.perf_counter()
        predict(net, data, blind_spot=3, device=torch.device("cpu"), precision=precision)
        if i:
            best = min(best, time.perf_counter() - t)
    return size * size / 1e6 / best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=list(NETWORK_PRESETS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="write a markdown table here")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    precisions = ["fp32"] + (["bf16"] if cpu_has_bf16() else [])
    rows = []
    for name in args.presets:
        cfg = NETWORK_PRESETS[name]
        net = ATBSN(1, 1, **cfg)
        n_par = sum(p.numel() for p in net.parameters())
        for prec in precisions:
            for cl in (False, True):
                sps = time_training(ATBSN(1, 1, **cfg), prec, cl, args.repeats)
                rows.append((name, n_par, prec, "channels_last" if cl else "contiguous", f"{sps:.2f}", ""))
                print(rows[-1], flush=True)
            mps = time_inference(net.eval(), prec, args.repeats)
            rows.append((name, n_par, prec, "inference", "", f"{mps:.3f}"))
            print(rows[-1], flush=True)
    header = (
        f"Measured by `python benchmarks/bench_speed.py` on {platform.machine()} with "
        f"{torch.get_num_threads()} torch threads (torch {torch.__version__}), CPU bf16: {cpu_has_bf16()}.\n\n"
        "| network | parameters | precision | layout | training steps/s (batch 8 x 64^2) | inference MP/s (512^2, s=3) |\n"
        "|---|---|---|---|---|---|\n"
    )
    table = header + "\n".join(f"| {a} | {b:,} | {c} | {d} | {e} | {f} |" for a, b, c, d, e, f in rows) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("# Speed on this machine\n\n" + table)


if __name__ == "__main__":
    main()
