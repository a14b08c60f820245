"""Larger-than-memory denoising: lazy dask-tiled prediction, zarr/TIFF output, dask clusters.

The engine's unit of work is one *chunk*: one T/Z index (each slice is an
independent 2-D image), all channels of a joint model or one channel of an
independent one, and a Y/X block.  A chunk is predicted from its input window
(the chunk plus a halo of the network's receptive radius, clipped at the
image border) with :func:`~napari_bsdenoise.engine.predict.predict_iter`; chunk
starts are multiples of the network's pooling factor, so the result equals the
untiled result up to float rounding (crop-and-stitch: each output pixel comes
from exactly one window in which it sees its whole receptive field).  T, Z and
C are never overlapped, and the normalisation is the model's (global), never
per chunk.

Three sizes (docs/large_data.md):

* *tile*: what goes through the network at once, sized from the memory budget
  (:func:`~napari_bsdenoise.engine.predict.auto_tile`), multiple of ``2**depth``;
* *halo*: ``network.receptive_radius(blind_spot)`` rounded up to that multiple;
* *chunk*: the dask/zarr unit (default: the tile; at least the halo).

Entry points: :func:`denoise_lazy` (a lazy dask array), :func:`denoise_iter`
(generator of :class:`ProgressEvent` that writes to a ``.zarr``/``.tif``
store, resumable for zarr) and :func:`open_input`.  ``napari_bsdenoise.denoise``
routes dask/zarr/path inputs and ``out=`` here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import warnings
from collections import deque
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .engine.progress import ProgressEvent
from .errors import InputError

log = logging.getLogger(__name__)

ATTRS_KEY = "napari_bsdenoise"
DONE_FILE = ".bsdenoise_done"
ZARR_SUFFIXES = (".zarr", ".zarr/")
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
#: In-memory results above this size are not returned as numpy for numpy input without ``out=``.
TIFF_CLASSIC_LIMIT = 2**31


# -- model shipping -------------------------------------------------------------------------
_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()
OOM_LOG: list[str] = []  # messages of tile halvings in this process (the driver shows them)


def model_payload(model) -> tuple[str, bytes]:
    """``(sha256 key, safetensors bytes)`` of a model (weights + JSON config, no pickle)."""
    from safetensors.torch import save

    from .modelfile import METADATA_KEY

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.network.state_dict().items()}
    data = save(tensors, metadata={METADATA_KEY: json.dumps(model.config.to_dict())})
    return hashlib.sha256(data).hexdigest()[:24], data


def _model_from_payload(data: bytes):
    from safetensors.torch import load

    from .config import ModelConfig
    from .model import BlindSpotModel
    from .modelfile import METADATA_KEY

    n = int.from_bytes(data[:8], "little")
    config = ModelConfig.from_dict(json.loads(json.loads(data[8 : 8 + n])["__metadata__"][METADATA_KEY]))
    model = BlindSpotModel(config)
    model.network.load_state_dict(load(data), strict=True)
    return model.network.eval()


def _cache_put(key: str, network) -> None:
    with _CACHE_LOCK:
        _CACHE.setdefault(key, network)


class ModelRef:
    """A picklable handle on a model: the hash key, plus the safetensors bytes unless the
    workers already hold the model (:class:`ModelPlugin` on a dask.distributed cluster).

    Each process loads the network once and caches it by key; tasks never carry a torch module.
    """

    def __init__(self, key: str, payload: bytes | None):
        self.key, self.payload = key, payload

    def __reduce__(self):
        return (ModelRef, (self.key, self.payload))

    def network(self, device):
        with _CACHE_LOCK:
            net = _CACHE.get(self.key)
            if net is None:
                if self.payload is None:
                    raise RuntimeError(
                        f"model {self.key} is not loaded in this worker process; pass client= to "
                        "napari_bsdenoise.denoise so the model is installed on every worker")
                net = _CACHE[self.key] = _model_from_payload(self.payload)
            dev_key = (self.key, str(device))
            if dev_key not in _CACHE:
                import copy

                _CACHE[dev_key] = (net if str(device) == "cpu" else copy.deepcopy(net)).to(device).eval()
            return _CACHE[dev_key]


try:  # the cluster path is optional
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover
    _WorkerPluginBase = object


class ModelPlugin(_WorkerPluginBase):
    """Installs a model in every worker process once (also on workers that join later)."""

    def __init__(self, key: str, payload: bytes):
        self.key, self.payload = key, payload

    def setup(self, worker=None):
        with _CACHE_LOCK:
            if self.key not in _CACHE:
                _CACHE[self.key] = _model_from_payload(self.payload)


def register_model(model, client=None) -> ModelRef:
    """A :class:`ModelRef` for ``model``: cached in this process, and installed on ``client``'s
    workers once (dask.distributed) so tasks carry only the key."""
    key, payload = model_payload(model)
    if client is not None:
        client.register_plugin(ModelPlugin(key, payload), name=f"napari-bsdenoise-model-{key}")
        return ModelRef(key, None)
    import copy

    _cache_put(key, copy.deepcopy(model.network).to("cpu").eval())
    return ModelRef(key, payload)  # payload only travels with the 'processes' scheduler


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
    # chunks are then read without a dask graph (see :class:`_Direct`)
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

    from .cli import _TIFF_AXES

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
            from .cli import _ome_physical_sizes

            ome = _ome_physical_sizes(tif)
            for a in "XYZ":
                if f"PhysicalSize{a}" in ome:
                    px[a] = float(ome[f"PhysicalSize{a}"])
            unit = ome.get("PhysicalSizeXUnit", unit)
    mapped = "".join(_TIFF_AXES.get(a, "?") for a in file_axes)
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


def _check_lazy(arr, name="image") -> None:
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


# -- the plan -------------------------------------------------------------------------------
def default_memory(n_workers: int = 1) -> int:
    """Activation-memory budget per concurrently running chunk: a quarter of the available RAM
    shared by the workers, between 256 MB and 4 GB."""
    try:
        import psutil

        avail = psutil.virtual_memory().available
    except Exception:  # pragma: no cover
        avail = 4 * 2**30
    return int(min(4 * 2**30, max(2**28, avail / 4 / max(1, n_workers))))


def _parse_bytes(v) -> int | None:
    if v is None:
        return None
    if isinstance(v, str):
        from dask.utils import parse_bytes

        return int(parse_bytes(v))
    return int(v)


@dataclass
class Plan:
    """Everything a chunk task needs (small and picklable)."""

    axes: str  # input axes
    order: str  # internal order: lead axes, C, Y, X
    channel_mode: str
    mean: tuple
    std: tuple
    blind_spot: int
    tile: int
    halo: int
    chunk: int
    multiple: int
    device: str
    precision: str
    depth_y: int = 0
    depth_x: int = 0
    fusion: dict | None = None  # FusionParams as a dict: the noisy-input fusion of AT-BSN outputs

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _lazy_normalization(x, layout):
    """Global per-channel mean/std from an evenly spread subsample of a lazy ``(lead.., C, Y, X)`` array."""
    from .config import Normalization

    lead = x.shape[:-3]
    n_lead = int(np.prod(lead)) if lead else 1
    flat = x.reshape((n_lead,) + x.shape[-3:])
    take = np.unique(np.linspace(0, n_lead - 1, min(n_lead, 16)).astype(int))
    step = max(1, int((x.shape[-2] * x.shape[-1] * len(take) / 4_000_000) ** 0.5))
    sub = flat[take][:, :, ::step, ::step].astype(np.float64).compute()
    sub = sub.transpose(1, 0, 2, 3).reshape(sub.shape[1], -1)
    if not np.isfinite(sub).all():
        raise InputError("the image contains NaN or infinite values; replace them (e.g. with the median) first")
    std = sub.std(axis=1)
    if np.any(std <= 0):
        raise InputError("the image is constant (zero variance): there is no noise to learn from")
    return Normalization([float(m) for m in sub.mean(axis=1)], [float(s) for s in std])


def _block_denoise(block, *, ref: ModelRef, plan: Plan, block_info=None):
    """The mapped function: ``block`` is one chunk plus its halo, internal order (lead.., C, Y, X)."""
    import torch

    from .engine.predict import predict

    loc = block_info[None]["array-location"]
    (c0, c1), (y0, y1), (x0, x1) = loc[-3], loc[-2], loc[-1]
    ya, xa = max(0, y0 - plan.depth_y), max(0, x0 - plan.depth_x)
    lead = block.shape[:-3]
    c, hb, wb = block.shape[-3:]
    data = np.asarray(block, dtype=np.float32).reshape((-1, c, hb, wb))
    if not np.isfinite(data).all():
        # lazy data cannot be checked up front without reading it all: check each chunk as it is read
        raise InputError(
            f"the image has NaN or infinite values near Y {y0}:{y1}, X {x0}:{x1} (chunk {block_info[None]['chunk-location']}); "
            "replace them (e.g. with the median) before denoising"
        )
    mean = np.asarray(plan.mean[c0:c1], np.float32)[None, :, None, None]
    std = np.asarray(plan.std[c0:c1], np.float32)[None, :, None, None]
    data = (data - mean) / std
    n = data.shape[0]
    if plan.channel_mode == "independent":
        data = data.reshape(n * c, 1, hb, wb)
    device = torch.device(plan.device)
    net = ref.network(device)
    if plan.fusion is not None:
        from .nn.fusion import FusedNetwork, FusionParams

        net = FusedNetwork(net, FusionParams(**plan.fusion))
    roi = (y0 - ya, y1 - ya, x0 - xa, x1 - xa)
    tile = plan.tile
    while True:
        try:
            out = predict(net, np.ascontiguousarray(data), blind_spot=plan.blind_spot, device=device,
                          precision=plan.precision, tile=tile, halo=plan.halo, roi=roi)
            break
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            if not isinstance(exc, (torch.OutOfMemoryError, MemoryError)) and "out of memory" not in str(exc):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            new = max(plan.multiple, tile // 2 // plan.multiple * plan.multiple)
            if new >= tile:
                raise
            msg = f"out of memory on {device} with {tile}-pixel tiles; retrying with {new}"
            OOM_LOG.append(msg)
            warnings.warn(msg, ResourceWarning, stacklevel=2)
            log.warning(msg)
            tile = new
    out = out.reshape((n, c, y1 - y0, x1 - x0)) * std + mean
    return out.reshape(lead + (c, y1 - y0, x1 - x0)).astype(np.float32, copy=False)


def _to_internal(x, axes: str, order: str):
    """An array in the input's ``axes`` -> the internal order (lead.., C, Y, X), adding a C axis of 1
    when the input has none (numpy or dask)."""
    full = axes if "C" in axes else axes + "C"
    if "C" not in axes:
        x = x[..., None]
    return x.transpose([full.index(a) for a in order])


def _from_internal(y, axes: str, order: str):
    """The inverse of :func:`_to_internal`."""
    full = axes if "C" in axes else axes + "C"
    y = y.transpose([order.index(a) for a in full])
    return y if "C" in axes else y[..., 0]


def _convert(block, dtype):
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(block), info.min, info.max).astype(dtype)
    return block.astype(dtype, copy=False)


@dataclass
class LazyJob:
    """The lazy result and how it was made."""

    result: object  # dask array in the input's axes
    plan: Plan
    source: Source
    layout: object
    ref: ModelRef
    key: str
    out_dtype: np.dtype
    direct: _Direct | None = None  # chunk by chunk without the dask graph, when the source allows


@dataclass
class _Direct:
    """Computes one chunk of a job straight from the source's backing array (numpy, zarr, TIFF).

    Writing a store block by block through the dask graph costs a graph optimisation per block that
    grows with the number of chunks (measured: 46 ms per chunk for a 4096-chunk stack, 10x more than
    for 512 chunks), i.e. quadratic in the stack size.  This reads each chunk's window (chunk plus
    halo) with one slice of the backing array and runs the same :func:`_block_denoise`, so the cost
    per chunk is constant; the result is identical to the graph's.  Small and picklable (a zarr
    array or a TiffArray pickles as its path) for dask.distributed workers.
    """

    backing: object
    axes: str  # the input's axes
    order: str  # internal order (lead.., C, Y, X)
    chunks: tuple  # internal chunks
    plan: Plan
    ref: ModelRef
    out_dtype: np.dtype

    def __call__(self, index):
        """The result block at ``index`` (a block index of ``LazyJob.result``, input axes)."""
        axes, order, plan = self.axes, self.order, self.plan
        where = dict(zip(axes, index))
        where.setdefault("C", 0)
        internal = tuple(where[a] for a in order)
        out = list(_block_slices(self.chunks, internal))
        win = list(out)
        for k, d in ((-2, plan.depth_y), (-1, plan.depth_x)):
            win[k] = slice(max(0, out[k].start - d), min(sum(self.chunks[k]), out[k].stop + d))
        raw = np.asarray(self.backing[tuple(win[order.index(a)] for a in axes)])
        info = {None: {"array-location": [(s.start, s.stop) for s in out], "chunk-location": internal}}
        y = _block_denoise(_to_internal(raw, axes, order), ref=self.ref, plan=plan, block_info=info)
        y = _from_internal(y, axes, order)
        return y if self.out_dtype == np.float32 else _convert(y, self.out_dtype)

    def plane(self, fixed: dict, page: str):
        """The result with the axes of ``fixed`` (``{axis: index}``) held, in ``page``'s axis order
        (e.g. ``"YX"``, ``"YXC"``): one TIFF page, from the blocks that cover it."""
        import itertools

        chunks = tuple(self.chunks[self.order.index(a)] for a in self.axes)  # LazyJob.result's chunks
        choices = []
        for a, c in zip(self.axes, chunks):
            starts = np.cumsum((0,) + tuple(c[:-1]))
            if a in fixed:
                b = int(np.searchsorted(starts, fixed[a], side="right") - 1)
                choices.append([(b, int(fixed[a] - starts[b]))])
            else:
                choices.append([(b, None) for b in range(len(c))])
        kept = "".join(a for a in self.axes if a not in fixed)
        out = np.empty([sum(c) for a, c in zip(self.axes, chunks) if a not in fixed], dtype=self.out_dtype)
        for combo in itertools.product(*choices):
            index = tuple(b for b, _ in combo)
            block = self(index)[tuple(slice(None) if off is None else off for _, off in combo)]
            where = _block_slices(chunks, index)
            out[tuple(sl for sl, (_, off) in zip(where, combo) if off is None)] = block
        return out.transpose([kept.index(a) for a in page])


def build(image, model, *, axes=None, blind_spot=None, device=None, precision="auto", tile_size=None,
          chunk_size=None, memory=None, renormalize=False, dtype="float32", client=None,
          n_workers: int | None = None, fusion="auto") -> LazyJob:
    """Plan the job and build the lazy dask graph (nothing is computed except the statistics for
    ``renormalize=True``)."""
    import dask.array as da

    from .api import _inference_layout, _inference_network, _match_normalization
    from .device import resolve_device, resolve_precision
    from .engine.predict import auto_tile, chunk_sizes, tile_plan
    from .model import BlindSpotModel

    if not isinstance(model, BlindSpotModel):
        raise InputError(f"model must be a BlindSpotModel (from train or load_model), got {type(model).__name__}")
    src = image if isinstance(image, Source) else open_input(image)
    x = src.array
    _check_lazy(x)
    cfg = model.config
    if axes is None and src.axes is not None and len(src.axes) == x.ndim:
        axes = src.axes
    layout, s = _inference_layout(x, model, axes, blind_spot)
    h, w = layout.spatial_shape
    if dtype not in ("float32", "input"):
        out_dtype = np.dtype(dtype)
    else:
        out_dtype = np.dtype(np.float32) if dtype == "float32" else np.dtype(x.dtype)

    # internal order: lead (T, Z as they come), C, Y, X
    order = layout.order
    xin = _to_internal(x, layout.axes, order)
    norm = (_lazy_normalization(xin, layout) if renormalize else _match_normalization(cfg.normalization, layout))

    net = _inference_network(model, s, norm, fusion)
    fused = net is not model.network
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    n_workers = n_workers or (len(client.scheduler_info().get("workers", {})) if client is not None
                              else min(os.cpu_count() or 1, 4))
    mem = _parse_bytes(memory) or default_memory(n_workers)
    if tile_size is None:
        tile_size = auto_tile(net, s, mem)
    tile, halo = tile_plan(net, s, tile_size, None)
    m = net.multiple
    chunk = tile if chunk_size is None else int(chunk_size)
    chunk = max(-(-chunk // m) * m, halo, m)
    cy, cx = chunk_sizes(h, chunk, halo), chunk_sizes(w, chunk, halo)
    lead_chunks = tuple((1,) * n for n in xin.shape[:-3])
    cc = (layout.n_channels,) if cfg.channel_mode == "joint" else (1,) * layout.n_channels
    xin = xin.rechunk(lead_chunks + (cc, cy, cx))
    plan = Plan(layout.axes, order, cfg.channel_mode, tuple(norm.mean), tuple(norm.std), s, tile, halo, chunk, m,
                str(dev), prec, depth_y=halo if len(cy) > 1 else 0, depth_x=halo if len(cx) > 1 else 0,
                fusion=dataclasses.asdict(net.params) if fused else None)
    ref = register_model(model, client)
    depth = {i: 0 for i in range(xin.ndim)}
    depth[xin.ndim - 2], depth[xin.ndim - 1] = plan.depth_y, plan.depth_x
    meta = np.empty((0,) * xin.ndim, dtype=np.float32)
    if plan.depth_y or plan.depth_x:
        y = da.map_overlap(_block_denoise, xin, depth=depth, boundary="none", trim=False, chunks=xin.chunks,
                           meta=meta, ref=ref, plan=plan, align_arrays=False, allow_rechunk=False)
    else:
        y = da.map_blocks(_block_denoise, xin, chunks=xin.chunks, meta=meta, ref=ref, plan=plan)
    y = _from_internal(y, layout.axes, order)  # back to the input's axes
    if out_dtype != np.float32:
        y = y.map_blocks(_convert, out_dtype, dtype=out_dtype)
    direct = None
    if src.backing is not None and not (client is not None and src.in_memory):  # never ship a numpy per task
        direct = _Direct(src.backing, layout.axes, order, xin.chunks, plan, ref, out_dtype)
    return LazyJob(y, plan, src, layout, ref, ref.key, out_dtype, direct)


def denoise_lazy(image, model, **kwargs):
    """A lazy dask array of the denoised ``image`` (same shape and axes; nothing computed yet).

    Keywords as :func:`napari_bsdenoise.denoise`.  Compute it with any dask scheduler; with a
    dask.distributed ``client=``, the model is installed once per worker.
    """
    return build(image, model, **kwargs).result


# -- running blocks -------------------------------------------------------------------------
def _block_slices(chunks, idx):
    out = []
    for c, i in zip(chunks, idx):
        start = int(sum(c[:i]))
        out.append(slice(start, start + c[i]))
    return tuple(out)


class _Runner:
    """Computes blocks of a dask array with a bounded number in flight: threads here, or a
    dask.distributed client."""

    def __init__(self, scheduler=None, client=None, n_workers=None):
        self.client = client
        self.scheduler = scheduler or "threads"
        if client is not None:
            self.n = max(1, len(client.scheduler_info().get("workers", {})))
        else:
            self.n = n_workers or (1 if self.scheduler in ("sync", "synchronous", "single-threaded")
                                   else min(os.cpu_count() or 1, 4))
        self.pool = None
        if client is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.n)

    def submit(self, arr):
        if self.client is not None:
            return self.client.compute(arr)
        return self.pool.submit(lambda: np.asarray(arr.compute(scheduler="sync")))

    def submit_call(self, fn, *args):
        if self.client is not None:
            return self.client.submit(fn, *args, pure=False)
        return self.pool.submit(fn, *args)

    @staticmethod
    def result(fut):
        return np.asarray(fut.result())

    def wait_first(self, futures):
        if self.client is not None:
            from distributed import wait

            done = wait(list(futures), return_when="FIRST_COMPLETED").done
        else:
            from concurrent.futures import FIRST_COMPLETED, wait

            done = wait(list(futures), return_when=FIRST_COMPLETED).done
        return done

    def cancel(self, futures):
        for f in futures:
            f.cancel()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _run_blocks(job: LazyJob, indices, runner: _Runner, on_done, in_flight: int):
    """Generator: compute the result blocks ``indices`` of ``job`` with at most ``in_flight`` pending,
    call ``on_done(i, data)`` and yield ``i`` as each finishes."""
    pending: dict = {}
    queue = deque(indices)
    try:
        while queue or pending:
            while queue and len(pending) < in_flight:
                i = queue.popleft()
                fut = (runner.submit_call(job.direct, i) if job.direct is not None
                       else runner.submit(job.result.blocks[i]))
                pending[fut] = i
            for fut in runner.wait_first(pending):
                i = pending.pop(fut)
                on_done(i, runner.result(fut))
                yield i
    finally:
        runner.cancel(pending)


# -- output stores --------------------------------------------------------------------------
def _signature(job: LazyJob, chunks) -> dict:
    return {
        "model": job.key,
        "plan": {k: v for k, v in job.plan.to_dict().items() if k not in ("device", "precision")},
        "input_shape": list(job.result.shape),
        "input_path": job.source.path,
        "dtype": str(job.out_dtype),
        "chunks": [list(c) for c in chunks],
    }


def _zarr_chunks(result):
    """Regular zarr chunks such that every dask block is a union of whole zarr chunks."""
    return tuple(c[0] if len(c) > 1 else c[0] for c in result.chunks)


def _metadata(job: LazyJob) -> dict:
    src = job.source
    return {"axes": job.layout.axes, "pixel_size": src.pixel_size, "unit": src.unit}


def _open_zarr_out(path: Path, job: LazyJob, overwrite: bool):
    import zarr

    sig = _signature(job, job.result.chunks)
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
                    if len(rec) == len(job.result.numblocks):
                        done.add(rec)
            return z, done, bool(old.get("complete"))
    z = zarr.create_array(str(path), shape=job.result.shape, chunks=_zarr_chunks(job.result),
                          dtype=job.out_dtype, fill_value=0, overwrite=True)
    meta = _metadata(job)
    z.attrs.update({ATTRS_KEY: {**meta, "signature": sig, "complete": False},
                    "axes": list(job.layout.axes)})
    done_path.write_text("")
    return z, set(), False


def _tiff_kwargs(job: LazyJob, axes: str, shape, dtype, ome: bool) -> dict:
    src = job.source
    px = src.pixel_size or {}
    rgb = job.layout.channel_mode == "joint" and axes.endswith("C") and shape[-1] in (3, 4)
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
                if src.unit:
                    meta[f"PhysicalSize{a}Unit"] = "µm" if src.unit in ("um", "micron", "\\u00B5m") else src.unit
        kw["metadata"] = meta
        kw["ome"] = True
    else:
        meta = {"axes": file_axes}
        if "Z" in px:
            meta["spacing"] = px["Z"]
        if src.unit:
            meta["unit"] = src.unit
        kw["metadata"] = meta
    return kw


def denoise_iter(image, model, *, out, overwrite: bool = False, scheduler=None, client=None,
                 n_workers: int | None = None, **kwargs):
    """Generator: denoise ``image`` into the store ``out`` chunk by chunk.

    Yields a ``"start"`` :class:`ProgressEvent`, one ``"chunk"`` event per finished chunk (zarr)
    or plane (TIFF), and a ``"done"`` event; returns the path.  Closing the generator cancels
    the remaining chunks.  A ``.zarr`` output is resumable: run the same call again and only
    unfinished chunks are computed; the store's ``attrs["napari_bsdenoise"]["complete"]`` turns
    True only at the end.  A TIFF output is written to ``<out>.partial`` and renamed when done.
    """
    if isinstance(scheduler, str) and "://" in scheduler and client is None:
        from distributed import Client

        client = Client(scheduler)
        own_client = True
    else:
        own_client = False
    try:
        if n_workers is None and client is None and kwargs.get("device") not in (None, "cpu", "auto"):
            n_workers = 1  # one GPU: one chunk at a time keeps device memory bounded
        elif n_workers is None and client is None and kwargs.get("device") in (None, "auto"):
            from .device import resolve_device

            if resolve_device(None).type != "cpu":
                n_workers = 1
        path = Path(out)
        if not overwrite and path.exists():  # resuming: keep the stored tiling (the memory budget may have moved)
            plan = _stored_plan(path)
            if plan and kwargs.get("tile_size") is None:
                kwargs["tile_size"] = plan.get("tile")
            if plan and kwargs.get("chunk_size") is None:
                kwargs["chunk_size"] = plan.get("chunk")
        job = build(image, model, client=client, n_workers=n_workers, **kwargs)
        name = path.name.lower()
        if name.endswith(".zarr") or name.endswith(".zarr/"):
            gen = _write_zarr(job, path, overwrite, scheduler, client, n_workers)
        elif name.endswith(TIFF_SUFFIXES):
            gen = _write_tiff(job, path, overwrite, scheduler, client, n_workers, ome=name.endswith(".ome.tif")
                              or name.endswith(".ome.tiff"))
        else:
            raise InputError(f"{out}: unknown output format; use .zarr, .tif or .ome.tif")
        return (yield from gen)
    finally:
        if own_client:
            client.close()


def _stored_plan(path: Path) -> dict | None:
    try:
        import zarr

        z = zarr.open_array(str(path), mode="r")
        return dict(z.attrs).get(ATTRS_KEY, {}).get("signature", {}).get("plan")
    except Exception:
        return None


def _event(kind, done, total, t0, message=""):
    elapsed = time.perf_counter() - t0
    frac = done / total if total else 1.0
    eta = elapsed / frac * (1 - frac) if frac > 0 else None
    return ProgressEvent(kind, done, total, frac, elapsed, eta, message=message)


def _oom_message(seen: int) -> tuple[str, int]:
    if len(OOM_LOG) > seen:
        return OOM_LOG[-1], len(OOM_LOG)
    return "", seen


def _write_zarr(job: LazyJob, path: Path, overwrite, scheduler, client, n_workers):
    z, done, complete = _open_zarr_out(path, job, overwrite)
    indices = list(np.ndindex(*job.result.numblocks))
    total = len(indices)
    t0 = time.perf_counter()
    if complete:
        yield _event("done", total, total, t0, f"{path} is already complete")
        return path
    todo = [i for i in indices if i not in done]
    yield _event("start", len(indices) - len(todo), total, t0,
                 f"resuming: {len(indices) - len(todo)} of {total} chunks already written" if done else "")
    runner = _Runner(scheduler, client, n_workers)
    done_fh = open(path / DONE_FILE, "a")
    chunks = job.result.chunks

    def on_done(i, data):
        z[_block_slices(chunks, i)] = data
        done_fh.write(",".join(map(str, i)) + "\n")
        done_fh.flush()

    n_done, seen = total - len(todo), len(OOM_LOG)
    try:
        for _i in _run_blocks(job, todo, runner, on_done, in_flight=2 * runner.n):
            n_done += 1
            msg, seen = _oom_message(seen)
            yield _event("chunk", n_done, total, t0, msg)
    finally:
        done_fh.close()
        runner.close()
    attrs = dict(z.attrs[ATTRS_KEY])
    attrs["complete"] = True
    z.attrs[ATTRS_KEY] = attrs
    yield _event("done", total, total, t0, str(path))
    return path


def _write_tiff(job: LazyJob, path: Path, overwrite, scheduler, client, n_workers, ome: bool):
    import tifffile

    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass overwrite=True or choose another name")
    axes = job.layout.axes
    canon = "".join(a for a in "TZCYX" if a in axes)
    if axes.endswith("YXC") and job.layout.channel_mode == "joint":
        canon = canon.replace("CYX", "YXC")
    res = job.result.transpose([axes.index(a) for a in canon])
    page_nd = 3 if canon.endswith("YXC") else 2
    lead_shape = res.shape[:-page_nd]
    planes = list(np.ndindex(*lead_shape)) if lead_shape else [()]
    total = len(planes)
    t0 = time.perf_counter()
    partial = path.with_name(path.name + ".partial")
    runner = _Runner(scheduler, client, n_workers)
    yield _event("start", 0, total, t0)
    kw = _tiff_kwargs(job, canon, res.shape, job.out_dtype, ome)
    import queue as _queue

    q: _queue.Queue = _queue.Queue(maxsize=4)
    err: list = []

    def pages():
        for _ in range(total):
            item = q.get()
            if item is None:
                raise InterruptedError("denoising was cancelled")
            yield item

    def write():
        try:
            tifffile.imwrite(partial, data=pages(), shape=res.shape, dtype=job.out_dtype, **kw)
        except BaseException as exc:  # reported by the main generator
            err.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    order, pending, buffer = deque(planes), {}, {}
    next_plane, seen, ok = 0, len(OOM_LOG), False
    try:
        while next_plane < total:
            while order and len(pending) < 2 * runner.n:
                p = order.popleft()
                if job.direct is not None:
                    fixed = dict(zip(canon[: len(p)], p))
                    fut = runner.submit_call(job.direct.plane, fixed, canon[len(p):])
                else:
                    fut = runner.submit(res[p] if p else res)
                pending[fut] = p
            for fut in runner.wait_first(pending):
                buffer[pending.pop(fut)] = runner.result(fut)
            while next_plane < total and planes[next_plane] in buffer:
                page = _convert(buffer.pop(planes[next_plane]), job.out_dtype)
                while True:
                    if err:
                        raise err[0]
                    try:
                        q.put(page, timeout=0.5)
                        break
                    except _queue.Full:
                        continue
                next_plane += 1
                msg, seen = _oom_message(seen)
                yield _event("chunk", next_plane, total, t0, msg)
        writer.join()
        if err:
            raise err[0]
        ok = True
    finally:
        runner.cancel(pending)
        runner.close()
        if not ok:
            if writer.is_alive():
                try:
                    q.put_nowait(None)
                except _queue.Full:
                    pass
                writer.join(timeout=10)
            if partial.exists():
                partial.unlink()
    os.replace(partial, path)
    yield _event("done", total, total, t0, str(path))
    return path


def is_complete(path) -> bool:
    """True when ``path`` is a zarr store written to the end by :func:`denoise_iter`."""
    import zarr

    try:
        z = zarr.open_array(str(path), mode="r")
    except Exception:
        return False
    return bool(dict(z.attrs).get(ATTRS_KEY, {}).get("complete"))
