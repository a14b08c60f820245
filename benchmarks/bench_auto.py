"""The one-button path against the tools users pick instead, at the same wall-time budget, in one run.

    bash scripts/setup_bench.sh                      # BM3D, PyWavelets, careamics (N2V/N2V2)
    python benchmarks/bench_auto.py quality --groups sidd nam w2s fmd --limit 2 --seconds 240 \\
        --out benchmarks/results/auto_quality.csv [--shard 0/2]
    python benchmarks/bench_auto.py budget --seconds 240 --out benchmarks/results/auto_budget.csv

``quality``: per image (GT for scoring only), in one process and one after the other, each method
given the same ``--seconds`` of wall time on ``--threads`` CPU threads:

* ``auto``: :func:`napari_bsdenoise.auto_denoise` (noise diagnostic, method, teacher, student and
  inference all inside the budget);
* ``auto_t30``, ``auto_t70``: ``auto`` with ``teacher_fraction`` 0.3 or 0.7 instead of the default
  0.5 (it matters only where a student follows: strong correlated noise);
* ``atbsn``: ``auto`` with AT-BSN forced and no student (``method="atbsn", distill=False``): what
  ``train``'s default method gives in that budget, to decide whether ``train`` should default to
  ``method="auto"`` (which differs only where the diagnostic picks D-BSN);
* ``n2v``, ``n2v2``: careamics 0.3.5 trained for the budget (``benchmarks/n2v_peer.py``; its
  prediction comes on top);
* ``bm3d`` (sigma from ``estimate_sigma``), ``jinv`` (scikit-image's J-invariant wavelet) and the
  ``noisy`` input.

W2S is scored with the scale-invariant PSNR/SSIM (its images were contrast-stretched one by one).
``budget``: the wall time of ``auto_denoise(seconds=...)`` on a 512x512 image and a 16x256x256 stack
(synthetic Poisson-Gaussian noise), with its PSNR against the clean data; the bar is 270 s at 240.
Rows are appended to a resumable CSV; ``python benchmarks/bench_auto.py table CSV`` prints the tables.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from _threads import limit_threads

FIELDS = ["group", "image", "method", "psnr", "ssim", "seconds", "detail"]
METHODS = ("noisy", "auto", "auto_t30", "auto_t70", "atbsn", "n2v", "n2v2", "bm3d", "jinv")
TITLES = {"noisy": "noisy", "auto": "auto", "auto_t30": "auto, teacher 30 %", "auto_t70": "auto, teacher 70 %",
          "atbsn": "AT-BSN", "n2v": "N2V", "n2v2": "N2V2", "bm3d": "BM3D", "jinv": "J-inv"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["quality", "budget", "table"])
    p.add_argument("csv", nargs="?", type=Path, help="table: the CSV to summarise")
    p.add_argument("--groups", nargs="+", default=["sidd", "nam", "w2s", "fmd"])
    p.add_argument("--limit", type=int, default=2, help="images per group (evenly spaced)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default="0/1", help="K/N: every N-th image from the K-th (parallel runs)")
    p.add_argument("--images", nargs="+", metavar="FRAGMENT", help="only the images whose name holds one of these")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/auto_quality.csv"))
    return p.parse_args(argv)


def auto_detail(res) -> str:
    """What auto chose, and the step of each model it kept (best by the held-out loss)."""
    models = [m for m in (res.teacher, res.student) if m is not None]
    steps = "/".join(str(m.config.training.get("steps", "?")) for m in models)
    return f"{res.choices['method']}{'+student' if res.student is not None else ''} (best at step {steps})"


def quality(args) -> None:
    import common as C
    from results import append_rows, done_keys, shard
    import napari_bsdenoise as bsd

    root = C.data_root()
    if root is None:
        print(f"benchmark data not found (set ${C.DATA_ENV}); nothing to score")
        return
    done = done_keys(args.out, ("image", "method"))
    pairs = shard([p for g in args.groups for p in C.load_group(g, args.limit, root)
                   if not args.images or any(f in p.name for f in args.images)], args.shard)
    for pair in pairs:
        noisy, gt = pair.load()
        scale_free = pair.group in C.SCALE_FREE_GROUPS
        metric_psnr, metric_ssim = (C.si_psnr, C.si_ssim) if scale_free else (C.psnr, C.ssim)
        for method in args.methods:
            if (pair.name, method) in done:
                continue
            t0 = time.perf_counter()
            detail = ""
            if method == "noisy":
                out = noisy
            elif method == "auto":
                res = bsd.auto_denoise(noisy, seconds=args.seconds, seed=0)
                out, detail = res.denoised, auto_detail(res)
            elif method in ("auto_t30", "auto_t70"):
                res = bsd.auto_denoise(noisy, seconds=args.seconds, seed=0, teacher_fraction=int(method[-2:]) / 100)
                out, detail = res.denoised, auto_detail(res)
            elif method == "atbsn":
                res = bsd.auto_denoise(noisy, seconds=args.seconds, seed=0, method="atbsn", distill=False)
                out, detail = res.denoised, "atbsn"
            elif method in ("n2v", "n2v2"):
                from n2v_peer import run_n2v

                out, info = run_n2v(noisy, seconds=args.seconds, n2v2=method == "n2v2", seed=0, threads=args.threads)
                detail = f"{info.get('steps')} steps"
            elif method == "bm3d":
                out, info = C.run_bm3d(noisy)
                detail = f"sigma {info['sigma']:.2f}"
            else:
                out, _ = C.run_jinv(noisy)
            dt = time.perf_counter() - t0
            row = {"group": pair.group, "image": pair.name, "method": method,
                   "psnr": round(metric_psnr(gt, out), 3), "ssim": round(metric_ssim(gt, out), 4),
                   "seconds": round(dt, 1), "detail": detail}
            append_rows(args.out, FIELDS, [row])
            print(row, flush=True)


def budget(args) -> None:
    import numpy as np
    from results import append_rows
    from skimage import data, transform

    import napari_bsdenoise as bsd

    rng = np.random.default_rng(0)
    clean2d = data.camera().astype(np.float64)
    # a stack from bundled data only (scikit-image's cells3d is a download): shifted camera frames
    cells = np.stack([np.roll(clean2d, 7 * i, axis=1) for i in range(16)])
    stack = np.stack([transform.resize(c, (256, 256), anti_aliasing=True, preserve_range=True)
                      for c in cells[:16]])
    stack = 255 * (stack - stack.min()) / (stack.max() - stack.min())
    for name, clean, axes in (("camera_512", clean2d, "YX"), ("stack_16x256", stack, "ZYX")):
        noisy = (4 * rng.poisson(clean / 4) + rng.normal(0, 5, clean.shape)).astype(np.float32)
        t0 = time.perf_counter()
        res = bsd.auto_denoise(noisy, axes=axes, seconds=args.seconds)
        dt = time.perf_counter() - t0
        psnr = lambda x: 10 * np.log10(255**2 / np.mean((np.clip(x, 0, 255) - clean) ** 2))  # noqa: E731
        row = {"group": "budget", "image": f"{name} {noisy.shape}", "method": f"auto_{args.seconds:g}s",
               "psnr": round(psnr(res.denoised), 3), "ssim": f"noisy {psnr(noisy):.2f}", "seconds": round(dt, 1),
               "detail": "; ".join(f"{k} {v}" for k, v in res.choices["seconds"].items())}
        append_rows(args.out, FIELDS, [row])
        print(row, flush=True)
        print(res.summary(), flush=True)


def table(path: Path) -> None:
    """Per image, and per group: mean PSNR/SSIM of every method, and in how many images ``auto`` beats
    each peer (on the images that have ``noisy`` and ``auto``; a method missing there is left out, or
    shown as -)."""
    import collections

    rows = list(csv.DictReader(open(path)))
    by = collections.defaultdict(dict)
    for r in rows:
        by[(r["group"], r["image"])][r["method"]] = r
    by = {k: d for k, d in by.items() if "noisy" in d and "auto" in d}
    groups = sorted({g for g, _ in by})
    peers = [m for m in METHODS if m not in ("noisy", "auto") and any(m in d for d in by.values())]
    print("| group | image | noisy | auto (what it chose) | " + " | ".join(TITLES[m] for m in peers) + " |")
    print("|---" * (len(peers) + 4) + "|")
    for (g, image), d in sorted(by.items()):
        cells = " | ".join(f"{float(d[m]['psnr']):.2f}" if m in d else "-" for m in peers)
        print(f"| {g} | {image.split('/')[-1].rsplit('.', 1)[0]} | {float(d['noisy']['psnr']):.2f} | "
              f"**{float(d['auto']['psnr']):.2f}** ({d['auto']['detail']}) | {cells} |")
    for g in groups:
        imgs = [d for (gg, _), d in by.items() if gg == g]
        ran = [m for m in METHODS if all(m in d for d in imgs)]
        print(f"\n{g} ({len(imgs)} images)\n\n| method | PSNR | SSIM | s/image | auto wins |\n|---|---|---|---|---|")
        for m in ran:
            ps = [float(d[m]["psnr"]) for d in imgs]
            ss = [float(d[m]["ssim"]) for d in imgs]
            sec = [float(d[m]["seconds"]) for d in imgs]
            wins = sum(float(d["auto"]["psnr"]) > float(d[m]["psnr"]) for d in imgs)
            print(f"| {TITLES[m]} | {sum(ps) / len(ps):.2f} | {sum(ss) / len(ss):.4f} | {sum(sec) / len(sec):.0f} | "
                  f"{'' if m == 'auto' else f'{wins}/{len(imgs)}'} |")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.part == "table":
        table(args.csv or args.out)
        return 0
    limit_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    (quality if args.part == "quality" else budget)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
