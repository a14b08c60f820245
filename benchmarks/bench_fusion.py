"""Noisy-input fusion of AT-BSN outputs (nn/fusion.py): the gate's settings and the training blind spot.

    python benchmarks/bench_fusion.py --images nam:5dmark3_iso3200_1 nam:d800_iso1600_1 \\
        nam:d800_iso6400_2 sidd:NOISY_0 sidd:NOISY_3 --train-blind-spots auto 3 \\
        --out benchmarks/results/fusion.csv

Per image (``GROUP:NAME-FRAGMENT``, GT for scoring only) and training blind spot (``auto`` = the noise
diagnostic's, or a number), one AT-BSN teacher is trained for ``--steps`` steps (kept in
``--model-dir`` and reused), then scored at inference blind spots 1 and 3:

* ``raw``: the network's output (``fusion=False``);
* ``fused``: ``denoise``'s default (window 11, margin of 2 standard errors, the noise curve);
* ``fused_z1`` / ``fused_z3`` / ``fused_w7``: other margins / window (same code, other constants);
* ``fused_flat``: one noise level for all intensities (what models without a noise curve get);
* ``fused_oracle``: the noise curve measured on noisy - clean (a reference, uses the clean image).

Rows are appended to a resumable CSV (group, image, train blind spot, infer blind spot, variant, psnr).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

from _threads import limit_threads


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", nargs="+", required=True, metavar="GROUP:NAME")
    p.add_argument("--train-blind-spots", nargs="+", default=["auto"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "bsdenoise_fusion_models",
                   help="trained teachers are kept here (outside the repository: they derive from the data)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/fusion.csv"))
    return p.parse_args(argv)


def _variants(model, noisy, gt, s):
    """{variant: output} for one model at inference blind spot ``s``."""
    import dataclasses

    import numpy as np
    import torch

    import napari_bsdenoise as bsd
    from napari_bsdenoise.api import resolve_fusion
    from napari_bsdenoise.nn.fusion import fuse, fusion_params
    from napari_bsdenoise.noise import NoiseCorrelation

    norm = model.config.normalization
    raw = np.asarray(bsd.denoise(noisy, model, blind_spot=s, fusion=False), np.float64)
    out = {"raw": raw}
    base = resolve_fusion(model, s, norm, "auto")
    if base is None:
        return out
    rgb = raw.ndim == 3
    to_t = (lambda a: torch.from_numpy(np.moveaxis(a, -1, 0)[None].astype(np.float32)) if rgb
            else torch.from_numpy(a[None, None].astype(np.float32)))
    mean = np.asarray(norm.mean)[:, None, None] if rgb else norm.mean[0]
    std = np.asarray(norm.std)[:, None, None] if rgb else norm.std[0]
    xn = to_t(noisy.astype(np.float64)) - torch.as_tensor(np.asarray(mean, np.float32))
    xn = xn / torch.as_tensor(np.asarray(std, np.float32))
    fn = (to_t(raw) - torch.as_tensor(np.asarray(mean, np.float32))) / torch.as_tensor(np.asarray(std, np.float32))

    def run(params):
        y = fuse(xn, fn, params)[0].numpy() * np.asarray(std) + np.asarray(mean)
        return np.moveaxis(y, 0, -1) if rgb else y

    noise = dict(model.config.noise)
    est = NoiseCorrelation.from_dict(noise)
    out["fused"] = run(base)
    out["fused_z1"] = run(dataclasses.replace(base, margin=1 + (base.margin - 1) / 2))
    out["fused_z3"] = run(dataclasses.replace(base, margin=1 + (base.margin - 1) * 1.5))
    p7 = fusion_params(noise, norm.mean, norm.std, model.config.network.in_channels, window=7)
    out["fused_w7"] = run(p7)
    flat = dict(noise, noise_curve=[])
    out["fused_flat"] = run(fusion_params(flat, norm.mean, norm.std, model.config.network.in_channels))
    n = (noisy.astype(np.float64) - gt)
    n3, g3 = (n, gt) if rgb else (n[..., None], gt[..., None])
    curve = []
    for c in range(n3.shape[-1]):
        mu = np.asarray(est.noise_curve[c][0]) if est.noise_curve else np.array([g3[..., c].mean()])
        b = np.digitize(g3[..., c], (mu[1:] + mu[:-1]) / 2)
        var = [float(np.var(n3[..., c][b == i])) if (b == i).sum() > 50 else float(np.var(n3[..., c]))
               for i in range(len(mu))]
        curve.append([list(map(float, mu)), var])
    out["fused_oracle"] = run(fusion_params(dict(noise, noise_curve=curve), norm.mean, norm.std,
                                            model.config.network.in_channels))
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    import numpy as np
    import torch

    import common as C
    import napari_bsdenoise as bsd

    torch.set_num_threads(args.threads)
    root = C.data_root()
    if root is None:
        print(f"benchmark data not found (set ${C.DATA_ENV}); nothing to score")
        return 0
    args.model_dir.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        with open(args.out) as fh:
            done = {(r["group"], r["image"], r["train_blind_spot"]) for r in csv.DictReader(fh)}
    fields = ["group", "image", "train_blind_spot", "model_blind_spots", "noise_fraction", "infer_blind_spot",
              "variant", "psnr", "train_s"]
    for spec in args.images:
        group, frag = spec.split(":", 1)
        pairs = [p for p in C.load_group(group, None, root) if frag in p.name]
        if not pairs:
            print(f"no {group} image matches {frag!r}")
            continue
        pair = pairs[0]
        noisy, gt = pair.load()
        gt = gt.astype(np.float64)
        for tb in args.train_blind_spots:
            if (group, pair.name, tb) in done:
                continue
            path = args.model_dir / f"{group}_{pair.name.replace('/', '_')}_t{tb}_{args.steps}.safetensors"
            t0 = time.perf_counter()
            if path.exists():
                model, train_s = bsd.load_model(path), float("nan")
            else:
                model = bsd.train(noisy, steps=args.steps, seed=0, blind_spot=tb if tb == "auto" else int(tb))
                train_s = time.perf_counter() - t0
                model.save(path)
            if "noise_curve" not in model.config.noise:  # written before 0.3: refresh the noise record
                model.config.noise.update(bsd.estimate_noise_correlation(noisy).to_dict())
            frac = model.config.noise.get("noise_fraction", float("nan"))
            rows = []
            for s in (1, 3):
                for variant, out in _variants(model, noisy, gt, s).items():
                    rows.append({"group": group, "image": pair.name, "train_blind_spot": tb,
                                 "model_blind_spots": f"{model.train_blind_spot}/{model.inference_blind_spot}",
                                 "noise_fraction": round(frac, 3), "infer_blind_spot": s, "variant": variant,
                                 "psnr": round(C.psnr(gt, out), 3), "train_s": round(train_s, 1)})
            new = not args.out.exists()
            with open(args.out, "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=fields)
                if new:
                    w.writeheader()
                w.writerows(rows)
            print(pair.name, tb, {f"{r['infer_blind_spot']}:{r['variant']}": r["psnr"] for r in rows}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
