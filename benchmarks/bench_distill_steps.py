"""Distillation steps per second with per-batch teacher targets: the teacher's trained form against
its inference form (``nn/fast_atbsn.py``), in one process, on the same batches.

    python benchmarks/bench_distill_steps.py --threads 1 --out benchmarks/results/distill_steps.csv

A timed distillation (``distill(seconds=...)``, and the student stage of ``auto_denoise``, which learns
per-batch targets) runs the teacher at every teacher blind spot on each batch; the student's own
forward and backward pass is the smaller part.  For each ``--channels`` (1: grey, 3: RGB) a tiny AT-BSN
teacher (a few steps: the speed does not depend on its weights) is distilled into the tiny student for
``--steps`` steps after ``--warmup`` steps, once with the targets from the trained form (what the code
did before) and once from the inference form (what it does now), alternately ``--repeats`` times; the
best rate of each is kept.  The targets of the two forms are checked equal first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _threads import limit_threads

FIELDS = ["channels", "teacher_form", "steps_per_s", "seconds", "steps", "batch", "patch", "blind_spots", "threads"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", nargs="+", type=int, default=[1, 3])
    p.add_argument("--size", type=int, default=256, help="side of the (random) training image")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/distill_steps.csv"))
    return p.parse_args(argv)


def rate(distiller, steps: int, warmup: int) -> float:
    """Steps per second of ``distiller`` over ``steps`` steps after ``warmup`` (its generator, as used)."""
    gen = distiller.run(steps=warmup + steps)
    t0 = None
    for ev in gen:
        if ev.kind == "step" and ev.step == warmup:
            t0 = time.perf_counter()
    return steps / (time.perf_counter() - t0)


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    import numpy as np
    import torch

    import napari_bsdenoise as bsd
    from results import append_rows

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for c in args.channels:
        shape = (args.size, args.size) + ((c,) if c > 1 else ())
        img = rng.normal(100, 10, shape).astype(np.float32)
        teacher = bsd.train(img, steps=2, blind_spot=5, network="tiny", precision="fp32")
        best = {}
        for _ in range(args.repeats):
            for form in ("trained", "inference"):
                d = bsd.make_distiller(img, teacher, steps=1, precision="fp32", precompute=False)
                if form == "trained":
                    x = torch.from_numpy(d.sampler.batch(2))
                    fast = d.targets(x)
                    d.teacher_form = d.teacher  # the trained form makes the targets, as before
                    slow = d.targets(x)
                    err = max(float((a - b).abs().max()) for a, b in zip(fast, slow))
                    assert err < 1e-3, f"the two forms differ by {err}"
                best[form] = max(best.get(form, 0.0), rate(d, args.steps, args.warmup))
                spots, batch, patch = d.blind_spots, d.batch_size, d.sampler.patch_size
        for form, r in best.items():
            row = {"channels": c, "teacher_form": form, "steps_per_s": round(r, 3), "seconds": round(args.steps / r, 2),
                   "steps": args.steps, "batch": batch, "patch": patch,
                   "blind_spots": " ".join(map(bsd.format_blind_spot, spots)), "threads": args.threads}
            append_rows(args.out, FIELDS, [row])
            print(row, flush=True)
        print(f"channels {c}: inference form {best['inference'] / best['trained']:.2f}x the trained form", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
