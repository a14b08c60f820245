"""Noise correlated along one axis (issue #18): the default path beside BM3D and N2V2 at the same budget.

    python benchmarks/bench_axis_noise.py --seconds 240 --out benchmarks/results/axis_noise.csv [--shard 0/2]
    python benchmarks/bench_axis_noise.py --table benchmarks/results/axis_noise.csv

Cases (:data:`data.AXIS_SPECS`): scikit-image's ``camera`` with Poisson-Gaussian noise plus a component
correlated along x, along y, along the diagonal, or along both axes but much more along x, at two
strengths (mild noise, where the diagnostic's "mild" rule shrinks the blind spot, and strong noise) and
one longer correlation.  Rows per case:

* ``noisy``: the input;
* ``default``: ``train(noisy, seconds=S)`` then ``denoise(noisy, model)``, every other setting default
  (the per-axis blind spot of the noise diagnostic, the fusion, the safety check);
* ``square``: the same budget with the square blind spot 0.1 chose (the larger side, inference 3),
  for the effect of the per-axis blind spot (only where the default is not a square);
* ``n2v2``: careamics' N2V2 trained for the same ``S`` seconds (scripts/setup_bench.sh);
* ``bm3d``: BM3D with sigma from ``skimage.restoration.estimate_sigma`` (as a user would run it).

Each row records what the default path chose (blind spots, the safety check's estimate).  Rows are
appended to a resumable CSV; one thread per method.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

from _threads import limit_threads

FIELDS = ["case", "method", "psnr", "ssim", "seconds", "detail"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=240.0, help="training budget of each learned method")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cases", nargs="+", default=None, help="case names (default: all)")
    p.add_argument("--methods", nargs="+", default=["noisy", "default", "square", "n2v2", "bm3d"])
    p.add_argument("--shard", default="0/1", help="K/N: every N-th case from the K-th (parallel runs)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/axis_noise.csv"))
    p.add_argument("--table", type=Path, default=None, help="print the markdown table of a results CSV")
    return p.parse_args(argv)


def table(path: Path) -> str:
    rows = list(csv.DictReader(open(path)))
    methods = [m for m in ("noisy", "default", "square", "n2v2", "bm3d") if any(r["method"] == m for r in rows)]
    from data import AXIS_SPECS

    seen = set(r["case"] for r in rows)
    cases = [c[0] for c in AXIS_SPECS if c[0] in seen]
    out = ["| case | " + " | ".join(methods) + " | default: blind spots; estimated gain |",
           "|---" * (len(methods) + 2) + "|"]
    for case in cases:
        by = {r["method"]: r for r in rows if r["case"] == case}
        best = max((float(by[m]["psnr"]) for m in methods if m in by and m != "noisy"), default=None)
        cells = []
        for m in methods:
            if m not in by:
                cells.append("")
                continue
            v = f"{float(by[m]['psnr']):.2f}"
            cells.append(f"**{v}**" if best is not None and float(by[m]["psnr"]) == best else v)
        detail = by.get("default", {}).get("detail", "")
        chose, _, check = detail.partition("; ")
        m = re.search(r"estimated ([+-][0-9.]+) dB", check)
        chose += f"; check {m.group(1)} dB" if m else ""
        if "instead" in check or "kept" in check:
            chose += " (fell back)"
        out.append(f"| {case} | " + " | ".join(cells) + f" | {chose} |")
    return "\n".join(out)


def run(args) -> None:
    import numpy as np

    import common as C
    from data import axis_pairs
    from results import append_rows, done_keys, shard
    import napari_bsdenoise as bsd

    done = done_keys(args.out, ("case", "method"))
    pairs = shard([p for p in axis_pairs() if args.cases is None or p.name.split("/")[1] in args.cases], args.shard)
    for pair in pairs:
        case = pair.name.split("/")[1]
        noisy, clean = pair.load()

        def row(method, out, seconds=0.0, detail=""):
            return {"case": case, "method": method, "psnr": round(C.psnr(clean, out), 3),
                    "ssim": round(C.ssim(clean, out), 4), "seconds": round(seconds, 1), "detail": detail}

        for method in args.methods:
            if (case, method) in done:
                continue
            t0 = time.perf_counter()
            if method == "noisy":
                r = row("noisy", noisy)
            elif method in ("default", "square"):
                kw = {}
                if method == "square":  # what 0.1 trained: the larger side as a square, inference 3
                    from napari_bsdenoise.config import blind_spot_side

                    noise = bsd.estimate_noise_correlation(noisy)
                    if isinstance(noise.train_blind_spot, int):
                        continue  # the default is already a square: nothing to compare
                    side = blind_spot_side(noise.train_blind_spot)
                    kw = {"blind_spot": side, "inference_blind_spot": min(3, side)}
                model = bsd.train(noisy, seconds=args.seconds, seed=0, **kw)
                check = bsd.safety_check(noisy, model) if method == "default" else None
                out = bsd.denoise(noisy, model, check="auto" if method == "default" else False)
                cfg = model.config
                detail = (f"train {bsd.format_blind_spot(cfg.train_blind_spot)}, infer "
                          f"{bsd.format_blind_spot(cfg.inference_blind_spot)}")
                if check is not None:
                    detail += f"; {check.summary()}"
                r = row(method, out, time.perf_counter() - t0, detail)
            elif method == "n2v2":
                try:
                    from n2v_peer import run_n2v
                except ImportError:
                    print("careamics is not installed (bash scripts/setup_bench.sh): no N2V2 row")
                    continue
                out, _ = run_n2v(noisy.astype(np.float32), seconds=args.seconds, n2v2=True, seed=0,
                                 threads=args.threads)
                r = row("n2v2", out, time.perf_counter() - t0)
            elif method == "bm3d":
                out, info = C.run_bm3d(noisy)
                r = row("bm3d", out, time.perf_counter() - t0, f"sigma {info['sigma']:.2f}")
            else:
                raise SystemExit(f"unknown method {method!r}")
            append_rows(args.out, FIELDS, [r])
            print(r, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table is not None:
        print(table(args.table))
        return 0
    limit_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
