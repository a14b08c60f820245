"""D-BSN benchmark on the pixel-independent real pairs (W2S widefield, FMD fluorescence).

    OMP_NUM_THREADS=1 python benchmarks/bench_dbsn.py --groups w2s fmd --limit 3 --steps 200 \\
        --distill-steps 150 --out benchmarks/results/dbsn.csv

Per image (the clean image is used for scoring only), all trained on the noisy image alone:

* ``dbsn_mu``: D-BSN (``train(noisy, method="dbsn")``), the blind-spot mean alone (``blind_spot=1``);
* ``dbsn_fused``: the same model's posterior-mean fusion with the noisy pixel (its default, ``blind_spot=0``);
* ``dbsn_student``: a non-blind student distilled from the fused output (``distill(noisy, dbsn)``);
* ``atbsn_s1``: AT-BSN trained and applied at a 1-pixel blind spot with the same step budget;
* ``bm3d``: BM3D with sigma estimated from the noisy image (``common.run_bm3d``);
* ``dbsn_fused_eqtime`` (not run by default): D-BSN fused, trained for the seconds the AT-BSN row of the
  same image took (a D-BSN step is cheaper, so this is the equal-CPU-time comparison).

Seconds are wall-clock per image on this machine (one torch thread; the CPU is shared, so they are
upper bounds), training included.  Rows are appended to a resumable CSV.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _threads import limit_threads

METHODS = ("dbsn_mu", "dbsn_fused", "dbsn_student", "atbsn_s1", "bm3d", "dbsn_fused_eqtime")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="+", default=["w2s", "fmd"])
    p.add_argument("--limit", type=int, default=3, help="images per group")
    p.add_argument("--steps", type=int, default=200, help="training steps of D-BSN and AT-BSN")
    p.add_argument("--distill-steps", type=int, default=150)
    p.add_argument("--methods", nargs="+", default=list(METHODS[:5]), choices=METHODS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/dbsn.csv"))
    p.add_argument("--table", action="store_true", help="print the per-group means of --out as markdown and exit")
    return p.parse_args(argv)


def table(C, path: Path) -> str:
    """Markdown table of per-group means (PSNR/SSIM n/a for the scale-free W2S) and seconds per image."""
    rows = C.read_results(path)
    lines = ["| group | method | n | PSNR | SSIM | SI-PSNR | SI-SSIM | s / image |", "|---|---|--:|--:|--:|--:|--:|--:|"]
    for group in dict.fromkeys(r["group"] for r in rows):
        for method in METHODS:
            sel = [r for r in rows if r["group"] == group and r["method"] == method]
            if not sel:
                continue
            mean = {k: sum(float(r[k]) for r in sel) / len(sel) for k in ("psnr", "ssim", "si_psnr", "si_ssim", "seconds")}
            free = group in C.SCALE_FREE_GROUPS
            psnr, ssim = ("n/a", "n/a") if free else (f"{mean['psnr']:.2f}", f"{mean['ssim']:.3f}")
            lines.append(f"| {group} | {method} | {len(sel)} | {psnr} | {ssim} | {mean['si_psnr']:.2f} | "
                         f"{mean['si_ssim']:.3f} | {mean['seconds']:.0f} |")
    return "\n".join(lines)


def pending(C, args, root):
    """``(group, pair, methods still to run)`` per image; what the CSV already has is skipped."""
    done = C.done_keys(args.out)
    pairs = [(g, p) for g in args.groups for p in C.load_group(g, args.limit, root)]
    for group, pair in pairs:
        todo = [m for m in args.methods if (group, pair.name, m) not in done]
        if todo:
            yield group, pair, todo


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    import common as C
    import napari_bsdenoise as bsd
    import torch

    torch.set_num_threads(args.threads)
    if args.table:
        print(table(C, args.out))
        return 0
    if (root := C.data_root()) is None:
        print(f"benchmark data not found (set ${C.DATA_ENV}); nothing to score")
        return 0
    for group, pair, todo in pending(C, args, root):
        noisy, gt = pair.load()
        dbsn = None
        t_dbsn = 0.0

        def record(method, out, seconds, info):
            row = {"group": group, "image": pair.name, "method": method, **C.score(gt, out),
                   "seconds": seconds, "info": info}
            C.append_result(args.out, row)
            print(f"{group} {pair.name} {method}: psnr {row['psnr']:.2f} si {row['si_psnr']:.2f} "
                  f"({seconds:.0f} s)", flush=True)

        if any(m.startswith("dbsn") for m in todo):
            t0 = time.perf_counter()
            dbsn = bsd.train(noisy, method="dbsn", steps=args.steps, seed=0)
            t_dbsn = time.perf_counter() - t0
            base = {"steps": args.steps, "train_s": round(t_dbsn, 1),
                    "best_step": dbsn.config.training["best_step"]}
            for method, s in (("dbsn_mu", 1), ("dbsn_fused", 0)):
                if method in todo:
                    t1 = time.perf_counter()
                    out = bsd.denoise(noisy, dbsn, blind_spot=s)
                    dt = time.perf_counter() - t1
                    record(method, out, t_dbsn + dt, {**base, "infer_s": round(dt, 2), "blind_spot": s})
            if "dbsn_student" in todo:
                t1 = time.perf_counter()
                student = bsd.distill(noisy, dbsn, steps=args.distill_steps, seed=0)
                t_st = time.perf_counter() - t1
                t2 = time.perf_counter()
                out = bsd.denoise(noisy, student)
                dt = time.perf_counter() - t2
                record("dbsn_student", out, t_dbsn + t_st + dt,
                       {**base, "distill_steps": args.distill_steps, "distill_s": round(t_st, 1),
                        "infer_s": round(dt, 2)})
        if "atbsn_s1" in todo:
            t0 = time.perf_counter()
            at = bsd.train(noisy, method="atbsn", blind_spot=1, inference_blind_spot=1, steps=args.steps, seed=0)
            t_at = time.perf_counter() - t0
            t1 = time.perf_counter()
            out = bsd.denoise(noisy, at, blind_spot=1)
            dt = time.perf_counter() - t1
            record("atbsn_s1", out, t_at + dt, {"steps": args.steps, "train_s": round(t_at, 1),
                                                "infer_s": round(dt, 2)})
        if "dbsn_fused_eqtime" in todo:
            at_rows = [r for r in C.read_results(args.out)
                       if (r["group"], r["image"], r["method"]) == (group, pair.name, "atbsn_s1")]
            if at_rows:
                budget = float(dict(kv.split("=") for kv in at_rows[0]["info"].split(";"))["train_s"])
                t0 = time.perf_counter()
                m = bsd.train(noisy, method="dbsn", seconds=budget, seed=0)
                t_tr = time.perf_counter() - t0
                out = bsd.denoise(noisy, m)
                record("dbsn_fused_eqtime", out, time.perf_counter() - t0,
                       {"seconds_budget": budget, "steps": m.config.training["steps"], "train_s": round(t_tr, 1)})
        if "bm3d" in todo:
            t0 = time.perf_counter()
            out, info = C.run_bm3d(noisy)
            record("bm3d", out, time.perf_counter() - t0, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
