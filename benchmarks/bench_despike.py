"""Does the noise diagnostic's spike removal (noise/despike.py) change anything on real data?

    python benchmarks/bench_despike.py --out benchmarks/results/despike_real.csv

For every noisy image of ``../shared/data/real/pairs.csv`` the diagnostic runs with and without the
spike pass; the rows hold the recommended blind spots, the noise level and how many pixels the pass
replaced.  The pass exists for hot pixels (docs/volumes.md#hot-pixels); on images without them it
should change no recommendation.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REAL)
    ap.add_argument("--per-source", type=int, default=0, help="at most this many images per source (0: all)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import imageio.v3 as iio

    import napari_bsdenoise.noise.estimate as est
    from napari_bsdenoise.noise import estimate_noise_correlation
    from napari_bsdenoise.noise.despike import despike

    rows, seen = [], {}
    for r in csv.DictReader(open(args.root / "pairs.csv")):
        if args.per_source and seen.get(r["source"], 0) >= args.per_source:
            continue
        seen[r["source"]] = seen.get(r["source"], 0) + 1
        img = np.asarray(iio.imread(args.root / r["noisy"]))
        axes = "YXC" if img.ndim == 3 else "YX"
        res = {}
        for mode in ("with", "without"):
            est.despike = despike if mode == "with" else (lambda s: (s, 0))
            res[mode] = estimate_noise_correlation(img.astype(np.float32), axes=axes)
        est.despike = despike
        chans = np.moveaxis(img, -1, 0)[None] if img.ndim == 3 else img[None, None]
        _, n = despike(chans.astype(np.float32))
        a, b = res["with"], res["without"]
        rows.append({"source": r["source"], "image": r["noisy"], "spikes": n,
                     "train_with": str(a.train_blind_spot), "train_without": str(b.train_blind_spot),
                     "infer_with": str(a.inference_blind_spot), "infer_without": str(b.inference_blind_spot),
                     "std_with": f"{a.noise_std:.4f}", "std_without": f"{b.noise_std:.4f}"})
        print(rows[-1], flush=True)
    changed = [x for x in rows if (x["train_with"], x["infer_with"]) != (x["train_without"], x["infer_without"])]
    print(f"{len(rows)} images, {len(changed)} with another recommendation")
    by = {}
    for x in rows:
        s = by.setdefault(x["source"], [0, 0, 0, 0.0])
        s[0] += 1
        s[1] += (x["train_with"], x["infer_with"]) != (x["train_without"], x["infer_without"])
        s[2] += x["spikes"]
        s[3] = max(s[3], abs(float(x["std_with"]) / max(float(x["std_without"]), 1e-12) - 1))
    print("| source | images | other recommendation | spikes replaced (mean) | largest noise-std change |")
    print("| --- | --- | --- | --- | --- |")
    for k, (n, c, sp, d) in by.items():
        print(f"| {k} | {n} | {c} | {sp / n:.1f} | {100 * d:.2f} % |")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
