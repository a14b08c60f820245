"""Writing a tiled job to a store chunk by chunk with progress: :func:`denoise_iter` (a ``.zarr``
store, resumable, or a TIFF/OME-TIFF file).  The store formats themselves (signature, done
markers, writer keywords) are :mod:`napari_bsdenoise.io.stores`."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...inputs import convert_dtype
from ...io.stores import (
    DONE_FILE,
    TIFF_SUFFIXES,
    mark_complete,
    open_zarr_store,
    record_done,
    store_signature,
    stored_plan,
    tiff_writer_kwargs,
)
from ..progress import ProgressEvent
from .job import LazyJob, build
from .models import OOM_LOG
from .runners import BlockRunner, block_slices, run_blocks


# -- output stores --------------------------------------------------------------------------
def _signature(job: LazyJob, chunks) -> dict:
    return store_signature(job.key, job.plan.to_dict(), job.result.shape, job.source.path, job.out_dtype, chunks)


def _metadata(job: LazyJob) -> dict:
    src = job.source
    return {"axes": job.layout.axes, "pixel_size": src.pixel_size, "unit": src.unit}


def _open_zarr_out(path: Path, job: LazyJob, overwrite: bool):
    return open_zarr_store(path, _signature(job, job.result.chunks), shape=job.result.shape,
                           chunks=job.result.chunks, dtype=job.out_dtype, metadata=_metadata(job),
                           axes=job.layout.axes, overwrite=overwrite)


def _tiff_kwargs(job: LazyJob, axes: str, shape, dtype, ome: bool) -> dict:
    src = job.source
    return tiff_writer_kwargs(axes, shape, dtype, ome, pixel_size=src.pixel_size, unit=src.unit,
                              channel_mode=job.layout.channel_mode)


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
            from ...device import resolve_device

            if resolve_device(None).type != "cpu":
                n_workers = 1
        path = Path(out)
        if not overwrite and path.exists():  # resuming: keep the stored tiling (the memory budget may have moved)
            plan = stored_plan(path)
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
    runner = BlockRunner(scheduler, client, n_workers)
    done_fh = open(path / DONE_FILE, "a")
    chunks = job.result.chunks

    def on_done(i, data):
        z[block_slices(chunks, i)] = data
        record_done(done_fh, i)

    n_done, seen = total - len(todo), len(OOM_LOG)
    try:
        for _i in run_blocks(job, todo, runner, on_done, in_flight=2 * runner.n):
            n_done += 1
            msg, seen = _oom_message(seen)
            yield _event("chunk", n_done, total, t0, msg)
    finally:
        done_fh.close()
        runner.close()
    mark_complete(z)
    yield _event("done", total, total, t0, str(path))
    return path


def _page_groups(res, canon: str, planes: list, slabs: bool) -> list:
    """The pages of a TIFF output grouped by what computes them: ``(None, [page])`` for a 2-D model
    (one page from the blocks that cover it); for a 3-D model ``(key, pages)``, where ``res[key]`` is
    a slab of one Z chunk (with every channel) and ``pages`` the consecutive pages it holds, so no
    3-D block is computed twice."""
    if not slabs:
        return [(None, [p]) for p in planes]
    zpos = canon.index("Z")
    bounds = np.cumsum((0,) + tuple(res.chunks[zpos]))
    groups: list = []
    for p in planes:
        k = int(np.searchsorted(bounds, p[zpos], side="right") - 1)
        key = tuple(p[:zpos]) + (slice(int(bounds[k]), int(bounds[k + 1])),)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(p)
        else:
            groups.append((key, [p]))
    return groups


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
    groups = _page_groups(res, canon, planes, job.plan.spatial_dims == 3)
    t0 = time.perf_counter()
    partial = path.with_name(path.name + ".partial")
    runner = BlockRunner(scheduler, client, n_workers)
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
    order, pending, buffer = deque(groups), {}, {}
    in_flight = runner.n if job.plan.spatial_dims == 3 else 2 * runner.n  # (3-D: slabs of a Z chunk each)
    next_plane, seen, ok = 0, len(OOM_LOG), False
    try:
        while next_plane < total:
            while order and len(pending) < in_flight:
                key, members = order.popleft()
                if key is None and job.direct is not None:
                    p = members[0]
                    fixed = dict(zip(canon[: len(p)], p))
                    fut = runner.submit_call(job.direct.plane, fixed, canon[len(p):])
                elif key is None:
                    fut = runner.submit(res[members[0]] if members[0] else res)
                else:
                    fut = runner.submit(res[key])
                pending[fut] = (key, members)
            for fut in runner.wait_first(pending):
                key, members = pending.pop(fut)
                data = runner.result(fut)
                if key is None:
                    buffer[members[0]] = data
                else:  # a slab: its Z planes (and channels) are the pages
                    z0 = key[-1].start
                    for p in members:
                        buffer[p] = data[(p[len(key) - 1] - z0,) + p[len(key):]]
            while next_plane < total and planes[next_plane] in buffer:
                page = convert_dtype(buffer.pop(planes[next_plane]), job.out_dtype)
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
