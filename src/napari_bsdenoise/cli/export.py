"""``napari-bsdenoise export``: write a model as a BioImage Model Zoo package (docs/export.md)."""

from __future__ import annotations

from pathlib import Path

from ..io.images import check_input_file
from .common import AXES_HELP, CLIError, check_output, int_arg, note, read_input


def blind_spot_text(value: str):
    """``"3"`` -> 3, ``"1x9"`` -> (1, 9) (checked by the API)."""
    parts = value.lower().replace(" ", "").split("x")
    return int_arg(parts[0]) if len(parts) == 1 else tuple(int_arg(p) for p in parts)


def run(args) -> int:
    from ..api import export_bioimageio, load_model

    model_path = check_input_file(args.model, "model")
    out = Path(args.output)
    out = check_output(out if out.suffix.lower() == ".zip" else out.with_name(out.name + ".zip"), model_path)
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} exists; pass --overwrite to replace it")
    model = load_model(model_path)
    img = read_input(args.image, args.axes) if args.image else None
    if img is None and not args.quiet:
        note("no --image: the test image and cover are synthetic (pass a crop of your data for real ones)")
    path = export_bioimageio(model, out, blind_spot=args.blind_spot, format=args.format,
                             fusion=False if args.no_fusion else "auto", image=None if img is None else img.data,
                             axes=None if img is None else img.axes, name=args.name, authors=args.author,
                             license=args.license, overwrite=args.overwrite)
    print(f"saved {path} (BioImage Model Zoo package; check it with 'bioimageio test {path}')")
    return 0


def add_parser(sub) -> None:
    """Add the ``export`` subcommand to the subparsers ``sub``."""
    e = sub.add_parser("export", help="write a model as a BioImage Model Zoo package (.zip)",
                       description="Export MODEL at one blind spot to a BioImage Model Zoo (bioimage.io) package: "
                       "TorchScript and PyTorch weights (normalisation and noisy-input fusion included, hot-pixel "
                       "repair not), test tensors, a cover and a model card.  Check it with 'bioimageio test OUT.zip'.")
    e.add_argument("model", metavar="MODEL", help="model file from 'napari-bsdenoise train' or 'distill'")
    e.add_argument("-o", "--output", metavar="OUT.zip", required=True,
                   help="package to write (.zip is appended if missing)")
    e.add_argument("--blind-spot", type=blind_spot_text, metavar="S",
                   help="the fixed blind spot, an odd side or YxX sides (default: the model's inference blind "
                   "spot; students 0, D-BSN 0 or 1)")
    e.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript",
                   help="torchscript (default; with a PyTorch state dict) or onnx (adds ONNX weights; needs "
                   "the onnx package)")
    e.add_argument("--image", metavar="IMAGE", help="a noisy TIFF/PNG/JPEG like the training data: its centre "
                   "(first slice, at most 256x256) becomes the test image and the cover (default: synthetic)")
    e.add_argument("--axes", help=AXES_HELP)
    e.add_argument("--no-fusion", action="store_true",
                   help="export the network's output alone, without the noisy-input fusion denoise applies")
    e.add_argument("--name", help="the package's name (letters, digits, spaces, _+-())")
    e.add_argument("--author", action="append", metavar="NAME", help="an author of the package (repeatable)")
    e.add_argument("--license", default="BSD-3-Clause", help="SPDX licence of the weights (default BSD-3-Clause)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing OUT.zip")
    e.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")
    e.set_defaults(func=run)
