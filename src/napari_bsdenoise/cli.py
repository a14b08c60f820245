"""The ``napari-bsdenoise`` command: train, denoise, inspect models and diagnose noise from a shell.

Examples::

    napari-bsdenoise noise cells.tif
    napari-bsdenoise train cells.tif -o cells.safetensors --seconds 300
    napari-bsdenoise denoise cells.safetensors cells.tif -o cells_denoised.tif
    napari-bsdenoise info cells.safetensors

Reads TIFF (axes from ImageJ/OME metadata when unambiguous), PNG and JPEG;
writes TIFF (float32 by default, pixel size copied from the input) or 8/16-bit
PNG.  User errors print one line, ``napari-bsdenoise: error: <message>``, and
exit with code 2.  Input files are only ever read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BSDenoiseError, InputError

PROG = "napari-bsdenoise"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg")
# tifffile series axes -> ours; "S" (RGB samples) is a channel axis.  Anything else
# ("Q" unknown, "I" generic sequence, "R" tiles, "E" lambda, "H" histogram ...) is ambiguous.
_TIFF_AXES = {"T": "T", "Z": "Z", "C": "C", "Y": "Y", "X": "X", "S": "C"}
_IMAGEJ_META_KEYS = ("spacing", "unit", "finterval", "fps", "tunit", "xorigin", "yorigin", "zorigin")


class CLIError(InputError):
    """A user error found by the command line itself (missing file, unreadable image ...)."""


# -- images on disk ----------------------------------------------------------------------------
@dataclass
class ImageFile:
    """An image read from disk with what is needed to write a result like it."""

    path: Path
    data: np.ndarray
    axes: str | None  # None: let the API infer (2-D / RGB) or ask for --axes
    format: str  # "tiff", "png" or "jpeg"
    rgb: bool = False  # the C axis holds colour samples (TIFF "S" axis, PNG/JPEG colour)
    resolution: tuple | None = None  # TIFF (XResolution, YResolution)
    resolutionunit: int | None = None
    imagej: dict = field(default_factory=dict)  # ImageJ spacing/unit ... to copy
    ome: dict = field(default_factory=dict)  # OME PhysicalSize* to copy
    notes: list[str] = field(default_factory=list)
    file_axes: str = ""  # the axes the file itself declares (tifffile letters; "Q" = unknown)


def _sniff_format(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    suffix = path.suffix.lower()
    kind = "TIFF" if suffix in TIFF_SUFFIXES else "PNG" if suffix in PNG_SUFFIXES else \
        "JPEG" if suffix in JPEG_SUFFIXES else None
    if kind:
        raise CLIError(f"{path} has a {suffix} name but is not a {kind} file (corrupted or mislabelled?)")
    raise CLIError(f"{path}: unsupported file type; napari-bsdenoise reads TIFF, PNG and JPEG images")


def _check_input_file(path, what: str = "image") -> Path:
    path = Path(path)
    if not path.exists():
        raise CLIError(f"{what} file not found: {path}")
    if path.is_dir():
        raise CLIError(f"{path} is a folder, not an {what} file")
    if not os.access(path, os.R_OK):
        raise CLIError(f"{path} cannot be read (permission denied)")
    return path


def _tiff_axes(series_axes: str) -> tuple[str | None, bool]:
    """Map tifffile's series axes to ours: ``(axes or None when ambiguous, rgb)``."""
    unknown = [a for a in series_axes if a not in _TIFF_AXES]
    mapped = "".join(_TIFF_AXES.get(a, "?") for a in series_axes)
    if unknown or len(set(mapped)) != len(mapped):
        return None, False
    return mapped, "S" in series_axes


def _ome_physical_sizes(tif) -> dict:
    import tifffile

    try:
        meta = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
        if isinstance(meta, list):
            meta = meta[0]
        pixels = meta["Pixels"]
    except Exception:  # malformed OME-XML: keep the pixels, drop the metadata
        return {}
    keys = [f"PhysicalSize{a}{u}" for a in "XYZ" for u in ("", "Unit")] + ["TimeIncrement", "TimeIncrementUnit"]
    return {k: pixels[k] for k in keys if k in pixels}


def _read_tiff(path: Path) -> ImageFile:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise CLIError(f"{path} contains no image")
        series = tif.series[0]
        data = series.asarray()
        axes, rgb = _tiff_axes(series.axes)
        notes = []
        if len(tif.series) > 1:
            notes.append(f"{path.name} holds {len(tif.series)} image series; using the first {series.shape}")
        page = tif.pages[0]
        tags = page.tags
        resolution = resolutionunit = None
        if "XResolution" in tags and "YResolution" in tags:
            resolution = (tags["XResolution"].value, tags["YResolution"].value)
            resolutionunit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else None
        imagej = {}
        if tif.is_imagej and tif.imagej_metadata:
            imagej = {k: v for k, v in tif.imagej_metadata.items() if k in _IMAGEJ_META_KEYS}
        ome = _ome_physical_sizes(tif) if tif.is_ome else {}
    return ImageFile(path, data, axes, "tiff", rgb, resolution, resolutionunit, imagej, ome, notes,
                     file_axes=series.axes)


def _read_pillow(path: Path, fmt: str) -> ImageFile:
    import imageio.v3 as iio

    data = np.asarray(iio.imread(path))
    rgb = data.ndim == 3 and data.shape[-1] in (2, 3, 4)
    return ImageFile(path, data, None, fmt, rgb)


def _drop_constant_alpha(img: ImageFile) -> None:
    """Colour images with a constant alpha (opaque PNGs): the alpha channel has no noise to learn."""
    if not img.rgb:
        return
    axes = img.axes or ("YXC" if img.data.ndim == 3 else None)
    if axes is None or not axes.endswith("C") or img.data.shape[-1] not in (2, 4):
        return
    alpha = img.data[..., -1]
    if alpha.min() == alpha.max():
        img.data = img.data[..., :-1]
        if img.data.shape[-1] == 1:
            img.data = img.data[..., 0]
            img.axes, img.rgb = axes[:-1], False
        else:
            img.axes = axes
        img.notes.append(f"{img.path.name}: ignoring its constant alpha channel")


def read_image(path, axes: str | None = None) -> ImageFile:
    """Read a TIFF, PNG or JPEG file; ``axes`` (e.g. ``"ZYX"``) overrides the file's metadata."""
    from .api import check_image
    from .axes import validate_axes

    path = _check_input_file(path)
    fmt = _sniff_format(path)
    try:
        img = _read_tiff(path) if fmt == "tiff" else _read_pillow(path, fmt)
    except CLIError:
        raise
    except MemoryError:
        raise CLIError(f"{path} is too large to load into memory") from None
    except Exception as exc:  # any reader failure is an unreadable file, not a bug of ours
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CLIError(f"cannot read {path} as a {fmt.upper()} image: {first}") from None
    if axes is not None:
        img.axes = validate_axes(axes, img.data.shape)
        img.rgb = img.rgb and img.axes.endswith("C")
    else:
        _drop_constant_alpha(img)
    check_image(img.data, name=str(path))
    if img.axes is None:
        try:
            img.axes = validate_axes(None, img.data.shape, rgb=img.rgb if img.format != "tiff" else None)
        except InputError:
            ndim = img.data.ndim
            example = {3: "ZYX", 4: "TZYX"}.get(ndim, "TZCYX")
            declared = f" (the file declares {img.file_axes!r}, where Q/I mean unknown)" if img.file_axes else ""
            raise CLIError(f"cannot tell the axes of {path}, a {ndim}-D image of shape {img.data.shape}"
                           f"{declared}; pass --axes, e.g. --axes {example} (letters among T, Z, C, Y, X)") from None
    return img


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _check_output(out, *inputs: Path) -> Path:
    out = Path(out)
    for src in inputs:
        if _same_file(out, src):
            raise CLIError(f"refusing to overwrite the input file {src}; choose another output name")
    if out.is_dir():
        raise CLIError(f"{out} is a folder; give an output file name")
    parent = out.parent if str(out.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise CLIError(f"cannot write {out}: {existing} is not a writable folder")
    return out


def _output_format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in PNG_SUFFIXES:
        return "png"
    if suffix in JPEG_SUFFIXES:
        raise CLIError(f"{out}: JPEG output would add compression artefacts to the denoised image; "
                       "write .tif (float32) or .png (8/16-bit)")
    raise CLIError(f"{out}: unknown output format {suffix or '(no extension)'!r}; use .tif or .png")


def convert_dtype(result: np.ndarray, dtype) -> np.ndarray:
    """``result`` in ``dtype``: integers are rounded and clipped to the type's range (no wrap-around)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(result), info.min, info.max).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        info = np.finfo(dtype)
        return np.clip(result, info.min, info.max).astype(dtype)
    raise CLIError(f"cannot convert the result to {dtype}")


def _tiff_writer_kwargs(img: ImageFile, axes: str, data: np.ndarray) -> list[dict]:
    """tifffile keyword sets to try in order: the input's own flavour first, then a plain TIFF."""
    rgb = img.rgb and axes.endswith("C") and data.shape[-1] in (3, 4)
    file_axes = axes[:-1] + "S" if rgb else axes
    base: dict = {"photometric": "rgb" if rgb else "minisblack"}
    if img.resolution is not None:
        base["resolution"] = img.resolution
        if img.resolutionunit is not None:
            base["resolutionunit"] = img.resolutionunit
    attempts = []
    if img.imagej:
        attempts.append({**base, "imagej": True, "metadata": {"axes": file_axes, **img.imagej}})
    if img.ome:
        attempts.append({**base, "ome": True, "metadata": {"axes": file_axes, **img.ome}})
    attempts.append({**base, "metadata": {"axes": file_axes}})
    return attempts


def _check_png(out: Path, dtype, axes: str, shape: tuple) -> None:
    if np.dtype(dtype) not in (np.uint8, np.uint16):
        raise CLIError(f"{out}: PNG holds 8- or 16-bit integers, the result would be {np.dtype(dtype)}; "
                       "write a .tif, or pass --dtype input for an 8/16-bit input")
    if not (axes == "YX" or (axes == "YXC" and shape[-1] in (3, 4))):
        raise CLIError(f"{out}: PNG holds one 2-D grey or RGB(A) image, the result has axes {axes} "
                       f"and shape {tuple(shape)}; write a .tif")


def write_image(out: Path, data: np.ndarray, img: ImageFile, axes: str) -> None:
    """Write ``data`` (with ``axes``) to ``out`` atomically, as TIFF or PNG by its extension."""
    fmt = _output_format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        if fmt == "png":
            import imageio.v3 as iio

            _check_png(out, data.dtype, axes, data.shape)
            iio.imwrite(tmp, data, extension=".png")
        else:
            import tifffile

            error = None
            for kwargs in _tiff_writer_kwargs(img, axes, data):
                try:
                    tifffile.imwrite(tmp, data, **kwargs)
                    break
                except (ValueError, TypeError) as exc:  # e.g. ImageJ cannot hold float RGB: try the next
                    error = exc
            else:
                raise CLIError(f"cannot write {out} as TIFF: {error}")
        os.replace(tmp, out)
    except OSError as exc:
        raise CLIError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


# -- progress ----------------------------------------------------------------------------------
class Progress:
    """A progress bar on stderr: tqdm when installed, else a plain text bar (no hard dependency)."""

    def __init__(self, desc: str, *, enabled: bool = True, stream=None):
        self.desc = desc
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._bar = None
        self._opened = False
        self._last = (-1.0, 0.0)  # (fraction, time) of the last plain-text update

    def _open(self) -> None:
        """Start tqdm at the first update (so that an early error prints no empty bar)."""
        self._opened = True
        try:
            from tqdm import tqdm
        except ImportError:
            return
        tty = getattr(self.stream, "isatty", lambda: False)()
        self._bar = tqdm(total=1000, desc=self.desc, file=self.stream, leave=True, dynamic_ncols=True,
                         mininterval=0.1 if tty else 5.0,  # log files get a line every few seconds
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")

    def update(self, fraction: float, info: str = "") -> None:
        if not self.enabled:
            return
        if not self._opened:
            self._open()
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self._bar is not None:
            if info:
                self._bar.set_postfix_str(info, refresh=False)
            self._bar.update(int(fraction * 1000) - self._bar.n)
            return
        now = time.monotonic()
        last_f, last_t = self._last
        tty = getattr(self.stream, "isatty", lambda: False)()
        if tty and (now - last_t > 0.2 or fraction >= 1.0):
            width = 30
            filled = int(round(width * fraction))
            self.stream.write(f"\r{self.desc}: {fraction:4.0%} [{'#' * filled}{'.' * (width - filled)}] {info}\x1b[K")
            self.stream.flush()
            self._last = (fraction, now)
        elif not tty and (fraction - last_f >= 0.1 or (fraction >= 1.0 > last_f)):
            self.stream.write(f"{self.desc}: {fraction:4.0%} {info}\n")
            self.stream.flush()
            self._last = (fraction, now)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and getattr(self.stream, "isatty", lambda: False)() and self._last[0] >= 0:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False


def _note(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr)


# -- commands ----------------------------------------------------------------------------------
def _model_output_path(out: str) -> Path:
    path = Path(out)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def cmd_train(args) -> int:
    from .api import make_trainer

    out = _check_output(_model_output_path(args.output), Path(args.image))
    img = read_image(args.image, args.axes)
    for n in img.notes:
        _note(n)
    kwargs = {k: v for k, v in {
        "steps": args.steps, "seconds": args.seconds, "inference_blind_spot": args.inference_blind_spot,
        "network": args.network, "loss": args.loss, "seed": args.seed, "device": args.device,
        "precision": args.precision, "channels": args.channels,
    }.items() if v is not None}
    if args.guide is not None:
        from .api import load_model

        kwargs["guide"] = load_model(_check_input_file(args.guide, "guide model"))
    trainer = make_trainer(img.data, axes=img.axes, blind_spot=args.blind_spot, method=args.method, **kwargs)
    cfg = trainer.model.config
    if not args.quiet:
        noise = (cfg.noise or {}).get("summary")
        if noise and args.blind_spot == "auto":
            _note(f"noise diagnostic: {noise}")
        reason = cfg.training.get("method_reason", "")
        if reason.startswith("auto") or "note:" in reason:
            _note(f"method {cfg.network.method}: {reason}")
        _note(f"training on {img.path.name} {img.data.shape} (axes {img.axes}), blind spot {cfg.train_blind_spot} "
              f"(inference {cfg.inference_blind_spot})")
    path, interrupted = _run_trainer(trainer, out, "train", args.quiet)
    if interrupted:
        return EXIT_INTERRUPTED
    model = trainer.model
    print(f"saved {path} ({_training_summary(model)}; blind spot trained {model.train_blind_spot}, "
          f"inference {model.inference_blind_spot})")
    return 0


def _run_trainer(trainer, out: Path, label: str, quiet: bool) -> tuple[Path, bool]:
    """Drive a trainer/distiller with a progress bar; Ctrl-C keeps and saves the best model so far."""
    bar = Progress(label, enabled=not quiet)
    interrupted = False
    try:
        for event in trainer:
            info = f"step {event.step}" + (f"/{event.total}" if event.total else "")
            if event.best_val_loss is not None and np.isfinite(event.best_val_loss):
                info += f", best val {event.best_val_loss:.4g}"
            bar.update(event.fraction, info)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    path = trainer.model.save(out)
    if interrupted:
        _note(f"interrupted: saved the best model so far to {path}")
    return path, interrupted


def _training_summary(model) -> str:
    t = model.config.training
    return (f"{t.get('steps', '?')} steps in {t.get('seconds', 0):.0f} s, best validation loss "
            f"{t.get('best_val_loss', float('nan')):.5g} at step {t.get('best_step', '?')}")


def cmd_distill(args) -> int:
    from .api import load_model, make_distiller

    teacher_path = _check_input_file(args.teacher, "teacher model")
    out = _check_output(_model_output_path(args.output), Path(args.image))
    teacher = load_model(teacher_path)
    img = read_image(args.image, args.axes)
    for n in img.notes:
        _note(n)
    kwargs = {k: v for k, v in {
        "steps": args.steps, "seconds": args.seconds, "student": args.student, "mode": args.mode,
        "teacher_blind_spots": args.teacher_blind_spots, "seed": args.seed, "device": args.device,
        "precision": args.precision,
    }.items() if v is not None}
    distiller = make_distiller(img.data, teacher, axes=img.axes, warm_start=not args.no_warm_start,
                               precompute=bool(args.whole_image_targets),
                               fusion=not args.no_fused_targets and "auto", **kwargs)
    if not args.quiet:
        _note(f"distilling {teacher_path.name} on {img.path.name} {img.data.shape} (axes {img.axes}): "
              f"teachers at blind spots {', '.join(map(str, distiller.blind_spots))}, "
              f"{distiller.model.n_parameters / 1e6:.2f} M-parameter student")
    path, interrupted = _run_trainer(distiller, out, "distill", args.quiet)
    if interrupted:
        return EXIT_INTERRUPTED
    print(f"saved {path} (non-blind student, {_training_summary(distiller.model)})")
    return 0


def _compute_and_write(compute, bar: Progress, img, out: Path, dtype: str):
    """Run ``compute()`` under ``bar``, convert to ``dtype`` and write ``out``; None after Ctrl-C
    (nothing is written)."""
    try:
        result = compute()
    except KeyboardInterrupt:
        bar.close()  # before the note
        _note("interrupted: nothing was written")
        return None
    finally:
        bar.close()
    if dtype == "input":
        result = convert_dtype(result, img.data.dtype)
    write_image(out, result, img, img.axes)
    return result


def cmd_denoise(args) -> int:
    from .api import denoise, load_model

    model_path = _check_input_file(args.model, "model")
    image_path = Path(args.image)
    streaming = (str(args.output).lower().rstrip("/").endswith(".zarr") or image_path.suffix.lower() == ".zarr"
                 or args.scheduler is not None or args.address is not None)
    if streaming:
        return _denoise_streaming(args, model_path, image_path)
    out = _check_output(args.output, image_path, model_path)
    fmt = _output_format(out)
    model = load_model(model_path)
    img = read_image(image_path, args.axes)
    for n in img.notes:
        _note(n)
    dtype = args.dtype or ("input" if fmt == "png" else "float32")
    if fmt == "png":  # fail before the work, not after it
        _check_png(out, img.data.dtype if dtype == "input" else np.float32, img.axes, img.data.shape)
    bar = Progress("denoise", enabled=not args.quiet)
    result = _compute_and_write(
        lambda: denoise(img.data, model, axes=img.axes, blind_spot=args.blind_spot, device=args.device,
                        precision=args.precision, tile_size=args.tile_size, renormalize=args.renormalize,
                        fusion=not args.no_fusion and "auto",
                        callback=lambda e: bar.update(e.fraction, f"tile {e.step}/{e.total}")),
        bar, img, out, dtype)
    if result is None:
        return EXIT_INTERRUPTED
    s = model.inference_blind_spot if args.blind_spot is None else args.blind_spot
    print(f"wrote {out} ({result.dtype}, shape {result.shape}, axes {img.axes}, blind spot {s})")
    return 0


def _denoise_streaming(args, model_path: Path, image_path: Path) -> int:
    """Chunk-by-chunk denoising of a large TIFF/zarr into a .zarr or TIFF (resumable for .zarr)."""
    from .api import denoise_iter, load_model
    from .engine.progress import run_events

    if not image_path.exists():
        raise CLIError(f"image file not found: {image_path}")
    out = Path(args.output)
    if _same_file(out, image_path):
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
                       n_workers=args.workers, memory=args.memory, fusion=not args.no_fusion and "auto")
    def show(event):
        if event.message and event.kind in ("start", "chunk") and event.message.startswith(("resuming", "out of")):
            _note(event.message)
        bar.update(event.fraction, f"chunk {event.step}/{event.total}")

    try:
        path = run_events(gen, show)
    except KeyboardInterrupt:
        gen.close()
        bar.close()
        resumable = name.endswith(".zarr")
        _note("interrupted: " + ("run the same command again to resume" if resumable else "nothing was written"))
        return EXIT_INTERRUPTED
    finally:
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(f"wrote {path}")
    return 0


def cmd_info(args) -> int:
    from .api import load_model

    model = load_model(_check_input_file(args.model, "model"))
    if args.json:
        print(json.dumps(model.config.to_dict(), indent=2))
    else:
        print(model.summary())
    return 0


def _format_acf(acf: np.ndarray) -> str:
    lag = (acf.shape[0] - 1) // 2
    header = "  dy\\dx " + " ".join(f"{dx:>6d}" for dx in range(-lag, lag + 1))
    rows = [f"  {dy:>5d} " + " ".join(f"{v:>6.2f}" for v in row) for dy, row in zip(range(-lag, lag + 1), acf)]
    return "\n".join([header, *rows])


def cmd_noise(args) -> int:
    from .api import estimate_noise_correlation

    img = read_image(args.image, args.axes)
    for n in img.notes:
        _note(n)
    result = estimate_noise_correlation(img.data, axes=img.axes)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"{img.path.name} {img.data.shape} {img.data.dtype}, axes {img.axes}")
    print(result.summary())
    from .api import recommended_method

    method = recommended_method(result)
    print(f"method for --method auto: {method} ("
          + ("pixel-independent noise: D-BSN, 1-pixel blind spot with noise model and fusion)" if method == "dbsn"
             else "correlated noise: AT-BSN with a larger training blind spot)"))
    print(f"noise autocorrelation (from {result.n_blocks} flat 16x16 blocks; 1 at the centre, ~0 elsewhere "
          "for pixel-independent noise):")
    print(_format_acf(np.asarray(result.autocorrelation)))
    axes = f" --axes {img.axes}" if args.axes else ""
    print(f"suggested: napari-bsdenoise train {img.path.name}{axes} -o model.safetensors --blind-spot "
          f"{result.train_blind_spot} --inference-blind-spot {result.inference_blind_spot}")
    return 0


# -- argument parsing --------------------------------------------------------------------------
class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage + exit
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _blind_spot_arg(value: str):
    if value.lower() == "auto":
        return "auto"
    return _int_arg(value)


def _blind_spot_list(value: str) -> list[int]:
    return [_int_arg(v) for v in value.replace(" ", "").split(",") if v]


def _int_arg(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None


def _positive_int(value: str) -> int:
    v = _int_arg(value)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return v


def _positive_float(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return v


def _add_output_and_budget(p, what: str, axes_help: str) -> None:
    p.add_argument("-o", "--output", metavar="MODEL", required=True,
                   help=f"{what} file to write (.safetensors is appended if missing)")
    p.add_argument("--axes", help=axes_help)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, metavar="N", help="optimisation steps (default 2000)")
    budget.add_argument("--seconds", type=_positive_float, metavar="S", help="time budget in seconds")


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    p = _Parser(prog=PROG, description="Self-supervised blind-spot denoising (AT-BSN) of microscopy and "
                "camera images: train on the noisy data itself, no clean reference needed.",
                epilog=f"Run '{PROG} COMMAND --help' for the options of a command.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    axes_help = ("axes of the image, letters among T, Z, C, Y, X (e.g. ZYX, TCYX, YXC for RGB); default: "
                 "from the file's ImageJ/OME metadata, or YX / YXC for 2-D and colour images")
    dev_help = "cpu, cuda, cuda:1, mps (default: CUDA, then Apple MPS, then CPU)"

    t = sub.add_parser("train", help="train a denoiser on a noisy image or stack",
                       description="Train a blind-spot denoiser on the noisy image itself and save it "
                       "as a .safetensors model file.")
    t.add_argument("image", metavar="IMAGE", help="noisy TIFF, PNG or JPEG")
    _add_output_and_budget(t, "model", axes_help)
    t.add_argument("--blind-spot", type=_blind_spot_arg, default="auto", metavar="auto|N",
                   help="training blind spot: auto (from the noise diagnostic; default) or an odd number of pixels")
    t.add_argument("--inference-blind-spot", type=_int_arg, metavar="N",
                   help="default blind spot stored in the model for denoising (0 = non-blind, 1, 3 ...)")
    t.add_argument("--method", choices=["auto", "atbsn", "dbsn", "bsgd"],
                   help="atbsn (default): tunable blind spot, for correlated noise; dbsn: 1-pixel dilated blind "
                   "spot with a noise model, fused with the noisy pixel (pixel-independent noise); auto: "
                   "chosen by the noise diagnostic; bsgd: diffusion branches for 'refine' (experimental)")
    t.add_argument("--guide", metavar="MODEL", help="with --method bsgd: the blind-spot model to refine")
    t.add_argument("--network", choices=["auto", "tiny", "small", "paper"], help="network size (default auto: tiny on CPU, small on GPU)")
    t.add_argument("--loss", choices=["auto", "l1", "l2", "nll"],
                   help="auto: L1 for RGB photos, L2 otherwise, NLL for D-BSN")
    t.add_argument("--seed", type=_int_arg, help="random seed (default 0)")
    t.add_argument("--device", help=dev_help)
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    t.add_argument("--channels", choices=["joint", "independent"],
                   help="joint: one network for all channels (RGB, default for colour); "
                   "independent: channels as separate images (fluorophores, default otherwise)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("distill", help="distil a trained model into a fast non-blind student",
                       description="Multi-teacher distillation (AT-BSN (D)): run the trained TEACHER at several "
                       "blind spots on IMAGE and train a plain UNet student to match them all.  The student "
                       "is several times faster and usually better; denoise with it like any model.")
    s.add_argument("teacher", metavar="TEACHER", help="model file from 'napari-bsdenoise train'")
    s.add_argument("image", metavar="IMAGE", help="noisy TIFF, PNG or JPEG (usually the teacher's training data)")
    _add_output_and_budget(s, "student model", axes_help)
    s.add_argument("--student", choices=["auto", "tiny", "small", "paper"],
                   help="student size (default auto: the teacher's, warm-started from its weights)")
    s.add_argument("--teacher-blind-spots", type=_blind_spot_list, metavar="LIST",
                   help="comma-separated blind spots of the teachers, e.g. 0,1,3,5,7,9,11 (default: from "
                   "the teacher's training blind spot)")
    s.add_argument("--mode", choices=["multi", "mean"], help="multi: match every teacher (default); "
                   "mean: match their average")
    s.add_argument("--no-warm-start", action="store_true", help="do not copy the teacher's UNet weights")
    s.add_argument("--no-fused-targets", action="store_true",
                   help="learn the teacher's blind-spot outputs alone, not fused with the noisy input "
                   "(by default they are fused as 'denoise' fuses the teacher's output)")
    s.add_argument("--whole-image-targets", action="store_true",
                   help="run the teacher once over the whole image (8 transforms averaged) instead of on every "
                   "batch: ~3.6x faster per step, about equal quality at equal time")
    s.add_argument("--seed", type=_int_arg, help="random seed (default 0)")
    s.add_argument("--device", help=dev_help)
    s.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_distill)

    d = sub.add_parser("denoise", help="denoise an image with a trained model",
                       description="Denoise IMAGE with MODEL and write the result (float32 TIFF by default).")
    d.add_argument("model", metavar="MODEL", help="model file from 'napari-bsdenoise train'")
    d.add_argument("image", metavar="IMAGE", help="noisy TIFF, PNG or JPEG")
    d.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="output .tif, .png or .zarr (never the input; .zarr streams chunk by chunk and resumes)")
    d.add_argument("--axes", help=axes_help)
    d.add_argument("--blind-spot", type=_int_arg, metavar="N",
                   help="inference blind spot: 0 (non-blind, sharpest; for D-BSN the fusion with the noisy "
                   "pixel), 1, 3 ... (default: the model's)")
    d.add_argument("--device", help=dev_help)
    d.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    d.add_argument("--tile-size", type=_positive_int, metavar="N",
                   help="tile side in pixels for inference (smaller uses less memory)")
    d.add_argument("--dtype", choices=["float32", "input"],
                   help="float32 (default for TIFF) or the input's type, rounded and clipped (default for PNG)")
    d.add_argument("--renormalize", action="store_true",
                   help="normalise with this image's statistics (data brighter/darker than the training data)")
    d.add_argument("--no-fusion", action="store_true",
                   help="AT-BSN: the blind-spot output alone, without putting the noisy input back where the "
                   "output misses detail (by default they are fused for correlated noise, against the measured noise level)")
    d.add_argument("--scheduler", choices=["threads", "sync", "distributed"],
                   help="stream chunk by chunk with this dask scheduler (implied by a .zarr input or output); "
                   "'distributed' starts a local cluster of --workers processes")
    d.add_argument("--address", metavar="ADDR",
                   help="dask.distributed scheduler address (e.g. tcp://head:8786) to run on a cluster")
    d.add_argument("--workers", type=_positive_int, metavar="N", help="parallel chunks (threads or local processes)")
    d.add_argument("--memory", metavar="BYTES", help="activation memory per running chunk, e.g. 2GB "
                   "(default: from the available RAM); sets the tile size")
    d.add_argument("--overwrite", action="store_true", help="replace an existing .zarr output instead of resuming")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_denoise)

    i = sub.add_parser("info", help="describe a model file", description="Print a model file's summary.")
    i.add_argument("model", metavar="MODEL")
    i.add_argument("--json", action="store_true", help="print the model's full JSON config instead")
    i.set_defaults(func=cmd_info)

    from .bsgd_cli import add_refine_parser

    add_refine_parser(sub)  # experimental diffusion refinement (docs/bsgd.md)

    n = sub.add_parser("noise", help="diagnose the spatial correlation of the noise",
                       description="Estimate the noise autocorrelation of IMAGE (no clean reference needed) "
                       "and recommend training/inference blind spots.")
    n.add_argument("image", metavar="IMAGE")
    n.add_argument("--axes", help=axes_help)
    n.add_argument("--json", action="store_true", help="print the result as JSON")
    n.set_defaults(func=cmd_noise)
    return p


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    try:
        return args.func(args)
    except BSDenoiseError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(f"{PROG}: error: out of memory; try a smaller --tile-size or a smaller image", file=sys.stderr)
        return 1
    except FloatingPointError as exc:  # training diverged
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
