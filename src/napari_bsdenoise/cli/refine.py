"""``napari-bsdenoise refine``: experimental blind-spot guided diffusion (BSGD) refinement::

    napari-bsdenoise refine bsgd.safetensors photo.png -o refined.tif --guide bsn.safetensors
"""

from __future__ import annotations

from pathlib import Path

from ..io.images import check_input_file, check_png, output_format
from .common import (
    DEVICE_HELP,
    HOT_PIXELS_HELP,
    EXIT_INTERRUPTED,
    Progress,
    check_output,
    compute_and_write,
    int_arg,
    positive_float,
    positive_int,
    read_input,
)


def run(args) -> int:
    """Refine IMAGE with a BSGD model (optionally starting from a guide model's result); write the result."""
    import numpy as np

    from ..api import load_model, refine

    model_path = check_input_file(args.model, "BSGD model")
    image_path = Path(args.image)
    inputs = [image_path, model_path]
    guide = None
    if args.guide is not None:
        guide_path = check_input_file(args.guide, "guide model")
        inputs.append(guide_path)
    out = check_output(args.output, *inputs)
    fmt = output_format(out)
    model = load_model(model_path)
    if args.guide is not None:
        guide = load_model(guide_path)
    img = read_input(image_path, args.axes)
    dtype = args.dtype or ("input" if fmt == "png" else "float32")
    if fmt == "png":
        check_png(out, img.data.dtype if dtype == "input" else np.float32, img.axes, img.data.shape)
    kwargs = {k: v for k, v in {
        "sampling_steps": args.sampling_steps, "guidance": args.guidance, "rounds": args.rounds,
        "t_start": args.t_start, "replace": args.replace, "anchor": args.anchor, "blind_spot": args.blind_spot, "seed": args.seed,
    }.items() if v is not None}
    bar = Progress("refine", enabled=not args.quiet)
    result = compute_and_write(
        lambda: refine(img.data, model, guide=guide, axes=img.axes, device=args.device, tile_size=args.tile_size,
                       hot_pixels=args.hot_pixels, callback=lambda e: bar.update(e.fraction, e.message), **kwargs),
        bar, img, out, dtype)
    if result is None:
        return EXIT_INTERRUPTED
    start = f"the result of {Path(args.guide).name}" if guide is not None else "the noisy image"
    print(f"wrote {out} ({result.dtype}, shape {result.shape}, axes {img.axes}; refined from {start})")
    return 0


def add_parser(sub) -> None:
    """Add the ``refine`` subcommand to the subparsers ``sub``."""
    r = sub.add_parser(
        "refine", help="experimental: refine a denoised image by blind-spot guided diffusion (BSGD); keeps the "
                  "guide's result where a self-supervised check says refining does not help (docs/bsgd.md)",
        description="Blind-spot guided diffusion refinement: start from the GUIDE model's result (or the noisy "
        "image), diffuse it to --t-start and run deterministic DDIM steps mixing the BSGD model's conventional "
        "and blind-spot branches; complementary random replacement with the noisy image and averaging over "
        "rounds.  Reproducible for a --seed, identical for any --tile-size.")
    r.add_argument("model", metavar="MODEL", help="BSGD model file (napari_bsdenoise.train_bsgd)")
    r.add_argument("image", metavar="IMAGE", help="noisy TIFF, PNG or JPEG")
    r.add_argument("-o", "--output", metavar="OUT", required=True, help="output .tif or .png (never the input)")
    r.add_argument("--hot-pixels", choices=["auto", "keep", "remove"], default="auto", help=HOT_PIXELS_HELP)
    r.add_argument("--guide", metavar="GUIDE", help="blind-spot or student model file whose result is refined "
                   "(default: start from the noisy image; then use a larger --t-start)")
    r.add_argument("--axes", help="axes of the image (e.g. ZYX, YXC); default from the file or YX / YXC")
    r.add_argument("--sampling-steps", type=positive_int, metavar="N", help="DDIM steps per round (default 2)")
    r.add_argument("--guidance", type=float, metavar="W",
                   help="guidance weight: 0 conventional branch only, 1 blind-spot branch only (default 0.75)")
    r.add_argument("--rounds", type=positive_int, metavar="R", help="rounds averaged (default 2)")
    r.add_argument("--t-start", type=positive_float, metavar="T", help="start time in (0, 1] (default 0.3)")
    r.add_argument("--replace", type=float, metavar="P",
                   help="fraction of values re-injected from the noisy image per round (default 0.16)")
    r.add_argument("--anchor", type=float, metavar="SIGMA",
                   help="keep the guide's low frequencies below a Gaussian of this sigma in pixels, so the "
                   "refinement only adds local detail (default 1; 0: off)")
    r.add_argument("--blind-spot", type=int_arg, metavar="N", help="blind spot of the blind-spot branch "
                   "(default: the model's)")
    r.add_argument("--seed", type=int_arg, help="random seed (default 0)")
    r.add_argument("--device", help=DEVICE_HELP)
    r.add_argument("--tile-size", type=positive_int, metavar="N", help="tile side in pixels")
    r.add_argument("--dtype", choices=["float32", "input"],
                   help="float32 (default for TIFF) or the input's type, rounded and clipped (default for PNG)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=run)
