"""``napari-bsdenoise denoise``: denoise an image with a trained model, in memory or streamed chunk by
chunk (``.zarr``, dask schedulers, a dask.distributed cluster)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.images import TIFF_SUFFIXES, check_input_file, check_png, output_format
from ..config import format_blind_spot
from .common import (
    AXES_HELP,
    DEVICE_HELP,
    HOT_PIXELS_HELP,
    EXIT_INTERRUPTED,
    CLIError,
    Progress,
    check_output,
    compute_and_write,
    int_arg,
    note,
    positive_int,
    read_input,
    same_file,
    spot_arg,
)


def run(args) -> int:
    from ..api import denoise, find_hot_pixels, load_model, repairs_outliers

    model_path = check_input_file(args.model, "model")
    image_path = Path(args.image)
    streaming = (str(args.output).lower().rstrip("/").endswith(".zarr") or image_path.suffix.lower() == ".zarr"
                 or args.scheduler is not None or args.address is not None)
    if streaming:
        return _denoise_streaming(args, model_path, image_path)
    out = check_output(args.output, image_path, model_path)
    fmt = output_format(out)
    model = load_model(model_path)
    img = read_input(image_path, args.axes)
    dtype = args.dtype or ("input" if fmt == "png" else "float32")
    if fmt == "png":  # fail before the work, not after it
        check_png(out, img.data.dtype if dtype == "input" else np.float32, img.axes, img.data.shape)
    bar = Progress("denoise", enabled=not args.quiet)
    result = compute_and_write(
        lambda: denoise(img.data, model, axes=img.axes, blind_spot=args.blind_spot, device=args.device,
                        precision=args.precision, tile_size=args.tile_size, renormalize=args.renormalize,
                        fusion=not args.no_fusion and "auto", hot_pixels=args.hot_pixels,
                        callback=lambda e: bar.update(e.fraction, f"tile {e.step}/{e.total}")),
        bar, img, out, dtype)
    if result is None:
        return EXIT_INTERRUPTED
    if args.hot_pixels != "keep" and repairs_outliers(model):
        n_hot = int(find_hot_pixels(img.data, model, axes=img.axes).sum())
        if n_hot:
            note(f"repaired {n_hot} hot/dead pixel(s) before denoising (--hot-pixels keep leaves them)")
    s = model.inference_blind_spot if args.blind_spot is None else args.blind_spot
    print(f"wrote {out} ({result.dtype}, shape {result.shape}, axes {img.axes}, blind spot {format_blind_spot(s)})")
    return 0


def _denoise_streaming(args, model_path: Path, image_path: Path) -> int:
    """Chunk-by-chunk denoising of a large TIFF/zarr into a .zarr or TIFF (resumable for .zarr)."""
    from ..api import denoise_iter, load_model, run_events

    if not image_path.exists():
        raise CLIError(f"image file not found: {image_path}")
    out = Path(args.output)
    if same_file(out, image_path):
        raise CLIError(f"refusing to overwrite the input file {image_path}; choose another output name")
    name = out.name.lower().rstrip("/")
    if not (name.endswith(".zarr") or name.endswith(TIFF_SUFFIXES)):
        raise CLIError(f"{out}: streaming output must be .zarr, .tif or .ome.tif")
    model = load_model(model_path)
    client = cluster = None
    if args.address:
        from distributed import Client

        client = Client(args.address)
    scheduler = args.scheduler
    if scheduler == "distributed" and client is None:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers or 2, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    bar = Progress("denoise", enabled=not args.quiet)
    gen = denoise_iter(str(image_path), model, out=out, axes=args.axes, blind_spot=args.blind_spot,
                       device=args.device, precision=args.precision, tile_size=args.tile_size,
                       renormalize=args.renormalize, dtype=args.dtype or "float32", overwrite=args.overwrite,
                       scheduler=None if scheduler == "distributed" else scheduler, client=client,
                       n_workers=args.workers, memory=args.memory, fusion=not args.no_fusion and "auto",
                       hot_pixels=args.hot_pixels)
    def show(event):
        if event.message and event.kind in ("start", "chunk") and event.message.startswith(("resuming", "out of")):
            note(event.message)
        bar.update(event.fraction, f"chunk {event.step}/{event.total}")

    try:
        path = run_events(gen, show)
    except KeyboardInterrupt:
        gen.close()
        bar.close()
        resumable = name.endswith(".zarr")
        note("interrupted: " + ("run the same command again to resume" if resumable else "nothing was written"))
        return EXIT_INTERRUPTED
    finally:
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(f"wrote {path}")
    return 0


def add_parser(sub) -> None:
    """Add the ``denoise`` subcommand to the subparsers ``sub``."""
    d = sub.add_parser("denoise", help="denoise an image with a trained model",
                       description="Denoise IMAGE with MODEL and write the result (float32 TIFF by default).")
    d.add_argument("model", metavar="MODEL", help="model file from 'napari-bsdenoise train'")
    d.add_argument("image", metavar="IMAGE", help="noisy TIFF, PNG or JPEG")
    d.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="output .tif, .png or .zarr (never the input; .zarr streams chunk by chunk and resumes)")
    d.add_argument("--axes", help=AXES_HELP)
    d.add_argument("--blind-spot", type=spot_arg, metavar="N|YxX",
                   help="inference blind spot: 0 (non-blind, sharpest; for D-BSN the fusion with the noisy "
                   "pixel), 1, 3 ... (default: the model's)")
    d.add_argument("--device", help=DEVICE_HELP)
    d.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    d.add_argument("--tile-size", type=positive_int, metavar="N",
                   help="tile side in pixels for inference (smaller uses less memory)")
    d.add_argument("--dtype", choices=["float32", "input"],
                   help="float32 (default for TIFF) or the input's type, rounded and clipped (default for PNG)")
    d.add_argument("--renormalize", action="store_true",
                   help="normalise with this image's statistics (data brighter/darker than the training data)")
    d.add_argument("--no-fusion", action="store_true",
                   help="AT-BSN: the blind-spot output alone, without putting the noisy input back where the "
                   "output misses detail (by default they are fused for correlated noise, against the measured noise level)")
    d.add_argument("--hot-pixels", choices=["auto", "keep", "remove"], default="auto", help=HOT_PIXELS_HELP)
    d.add_argument("--scheduler", choices=["threads", "sync", "distributed"],
                   help="stream chunk by chunk with this dask scheduler (implied by a .zarr input or output); "
                   "'distributed' starts a local cluster of --workers processes")
    d.add_argument("--address", metavar="ADDR",
                   help="dask.distributed scheduler address (e.g. tcp://head:8786) to run on a cluster")
    d.add_argument("--workers", type=positive_int, metavar="N", help="parallel chunks (threads or local processes)")
    d.add_argument("--memory", metavar="BYTES", help="activation memory per running chunk, e.g. 2GB "
                   "(default: from the available RAM); sets the tile size")
    d.add_argument("--overwrite", action="store_true", help="replace an existing .zarr output instead of resuming")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=run)
