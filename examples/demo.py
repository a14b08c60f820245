"""Demo: denoise a low-light fluorescence-like image with no clean reference, and measure how well it worked.

The noisy image is simulated from scikit-image's bundled data (nothing is
downloaded) with the noise of a scientific camera: the clean image is scaled
to a photon count, photon (Poisson) noise and Gaussian read noise are added,
plus the camera's offset of 100 grey levels, and the result is stored as
uint16 like a raw camera frame.  Because we made the noise, we also have the
clean image, so the PSNR before and after denoising can be reported.  The
denoiser itself never sees the clean image.

Run::

    python examples/demo.py                 # 60 s of training
    python examples/demo.py --seconds 300   # better
    python examples/demo.py --figure docs/images/demo_before_after.png

Writes ``demo_output/noisy.tif``, ``demo_output/denoised.tif``,
``demo_output/model.safetensors`` and a before/after figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def nuclei_image() -> np.ndarray:
    """A 512x512 fluorescence-like image in [0, 1]: the nuclear (haematoxylin) stain of a tissue section.

    Unmixed from scikit-image's bundled immunohistochemistry image, lightly
    smoothed (to remove that image's own noise), with the weaker half of the
    pixels set to a dark background as in fluorescence.
    """
    from scipy import ndimage as ndi
    from skimage import color, data

    stain = ndi.gaussian_filter(color.rgb2hed(data.immunohistochemistry())[..., 0], 0.8)
    lo, hi = np.percentile(stain, [50, 99.8])
    return np.clip((stain - lo) / (hi - lo), 0.0, 1.0)


def simulate_camera(clean01: np.ndarray, *, photons: float, read_noise: float, offset: float = 100.0,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-Gaussian camera noise: ``(noisy uint16, clean float32)`` in grey levels (1 photon = 1 level)."""
    rng = np.random.default_rng(seed)
    expected = photons * clean01
    frame = rng.poisson(expected) + rng.normal(0.0, read_noise, clean01.shape) + offset
    noisy = np.clip(np.rint(frame), 0, 65535).astype(np.uint16)
    return noisy, (expected + offset).astype(np.float32)


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    ref = reference.astype(np.float64)
    return float(peak_signal_noise_ratio(ref, image.astype(np.float64), data_range=float(ref.max() - ref.min())))


def best_gaussian_blur(noisy: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """A classical baseline, with its blur chosen using the clean image (which real data never has)."""
    from scipy import ndimage as ndi

    scores = {s: psnr(clean, ndi.gaussian_filter(noisy.astype(np.float64), s)) for s in (0.5, 0.75, 1.0, 1.5, 2.0)}
    sigma = max(scores, key=scores.get)
    return sigma, scores[sigma]


def save_figure(path: Path, noisy, denoised, clean, scores: dict, caption: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = np.percentile(clean, [0.5, 99.8])
    crop = (slice(200, 328), slice(60, 188))  # a 128x128 zoom
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4), gridspec_kw={"hspace": 0.06, "wspace": 0.03})
    panels = [
        (noisy, f"noisy input  (PSNR {scores['noisy']:.1f} dB)"),
        (denoised, f"napari-bsdenoise  (PSNR {scores['denoised']:.1f} dB)"),
        (clean, "clean reference (never shown to the model)"),
    ]
    for col, (img, title) in enumerate(panels):
        axes[0, col].imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        axes[0, col].set_title(title, fontsize=11)
        axes[1, col].imshow(img[crop], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        axes[0, col].add_patch(matplotlib.patches.Rectangle((crop[1].start, crop[0].start), 128, 128,
                                                            fill=False, edgecolor="yellow", linewidth=1))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, 0].set_ylabel("zoom (yellow box)")
    fig.text(0.5, 0.06, caption, ha="center", va="top", fontsize=9, color="0.3")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, default=60.0, help="training time budget (default 60)")
    budget.add_argument("--steps", type=int, help="training steps instead of a time budget (reproducible)")
    p.add_argument("--network", choices=["tiny", "small", "paper"], default="tiny",
                   help="network size (default tiny: on a CPU, a one-minute budget gets about four times as many "
                   "training steps as with the default small network, and that matters more)")
    p.add_argument("--photons", type=float, default=30.0, help="photons at the brightest pixels (default 30)")
    p.add_argument("--read-noise", type=float, default=2.0, help="camera read noise in electrons (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default demo_output)")
    p.add_argument("--figure", type=Path, help="before/after PNG (default OUT/before_after.png)")
    args = p.parse_args(argv)

    import tifffile

    import napari_bsdenoise as bsd

    clean01 = nuclei_image()
    noisy, clean = simulate_camera(clean01, photons=args.photons, read_noise=args.read_noise, seed=args.seed)
    print(f"simulated a {noisy.shape[1]}x{noisy.shape[0]} uint16 camera frame: {args.photons:g} photons at the "
          f"brightest pixels, read noise {args.read_noise:g}, offset 100")

    noise = bsd.estimate_noise_correlation(noisy)
    print("noise diagnostic:", noise.summary())

    budget = {"steps": args.steps} if args.steps else {"seconds": args.seconds}
    shown = [-1]

    def progress(event):
        pct = int(event.fraction * 10)
        if pct > shown[0] or event.kind == "done":
            shown[0] = pct
            best = f", best validation loss {event.best_val_loss:.4f}" if event.best_val_loss is not None else ""
            print(f"  training {event.fraction:4.0%}  step {event.step}{best}", flush=True)

    t0 = time.perf_counter()
    model = bsd.train(noisy, network=args.network, seed=args.seed, callback=progress, **budget)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    denoised = bsd.denoise(noisy, model)
    t_denoise = time.perf_counter() - t0

    scores = {"noisy": psnr(clean, noisy), "denoised": psnr(clean, denoised)}
    sigma, blur = best_gaussian_blur(noisy, clean)
    steps = model.config.training.get("steps")
    print(f"trained {steps} steps in {t_train:.0f} s ({model.config.network.width}-wide network), "
          f"denoised in {t_denoise:.1f} s")
    print(f"PSNR noisy     {scores['noisy']:6.2f} dB")
    print(f"PSNR denoised  {scores['denoised']:6.2f} dB   (napari-bsdenoise, blind spot {model.inference_blind_spot})")
    print(f"PSNR Gaussian  {blur:6.2f} dB   (best blur, sigma {sigma}, chosen with the clean image: for scale)")

    args.out.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(args.out / "noisy.tif", noisy, imagej=True, metadata={"axes": "YX"})
    tifffile.imwrite(args.out / "denoised.tif", denoised, imagej=True, metadata={"axes": "YX"})
    tifffile.imwrite(args.out / "clean.tif", clean, imagej=True, metadata={"axes": "YX"})
    model_path = model.save(args.out / "model.safetensors")
    figure = args.figure or args.out / "before_after.png"
    caption = (f"Simulated camera frame ({args.photons:g} photons at the brightest pixels, read noise "
               f"{args.read_noise:g}). '{args.network}' network trained {steps} steps in {t_train:.0f} s on "
               f"{model.config.training.get('device', 'cpu')} from the noisy image alone.\nFor scale: the best "
               f"Gaussian blur (sigma chosen with the clean image) gives {blur:.1f} dB.")
    save_figure(figure, noisy, denoised, clean, scores, caption)
    print(f"wrote {args.out / 'noisy.tif'}, {args.out / 'denoised.tif'}, {args.out / 'clean.tif'}, {model_path}")
    print(f"wrote {figure}")
    print(f"next: napari-bsdenoise denoise {model_path} {args.out / 'noisy.tif'} -o my_denoised.tif")
    return 0


if __name__ == "__main__":
    sys.exit(main())
