"""``napari-bsdenoise train``: train a blind-spot denoiser on a noisy image and save it."""

from __future__ import annotations

from pathlib import Path

from ..io.images import check_input_file
from ..config import NETWORK_PRESETS, VOLUME_PRESETS, format_blind_spot
from .common import (
    AXES_HELP,
    DEVICE_HELP,
    EXIT_INTERRUPTED,
    add_output_and_budget,
    blind_spot_arg,
    check_output,
    int_arg,
    model_output_path,
    note,
    read_input,
    run_trainer,
    training_summary,
    spot_arg,
)


def run(args) -> int:
    from ..api import make_trainer

    out = check_output(model_output_path(args.output), Path(args.image))
    img = read_input(args.image, args.axes)
    kwargs = {k: v for k, v in {
        "steps": args.steps, "seconds": args.seconds, "inference_blind_spot": args.inference_blind_spot,
        "network": args.network, "loss": args.loss, "seed": args.seed, "device": args.device,
        "precision": args.precision, "channels": args.channels, "spatial_dims": args.spatial_dims,
    }.items() if v is not None}
    if args.guide is not None:
        from ..api import load_model

        kwargs["guide"] = load_model(check_input_file(args.guide, "guide model"))
    trainer = make_trainer(img.data, axes=img.axes, blind_spot=args.blind_spot, method=args.method, **kwargs)
    cfg = trainer.model.config
    if not args.quiet:
        noise = (cfg.noise or {}).get("summary")
        if noise and args.blind_spot == "auto":
            note(f"noise diagnostic: {noise}")
        reason = cfg.training.get("method_reason", "")
        if reason.startswith("auto") or "note:" in reason:
            note(f"method {cfg.network.method}: {reason}")
        note(f"training on {img.path.name} {img.data.shape} (axes {img.axes}), blind spot "
             f"{format_blind_spot(cfg.train_blind_spot)} (inference {format_blind_spot(cfg.inference_blind_spot)})")
    path, interrupted = run_trainer(trainer, out, "train", args.quiet)
    if interrupted:
        return EXIT_INTERRUPTED
    model = trainer.model
    print(f"saved {path} ({training_summary(model)}; blind spot trained "
          f"{format_blind_spot(model.train_blind_spot)}, inference {format_blind_spot(model.inference_blind_spot)})")
    return 0


def add_parser(sub) -> None:
    """Add the ``train`` subcommand to the subparsers ``sub``."""
    t = sub.add_parser("train", help="train a denoiser on a noisy image or stack",
                       description="Train a blind-spot denoiser on the noisy image itself and save it "
                       "as a .safetensors model file.")
    t.add_argument("image", metavar="IMAGE", help="noisy TIFF, PNG or JPEG")
    add_output_and_budget(t, "model", AXES_HELP)
    t.add_argument("--blind-spot", type=blind_spot_arg, default="auto", metavar="auto|N|YxX",
                   help="training blind spot: auto (from the noise diagnostic; default), an odd number of pixels, "
                        "or YxX odd sides (e.g. 1x9 for noise correlated along x)")
    t.add_argument("--inference-blind-spot", type=spot_arg, metavar="N|YxX",
                   help="default blind spot stored in the model for denoising (0 = non-blind, 1, 3 ...)")
    from ..api import trainable_methods

    t.add_argument("--method", choices=["auto", *trainable_methods()],  # from the method registry
                   help="atbsn (default): tunable blind spot, for correlated noise; dbsn: 1-pixel dilated blind "
                   "spot with a noise model, fused with the noisy pixel (pixel-independent noise); auto: "
                   "chosen by the noise diagnostic; bsgd: diffusion branches for 'refine' (experimental)")
    t.add_argument("--guide", metavar="MODEL", help="with --method bsgd: the blind-spot model to refine")
    t.add_argument("--network", choices=["auto", *NETWORK_PRESETS, *VOLUME_PRESETS],
                   help="network size (default auto: tiny on CPU, small on GPU); for --spatial-dims 3 the sizes "
                   "are the 2.5-D network (each plane blind, two planes on each side seen whole) and "
                   "*-full3d the full 3-D one")
    t.add_argument("--loss", choices=["auto", "l1", "l2", "nll"],
                   help="auto: L1 for RGB photos, L2 otherwise, NLL for D-BSN")
    t.add_argument("--seed", type=int_arg, help="random seed (default 0)")
    t.add_argument("--device", help=DEVICE_HELP)
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    t.add_argument("--spatial-dims", choices=["auto", 2, 3], type=lambda v: "auto" if v.lower() == "auto" else int_arg(v),
                   metavar="{auto,2,3}",
                   help="2: a 2-D network on each Y-X slice (default); 3: a 3-D network on Z-Y-X volumes "
                   "(blind spot as ZxYxX, e.g. 1x3x3); auto: 3 with at least 16 Z slices")
    t.add_argument("--channels", choices=["joint", "independent"],
                   help="joint: one network for all channels (RGB, default for colour); "
                   "independent: channels as separate images (fluorophores, default otherwise)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=run)
