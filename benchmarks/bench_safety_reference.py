"""Which blind spot the safety check should read the image's noise level at (engine/safety.image_noise).

    python benchmarks/bench_safety_reference.py --images d800_iso1600_3 5dmark3_iso3200_1 18_noise 02_noise \\
        --seconds 150 --out benchmarks/results/safety_reference.csv

Per image: ``train(noisy, seconds=S)`` with the defaults, the true PSNR gain of ``denoise`` (no check),
and ``safety_check``'s estimate of that default with the noise level read at the training blind spot
(``T``: the rule before 2026-12-04), at 5, 7 and 9, and at the method's current reference
(``methods.atbsn.reference_blind_spot``).  The models are the same for every reference, so the
columns compare the references alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

from _threads import run_on_threads

FIELDS = ["group", "image", "train_bs", "infer_bs", "true_gain", "reference", "estimated_gain", "noise_scale",
          "current_reference", "seconds"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="+", default=["nam", "sidd", "fmd", "w2s"])
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--images", nargs="+", required=True, metavar="FRAGMENT")
    p.add_argument("--seconds", type=float, default=150.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def selected_pairs(args) -> list:
    """The pairs of ``--groups`` whose names hold one of ``--images`` (none without the data)."""
    import common as C

    if (root := C.data_root()) is None:
        print(f"benchmark data not found (set ${C.DATA_ENV}); nothing to score")
        return []
    return [p for g in args.groups for p in C.load_group(g, args.limit, root) if any(f in p.name for f in args.images)]


def run(args) -> None:
    import common as C
    from results import append_rows
    import napari_bsdenoise as bsd
    from napari_bsdenoise import registry
    from napari_bsdenoise.methods.atbsn import reference_blind_spot

    spec = registry.get("atbsn")
    for pair in selected_pairs(args):
        noisy, gt = pair.load()
        metric = C.si_psnr if pair.group in C.SCALE_FREE_GROUPS else C.psnr
        base = metric(gt, noisy)
        t0 = time.perf_counter()
        model = bsd.train(noisy, seconds=args.seconds, seed=0)
        cfg = model.config
        rows = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            true = metric(gt, bsd.denoise(noisy, model, check=False)) - base
            for ref in ["T", 5, 7, 9, "current"]:
                side = {"T": cfg.train_blind_spot, "current": reference_blind_spot(cfg)}.get(ref, ref)
                registry._METHODS["atbsn"] = dataclasses.replace(spec, reference=lambda c, s=side: (s, False))
                try:
                    rep = bsd.safety_check(noisy, model, full=False)
                finally:
                    registry._METHODS["atbsn"] = spec
                rows.append({"group": pair.group, "image": pair.name, "train_bs": bsd.format_blind_spot(cfg.train_blind_spot),
                             "infer_bs": bsd.format_blind_spot(cfg.inference_blind_spot), "true_gain": round(true, 2),
                             "reference": ref, "estimated_gain": round(rep.candidates[0].gain_db, 2),
                             "noise_scale": round(rep.noise_scale, 3),
                             "current_reference": bsd.format_blind_spot(reference_blind_spot(cfg)),
                             "seconds": round(time.perf_counter() - t0, 1)})
        append_rows(args.out, FIELDS, rows)
        print("\n".join(f"{r['image']} {r['reference']}: {r['estimated_gain']:+.2f} (true {r['true_gain']:+.2f})"
                        for r in rows), flush=True)


def main(argv=None) -> int:
    return run_on_threads(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
