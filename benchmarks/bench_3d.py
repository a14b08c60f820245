"""Volumes (issue #15): 2-D per-slice vs native 3-D blind-spot networks beside careamics' 3-D N2V and
BM3D / BM4D, at the same budget, on the synthetic volumes of :mod:`data3d`.

    python benchmarks/bench_3d.py --seconds 240 --out benchmarks/results/volumes3d.csv [--limit N] [--shard 0/2]
    python benchmarks/bench_3d.py --table benchmarks/results/volumes3d.csv

Cases (:data:`data3d.VOLUME_SPECS`, 32 x 128 x 128, z-step 4x the xy pixel, camera units): two clean
"cells-like" volumes (Voronoi membranes + nuclei; nuclei + filaments) x two noises (``pg``:
Poisson-Gaussian, pixel-independent; ``zcorr``: the same noise resampled along Z, lag-1 correlation
0.61 along Z, none along Y/X).  ``--limit N`` takes an evenly spaced subset (1: ``membranes_pg``).

Methods (``--methods``, default all):

* ``noisy``: the input;
* ``n2v3d``: careamics' N2V trained in 3-D for ``S`` seconds (:func:`n2v3d_peer.run_n2v3d`);
  ``n2v2_3d``: its N2V2 (not in the default list);
* ``bsd2d``: ``bsd.train(volume, axes="ZYX", spatial_dims=2, seconds=S, seed=0)`` then
  ``bsd.denoise(volume, model, axes="ZYX")`` (a 2-D network on the Y-X slices);
* ``bsd3d``: the same with ``spatial_dims=3`` and the full 3-D network (``network=NET_3D``).  If the
  package cannot do it the error is recorded in the row's ``info`` (empty psnr) and the row is retried
  by the next run;
* ``bsd25d``: the same with the 2.5-D network (``network=NET_25D``: each plane blind, two planes on
  each side seen whole);
* ``bm3d_slices``: BM3D ('np' profile) on each Z slice, sigma from ``estimate_sigma`` per slice, on the
  slice mapped linearly to 0-255 by the noisy volume's 0.1-99.9 percentiles (not clipped; mapped back);
* ``bm4d``: ``bm4d.bm4d`` on the whole volume with one sigma from ``estimate_sigma`` (a user's default:
  it assumes white Gaussian noise, also for ``zcorr``).

Metrics (:func:`data3d.psnr3d`, :func:`data3d.ssim3d`): PSNR with data_range = clean max - min over all
voxels, 3-D SSIM (7x7x7 window) with the same data range; outputs are not clipped.  ``seconds`` =
training + inference wall time.  Rows go to a resumable CSV (:func:`results.append_result`: group
``volume``, image = case, method); rows already there with a psnr are skipped.  One thread per method.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from _threads import limit_threads

METHODS = ("noisy", "n2v3d", "bsd2d", "bsd3d", "bsd25d", "bm3d_slices", "bm4d")
EXTRA_METHODS = ("n2v2_3d",)
LEARNED = ("n2v3d", "n2v2_3d", "bsd2d", "bsd3d", "bsd25d")
DEFAULT_OUT = Path("benchmarks/results/volumes3d.csv")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=240.0, help="training budget of each learned method")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="evenly spaced subset of the cases")
    p.add_argument("--cases", nargs="+", default=None, help="case names (default: all)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS + EXTRA_METHODS))
    p.add_argument("--shard", default="0/1", help="K/N: every N-th case from the K-th (parallel runs)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--table", type=Path, default=None, help="print the markdown table of a results CSV")
    return p.parse_args(argv)


def _import_bsd():
    try:
        import napari_bsdenoise as bsd
    except ImportError:  # running from a checkout that is not installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        import napari_bsdenoise as bsd
    return bsd


def _bsd_info(model, spatial_dims: int) -> dict:
    cfg = model.config
    info = {"spatial_dims_asked": spatial_dims,
            "spatial_dims": getattr(cfg.network, "spatial_dims", None),
            "net": cfg.network.method,
            "train_bs": cfg.train_blind_spot, "infer_bs": cfg.inference_blind_spot}
    for k in ("steps", "seconds", "method_reason"):
        if k in cfg.training:
            info[k] = cfg.training[k]
    return {k: (str(v).replace(",", " ").replace(";", " ").replace("=", ":") if isinstance(v, (tuple, list, str)) else v)
            for k, v in info.items()}


#: ``bsd3d``: the full 3-D network's tiny size; ``bsd25d``: the 2.5-D network (nn/atbsn25d.py) at the 2-D
#: tiny preset's size, two planes seen on each side (given explicitly, whatever the volume presets are).
NET_3D = {"width": 8, "depth": 2}
NET_25D = {"width": 16, "depth": 3, "z_context": 2}


def run_bsd(volume, seconds: float, spatial_dims: int, network="auto"):
    bsd = _import_bsd()
    model = bsd.train(volume, axes="ZYX", spatial_dims=spatial_dims, seconds=seconds, seed=0, network=network)
    out = bsd.denoise(volume, model, axes="ZYX")
    return out, _bsd_info(model, spatial_dims)


def run_bm3d_slices(volume):
    import numpy as np

    from baselines import run_bm3d

    lo, hi = (float(v) for v in np.percentile(volume, [0.1, 99.9]))
    scale = 255.0 / max(hi - lo, 1e-12)
    out = np.empty(volume.shape, np.float32)
    sigmas = []
    for z in range(volume.shape[0]):
        o, inf = run_bm3d((volume[z].astype(np.float64) - lo) * scale)
        out[z] = o / scale + lo
        sigmas.append(inf["sigma"] / scale)
    return out, {"map_lo": lo, "map_hi": hi, "sigma_mean": float(np.mean(sigmas)),
                 "sigma_min": float(np.min(sigmas)), "sigma_max": float(np.max(sigmas))}


def run_bm4d(volume):
    import bm4d
    import numpy as np
    from skimage.restoration import estimate_sigma

    v = volume.astype(np.float64)
    s = max(float(estimate_sigma(v)), 1e-6)
    return np.asarray(bm4d.bm4d(v, s), dtype=np.float32), {"sigma": s}


def table(path: Path) -> str:
    from results import read_results

    rows = [r for r in read_results(path) if r["psnr"] != ""]
    order = list(METHODS + EXTRA_METHODS)
    methods = [m for m in order if any(r["method"] == m for r in rows)]
    cases = list(dict.fromkeys(r["image"] for r in rows))
    out = ["| case | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for case in cases:
        by = {r["method"]: r for r in rows if r["image"] == case}  # the last valid row wins
        vals = {m: float(by[m]["psnr"]) for m in methods if m in by}
        best = max((v for m, v in vals.items() if m != "noisy"), default=None)
        cells = []
        for m in methods:
            if m not in vals:
                cells.append("")
                continue
            s = f"{vals[m]:.2f} / {float(by[m]['ssim']):.3f}"
            cells.append(f"**{s}**" if vals[m] == best else s)
        out.append(f"| {case} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("PSNR (dB, data range of the clean volume) / 3-D SSIM.")
    return "\n".join(out)


def run(args) -> None:
    import numpy as np

    from data3d import lag1_correlations, psnr3d, ssim3d, volume_cases
    from results import append_result, read_results, shard

    # rows with a psnr are done; error rows (empty psnr) are retried and superseded
    done = {(r["group"], r["image"], r["method"]) for r in read_results(args.out) if r["psnr"] != ""}
    cases = [c for c in volume_cases(args.limit) if args.cases is None or c.name.split("/")[1] in args.cases]
    for pair in shard(cases, args.shard):
        case = pair.name.split("/")[1]
        todo = [m for m in args.methods if ("volume", case, m) not in done]
        if not todo:
            continue
        noisy, clean = pair.load()
        for method in todo:
            t0 = time.perf_counter()
            info: dict = {}
            out = None
            try:
                if method == "noisy":
                    out = noisy
                    c = lag1_correlations(noisy, clean)
                    info = {"shape": "x".join(map(str, noisy.shape)), "resid_std": float((noisy - clean).std()),
                            "lag1_z": c["z"], "lag1_y": c["y"], "lag1_x": c["x"], "noise": pair.meta["noise"]}
                elif method in ("n2v3d", "n2v2_3d"):
                    from n2v3d_peer import run_n2v3d

                    out, info = run_n2v3d(noisy, seconds=args.seconds, n2v2=method == "n2v2_3d", seed=0,
                                          threads=args.threads)
                    info = {k: info[k] for k in ("steps", "ckpt_step", "train_s", "predict_s", "patch_size",
                                                  "batch_size", "n_val_patches", "tile_size", "careamics")}
                elif method == "bsd2d":
                    out, info = run_bsd(noisy, args.seconds, 2)
                elif method == "bsd3d":
                    out, info = run_bsd(noisy, args.seconds, 3, NET_3D)
                elif method == "bsd25d":
                    out, info = run_bsd(noisy, args.seconds, 3, NET_25D)
                elif method == "bm3d_slices":
                    out, info = run_bm3d_slices(noisy)
                elif method == "bm4d":
                    out, info = run_bm4d(noisy)
                out = np.asarray(out, dtype=np.float32)
                if out.shape != clean.shape:
                    raise RuntimeError(f"output shape {out.shape} != volume shape {clean.shape}")
            except Exception as exc:  # record and go on (e.g. spatial_dims=3 not implemented yet)
                traceback.print_exc()
                msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
                row = {"group": "volume", "image": case, "method": method, "psnr": "", "ssim": "",
                       "seconds": time.perf_counter() - t0, "info": {"error": msg, **info}}
                append_result(args.out, row)
                print(f"{case:18s} {method:12s} ERROR {msg}", flush=True)
                continue
            seconds = 0.0 if method == "noisy" else time.perf_counter() - t0
            row = {"group": "volume", "image": case, "method": method, "psnr": psnr3d(clean, out),
                   "ssim": ssim3d(clean, out), "seconds": seconds,
                   "info": {**info, **({"budget_s": args.seconds} if method in LEARNED else {})}}
            append_result(args.out, row)
            print(f"{case:18s} {method:12s} PSNR {row['psnr']:.2f} dB  SSIM {row['ssim']:.4f}  {seconds:7.1f} s",
                  flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    if args.table is not None:
        print(table(args.table))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
