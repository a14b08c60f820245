"""Lazy inputs of the tiled engine: numpy, dask and zarr arrays and ``.zarr``/TIFF paths wrapped
as a :class:`Source` (a dask array plus what the file said about it), read chunk by chunk."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io.stores import ATTRS_KEY


# -- inputs ---------------------------------------------------------------------------------
@dataclass
class Source:
    """A lazily readable input: a dask array plus what the file said about it."""

    array: object  # dask.array.Array
    axes: str | None = None
    pixel_size: dict = field(default_factory=dict)  # axis letter -> size
    unit: str | None = None
    path: str | None = None
    in_memory: bool = False  # a numpy array
    # the array behind ``array`` when it can be sliced directly (numpy, zarr.Array, TiffArray):
    # chunks are then read without a dask graph (see :class:`~.runners.DirectChunks`)
    backing: object = None


def _is_zarr_path(path: Path) -> bool:
    return path.suffix.lower() == ".zarr" or (path.is_dir() and any((path / n).exists() for n in
                                                                   ("zarr.json", ".zarray", ".zgroup")))


def _zarr_source(z, path=None) -> Source:
    import dask.array as da
    import zarr

    axes, px, unit = None, {}, None
    if isinstance(z, zarr.Group):
        attrs = dict(z.attrs)
        ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        name = None
        if ms:
            m = ms[0]
            name = m["datasets"][0]["path"]
            try:
                axes = "".join(a["name"] if isinstance(a, str) else a["name"] for a in m["axes"]).upper()
                for t in m["datasets"][0].get("coordinateTransformations", []):
                    if t.get("type") == "scale":
                        px = {a: float(s) for a, s in zip(axes, t["scale"]) if a in "ZYX"}
                units = {a["name"].upper(): a.get("unit") for a in m["axes"] if isinstance(a, dict)}
                unit = units.get("X")
            except (KeyError, TypeError):
                axes = None
        else:
            arrays = [k for k, _ in z.arrays()]
            if not arrays:
                raise InputError(f"{path or 'the zarr group'} holds no array")
            name = arrays[0]
        z = z[name]
    attrs = dict(z.attrs)
    own = attrs.get(ATTRS_KEY, {})
    axes = own.get("axes") or attrs.get("axes") or axes
    if isinstance(axes, list):
        axes = "".join(axes).upper()
    px = own.get("pixel_size") or px
    unit = own.get("unit") or unit
    arr = da.from_zarr(z)
    return Source(arr, axes, px, unit, None if path is None else str(path), backing=z)


def _tiff_source(path: Path) -> Source:
    import dask.array as da
    import tifffile

    from ...axes import TIFF_AXES

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        file_axes = series.axes
        px, unit = {}, None
        page = tif.pages[0]
        tags = page.tags
        for tag, ax in (("XResolution", "X"), ("YResolution", "Y")):
            if tag in tags:
                num, den = tags[tag].value
                if num and den and num != den:
                    px[ax] = den / num
        ij = tif.imagej_metadata or {}
        if ij.get("spacing"):
            px["Z"] = float(ij["spacing"])
        unit = ij.get("unit")
        if tif.is_ome:
            from ...io.images import ome_physical_sizes

            ome = ome_physical_sizes(tif)
            for a in "XYZ":
                if f"PhysicalSize{a}" in ome:
                    px[a] = float(ome[f"PhysicalSize{a}"])
            unit = ome.get("PhysicalSizeXUnit", unit)
    mapped = "".join(TIFF_AXES.get(a, "?") for a in file_axes)
    axes = mapped if "?" not in mapped and len(set(mapped)) == len(mapped) else None
    arr = TiffArray(str(path))
    return Source(da.from_array(arr, chunks=arr.chunks, asarray=False, lock=False, meta=np.empty((0,) * arr.ndim,
                                                                                             arr.dtype)),
                  axes, px, unit, str(path), backing=arr)


class TiffArray:
    """A TIFF file as a sliceable array that pickles as its path: each process opens the file
    itself (through tifffile's zarr interface), so a dask graph over it runs on a cluster."""

    def __init__(self, path: str):
        self.path = path
        z = self._zarr()
        self.shape, self.dtype, self.chunks = tuple(z.shape), np.dtype(z.dtype), tuple(z.chunks)
        self.ndim = len(self.shape)

    def _zarr(self):
        z = getattr(self, "_z", None)
        if z is None:
            import tifffile
            import zarr

            z = zarr.open(tifffile.imread(self.path, aszarr=True), mode="r")
            if isinstance(z, zarr.Group):  # pyramidal files: level 0
                z = z["0"]
            self._z = z
        return z

    def __getitem__(self, key):
        return np.asarray(self._zarr()[key])

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_z"}


def open_input(image) -> Source:
    """Wrap numpy, dask, zarr arrays and ``.zarr``/TIFF paths as a lazy :class:`Source` (nothing is read)."""
    import dask.array as da

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.exists():
            raise InputError(f"image file not found: {path}")
        if _is_zarr_path(path):
            import zarr

            return _zarr_source(zarr.open(str(path), mode="r"), path)
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_source(path)
        raise InputError(f"{path}: lazy reading supports .zarr stores and TIFF files")
    if isinstance(image, da.Array):
        return Source(image)
    try:
        import zarr

        if isinstance(image, (zarr.Array, zarr.Group)):
            return _zarr_source(image)
    except ImportError:  # pragma: no cover
        pass
    arr = np.asarray(image)
    return Source(da.from_array(arr, chunks=arr.shape), in_memory=True, backing=arr)


def is_lazy_input(image) -> bool:
    """True for inputs this module handles (paths, dask and zarr arrays)."""
    if isinstance(image, (str, os.PathLike)):
        return True
    mod = type(image).__module__
    return mod.startswith("dask.") or mod.startswith("zarr.")


def check_lazy(arr, name="image") -> None:
    """Checks of a lazy input that need no pixel: dtype, number of axes, not empty."""
    dt = np.dtype(arr.dtype)
    if dt == bool:
        raise InputError(f"{name} is boolean (a mask?); denoising needs intensities (uint8, uint16, float ...)")
    if not (np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating)):
        raise InputError(f"{name} has unsupported dtype {dt}")
    if arr.ndim < 2:
        raise InputError(f"{name} must have at least 2 dimensions (Y, X), got shape {arr.shape}")
    if arr.ndim > 5:
        raise InputError(f"{name} is {arr.ndim}-D (shape {arr.shape}); at most 5 axes among T, Z, C, Y, X")
    if 0 in arr.shape:
        raise InputError(f"{name} is empty (shape {arr.shape})")
