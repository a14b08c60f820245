"""Why BSGD's refinement loses to its guide, and what anchoring its low frequencies recovers (issue #17).

    OMP_NUM_THREADS=1 python benchmarks/bsgd_anchor_oracle.py --groups sidd nam --limit 2

Per image (the central 256x256 crop, as ``bench_bsgd.py``): the guide (``train``, 300 steps), BSGD
branches (``train_bsgd``, ``--bsgd-steps``, warm-started from the guide) and the *unanchored*
refinement (``refine(..., anchor=0, check=False)``) at 4 and 2 DDIM steps.  Then, with the clean image
(an oracle: the package never sees it), the error of the refinement is split by scale: each row scores
``x - G_sigma * (x - guide)`` (the refinement's difference from the guide kept only above the scale
``sigma``; what ``refine(anchor=sigma)`` computes) and the blends ``guide + lam (x - guide)``.  PSNR
(SI-PSNR for W2S) in the CSV ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SIGMAS = (0.5, 1.0, 2.0, 4.0, 8.0)
BLENDS = (0.25, 0.5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="+", default=["sidd", "nam", "w2s"])
    p.add_argument("--limit", type=int, default=2)
    p.add_argument("--bsgd-steps", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/bsgd_anchor_oracle.csv"))
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    import torch
    from scipy.ndimage import gaussian_filter

    import common as C
    import napari_bsdenoise as bsd
    from bench_bsgd import _crop
    from results import append_rows

    torch.set_num_threads(1)
    fields = ["group", "image", "steps", "variant", "score", "metric"]

    def low(a, s):  # per channel; scipy's reflect edges (the package replicates them: same in the interior)
        return np.stack([gaussian_filter(a[..., c], s) for c in range(a.shape[-1])], -1) if a.ndim == 3 \
            else gaussian_filter(a, s)

    for group in args.groups:
        metric = "si_psnr" if group == "w2s" else "psnr"
        for pair in C.load_group(group, args.limit):
            noisy, gt = pair.load()
            noisy, gt = _crop(noisy, 256), _crop(gt, 256)
            guide_model = bsd.train(noisy, steps=300, seed=0)
            guide = bsd.denoise(noisy, guide_model).astype(np.float64)
            diff = bsd.train_bsgd(noisy, guide=guide_model, seed=0, steps=args.bsgd_steps)
            rows = [{"steps": "", "variant": "guide", "score": C.score(gt, guide)[metric]}]
            for steps in (4, 2):
                x = bsd.refine(noisy, diff, guide=guide, seed=0, check=False, anchor=0.0,
                               sampling_steps=steps).astype(np.float64)
                rows.append({"steps": steps, "variant": "refined", "score": C.score(gt, x)[metric]})
                for s in SIGMAS:
                    rows.append({"steps": steps, "variant": f"anchored sigma {s}",
                                 "score": C.score(gt, x - low(x - guide, s))[metric]})
                for lam in BLENDS:
                    rows.append({"steps": steps, "variant": f"blend {lam}",
                                 "score": C.score(gt, guide + lam * (x - guide))[metric]})
            for r in rows:
                r.update(group=group, image=pair.name, metric=metric, score=round(float(r["score"]), 3))
                print(r, flush=True)
            append_rows(args.out, fields, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
