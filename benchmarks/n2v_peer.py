"""Benchmark peer: careamics' Noise2Void / N2V2 trained on the one noisy image for a wall-time budget.

This is "the tool users would pick instead", run the way careamics documents it, so that the benchmarks
can compare against it at the same CPU budget:

* configuration: ``careamics.config.factories.n2v_factory.create_advanced_n2v_config`` with
  careamics' own defaults (UNet depth 2 / 32 initial channels with batch norm, N2V masking of 0.2 % of
  the pixels with an 11x11 ROI, uniform replacement for N2V and median replacement + blur-pool UNet
  without the top skip connection for N2V2 (``use_n2v2=True``), X/Y flips + 90 degree rotations,
  Adam with ReduceLROnPlateau, mean/std normalisation computed on training patches, stratified 64x64
  patches, batch size 16 as in careamics' examples). RGB images are trained as axes ``"YXC"`` with
  ``n_channels=3`` (careamics' default ``independent_channels=True``: grouped convolutions, i.e. an
  independent network per channel, trained together; no per-channel fallback is needed).
* validation: careamics holds back ``n_val_patches`` 64x64 grid patches of the training image for
  validation and never trains on them. Its default (8) would hold back half of a 256x256 image, so we
  keep about a tenth of the grid (``min(8, max(1, n_grid // 10))``).
* budget: Lightning's ``max_time`` trainer parameter (passed through careamics' ``trainer_params``)
  with no epoch limit; the Lightning timer starts when the training loop starts (after data setup
  and the sanity validation) and stops after the first optimiser step past the budget.
* checkpoints: careamics' checkpoint logic is untouched (for N2V: every 10 epochs plus "last"), and
  ``CAREamist.predict`` uses its default "last" checkpoint, as a user would get. With careamics'
  defaults the "last" checkpoint is only written when a periodic one is (every 10 epochs; at the
  end of training only if none was written before), so the model used for prediction can lag the
  end of training by up to 9 epochs (one epoch = one pass over the image's patches, e.g. 1 step
  for 256x256, 5 for 600x520); ``info["ckpt_step"]`` records the step of the weights actually
  used, ``info["steps"]`` the steps trained.
* data loading runs in the main process (``num_workers=0``) so that the CPU budget is the
  ``threads`` torch threads only (careamics' Linux default would start min(cpus - 1, 4) workers).
* prediction: ``CAREamist.predict`` on the whole image when its sides are multiples of 4 (the UNet
  constraint) and it has at most 512x512 pixels, else tiled with square power-of-two tiles of at
  most 256 and careamics' default 48 pixel overlap; careamics de-normalises its output itself.

Checkpoints and CSV logs go to a temporary directory that is deleted afterwards. careamics is
imported through :mod:`_torchvision_shim` (no torchvision wheel works with the CPU torch here).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

PATCH = 64
BATCH = 16
MAX_VAL_PATCHES = 8  # careamics' default n_val_patches
WHOLE_IMAGE_MAX_PIXELS = 512 * 512
MAX_TILE = 256
TILE_OVERLAP = 48  # careamics' default tile_overlap

_QUIET_LOGGERS = ("lightning", "lightning_fabric", "pytorch_lightning", "careamics")


def _import_careamics():
    try:
        import _torchvision_shim
    except ImportError:  # imported from outside benchmarks/
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import _torchvision_shim

    _torchvision_shim.install()
    import careamics
    from careamics.careamist import CAREamist
    from careamics.config.factories.n2v_factory import create_advanced_n2v_config

    return careamics, CAREamist, create_advanced_n2v_config


@contextlib.contextmanager
def _quiet():
    """Silence Lightning/careamics console output: info logs, warnings and careamics' tqdm bar for the
    normalisation statistics (progress bars of training are disabled separately). Captured stderr
    is replayed if the block raises."""
    try:  # every logger made by careamics' get_logger (some are not named careamics.*, e.g. "Statistics")
        from careamics.utils.logging import LOGGERS as careamics_loggers
    except ImportError:
        careamics_loggers = {}
    saved = {}
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in _QUIET_LOGGERS or name in careamics_loggers:
            lg = logging.getLogger(name)  # careamics' loggers have their own level and handler
            saved[name] = lg.level
            lg.setLevel(logging.ERROR)
    err = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
            warnings.simplefilter("ignore")
            yield
    except BaseException:
        sys.stderr.write(err.getvalue())
        raise
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _n_val_patches(h: int, w: int) -> int:
    n_grid = (h // PATCH) * (w // PATCH)
    if n_grid < 2:
        raise ValueError(f"image {h}x{w} is too small for careamics' {PATCH}x{PATCH} training patches")
    return min(MAX_VAL_PATCHES, max(1, n_grid // 10))


def _tiling(h: int, w: int) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(tile_size, tile_overlap) for CAREamist.predict; (None, None) = whole image."""
    if h % 4 == 0 and w % 4 == 0 and h * w <= WHOLE_IMAGE_MAX_PIXELS:
        return None, None
    tile = min(MAX_TILE, 1 << math.ceil(math.log2(max(h, w))))  # square power of two; smaller images are padded
    overlap = TILE_OVERLAP if tile > 2 * TILE_OVERLAP else tile // 2
    return (tile, tile), (overlap, overlap)


def _ckpt_position(path: str | None) -> tuple[int | None, int | None]:
    """(global_step, epoch) stored in a Lightning checkpoint, or (None, None)."""
    if not path:
        return None, None
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # informational only
        return None, None
    return ckpt.get("global_step"), ckpt.get("epoch")


def run_n2v(
    noisy: np.ndarray,
    *,
    seconds: float,
    n2v2: bool,
    seed: int = 0,
    rgb: bool | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Train careamics' N2V (``n2v2=False``) or N2V2 (``n2v2=True``) on ``noisy`` for ``seconds`` of
    wall time and denoise it.

    ``noisy``: HxW grey or HxWx3 RGB, uint8 or float, any intensity units (careamics normalises with
    the image's mean/std and de-normalises its prediction). ``rgb=None`` means RGB iff HxWx3.
    ``threads``: torch intra-op threads during the call (restored afterwards); None keeps the current
    setting. ``seed`` seeds careamics (patching, augmentation, masking, initialisation; careamics
    needs a positive seed, so it gets ``seed + 1``); the step count still depends on the machine.

    Returns ``(denoised float32 with the shape and units of noisy, info)``.
    """
    import torch

    x = np.asarray(noisy)
    if rgb is None:
        rgb = x.ndim == 3 and x.shape[-1] == 3
    if rgb and not (x.ndim == 3 and x.shape[-1] == 3):
        raise ValueError(f"rgb=True needs an HxWx3 image, got shape {x.shape}")
    if not rgb and x.ndim != 2:
        raise ValueError(f"expected an HxW grey or HxWx3 RGB image, got shape {x.shape}")
    if seconds <= 0:
        raise ValueError("seconds must be > 0")
    h, w = x.shape[:2]
    data = np.ascontiguousarray(x, dtype=np.float32)
    axes = "YXC" if rgb else "YX"

    careamics, CAREamist, create_advanced_n2v_config = _import_careamics()

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        with tempfile.TemporaryDirectory(prefix="n2v_peer_") as work_dir, _quiet():
            n_val = _n_val_patches(h, w)
            config = create_advanced_n2v_config(
                experiment_name="n2v2_peer" if n2v2 else "n2v_peer",
                data_type="array",
                axes=axes,
                patch_size=(PATCH, PATCH),
                batch_size=BATCH,
                num_epochs=None,  # no epoch limit: max_time stops training
                n_channels=3 if rgb else None,
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
            careamist = CAREamist(config, work_dir=work_dir, enable_progress_bar=False)

            t0 = time.perf_counter()
            careamist.train(train_data=data)
            train_s = time.perf_counter() - t0

            trainer = careamist.trainer
            ckpt_path = getattr(trainer.checkpoint_callback, "last_model_path", None)
            ckpt_step, ckpt_epoch = _ckpt_position(ckpt_path)

            tile_size, tile_overlap = _tiling(h, w)
            t0 = time.perf_counter()
            preds, _ = careamist.predict(
                data,
                tile_size=tile_size,
                tile_overlap=tile_overlap,
                axes=axes,
                data_type="array",
                num_workers=0,
            )
            predict_s = time.perf_counter() - t0
            norm = careamist.config.data_config.normalization
            means, stds = list(norm.input_means or []), list(norm.input_stds or [])
    finally:
        torch.set_num_threads(old_threads)

    out = np.asarray(preds[0], dtype=np.float32)
    out = np.squeeze(out)  # careamics returns e.g. (1, H, W) or (C, H, W)
    if rgb and out.shape != (h, w, 3):
        if out.shape == (3, h, w):
            out = np.moveaxis(out, 0, -1)
        else:
            raise RuntimeError(f"unexpected careamics output shape {np.asarray(preds[0]).shape}")
    if not rgb and out.shape != (h, w):
        raise RuntimeError(f"unexpected careamics output shape {np.asarray(preds[0]).shape}")
    out = np.ascontiguousarray(out, dtype=np.float32)

    info = {
        "method": "careamics N2V2" if n2v2 else "careamics N2V",
        "n2v2": bool(n2v2),
        "careamics": careamics.__version__,
        "seconds": float(seconds),
        "steps": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "ckpt_step": ckpt_step,  # step of the "last" checkpoint used by predict
        "ckpt_epoch": ckpt_epoch,
        "train_s": train_s,
        "predict_s": predict_s,
        "patch_size": PATCH,
        "batch_size": BATCH,
        "n_val_patches": n_val,
        "axes": axes,
        "channels": "joint YXC, n_channels=3, independent_channels=True" if rgb else "grey",
        "tile_size": tile_size,
        "tile_overlap": tile_overlap,
        "norm_means": means,
        "norm_stds": stds,
        "threads": torch.get_num_threads() if threads is None else int(threads),
        "seed": int(seed) + 1,
    }
    return out, info
