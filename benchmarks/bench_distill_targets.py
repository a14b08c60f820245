"""Whole-image teacher targets (``distill(..., precompute=True)``) against per-batch teachers.

A quick comparison on the central 256x256 crop of the first image of each group: a 200-step teacher,
then students distilled with per-batch teacher targets (the default) and with whole-image targets at
equal steps and at about equal time.  One torch thread.  Prints one line per run; the lines of the
2026-12-02 run are in ``benchmarks/results/distill_targets.txt`` (docs/distillation.md).

    OMP_NUM_THREADS=1 python benchmarks/bench_distill_targets.py --groups sidd nam
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--groups", nargs="+", default=["sidd", "nam", "fmd"])
    p.add_argument("--teacher-steps", type=int, default=200)
    p.add_argument("--runs", nargs="+", default=["per_batch:200", "whole:200", "whole:600"],
                   help="targets:steps pairs")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    import torch

    import common as C
    import napari_bsdenoise as bsd

    torch.set_num_threads(1)
    for group in args.groups:
        pair = C.load_group(group, 1, C.data_root())[0]
        noisy, gt = pair.load()
        noisy, gt = noisy[128:384, 128:384], gt[128:384, 128:384]
        t = time.perf_counter()
        teacher = bsd.train(noisy, steps=args.teacher_steps, seed=0)
        print(group, pair.name, "noisy", round(C.score(gt, noisy.astype(np.float32))["psnr"], 2), "teacher",
              f"{time.perf_counter() - t:.1f}s", round(C.score(gt, bsd.denoise(noisy, teacher))["psnr"], 2),
              f"(blind spots {teacher.train_blind_spot}/{teacher.inference_blind_spot})", flush=True)
        for run in args.runs:
            kind, steps = run.split(":")
            t = time.perf_counter()
            student = bsd.distill(noisy, teacher, steps=int(steps), seed=0, precompute=kind == "whole")
            print(group, kind, steps, f"{time.perf_counter() - t:.1f}s",
                  round(C.score(gt, bsd.denoise(noisy, student))["psnr"], 2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
