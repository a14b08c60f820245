"""Distillation benchmark: teacher (AT-BSN) vs distilled students on the real noisy/clean pairs.

    python benchmarks/bench_distill.py --groups sidd nam fmd w2s --limit 3 \\
        --teacher-steps 400 --distill-steps 400 --out benchmarks/results/distill.csv
    python benchmarks/summarize.py benchmarks/results/distill.csv --reference student_multi

Per image (GT used for scoring only): one teacher trained with ``blind_spot="auto"``, scored at
its default inference blind spot (``teacher``); students distilled from it on the same noisy
image with the default teacher set (``noisy`` is the input itself): ``student_multi`` (default: the paper's multi-teacher loss,
student of the teacher's size, warm start), ``student_mean`` (mean-teacher target) and
``student_tiny`` when the teacher is larger; ``student_whole`` is ``student_multi`` with whole-image
teacher targets (``precompute=True``); ``student_whole_plain`` the same with unfused targets
(``fusion=False``; the default fuses them like ``denoise`` fuses the teacher's output, docs/fusion.md).  ``--speed`` adds a megapixels/s table of the
teacher and each student size on a 1024x1024 image on this machine.  Rows are appended to a
resumable CSV (an interrupted run continues where it stopped).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _threads import limit_threads


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="*", default=["sidd", "nam", "fmd", "w2s"])
    p.add_argument("--limit", type=int, default=3, help="images per group")
    p.add_argument("--teacher-steps", type=int, default=400)
    p.add_argument("--distill-steps", type=int, default=400)
    p.add_argument("--methods", nargs="+", default=["noisy", "teacher", "student_multi", "student_mean"],
                   choices=["noisy", "teacher", "student_multi", "student_mean", "student_tiny", "student_whole",
                            "student_whole_plain"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/distill.csv"))
    p.add_argument("--speed", action="store_true", help="also measure inference speed (MP/s)")
    p.add_argument("--speed-out", type=Path, default=Path("benchmarks/results/distill_speed.csv"))
    return p.parse_args(argv)


def speed(bsd, threads: int, out: Path) -> None:
    """Inference megapixels/s of an AT-BSN teacher and each student size (1024x1024 grey and RGB)."""
    import numpy as np

    import common as C

    rng = np.random.default_rng(0)
    rows = []
    for channels in (1, 3):
        shape = (128, 128) if channels == 1 else (128, 128, 3)
        small = rng.normal(100, 10, shape).astype(np.float32)
        big = rng.normal(100, 10, (1024, 1024) if channels == 1 else (1024, 1024, 3)).astype(np.float32)
        for preset in ("tiny", "small", "paper"):
            teacher = bsd.train(small, steps=1, network=preset, blind_spot=1)
            for name, model in (("teacher", teacher),
                                ("student", bsd.distill(small, teacher, steps=1, warm_start=False))):
                bsd.denoise(big[:256, :256], model)  # warm-up
                t0 = time.perf_counter()
                bsd.denoise(big, model)
                dt = time.perf_counter() - t0
                rows.append({"channels": channels, "size": preset, "model": name,
                             "parameters": model.n_parameters, "seconds": round(dt, 3),
                             "mp_per_s": round(1.048576 / dt, 4), "threads": threads})
                print(rows[-1], flush=True)
    import csv

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")
    del C


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    import torch

    import common as C
    import napari_bsdenoise as bsd

    torch.set_num_threads(args.threads)
    if args.speed:
        speed(bsd, args.threads, args.speed_out)
    root = C.data_root()
    if root is None:
        print(f"benchmark data not found (set ${C.DATA_ENV}); nothing to score")
        return 0
    done = C.done_keys(args.out)
    for group in args.groups:
        for pair in C.load_group(group, args.limit, root):
            todo = [m for m in args.methods if (group, pair.name, m) not in done]
            if not todo:
                continue
            noisy, gt = pair.load()
            if "noisy" in todo:
                C.append_result(args.out, {"group": group, "image": pair.name, "method": "noisy",
                                           **C.score(gt, noisy), "seconds": 0.0, "info": {}})
                todo.remove("noisy")
            if not todo:
                continue
            t0 = time.perf_counter()
            teacher = bsd.train(noisy, steps=args.teacher_steps, seed=0)
            t_teacher = time.perf_counter() - t0
            base = {"teacher_steps": args.teacher_steps, "train_blind_spot": teacher.train_blind_spot,
                    "inference_blind_spot": teacher.inference_blind_spot, "teacher_train_s": round(t_teacher, 1)}
            for method in todo:
                info = dict(base)
                t1 = time.perf_counter()
                if method == "teacher":
                    model = teacher
                else:
                    kw = {"mode": "mean"} if method == "student_mean" else {}
                    if method == "student_tiny":
                        kw["student"] = "tiny"
                    if method in ("student_whole", "student_whole_plain"):  # whole-image teacher targets
                        kw["precompute"] = True
                    if method == "student_whole_plain":
                        kw["fusion"] = False
                    model = bsd.distill(noisy, teacher, steps=args.distill_steps, seed=0, **kw)
                    info.update(distill_steps=args.distill_steps, distill_s=round(time.perf_counter() - t1, 1),
                                teachers="/".join(map(str, model.config.training["distillation"]["teacher_blind_spots"])))
                t2 = time.perf_counter()
                out = bsd.denoise(noisy, model)
                info["infer_s"] = round(time.perf_counter() - t2, 3)
                row = {"group": group, "image": pair.name, "method": method, **C.score(gt, out),
                       "seconds": time.perf_counter() - t1 + (t_teacher if method == "teacher" else 0.0),
                       "info": info}
                C.append_result(args.out, row)
                print(f"{group} {pair.name} {method}: psnr {row['psnr']:.2f} si {row['si_psnr']:.2f} "
                      f"({row['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
