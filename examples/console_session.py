"""The napari-free API step by step, as you would type it in IPython, Jupyter or napari's console.

Uses the plugin's camera sample: a photo through a simulated phone-camera
pipeline, whose demosaicking spreads each pixel's noise over its neighbours
(spatially correlated noise, the case where the blind spot matters).  The
sample comes with its clean reference, so each step can be scored; on your
own data you judge by eye instead.

Run::

    python examples/console_session.py             # 20 training steps: a tour, not a good model
    python examples/console_session.py --steps 1000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import napari_bsdenoise as bsd
from napari_bsdenoise.sample_data import sample_camera


def psnr(clean, image) -> float:
    mse = np.mean((clean.astype(np.float64) - image.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="A tour of the napari-bsdenoise Python API.")
    p.add_argument("--steps", type=int, default=20, help="training steps (default 20: quick, not good)")
    p.add_argument("--network", default="tiny", choices=["tiny", "small", "paper"])
    args = p.parse_args(argv)

    # 1. Data: a 256x256 crop of the RGB camera sample (uint8, axes YXC).
    (clean, _), (noisy, _) = sample_camera()
    clean, noisy = clean[128:384, 128:384], noisy[128:384, 128:384]
    print(f"noisy image {noisy.shape} {noisy.dtype}; PSNR against the clean reference {psnr(clean, noisy):.2f} dB")

    # 2. Look at the noise first: is it pixel-independent?  What blind spots does it need?
    noise = bsd.estimate_noise_correlation(noisy, axes="YXC")
    print("noise:", noise.summary())

    # 3. Train, watching progress.  The callback gets a ProgressEvent; returning False stops early.
    def on_progress(event: bsd.ProgressEvent):
        if event.kind in ("validation", "done"):
            print(f"  {event}")

    model = bsd.train(noisy, axes="YXC", blind_spot="auto", steps=args.steps, network=args.network,
                      seed=0, callback=on_progress)
    print(model.summary())

    # 4. Denoise with the recommended inference blind spot, then tune it: no retraining needed.
    #    Smaller blind spots keep more detail but can let correlated noise through.
    scores = {}
    for s in sorted({0, 1, 3, 5, model.inference_blind_spot}):
        out = bsd.denoise(noisy, model, blind_spot=s)
        scores[s] = psnr(clean, np.clip(out, 0, 255))
        mark = "  <- the model's default" if s == model.inference_blind_spot else ""
        print(f"  inference blind spot {s}: PSNR {scores[s]:.2f} dB{mark}")
    if max(scores.values()) < psnr(clean, noisy):
        print(f"  (after {args.steps} steps the model is not trained yet; try --steps 1000 or more)")

    # 5. Save and load: one .safetensors file (weights + JSON config), never a pickle.
    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "camera.safetensors")
        print(f"saved {path.name}: {path.stat().st_size / 1024:.0f} KiB")
        again = bsd.load_model(path)
        same = np.array_equal(bsd.denoise(noisy, again), bsd.denoise(noisy, model))
        print(f"loaded it back: {again!r}; identical results: {same}")

        # 6. Continue training the loaded model with a further budget (e.g. on more data).
        more = bsd.train(noisy, axes="YXC", model=again, steps=max(1, args.steps // 4), network=args.network)
        print(f"continued for {more.config.training['steps']} steps: "
              f"PSNR {psnr(clean, np.clip(bsd.denoise(noisy, more), 0, 255)):.2f} dB")

    # 7. Distil the tunable blind-spot model into a fast non-blind student (docs/distillation.md):
    #    the teacher, run at several blind spots, teaches a plain UNet on the same noisy image.
    student = bsd.distill(noisy, model, axes="YXC", steps=args.steps, seed=0)
    teachers = student.config.training["distillation"]["teacher_blind_spots"]
    print(f"student distilled from teachers at blind spots {teachers}: "
          f"PSNR {psnr(clean, np.clip(bsd.denoise(noisy, student), 0, 255)):.2f} dB")


if __name__ == "__main__":
    main()
