#!/usr/bin/env python
"""Denoising quality benchmark on real noisy/clean pairs and a synthetic set.

Example (the full run; resumable, rows already in --out are skipped)::

    nice -n 10 python benchmarks/bench_quality.py --groups sidd nam w2s fmd synthetic \\
        --limit w2s=40 --methods noisy jinv bm3d atbsn --seconds 120 \\
        --out benchmarks/results/quality.csv --table docs/benchmarks.md

``--limit N`` caps every group at N images, ``--limit w2s=40`` only that group (both may be given).
Methods: noisy, jinv, wavelet_cal, bm3d, bm3d_oracle, and the AT-BSN ones: atbsn_s1, atbsn_s3, atbsn_s5
(one model trained with blind spot 9), atbsn_t1_s1 (trained with blind spot 1; pixel-independent groups
only), atbsn_auto (blind spots from the noise diagnostic); ``atbsn`` = all five, ``baselines`` = noisy jinv
bm3d.  AT-BSN outputs are ``denoise``'s default, fused with the noisy input (``nn/fusion.py``; rows before
2026-12-02 (4) predate the fusion); ``atbsn_s3_raw`` and ``atbsn_auto_raw`` are the same models'
outputs with ``fusion=False``.  ``--shard I/N`` runs every N-th image from the I-th (two processes on two
cores, each with its own ``--out``).
The data live outside the repo ($BSDENOISE_DATA, default <repo>/../shared/data/real); without them the
real groups are skipped with a message (exit status 0).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from _threads import limit_threads

ATBSN_METHODS = ("atbsn_s1", "atbsn_s3", "atbsn_s5", "atbsn_t1_s1", "atbsn_auto", "atbsn_s3_raw", "atbsn_auto_raw")
CLASSICAL = ("noisy", "jinv", "wavelet_cal", "bm3d", "bm3d_oracle")
ALIASES = {"atbsn": ATBSN_METHODS[:5], "baselines": ("noisy", "jinv", "bm3d")}
# AT-BSN models: name -> (train kwargs, {method: denoise kwargs})
ATBSN_MODELS = {
    "bs9": ({"blind_spot": 9}, {"atbsn_s1": {"blind_spot": 1}, "atbsn_s3": {"blind_spot": 3}, "atbsn_s5": {"blind_spot": 5},
                                "atbsn_s3_raw": {"blind_spot": 3, "fusion": False}}),
    "bs1": ({"blind_spot": 1}, {"atbsn_t1_s1": {"blind_spot": 1}}),
    "auto": ({"blind_spot": "auto"}, {"atbsn_auto": {}, "atbsn_auto_raw": {"fusion": False}}),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="+", default=["sidd", "nam", "w2s", "fmd", "synthetic"],
                   choices=["sidd", "nam", "w2s", "fmd", "synthetic"])
    p.add_argument("--limit", nargs="+", default=[], metavar="N|GROUP=N",
                   help="max images per group (deterministic subset); GROUP=N for one group")
    p.add_argument("--methods", nargs="+", default=["noisy", "jinv", "bm3d", "atbsn"],
                   help="methods or aliases (atbsn, baselines)")
    p.add_argument("--seconds", type=float, default=120.0, help="AT-BSN training time budget per model")
    p.add_argument("--seed", type=int, default=0, help="AT-BSN training seed")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (OMP/BLAS/torch); default 1")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.csv"))
    p.add_argument("--table", type=Path, default=None, help="(re)write the per-group markdown table here")
    p.add_argument("--no-run", action="store_true", help="only (re)write --table from --out")
    p.add_argument("--list", action="store_true", help="list the selected images and exit")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing method")
    p.add_argument("--shard", default="0/1", metavar="I/N", help="only every N-th image, from the I-th")
    args = p.parse_args(argv)

    limits: dict[str, int | None] = {}
    default = None
    for tok in args.limit:
        if "=" in tok:
            g, n = tok.split("=", 1)
            limits[g] = int(n)
        else:
            default = int(tok)
    args.limits = {g: limits.get(g, default) for g in args.groups}

    methods: list[str] = []
    for m in args.methods:
        for mm in ALIASES.get(m, (m,)):
            if mm not in CLASSICAL + ATBSN_METHODS:
                p.error(f"unknown method {mm!r}; choose among {', '.join(CLASSICAL + ATBSN_METHODS)} or atbsn, baselines")
            if mm not in methods:
                methods.append(mm)
    args.methods = methods
    return args


def load_core():
    """The napari_bsdenoise core (train/denoise) or (None, why)."""
    try:
        import napari_bsdenoise as bsd
    except Exception as e:  # noqa: BLE001 - any import problem means "no core"
        return None, f"import napari_bsdenoise failed: {type(e).__name__}: {e}"
    missing = [f for f in ("train", "denoise") if not callable(getattr(bsd, f, None))]
    if missing:
        return None, f"napari_bsdenoise has no {', '.join(missing)} yet"
    return bsd, None


def _applicable(method: str, pair) -> bool:
    return method != "atbsn_t1_s1" or pair.pixel_independent


def main(argv=None) -> int:
    args = parse_args(argv)
    # single-threaded by default: the machine is shared (set before numpy / bm3d / torch load)
    limit_threads(args.threads)
    import numpy as np

    import common as C

    out_path = args.out
    if args.no_run:
        if args.table:
            print(f"wrote {C.write_markdown(out_path, args.table)}")
        return 0

    root = C.data_root()
    groups = list(args.groups)
    if root is None:
        real = [g for g in groups if g in C.REAL_GROUPS]
        if real:
            print(f"benchmark data not found (set ${C.DATA_ENV} or put it at {C.REPO.parent / 'shared/data/real'}); "
                  f"skipping {', '.join(real)}")
        groups = [g for g in groups if g not in C.REAL_GROUPS]
        if not groups:
            return 0
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    plan = [(g, C.load_group(g, args.limits.get(g), root)[shard::n_shards]) for g in groups]
    if args.list:
        for g, pairs in plan:
            print(f"{g}: {len(pairs)} images")
            for p in pairs:
                print(f"  {p.name}")
        return 0

    bsd = None
    if any(m in ATBSN_METHODS for m in args.methods):
        bsd, why = load_core()
        if bsd is None:
            print(f"AT-BSN methods skipped ({why}); baselines still run. Rerun later to fill them in.")
            args.methods = [m for m in args.methods if m not in ATBSN_METHODS]
        else:
            import torch

            torch.set_num_threads(args.threads)

    done = C.done_keys(out_path)
    n_new = 0
    t_start = time.perf_counter()

    def record(pair, method, out, seconds, info, gt):
        nonlocal n_new
        if out.shape != gt.shape:
            raise ValueError(f"{method} returned shape {out.shape}, expected {gt.shape}")
        row = {"group": pair.group, "image": pair.name, "method": method, "seconds": float(seconds),
               "info": info, **C.score(gt, out)}
        C.append_result(out_path, row)
        done.add((pair.group, pair.name, method))
        n_new += 1
        print(f"  {method:12s} psnr {row['psnr']:6.2f}  ssim {row['ssim']:.4f}  si_psnr {row['si_psnr']:6.2f}  "
              f"{seconds:7.1f} s  {C.format_info(info)}", flush=True)

    for g, pairs in plan:
        print(f"== {g}: {len(pairs)} images", flush=True)
        for k, pair in enumerate(pairs):
            todo = [m for m in args.methods if _applicable(m, pair) and (g, pair.name, m) not in done]
            if not todo:
                continue
            print(f"[{g} {k + 1}/{len(pairs)}] {pair.name}", flush=True)
            noisy, gt = pair.load()
            scale_free = g in C.SCALE_FREE_GROUPS
            stats = C.noise_stats(noisy, gt, scale_free)
            cache: dict = {}
            for m in [m for m in todo if m in CLASSICAL]:
                try:
                    t0 = time.perf_counter()
                    if m == "noisy":
                        x01 = noisy.astype(np.float64) / 255.0
                        out, info = noisy.astype(np.float32), {"sigma_est": C.estimate_sigma01(x01) * 255.0, **stats}
                    elif m == "jinv":
                        out, info = C.run_jinv(noisy, cache)
                    elif m == "wavelet_cal":
                        out, info, secs = C.run_wavelet_cal(noisy, cache)
                    elif m == "bm3d":
                        out, info = C.run_bm3d(noisy)
                    elif m == "bm3d_oracle":
                        out, info = C.run_bm3d(noisy, sigma255=stats["resid_std"])
                    seconds = secs if m == "wavelet_cal" else time.perf_counter() - t0
                    record(pair, m, out, seconds, info, gt)
                except Exception:  # noqa: BLE001
                    print(f"  {m} FAILED on {pair.name}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                    if args.fail_fast:
                        return 1
            if bsd is not None:
                for model_name, (train_kw, infer) in ATBSN_MODELS.items():
                    wanted = [m for m in infer if m in todo]
                    if not wanted:
                        continue
                    try:
                        t0 = time.perf_counter()
                        model = bsd.train(noisy, axes=None, seconds=args.seconds, seed=args.seed, **train_kw)
                        t_train = time.perf_counter() - t0
                        chosen = {k: getattr(model, k, None) for k in ("train_blind_spot", "inference_blind_spot")}
                        for m in wanted:
                            t1 = time.perf_counter()
                            out = np.asarray(bsd.denoise(noisy, model, **infer[m]), dtype=np.float32)
                            t_inf = time.perf_counter() - t1
                            info = {"model": model_name, "train_s": t_train, "infer_s": t_inf,
                                    "budget_s": args.seconds, "seed": args.seed}
                            info.update({k: v for k, v in chosen.items() if v is not None})
                            record(pair, m, out, t_train + t_inf, info, gt)
                    except Exception:  # noqa: BLE001
                        print(f"  AT-BSN model {model_name} FAILED on {pair.name}:\n{traceback.format_exc()}",
                              file=sys.stderr, flush=True)
                        if args.fail_fast:
                            return 1

    print(f"{n_new} new rows in {out_path} ({time.perf_counter() - t_start:.0f} s)")
    if args.table:
        print(f"wrote {C.write_markdown(out_path, args.table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
