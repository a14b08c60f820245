"""Benchmark peer for volumes (issue #15): careamics' Noise2Void trained in 3-D (axes ``"ZYX"``) on the one
noisy volume for a wall-time budget, then predicting the whole volume: "N2V 3D from careamics at the
same budget".

It follows the 2-D peer :mod:`n2v_peer` (read its docstring: the conventions are the same and its
helpers are reused: the careamics import through :mod:`_torchvision_shim`, the quiet loggers, the
checkpoint position), with these 3-D specifics:

* configuration: ``create_advanced_n2v_config(axes="ZYX", patch_size=[16, 64, 64], batch_size=8)``
  with careamics' defaults otherwise.  With ``"Z"`` in the axes and a 3-entry patch size careamics
  builds a 3-D UNet (``conv_dims=3``: 3x3x3 convolutions, 2x2x2 max pooling, i.e. isotropic pooling
  also along the coarser Z; depth 2, 32 initial channels, batch norm) and masks in 3-D (0.2 % of the
  voxels, each replaced by a voxel drawn from its 11x11x11 neighbourhood: the ROI is cubic in voxels,
  not scaled for the anisotropy).  Augmentations are careamics' X/Y flips and 90 degree rotations in
  the XY plane only (nothing along Z).  Batch size 8 is the one of careamics' 3-D configuration
  examples (its guides: ``axes="ZYX", patch_size=[16, 64, 64], batch_size=8``); the 2-D peer's 16
  would halve the number of steps in a budget (one step of 8 16x64x64 patches takes ~6 s on one CPU
  thread here).
* N2V2 (``use_n2v2=True``) works in 3-D in careamics 0.3.5: its UNet has a 3-D ``MaxBlurPool``
  (3x3x3 Pascal blur after 2x2x2 max pooling) and drops the top skip connection, and the median
  replacement works on 11x11x11 neighbourhoods.  Allowed here as an option (``n2v2=True``).
* validation: careamics holds back ``n_val_patches`` grid patches of 16x64x64; its default (8) would
  hold back the whole of a 32x128x128 volume (8 grid patches, which careamics rejects), so as in 2-D
  about a tenth of the grid is kept, at least one (``min(8, max(1, n_grid // 10))``).
* budget, checkpoints, ``num_workers=0`` and threads: exactly as in the 2-D peer (Lightning's
  ``max_time``; careamics' checkpoint every 10 epochs plus "last", predict uses "last").  Note that a
  32x128x128 volume has only 7 training grid patches, i.e. one step per epoch, so the "last" checkpoint
  is written every 10 steps and the weights used for prediction may lag the end of training by up to
  9 steps (``info["ckpt_step"]`` vs ``info["steps"]``).
* prediction: the whole volume at once when every side is a multiple of 4 (the UNet constraint) and it
  has at most 32x256x256 voxels; else tiles of power-of-two sides (Z: the volume's depth rounded up to
  a power of two, at most 32, at least 8; Y, X: at most 128) with careamics' 48 px overlap in Y/X (half
  the tile when smaller) and a quarter of the tile in Z, with a prediction batch small enough that a
  batch holds at most ~1 M voxels (the training batch size would hold 8 tiles of 32x128x128 at once).
  careamics zero-pads tiles past the volume and de-normalises its output itself.

Checkpoints and logs go to a temporary directory that is deleted afterwards.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # importable from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from n2v_peer import MAX_VAL_PATCHES, TILE_OVERLAP, _ckpt_position, _import_careamics, _quiet  # noqa: E402

PATCH_3D = (16, 64, 64)  # Z, Y, X
BATCH_3D = 8
WHOLE_VOLUME_MAX_VOXELS = 32 * 256 * 256
MAX_TILE_Z = 32
MAX_TILE_XY = 128
PREDICT_BATCH_VOXELS = 1 << 20


def _n_val_patches_3d(z: int, y: int, x: int, patch=PATCH_3D) -> int:
    n_grid = (z // patch[0]) * (y // patch[1]) * (x // patch[2])
    if n_grid < 2:
        raise ValueError(f"volume {z}x{y}x{x} is too small for careamics' {'x'.join(map(str, patch))} "
                         "training patches (need at least 2 grid patches)")
    return min(MAX_VAL_PATCHES, max(1, n_grid // 10))


def _pow2_at_least(n: int) -> int:
    return 1 << math.ceil(math.log2(max(1, n)))


def _tiling_3d(z: int, y: int, x: int):
    """(tile_size, tile_overlap, predict batch size) for CAREamist.predict; (None, None, None) = whole."""
    if z % 4 == 0 and y % 4 == 0 and x % 4 == 0 and z * y * x <= WHOLE_VOLUME_MAX_VOXELS:
        return None, None, None
    tz = min(MAX_TILE_Z, max(8, _pow2_at_least(z)))
    txy = min(MAX_TILE_XY, max(8, _pow2_at_least(max(y, x))))
    oz = tz // 4  # even for tz >= 8 (careamics wants even overlaps)
    oxy = TILE_OVERLAP if txy > 2 * TILE_OVERLAP else txy // 2
    batch = max(1, PREDICT_BATCH_VOXELS // (tz * txy * txy))
    return (tz, txy, txy), (oz, oxy, oxy), batch


def run_n2v3d(
    noisy: np.ndarray,
    *,
    seconds: float,
    n2v2: bool = False,
    seed: int = 0,
    threads: int | None = None,
    patch_size: tuple[int, int, int] = PATCH_3D,
    batch_size: int = BATCH_3D,
) -> tuple[np.ndarray, dict]:
    """Train careamics' 3-D N2V (``n2v2=False``) or 3-D N2V2 (``n2v2=True``) on the volume ``noisy``
    (Z x Y x X, any intensity units) for ``seconds`` of wall time and denoise it.

    ``threads``: torch intra-op threads during the call (restored afterwards); None keeps the current
    setting.  ``seed`` seeds careamics (it gets ``seed + 1``, careamics needs a positive seed).

    Returns ``(denoised float32 ZYX in the units of noisy, info)``.
    """
    import torch

    x = np.asarray(noisy)
    if x.ndim != 3:
        raise ValueError(f"expected a Z x Y x X volume, got shape {x.shape}")
    if seconds <= 0:
        raise ValueError("seconds must be > 0")
    z, h, w = x.shape
    data = np.ascontiguousarray(x, dtype=np.float32)
    axes = "ZYX"
    patch = tuple(int(p) for p in patch_size)

    careamics, CAREamist, create_advanced_n2v_config = _import_careamics()

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        with tempfile.TemporaryDirectory(prefix="n2v3d_peer_") as work_dir, _quiet():
            n_val = _n_val_patches_3d(z, h, w, patch)
            config = create_advanced_n2v_config(
                experiment_name="n2v2_3d_peer" if n2v2 else "n2v_3d_peer",
                data_type="array",
                axes=axes,
                patch_size=list(patch),
                batch_size=int(batch_size),
                num_epochs=None,  # no epoch limit: max_time stops training
                n_val_patches=n_val,
                use_n2v2=bool(n2v2),
                num_workers=0,
                trainer_params={
                    "max_time": {"seconds": float(seconds)},
                    "accelerator": "cpu",
                    "devices": 1,
                    "enable_model_summary": False,
                },
                seed=int(seed) + 1,
            )
            if config.algorithm_config.model.conv_dims != 3:
                raise RuntimeError(f"careamics built a {config.algorithm_config.model.conv_dims}-D UNet for axes ZYX")
            careamist = CAREamist(config, work_dir=work_dir, enable_progress_bar=False)

            t0 = time.perf_counter()
            careamist.train(train_data=data)
            train_s = time.perf_counter() - t0

            trainer = careamist.trainer
            ckpt_path = getattr(trainer.checkpoint_callback, "last_model_path", None)
            ckpt_step, ckpt_epoch = _ckpt_position(ckpt_path)

            tile_size, tile_overlap, pred_batch = _tiling_3d(z, h, w)
            t0 = time.perf_counter()
            kw = {} if pred_batch is None else {"batch_size": pred_batch}
            preds, _ = careamist.predict(
                data,
                tile_size=tile_size,
                tile_overlap=tile_overlap,
                axes=axes,
                data_type="array",
                num_workers=0,
                **kw,
            )
            predict_s = time.perf_counter() - t0
            norm = careamist.config.data_config.normalization
            means, stds = list(norm.input_means or []), list(norm.input_stds or [])
    finally:
        torch.set_num_threads(old_threads)

    out = np.squeeze(np.asarray(preds[0], dtype=np.float32))  # careamics returns e.g. (1, Z, Y, X)
    if out.shape != (z, h, w):
        raise RuntimeError(f"unexpected careamics output shape {np.asarray(preds[0]).shape}")
    out = np.ascontiguousarray(out, dtype=np.float32)

    info = {
        "method": "careamics N2V2 3D" if n2v2 else "careamics N2V 3D",
        "n2v2": bool(n2v2),
        "careamics": careamics.__version__,
        "seconds": float(seconds),
        "steps": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "ckpt_step": ckpt_step,  # step of the "last" checkpoint used by predict
        "ckpt_epoch": ckpt_epoch,
        "train_s": train_s,
        "predict_s": predict_s,
        "patch_size": "x".join(map(str, patch)),
        "batch_size": int(batch_size),
        "n_val_patches": n_val,
        "axes": axes,
        "tile_size": "whole" if tile_size is None else "x".join(map(str, tile_size)),
        "tile_overlap": None if tile_overlap is None else "x".join(map(str, tile_overlap)),
        "norm_means": means,
        "norm_stds": stds,
        "threads": torch.get_num_threads() if threads is None else int(threads),
        "seed": int(seed) + 1,
    }
    return out, info


def main(argv=None) -> int:
    """Smoke test: ``python benchmarks/n2v3d_peer.py --seconds 60`` on the first synthetic volume."""
    import argparse

    p = argparse.ArgumentParser(description="careamics N2V 3-D on a synthetic volume (benchmarks/data3d.py)")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--case", default="membranes_pg")
    p.add_argument("--n2v2", action="store_true")
    args = p.parse_args(argv)

    from _threads import limit_threads

    limit_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from data3d import psnr3d, ssim3d, volume_cases

    pair = next(c for c in volume_cases() if c.name.split("/")[1] == args.case)
    noisy, clean = pair.load()
    t0 = time.perf_counter()
    out, info = run_n2v3d(noisy, seconds=args.seconds, n2v2=args.n2v2, seed=0, threads=args.threads)
    wall = time.perf_counter() - t0
    print(f"{pair.name}: noisy PSNR {psnr3d(clean, noisy):.2f} dB SSIM {ssim3d(clean, noisy):.4f} | "
          f"{info['method']} {args.seconds:g} s: PSNR {psnr3d(clean, out):.2f} dB SSIM {ssim3d(clean, out):.4f} "
          f"(wall {wall:.1f} s)")
    print({k: v for k, v in info.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
