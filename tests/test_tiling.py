"""Larger-than-memory denoising (issue #3): lazy dask tiling, zarr/TIFF output, resume, cluster."""

import json

import numpy as np
import pytest

import napari_bsdenoise as bsd
from napari_bsdenoise.engine import tiling
from napari_bsdenoise.errors import InputError

da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")
tifffile = pytest.importorskip("tifffile")


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(1)
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    return bsd.train(img, steps=3, blind_spot=1, network="tiny", patch_size=32, batch_size=4)


@pytest.fixture(scope="module")
def model2c():
    rng = np.random.default_rng(2)
    img = np.stack([rng.normal(100, 10, (48, 48)), rng.normal(500, 50, (48, 48))]).astype(np.float32)
    return bsd.train(img, axes="CYX", channels="independent", steps=2, blind_spot=1, network="tiny",
                     patch_size=32, batch_size=4)


def _untiled(img, model, axes, **kw):
    return bsd.denoise(np.asarray(img), model, axes=axes, tile_size=4096, check=False, **kw)  # toy model


def _close(a, b, img):
    return np.abs(np.asarray(a, np.float64) - b).max() <= 1e-4 * (float(img.max()) - float(img.min()))


# -- tiled == untiled -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,axes,tile,chunk",
    [
        ((301, 333), "YX", 64, None),  # odd sizes, small tiles, 3x3 chunks with halos
        ((301, 333), "YX", 4096, None),  # one tile bigger than the image
        ((301, 333), "YX", 48, 120),  # chunk of several tiles, non-multiple remainder
        ((20, 30), "YX", 64, None),  # image smaller than one tile
        ((2, 97, 203), "ZYX", 40, None),  # Z as independent 2-D slices, never overlapped
        ((2, 2, 61, 190), "TZYX", 32, None),
        ((190, 45, 2), "YXC", 32, None),  # independent channels (own normalisation each), C last
    ],
)
def test_lazy_tiled_equals_untiled(model, model2c, shape, axes, tile, chunk):
    if "C" in axes:
        model = model2c
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, shape).astype(np.float32)
    ref = _untiled(img, model, axes)
    lazy = bsd.denoise(da.from_array(img, chunks=17), model, axes=axes, tile_size=tile, chunk_size=chunk)
    assert isinstance(lazy, da.Array) and lazy.shape == img.shape and lazy.dtype == np.float32
    for a in axes:
        if a in "TZC":
            assert set(lazy.chunks[axes.index(a)]) == {1}  # T, Z and C never share a chunk
    assert _close(lazy.compute(), ref, img)


def test_chunks_start_on_the_pooling_grid(model):
    job = tiling.build(da.zeros((1000, 777), chunks=100) + 1.0, model, axes="YX", tile_size=50)
    m = model.network.multiple
    assert job.plan.tile % m == 0 and job.plan.halo % m == 0
    assert job.plan.halo >= model.network.receptive_radius(1)
    for c in job.result.chunks:
        starts = np.cumsum((0,) + c[:-1])
        assert all(s % m == 0 for s in starts) and min(c) >= job.plan.halo


def test_tile_derives_from_memory(model):
    small = tiling.build(da.ones((64, 64)), model, axes="YX", memory="200MB").plan.tile
    large = tiling.build(da.ones((64, 64)), model, axes="YX", memory="2GB").plan.tile
    assert small < large and small % model.network.multiple == 0


# -- laziness -------------------------------------------------------------------------------
def test_dask_input_stays_lazy(model):
    calls = []

    def source(block, block_info=None):
        calls.append(1)
        return np.random.default_rng(len(calls)).normal(100, 10, block.shape).astype(np.float32)

    x = da.zeros((2, 200, 200), chunks=(1, 100, 100), dtype=np.float32).map_blocks(source, dtype=np.float32)
    calls.clear()  # dask may probe the function on empty blocks to infer metadata
    out = bsd.denoise(x, model, axes="ZYX")
    assert isinstance(out, da.Array) and out.shape == x.shape
    assert calls == []  # nothing read, nothing computed
    out[0, :10, :10].compute()
    assert 0 < len(calls) < 8  # only what that corner needs


def test_zarr_array_and_path_inputs_are_lazy(model, tmp_path):
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (2, 70, 90)).astype(np.float32)
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=(1, 32, 32), dtype="f4")
    z[:] = img
    z.attrs["axes"] = "ZYX"
    for src in (z, tmp_path / "in.zarr", str(tmp_path / "in.zarr")):
        out = bsd.denoise(src, model)  # axes from the store's attributes
        assert isinstance(out, da.Array)
    assert _close(out.compute(), _untiled(img, model, "ZYX"), img)


def test_numpy_input_still_returns_numpy(model):
    img = np.random.default_rng(0).normal(100, 10, (40, 50)).astype(np.float32)
    out = bsd.denoise(img, model)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    u16 = bsd.denoise(img.astype(np.uint16), model, dtype="input")
    assert u16.dtype == np.uint16


# -- output stores --------------------------------------------------------------------------
def _tiff_stack(path, rng, shape=(3, 150, 140)):
    img = rng.normal(1000, 100, shape).clip(0, 65535).astype(np.uint16)
    tifffile.imwrite(path, img, imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})
    return img


def test_tiff_path_to_zarr_keeps_dtype_and_metadata(model, tmp_path):
    img = _tiff_stack(tmp_path / "in.tif", np.random.default_rng(0))
    events = []
    path = bsd.denoise(tmp_path / "in.tif", model, out=tmp_path / "out.zarr", dtype="input", tile_size=48,
                       callback=events.append)
    z = zarr.open_array(str(path), mode="r")
    assert z.dtype == np.uint16 and z.shape == img.shape
    meta = z.attrs["napari_bsdenoise"]
    assert meta["complete"] and meta["axes"] == "ZYX"
    assert meta["pixel_size"] == {"X": 0.25, "Y": 0.25, "Z": 2.0} and meta["unit"] == "um"
    ref = _untiled(img, model, "ZYX", dtype="input")
    assert np.abs(z[:].astype(np.int64) - ref).max() <= 1
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("chunk") == events[-1].total
    assert events[-2].fraction == 1.0


@pytest.mark.parametrize("axes,shape", [("TZYX", (2, 2, 70, 90)), ("CYX", (2, 67, 81)), ("YXC", (75, 66, 2))])
def test_stores_are_written_chunk_by_chunk_without_the_graph(model, model2c, tmp_path, monkeypatch, axes, shape):
    """zarr/TIFF/numpy sources are read chunk by chunk straight from the backing array (constant cost
    per chunk), with exactly the graph's result; a user's dask array goes through its graph."""
    m = model2c if "C" in axes else model
    img = np.random.default_rng(4).normal(100, 10, shape).astype(np.float32)
    src = tmp_path / "in.zarr"
    zarr.create_array(str(src), shape=shape, chunks=shape, dtype="float32")[...] = img
    kw = dict(axes=axes, tile_size=32, chunk_size=32)
    graph = np.asarray(bsd.denoise(da.from_zarr(str(src)), m, **kw).compute())
    assert tiling.build(str(src), m, **kw).direct is not None
    assert tiling.build(da.from_zarr(str(src)), m, **kw).direct is None
    calls = []
    real = tiling.DirectChunks.__call__
    monkeypatch.setattr(tiling.DirectChunks, "__call__", lambda self, i: calls.append(i) or real(self, i))
    out = bsd.denoise(str(src), m, out=tmp_path / "out.zarr", **kw)
    z = zarr.open_array(str(out), mode="r")
    assert len(calls) == int(np.prod(tiling.build(str(src), m, **kw).result.numblocks)) > 1
    assert np.array_equal(z[:], graph)
    with_dtype = bsd.denoise(str(src), m, out=tmp_path / "out16.zarr", dtype="uint16", **kw)
    assert np.array_equal(zarr.open_array(str(with_dtype), mode="r")[:],
                          np.clip(np.rint(graph), 0, 65535).astype(np.uint16))
    # TIFF pages (T, Z, C held; Y, X written) are assembled from the same direct chunks
    canon = "".join(a for a in "TZCYX" if a in axes)
    tif = tifffile.imread(bsd.denoise(str(src), m, out=tmp_path / "out.tif", **kw))
    assert np.array_equal(tif.reshape(-1), graph.transpose([axes.index(a) for a in canon]).reshape(-1))


def test_resumed_zarr_write_equals_uninterrupted(model, tmp_path):
    rng = np.random.default_rng(3)
    img = rng.normal(100, 10, (3, 190, 100)).astype(np.float32)
    x = da.from_array(img, chunks=(1, 64, 64))
    kw = dict(axes="ZYX", tile_size=96, scheduler="sync")  # 3 x 2 chunks
    full = bsd.denoise(x, model, out=tmp_path / "full.zarr", **kw)

    seen = []

    def stop_after_4(e):
        seen.append(e)
        return not (e.kind == "chunk" and e.step >= 4)

    with pytest.raises(InterruptedError):
        bsd.denoise(x, model, out=tmp_path / "part.zarr", callback=stop_after_4, **kw)
    assert not tiling.is_complete(tmp_path / "part.zarr")  # an interrupted store never looks done
    total = seen[-1].total
    events = []
    bsd.denoise(x, model, out=tmp_path / "part.zarr", callback=events.append, **kw)
    assert events[0].kind == "start" and events[0].step == 4 and "resuming" in events[0].message
    assert sum(e.kind == "chunk" for e in events) == total - 4  # finished chunks not recomputed
    assert tiling.is_complete(tmp_path / "part.zarr")
    a = zarr.open_array(str(full), mode="r")[:]
    b = zarr.open_array(str(tmp_path / "part.zarr"), mode="r")[:]
    assert np.array_equal(a, b)
    assert _close(a, _untiled(img, model, "ZYX"), img)
    # a different job must not silently resume into that store
    with pytest.raises(InputError, match="exists"):
        bsd.denoise(x, model, out=tmp_path / "part.zarr", axes="ZYX", blind_spot=3)


def test_resume_keeps_the_stored_tiling_when_memory_changes(model, tmp_path):
    img = np.random.default_rng(0).normal(100, 10, (2, 60, 60)).astype(np.float32)
    with pytest.raises(InterruptedError):
        bsd.denoise(img, model, axes="ZYX", out=tmp_path / "o.zarr", memory="200MB",
                    callback=lambda e: e.kind != "chunk")
    events = []
    bsd.denoise(img, model, axes="ZYX", out=tmp_path / "o.zarr", memory="3GB", callback=events.append)
    assert events[0].step == 1 and tiling.is_complete(tmp_path / "o.zarr")
    assert _close(zarr.open_array(str(tmp_path / "o.zarr"))[:], _untiled(img, model, "ZYX"), img)


def test_tiff_output_and_partial_file(model, tmp_path):
    img = _tiff_stack(tmp_path / "in.tif", np.random.default_rng(0), shape=(2, 100, 90))
    x = da.from_array(img, chunks=(1, 50, 50))
    for name in ("out.tif", "out.ome.tif"):
        path = bsd.denoise(tmp_path / "in.tif", model, out=tmp_path / name)
        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            assert tif.series[0].axes.replace("Q", "Z")[-2:] == "YX"
        assert data.dtype == np.float32 and data.shape == img.shape
        assert _close(data, _untiled(img, model, "ZYX"), img)
    with pytest.raises(InterruptedError):
        bsd.denoise(x, model, axes="ZYX", out=tmp_path / "c.tif", callback=lambda e: e.kind != "chunk")
    assert not (tmp_path / "c.tif").exists() and not (tmp_path / "c.tif.partial").exists()


def test_denoise_iter_yields_progress(model, tmp_path):
    img = np.random.default_rng(0).normal(100, 10, (2, 60, 60)).astype(np.float32)
    gen = bsd.denoise_iter(img, model, out=tmp_path / "o.zarr", axes="ZYX")
    events = list(gen)
    assert [e.kind for e in events] == ["start", "chunk", "chunk", "done"]


# -- out of memory ----------------------------------------------------------------------------
class _OOMOnBigTiles:
    """Wraps a network: raises torch's OOM for windows wider than ``limit`` pixels."""

    def __init__(self, net, limit):
        self.net, self.limit, self.multiple = net, limit, net.multiple

    def receptive_radius(self, s):
        return self.net.receptive_radius(s)

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, x, s):
        import torch

        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.net(x, s)


def test_out_of_memory_halves_the_tile_and_says_so(model, monkeypatch, tmp_path):
    img = np.random.default_rng(0).normal(100, 10, (150, 300)).astype(np.float32)
    real = tiling.ModelRef.network
    monkeypatch.setattr(tiling.ModelRef, "network", lambda self, dev: _OOMOnBigTiles(real(self, dev), 250))
    events = []
    with pytest.warns(ResourceWarning, match="out of memory"):
        path = bsd.denoise(img, model, out=tmp_path / "o.zarr", tile_size=512, callback=events.append,
                           scheduler="sync")
    assert any("out of memory" in e.message for e in events)
    assert _close(zarr.open_array(str(path))[:], _untiled(img, model, "YX"), img)


# -- cluster ----------------------------------------------------------------------------------
def test_local_cluster_matches_threads(model, tmp_path):
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(5)
    img = rng.normal(100, 10, (2, 181, 90)).astype(np.float32)  # 2 x 2 chunks, overlapping along Y
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=(1, 64, 64), dtype="f4")
    z[:] = img
    threaded = bsd.denoise(tmp_path / "in.zarr", model, axes="ZYX", tile_size=64).compute(scheduler="threads")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"OMP_NUM_THREADS": "1"}) as cluster, distributed.Client(cluster) as client:
        lazy = bsd.denoise(tmp_path / "in.zarr", model, axes="ZYX", tile_size=64, client=client)
        on_cluster = client.compute(lazy).result()
        tifffile.imwrite(tmp_path / "in.tif", img, imagej=True, metadata={"axes": "ZYX"})
        from_tiff = client.compute(bsd.denoise(tmp_path / "in.tif", model, tile_size=64, client=client)).result()
        path = bsd.denoise(tmp_path / "in.zarr", model, axes="ZYX", tile_size=64, client=client,
                           out=tmp_path / "out.zarr")
        loaded = client.run(lambda: sorted(k for k in tiling.MODEL_CACHE if isinstance(k, str)))
    # equal up to float rounding: workers run torch with 1 thread, the test process maybe with more,
    # and oneDNN may then pick other convolution kernels
    assert _close(on_cluster, threaded, img) and _close(from_tiff, threaded, img)
    assert _close(zarr.open_array(str(path))[:], threaded, img)
    assert len(loaded) == 2 and all(len(v) == 1 for v in loaded.values())  # one model per worker
    assert _close(threaded, _untiled(img, model, "ZYX"), img)


def test_model_ref_pickles_without_weights_on_a_cluster(model):
    import pickle

    key, payload = tiling.model_payload(model)
    assert len(pickle.dumps(tiling.ModelRef(key, None))) < 200
    net = tiling.model_from_payload(payload)
    sd = model.network.state_dict()
    assert all(np.array_equal(v.numpy(), sd[k].numpy()) for k, v in net.state_dict().items())


# -- CLI --------------------------------------------------------------------------------------
def test_cli_streams_to_zarr(model, tmp_path, capsys):
    from napari_bsdenoise.cli import main

    img = _tiff_stack(tmp_path / "in.tif", np.random.default_rng(0), shape=(2, 100, 90))
    model.save(tmp_path / "m.safetensors")
    rc = main(["denoise", str(tmp_path / "m.safetensors"), str(tmp_path / "in.tif"), "-o",
               str(tmp_path / "o.zarr"), "--scheduler", "threads", "-q"])
    assert rc == 0, capsys.readouterr().err
    z = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")
    assert z.attrs["napari_bsdenoise"]["complete"]
    assert _close(z[:], _untiled(img, model, "ZYX"), img)
    assert json.dumps(z.attrs["napari_bsdenoise"]["pixel_size"])


def test_nan_in_a_lazy_chunk_is_a_clear_error(model, tmp_path):
    """Lazy inputs cannot be scanned up front; the chunk that holds a NaN says so when it is read."""
    arr = np.random.default_rng(0).normal(100, 10, (480, 480)).astype(np.float32)
    arr[400, 420] = np.nan
    x = da.from_array(arr, chunks=120)
    out = bsd.denoise(x, model, chunk_size=128)  # still lazy: nothing read yet
    np.testing.assert_array_equal(np.isfinite(out[:64, :64].compute()), True)  # clean chunks work
    with pytest.raises(InputError, match="NaN or infinite values near Y"):
        out.compute()
    with pytest.raises(InputError, match="NaN or infinite"):
        bsd.denoise(x, model, out=tmp_path / "d.zarr")
    with pytest.raises(InputError, match="NaN or infinite"):
        bsd.denoise(x, model, renormalize=True)
