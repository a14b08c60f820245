"""``napari-bsdenoise distill``: distil a trained model into a fast non-blind student."""

from __future__ import annotations

from pathlib import Path

from ..io.images import check_input_file
from ..config import format_blind_spot
from .common import (
    AXES_HELP,
    DEVICE_HELP,
    HOT_PIXELS_HELP,
    EXIT_INTERRUPTED,
    add_output_and_budget,
    blind_spot_list,
    check_output,
    int_arg,
    model_output_path,
    note,
    read_input,
    run_trainer,
    training_summary,
)


def run(args) -> int:
    from ..api import load_model, make_distiller

    teacher_path = check_input_file(args.teacher, "teacher model")
    out = check_output(model_output_path(args.output), Path(args.image))
    teacher = load_model(teacher_path)
    img = read_input(args.image, args.axes)
    kwargs = {k: v for k, v in {
        "steps": args.steps, "seconds": args.seconds, "student": args.student, "mode": args.mode,
        "teacher_blind_spots": args.teacher_blind_spots, "seed": args.seed, "device": args.device,
        "precision": args.precision,
    }.items() if v is not None}
    distiller = make_distiller(img.data, teacher, axes=img.axes, warm_start=not args.no_warm_start,
                               precompute=bool(args.whole_image_targets),
                               fusion=not args.no_fused_targets and "auto", hot_pixels=args.hot_pixels,
                               **kwargs)
    if not args.quiet:
        note(f"distilling {teacher_path.name} on {img.path.name} {img.data.shape} (axes {img.axes}): "
             f"teachers at blind spots {', '.join(map(format_blind_spot, distiller.blind_spots))}, "
             f"{distiller.model.n_parameters / 1e6:.2f} M-parameter student")
    path, interrupted = run_trainer(distiller, out, "distill", args.quiet)
    if interrupted:
        return EXIT_INTERRUPTED
    print(f"saved {path} (non-blind student, {training_summary(distiller.model)})")
    return 0


def add_parser(sub) -> None:
    """Add the ``distill`` subcommand to the subparsers ``sub``."""
    s = sub.add_parser("distill", help="distil a trained model into a fast non-blind student",
                       description="Multi-teacher distillation (AT-BSN (D)): run the trained TEACHER at several "
                       "blind spots on IMAGE and train a plain UNet student to match them all.  The student "
                       "is several times faster and usually better; denoise with it like any model.")
    s.add_argument("teacher", metavar="TEACHER", help="model file from 'napari-bsdenoise train'")
    s.add_argument("image", metavar="IMAGE", help="noisy TIFF, PNG or JPEG (usually the teacher's training data)")
    add_output_and_budget(s, "student model", AXES_HELP)
    s.add_argument("--student", choices=["auto", "tiny", "small", "paper"],
                   help="student size (default auto: the teacher's, warm-started from its weights)")
    s.add_argument("--teacher-blind-spots", type=blind_spot_list, metavar="LIST",
                   help="comma-separated blind spots of the teachers, e.g. 0,1,3,5,7,9,11 (default: from "
                   "the teacher's training blind spot)")
    s.add_argument("--mode", choices=["multi", "mean"], help="multi: match every teacher (default); "
                   "mean: match their average")
    s.add_argument("--no-warm-start", action="store_true", help="do not copy the teacher's UNet weights")
    s.add_argument("--hot-pixels", choices=["auto", "keep", "remove"], default="auto",
                   help="the teacher's input: " + HOT_PIXELS_HELP)
    s.add_argument("--no-fused-targets", action="store_true",
                   help="learn the teacher's blind-spot outputs alone, not fused with the noisy input "
                   "(by default they are fused as 'denoise' fuses the teacher's output)")
    s.add_argument("--whole-image-targets", action="store_true",
                   help="run the teacher once over the whole image (8 transforms averaged) instead of on every "
                   "batch: ~3.6x faster per step, about equal quality at equal time")
    s.add_argument("--seed", type=int_arg, help="random seed (default 0)")
    s.add_argument("--device", help=DEVICE_HELP)
    s.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)
