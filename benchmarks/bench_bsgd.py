"""BSGD benchmark: the guiding BSN, its distilled student and the BSGD refinement, plus an ablation.

    OMP_NUM_THREADS=1 python benchmarks/bench_bsgd.py --groups sidd nam w2s --limit 2
    python benchmarks/summarize.py benchmarks/results/bsgd.csv --reference bsn

Per image (the central 256x256 crop; GT used for scoring only), all on the noisy crop alone:

* ``bsn``: ``napari_bsdenoise.train(noisy, steps=BSN_STEPS)`` (AT-BSN, blind spot "auto"), default inference;
* ``student``: ``napari_bsdenoise.distill(noisy, bsn, steps=BSN_STEPS)``;
* ``bsgd``: ``train_bsgd(noisy, guide=bsn, seconds=BSGD_SECONDS)`` then ``refine(noisy, bsgd, guide=bsn)``
  with the defaults; ``bsgd_<variant>``: the ablation over the guidance weight ``w``, DDIM steps ``S``,
  rounds ``R``, start time ``t0``, replacement fraction ``p`` and the start image (``noisy_start``:
  no guide, start from the noisy crop).  The ``seconds`` column of a refinement is its cost alone
  (not the guide's); ``info`` has it per megapixel.

Rows go to a resumable CSV (``common.append_result``); one thread (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ABLATION = {
    # name: refine() keywords on top of the defaults (w=0.75, S=2, R=2, t0=0.3, p=0.16, anchor=1, guide=bsn)
    "bsgd": {},
    # the defaults before 2026-12-03: no low-frequency anchoring, 4 DDIM steps
    "bsgd_anchor0": {"anchor": 0.0, "sampling_steps": 4},
    # the defaults with the safeguard (refine(check="auto") with the guide *model*): the guide's result is
    # kept where the refinement is not estimated to beat it (methods/bsgd/safeguard.py)
    "bsgd_checked": {"guide": "model"},
    "bsgd_w0": {"guidance": 0.0},
    "bsgd_w0.5": {"guidance": 0.5},
    "bsgd_w1": {"guidance": 1.0},
    "bsgd_S4": {"sampling_steps": 4},
    "bsgd_S8": {"sampling_steps": 8},
    "bsgd_R1": {"rounds": 1},
    "bsgd_R4": {"rounds": 4},
    "bsgd_t0.15": {"t_start": 0.15},
    "bsgd_t0.5": {"t_start": 0.5},
    "bsgd_p0": {"replace": 0.0},
    "bsgd_noisy_start": {"guide": None, "t_start": 0.5},
}


#: The variants run on every group (the others only on --ablation-groups).
ALWAYS = ("bsgd", "bsgd_checked", "bsgd_anchor0")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="+", default=["sidd", "nam", "w2s"])
    p.add_argument("--limit", type=int, default=2, help="images per group")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--bsn-steps", type=int, default=300)
    p.add_argument("--bsgd-seconds", type=float, default=150)
    p.add_argument("--bsgd-steps", type=int, default=None, help="a step budget instead of --bsgd-seconds")
    p.add_argument("--t-max", type=float, default=1.0, help="train diffusion times in [0, t_max] only")
    p.add_argument("--no-warm-start", action="store_true", help="branches from scratch, not from the guide")
    p.add_argument("--ablation-groups", nargs="+", default=["sidd", "nam"],
                   help="groups on which every ablation variant runs (others: the default refinement)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/bsgd.csv"))
    return p.parse_args(argv)


def _crop(a, n):
    h, w = a.shape[:2]
    y0, x0 = max(0, (h - n) // 2), max(0, (w - n) // 2)
    return a[y0 : y0 + n, x0 : x0 + n]


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    import torch

    import common as C
    import napari_bsdenoise as bsd

    torch.set_num_threads(1)
    done = C.done_keys(args.out)
    for group in args.groups:
        for pair in C.load_group(group, args.limit):
            noisy, gt = pair.load()
            noisy, gt = _crop(noisy, args.crop), _crop(gt, args.crop)
            mp = noisy.shape[0] * noisy.shape[1] / 1e6
            variants = ABLATION if group in args.ablation_groups else {k: ABLATION[k] for k in ALWAYS}
            todo = [m for m in ("bsn", "student", *variants) if (group, pair.name, m) not in done]
            if not todo:
                continue

            def record(method, out, seconds, info):
                row = {"group": group, "image": pair.name, "method": method, "seconds": seconds,
                       "info": info, **C.score(gt, out)}
                C.append_result(args.out, row)
                print(f"{group} {pair.name} {method}: psnr {row['psnr']:.2f} ssim {row['ssim']:.3f} "
                      f"si_psnr {row['si_psnr']:.2f} ({seconds:.1f} s)", flush=True)

            t0 = time.perf_counter()
            bsn = bsd.train(noisy, steps=args.bsn_steps, seed=0)
            t_bsn = time.perf_counter() - t0
            guide_out = bsd.denoise(noisy, bsn)
            if "bsn" in todo:
                record("bsn", guide_out, t_bsn, {"steps": args.bsn_steps, "train_bs": bsn.train_blind_spot,
                                                 "inf_bs": bsn.inference_blind_spot})
            if "student" in todo:
                t0 = time.perf_counter()
                student = bsd.distill(noisy, bsn, steps=args.bsn_steps, seed=0)
                record("student", bsd.denoise(noisy, student), time.perf_counter() - t0,
                       {"steps": args.bsn_steps})
            todo = [m for m in todo if m.startswith("bsgd")]
            if not todo:
                continue
            t0 = time.perf_counter()
            from napari_bsdenoise import train_bsgd

            budget = {"steps": args.bsgd_steps} if args.bsgd_steps else {"seconds": args.bsgd_seconds}
            diff = train_bsgd(noisy, guide=bsn, seed=0, t_max=args.t_max, warm_start=not args.no_warm_start,
                              **budget)
            t_train = time.perf_counter() - t0
            for name in todo:
                kw = {"guide": guide_out, **variants[name]}
                checked = isinstance(kw["guide"], str) and kw["guide"] == "model"
                if checked:
                    kw["guide"] = bsn
                t0 = time.perf_counter()
                events = []
                out = bsd.refine(noisy, diff, seed=0, callback=events.append, **kw)
                dt = time.perf_counter() - t0
                info = {k: v for k, v in variants[name].items() if k != "guide"}
                info.update({"s_per_mp": round(dt / mp, 2), "train_s": round(t_train, 1),
                             "train_steps": diff.config.training.get("steps"), "t_max": args.t_max,
                             "warm_start": diff.config.training["bsgd"].get("warm_start") is not None,
                             "start": "noisy" if kw["guide"] is None else "bsn"})
                if checked:
                    info["check"] = next((e.message for e in events if e.kind == "check"), "")
                record(name, np.asarray(out), dt, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
