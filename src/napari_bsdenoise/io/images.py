"""Whole-file images on disk: read TIFF (axes and pixel size from ImageJ/OME metadata), PNG and JPEG;
write TIFF (the input's metadata copied) or 8/16-bit PNG, atomically.

Core layer: numpy, tifffile and Pillow (through imageio) only, imported lazily; no torch, nothing of napari.
Every error is an :class:`ImageFileError` (an :class:`~napari_bsdenoise.errors.InputError`) whose
message says what is wrong with the file and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..axes import TIFF_AXES, validate_axes
from ..errors import InputError
from .stores import TIFF_SUFFIXES

PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg")
# ImageJ metadata copied from an input TIFF to the result
_IMAGEJ_META_KEYS = ("spacing", "unit", "finterval", "fps", "tunit", "xorigin", "yorigin", "zorigin")


class ImageFileError(InputError):
    """An image file cannot be found, read or written (missing, unreadable, wrong format ...)."""


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


# -- reading -----------------------------------------------------------------------------------
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
        raise ImageFileError(f"{path} has a {suffix} name but is not a {kind} file (corrupted or mislabelled?)")
    raise ImageFileError(f"{path}: unsupported file type; napari-bsdenoise reads TIFF, PNG and JPEG images")


def check_input_file(path, what: str = "image") -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a readable file, else an :class:`ImageFileError`
    naming ``what`` ("image", "model" ...)."""
    path = Path(path)
    if not path.exists():
        raise ImageFileError(f"{what} file not found: {path}")
    if path.is_dir():
        raise ImageFileError(f"{path} is a folder, not an {what} file")
    if not os.access(path, os.R_OK):
        raise ImageFileError(f"{path} cannot be read (permission denied)")
    return path


def _tiff_axes(series_axes: str) -> tuple[str | None, bool]:
    """Map tifffile's series axes to ours: ``(axes or None when ambiguous, rgb)``.

    ``S`` (RGB samples) is a channel axis; anything else ("Q" unknown, "I" generic sequence,
    "R" tiles, "E" lambda, "H" histogram ...) is ambiguous.
    """
    unknown = [a for a in series_axes if a not in TIFF_AXES]
    mapped = "".join(TIFF_AXES.get(a, "?") for a in series_axes)
    if unknown or len(set(mapped)) != len(mapped):
        return None, False
    return mapped, "S" in series_axes


def ome_physical_sizes(tif) -> dict:
    """The ``PhysicalSize*`` and ``TimeIncrement*`` attributes of an open OME-TIFF's first image
    (empty when the OME-XML is malformed)."""
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
            raise ImageFileError(f"{path} contains no image")
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
        ome = ome_physical_sizes(tif) if tif.is_ome else {}
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


def read_image(path, axes: str | None = None, *, check: Callable | None = None) -> ImageFile:
    """Read a TIFF, PNG or JPEG file; ``axes`` (e.g. ``"ZYX"``) overrides the file's metadata.

    ``check(data, name=str(path))``, e.g. :func:`napari_bsdenoise.api.check_image`, validates the
    pixels (dtype, dimensions, finite values ...) before the axes are inferred.
    """
    path = check_input_file(path)
    fmt = _sniff_format(path)
    try:
        img = _read_tiff(path) if fmt == "tiff" else _read_pillow(path, fmt)
    except ImageFileError:
        raise
    except MemoryError:
        raise ImageFileError(f"{path} is too large to load into memory") from None
    except Exception as exc:  # any reader failure is an unreadable file, not a bug of ours
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ImageFileError(f"cannot read {path} as a {fmt.upper()} image: {first}") from None
    if axes is not None:
        img.axes = validate_axes(axes, img.data.shape)
        img.rgb = img.rgb and img.axes.endswith("C")
    else:
        _drop_constant_alpha(img)
    if check is not None:
        check(img.data, name=str(path))
    if img.axes is None:
        try:
            img.axes = validate_axes(None, img.data.shape, rgb=img.rgb if img.format != "tiff" else None)
        except InputError:
            ndim = img.data.ndim
            example = {3: "ZYX", 4: "TZYX"}.get(ndim, "TZCYX")
            declared = f" (the file declares {img.file_axes!r}, where Q/I mean unknown)" if img.file_axes else ""
            raise ImageFileError(f"cannot tell the axes of {path}, a {ndim}-D image of shape {img.data.shape}"
                                 f"{declared}; pass --axes, e.g. --axes {example} (letters among T, Z, C, Y, X)"
                                 ) from None
    return img


# -- writing -----------------------------------------------------------------------------------
def output_format(out: Path) -> str:
    """``"tiff"`` or ``"png"`` by the extension of ``out``; JPEG and unknown extensions are refused."""
    suffix = out.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in PNG_SUFFIXES:
        return "png"
    if suffix in JPEG_SUFFIXES:
        raise ImageFileError(f"{out}: JPEG output would add compression artefacts to the denoised image; "
                             "write .tif (float32) or .png (8/16-bit)")
    raise ImageFileError(f"{out}: unknown output format {suffix or '(no extension)'!r}; use .tif or .png")


def convert_dtype(result: np.ndarray, dtype) -> np.ndarray:
    """``result`` in ``dtype``: integers are rounded and clipped to the type's range (no wrap-around)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(result), info.min, info.max).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        info = np.finfo(dtype)
        return np.clip(result, info.min, info.max).astype(dtype)
    raise ImageFileError(f"cannot convert the result to {dtype}")


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


def check_png(out: Path, dtype, axes: str, shape: tuple) -> None:
    """Refuse, before any work, a PNG ``out`` that cannot hold a result of ``dtype``/``axes``/``shape``."""
    if np.dtype(dtype) not in (np.uint8, np.uint16):
        raise ImageFileError(f"{out}: PNG holds 8- or 16-bit integers, the result would be {np.dtype(dtype)}; "
                             "write a .tif, or pass --dtype input for an 8/16-bit input")
    if not (axes == "YX" or (axes == "YXC" and shape[-1] in (3, 4))):
        raise ImageFileError(f"{out}: PNG holds one 2-D grey or RGB(A) image, the result has axes {axes} "
                             f"and shape {tuple(shape)}; write a .tif")


def write_image(out: Path, data: np.ndarray, img: ImageFile, axes: str) -> None:
    """Write ``data`` (with ``axes``) to ``out`` atomically, as TIFF or PNG by its extension, with the
    metadata (pixel size, ImageJ/OME flavour) of the input ``img``."""
    fmt = output_format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        if fmt == "png":
            import imageio.v3 as iio

            check_png(out, data.dtype, axes, data.shape)
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
                raise ImageFileError(f"cannot write {out} as TIFF: {error}")
        os.replace(tmp, out)
    except OSError as exc:
        raise ImageFileError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
