"""Chunked output stores of larger-than-memory denoising: zarr stores that resume and TIFF/OME-TIFF files.

A zarr store written by :func:`napari_bsdenoise.engine.tiling.denoise_iter` holds, in
``attrs["napari_bsdenoise"]``, the image metadata, the job's *signature* (model, plan, input,
dtype, chunks: a store is resumed only by the same job) and a ``complete`` flag; a
:data:`DONE_FILE` next to the chunks lists, one per line, the block indices already written.

Core layer: numpy, zarr and tifffile only (imported lazily); no torch, no dask, nothing of the engine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError

ATTRS_KEY = "napari_bsdenoise"
DONE_FILE = ".bsdenoise_done"
ZARR_SUFFIXES = (".zarr", ".zarr/")
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
#: In-memory results above this size are not returned as numpy for numpy input without ``out=``.
TIFF_CLASSIC_LIMIT = 2**31


# -- output stores --------------------------------------------------------------------------
def store_signature(model_key: str, plan: dict, input_shape, input_path, dtype, chunks) -> dict:
    """What identifies a job in its store (a store is resumed only by the same job): the model's
    hash, the plan without the device and precision, the input, the output dtype and the chunks."""
    return {
        "model": model_key,
        "plan": {k: v for k, v in plan.items() if k not in ("device", "precision")},
        "input_shape": list(input_shape),
        "input_path": input_path,
        "dtype": str(dtype),
        "chunks": [list(c) for c in chunks],
    }


def _zarr_chunks(chunks):
    """Regular zarr chunks such that every dask block is a union of whole zarr chunks."""
    return tuple(c[0] if len(c) > 1 else c[0] for c in chunks)


def open_zarr_store(path: Path, signature: dict, *, shape, chunks, dtype, metadata: dict, axes: str,
                    overwrite: bool):
    """Open the zarr output ``path`` of the job ``signature`` (block ``chunks`` as a dask array's).

    Returns ``(array, done, complete)``: ``done`` is the set of block indices already written by an
    interrupted run of the same job, ``complete`` whether that run finished.  A new store is
    created (with ``metadata``, the signature and ``complete: False``) when ``path`` does not
    exist or ``overwrite``; a store of another job is an :class:`InputError`.
    """
    import zarr

    sig = signature
    done_path = path / DONE_FILE
    if path.exists():
        if overwrite:
            shutil.rmtree(path)
        else:
            try:
                z = zarr.open_array(str(path), mode="r+")
                old = dict(z.attrs).get(ATTRS_KEY, {})
            except Exception:
                old = {}
            new = json.loads(json.dumps(sig))
            if old.get("signature") != new:
                was = old.get("signature") or {}
                diff = sorted(k for k in set(was) | set(new) if was.get(k) != new.get(k))
                if was.get("plan") and new.get("plan"):
                    diff += [f"plan.{k}" for k in new["plan"] if was["plan"].get(k) != new["plan"][k]]
                raise InputError(f"{path} exists and was not written by an interrupted run of this same job "
                                 f"(differs in: {', '.join(diff) or 'not a napari-bsdenoise store'}); "
                                 "choose another output or pass overwrite=True")
            done = set()
            if done_path.exists():
                # only newline-terminated records count: a line cut short by a crash is ignored
                for line in done_path.read_text().split("\n")[:-1]:
                    try:
                        rec = tuple(int(v) for v in line.split(","))
                    except ValueError:
                        continue
                    if len(rec) == len(chunks):
                        done.add(rec)
            return z, done, bool(old.get("complete"))
    z = zarr.create_array(str(path), shape=shape, chunks=_zarr_chunks(chunks),
                          dtype=dtype, fill_value=0, overwrite=True)
    meta = metadata
    z.attrs.update({ATTRS_KEY: {**meta, "signature": sig, "complete": False},
                    "axes": list(axes)})
    done_path.write_text("")
    return z, set(), False


def record_done(fh, index) -> None:
    """Append the block ``index`` to an open :data:`DONE_FILE` (one newline-terminated record)."""
    fh.write(",".join(map(str, index)) + "\n")
    fh.flush()


def mark_complete(z) -> None:
    """Flag the zarr store ``z`` as written to the end (see :func:`is_complete`)."""
    attrs = dict(z.attrs[ATTRS_KEY])
    attrs["complete"] = True
    z.attrs[ATTRS_KEY] = attrs


def tiff_writer_kwargs(axes: str, shape, dtype, ome: bool, *, pixel_size: dict | None, unit: str | None,
                       channel_mode: str) -> dict:
    """``tifffile.imwrite`` keywords of a TIFF (ImageJ metadata) or OME-TIFF output with ``axes``:
    RGB photometric for a joint 3-/4-channel image with C last, BigTIFF beyond
    :data:`TIFF_CLASSIC_LIMIT`, resolution and physical sizes from ``pixel_size`` and ``unit``."""
    px = pixel_size or {}
    rgb = channel_mode == "joint" and axes.endswith("C") and shape[-1] in (3, 4)
    kw: dict = {"photometric": "rgb" if rgb else "minisblack"}
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    kw["bigtiff"] = nbytes > TIFF_CLASSIC_LIMIT
    if "X" in px and "Y" in px:
        kw["resolution"] = (1.0 / px["X"], 1.0 / px["Y"])
    file_axes = axes[:-1] + "S" if rgb else axes
    if ome:
        meta = {"axes": file_axes}
        for a in "XYZ":
            if a in px:
                meta[f"PhysicalSize{a}"] = px[a]
                if unit:
                    meta[f"PhysicalSize{a}Unit"] = "µm" if unit in ("um", "micron", "\\u00B5m") else unit
        kw["metadata"] = meta
        kw["ome"] = True
    else:
        meta = {"axes": file_axes}
        if "Z" in px:
            meta["spacing"] = px["Z"]
        if unit:
            meta["unit"] = unit
        kw["metadata"] = meta
    return kw


def stored_plan(path: Path) -> dict | None:
    """The plan in the signature of the zarr store ``path`` (None when there is none)."""
    try:
        import zarr

        z = zarr.open_array(str(path), mode="r")
        return dict(z.attrs).get(ATTRS_KEY, {}).get("signature", {}).get("plan")
    except Exception:
        return None


def is_complete(path) -> bool:
    """True when ``path`` is a zarr store written to the end by
    :func:`~napari_bsdenoise.engine.tiling.denoise_iter`."""
    import zarr

    try:
        z = zarr.open_array(str(path), mode="r")
    except Exception:
        return False
    return bool(dict(z.attrs).get(ATTRS_KEY, {}).get("complete"))
