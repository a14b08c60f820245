"""The safety check of ``denoise`` (engine/safety.py) on real pairs: how close its self-supervised
estimate is to the true gain, and whether it ever falls back where the default was fine.

    python benchmarks/bench_safety.py --groups sidd nam w2s fmd --limit 2 --seconds 60 \\
        --out benchmarks/results/safety.csv [--shard 0/2]

Per image: ``train(noisy, seconds=S)`` with the defaults, then ``safety_check`` at the default setting
and at the method's other settings (``full``: every fallback is estimated even when the default
passes), each beside its true PSNR gain over the noisy input (W2S: scale-invariant PSNR).  ``chosen``
rows: what ``denoise`` with ``check="auto"`` returns, against the default without the check.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _threads import limit_threads

FIELDS = ["group", "image", "method", "setting", "estimated_gain", "true_gain", "noise_scale", "seconds"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="+", default=["sidd", "nam", "w2s", "fmd"])
    p.add_argument("--limit", type=int, default=2)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default="0/1")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def run(args) -> None:
    import warnings

    import common as C
    from results import append_rows, done_keys, shard
    import napari_bsdenoise as bsd
    from napari_bsdenoise.engine.safety import fallback_settings

    root = C.data_root()
    if root is None:
        print(f"benchmark data not found (set ${C.DATA_ENV}); nothing to score")
        return
    done = done_keys(args.out, ("group", "image"))
    pairs = shard([p for g in args.groups for p in C.load_group(g, args.limit, root)], args.shard)
    for pair in pairs:
        if (pair.group, pair.name) in done:
            continue
        noisy, gt = pair.load()
        metric = C.si_psnr if pair.group in C.SCALE_FREE_GROUPS else C.psnr
        base = metric(gt, noisy)
        model = bsd.train(noisy, seconds=args.seconds, seed=0)
        cfg = model.config
        settings = [(cfg.inference_blind_spot, "auto"),
                    *fallback_settings(model, cfg.inference_blind_spot, "auto")]
        rows = []
        for s, f in settings:
            t0 = time.perf_counter()
            rep = bsd.safety_check(noisy, model, blind_spot=s, fusion=f, full=False)
            dt = time.perf_counter() - t0
            true = metric(gt, bsd.denoise(noisy, model, blind_spot=s, fusion=f, check=False)) - base
            rows.append({"group": pair.group, "image": pair.name, "method": model.method,
                         "setting": f"{bsd.format_blind_spot(s)}{' fused' if rep.candidates[0].fused else ''}",
                         "estimated_gain": round(rep.candidates[0].gain_db, 2), "true_gain": round(true, 2),
                         "noise_scale": round(rep.noise_scale, 3), "seconds": round(dt, 1)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chosen = metric(gt, bsd.denoise(noisy, model)) - base
        rows.append({"group": pair.group, "image": pair.name, "method": model.method, "setting": "chosen",
                     "estimated_gain": "", "true_gain": round(chosen, 2), "noise_scale": "", "seconds": ""})
        append_rows(args.out, FIELDS, rows)
        for r in rows:
            print(r, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
