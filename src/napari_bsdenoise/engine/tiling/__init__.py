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

# models: the per-process model cache and ModelRef; sources: lazy inputs; plan: Plan, memory budget,
# axis order; runners: the chunk function and block scheduling; job: build (the dask graph);
# write: denoise_iter (zarr/TIFF stores, whose formats are napari_bsdenoise.io.stores)
from ...io.stores import ATTRS_KEY, DONE_FILE, TIFF_CLASSIC_LIMIT, TIFF_SUFFIXES, ZARR_SUFFIXES, is_complete
from .job import LazyJob, build, denoise_lazy
from .models import MODEL_CACHE, OOM_LOG, ModelRef, model_from_payload, model_payload, register_model
from .plan import Plan, default_memory
from .runners import BlockRunner, DirectChunks, block_denoise, run_blocks
from .sources import Source, TiffArray, is_lazy_input, open_input
from .write import denoise_iter

__all__ = [
    "ATTRS_KEY",
    "DONE_FILE",
    "MODEL_CACHE",
    "OOM_LOG",
    "TIFF_CLASSIC_LIMIT",
    "TIFF_SUFFIXES",
    "ZARR_SUFFIXES",
    "BlockRunner",
    "DirectChunks",
    "LazyJob",
    "ModelRef",
    "Plan",
    "Source",
    "TiffArray",
    "block_denoise",
    "build",
    "default_memory",
    "denoise_iter",
    "denoise_lazy",
    "is_complete",
    "is_lazy_input",
    "model_from_payload",
    "model_payload",
    "open_input",
    "register_model",
    "run_blocks",
]
