"""``napari-bsdenoise auto``: the one-button path: noise diagnostic, method, training, distillation and
denoising within one wall-time budget (:func:`napari_bsdenoise.auto_denoise`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.images import check_png, convert_dtype, output_format, write_image
from .common import (
    AXES_HELP,
    DEVICE_HELP,
    EXIT_INTERRUPTED,
    HOT_PIXELS_HELP,
    Progress,
    check_output,
    int_arg,
    note,
    positive_float,
    read_input,
)


def run(args) -> int:
    from ..api import AutoDenoiser

    image_path = Path(args.image)
    out = check_output(args.output, image_path)
    fmt = output_format(out)
    img = read_input(image_path, args.axes)
    dtype = args.dtype or ("input" if fmt == "png" else "float32")
    if fmt == "png":  # fail before the work, not after it
        check_png(out, img.data.dtype if dtype == "input" else np.float32, img.axes, img.data.shape)
    models = Path(args.save_models) if args.save_models else None
    kwargs = {k: v for k, v in {"teacher_fraction": args.teacher_fraction, "seed": args.seed}.items() if v is not None}
    pipeline = AutoDenoiser(img.data, axes=img.axes, seconds=args.seconds, method=args.method, device=args.device,
                            distill=False if args.no_distill else "auto", hot_pixels=args.hot_pixels, **kwargs)
    if not args.quiet:
        c = pipeline.result.choices
        note(f"auto: {c['method']} ({c['method_reason']}); {c['distill_reason']}")
    bar = Progress("auto", enabled=not args.quiet)
    interrupted = False
    gen = pipeline.run()
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration:
                break
            bar.update(event.fraction, (event.message or event.kind).split(":")[0])
    except KeyboardInterrupt:
        interrupted = True
        gen.close()
    finally:
        bar.close()
    result = pipeline.result
    if models is not None:
        models.mkdir(parents=True, exist_ok=True)
        for role, model in (("teacher", result.teacher), ("student", result.student)):
            if model is not None:
                note(f"saved the {role} model to {model.save(models / f'{image_path.stem}_{role}.safetensors')}")
    if interrupted or result.denoised is None:
        note("interrupted: nothing was written" + ("" if models else " (--save-models DIR keeps the models)"))
        return EXIT_INTERRUPTED
    data = convert_dtype(result.denoised, img.data.dtype) if dtype == "input" else result.denoised
    write_image(out, data, img, img.axes)
    if not args.quiet:
        print(result.summary())
    print(f"wrote {out} ({data.dtype}, shape {data.shape}, axes {img.axes}) in "
          f"{result.choices['seconds']['total']:.0f} s")
    return 0


def add_parser(sub) -> None:
    """Add the ``auto`` subcommand to the subparsers ``sub``."""
    a = sub.add_parser("auto", help="one button: diagnose, train, distil and denoise within a time budget",
                       description="Denoise IMAGE within --seconds of wall time (inference included): the noise "
                       "diagnostic picks D-BSN (pixel-independent noise) or AT-BSN plus a distilled student "
                       "(correlated noise), and the budget is split between them and denoising.")
    a.add_argument("image", metavar="IMAGE", help="noisy TIFF, PNG or JPEG")
    a.add_argument("-o", "--output", metavar="OUT", required=True, help="output .tif or .png (never the input)")
    a.add_argument("--seconds", type=positive_float, default=240.0, metavar="S",
                   help="total wall time in seconds, inference included (default 240)")
    a.add_argument("--axes", help=AXES_HELP)
    a.add_argument("--save-models", metavar="DIR", help="also save the teacher (and student) models into DIR")
    from ..api import AUTO_METHODS

    a.add_argument("--method", choices=AUTO_METHODS, default="auto",  # what the pipeline takes
                   help="auto (default): chosen by the noise diagnostic; atbsn or dbsn: forced")
    a.add_argument("--teacher-fraction", type=positive_float, metavar="F",
                   help="correlated noise: the teacher's share of the training time (default 0.5)")
    a.add_argument("--no-distill", action="store_true", help="no student: the teacher denoises")
    a.add_argument("--hot-pixels", choices=["auto", "keep", "remove"], default="auto", help=HOT_PIXELS_HELP)
    a.add_argument("--dtype", choices=["float32", "input"],
                   help="float32 (default for TIFF) or the input's type, rounded and clipped (default for PNG)")
    a.add_argument("--seed", type=int_arg, help="random seed (default 0)")
    a.add_argument("--device", help=DEVICE_HELP)
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=run)
