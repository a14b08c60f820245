"""3-D networks through the API (#15): training on volumes, the blind box end to end, tiles, files, axes."""

import numpy as np
import pytest

import napari_bsdenoise as bsd
from napari_bsdenoise.errors import InputError
from napari_bsdenoise.methods.blindspot import resolve_spatial_dims

NET = {"width": 4, "depth": 1}


def _volume(shape=(16, 40, 36), seed=0, z_kernel=None):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape[-3:]), indexing="ij")
    clean = 40 + 60 * (((zz - shape[-3] / 2) / 5) ** 2 + ((yy - 20) / 12) ** 2 + ((xx - 18) / 10) ** 2 < 1)
    noise = rng.normal(0, 8, shape)
    if z_kernel is not None:  # noise correlated along Z only (resampled, deskewed data)
        noise = sum(np.roll(noise, k, axis=-3) for k in range(z_kernel)) / np.sqrt(z_kernel)
    return (clean + noise).astype(np.float32)


@pytest.fixture(scope="module")
def model3d():
    return bsd.train(_volume(), axes="ZYX", spatial_dims=3, network=NET, steps=2, seed=0)


def test_a_volume_trains_a_3d_network(model3d):
    cfg = model3d.config
    assert cfg.network.spatial_dims == 3 and type(model3d.network).__name__ == "ATBSN3D"
    assert cfg.training["patch_depth"] == 16 and "3-D" in model3d.summary()
    assert cfg.noise["along_z"]["correlation_length"] == 0  # pixel-independent along Z too
    # the summary claims no fusion with the noisy input, which 3-D models skip, even for correlated noise
    import copy

    correlated = copy.deepcopy(model3d)
    correlated.config.noise["correlation_length"] = 2
    assert "fused" not in correlated.summary()
    assert bsd.api.resolve_fusion(correlated, 1, cfg.normalization, "auto") is None


def test_denoise_hides_the_voxel_it_predicts(model3d):
    """Changing one input voxel leaves its own output unchanged (blind spot 1, nothing fused with the noisy
    input) but changes the outputs of neighbours in Z, Y and X: the blind spot is 3-D end to end."""
    vol = _volume()
    out = bsd.denoise(vol, model3d, axes="ZYX")
    poked = vol.copy()
    poked[8, 20, 18] += 500
    out2 = bsd.denoise(poked, model3d, axes="ZYX")
    assert out.shape == vol.shape and out.dtype == np.float32
    assert abs(out2[8, 20, 18] - out[8, 20, 18]) < 1e-3
    for nb in ((7, 20, 18), (9, 20, 18), (8, 19, 18), (8, 21, 18), (8, 20, 17), (8, 20, 19)):
        assert abs(out2[nb] - out[nb]) > 1e-3, nb
    # a 3x3x3 box hides the six neighbours too; a (1, 3, 3) box only the in-plane ones
    box = bsd.denoise(poked, model3d, axes="ZYX", blind_spot=3) - bsd.denoise(vol, model3d, axes="ZYX", blind_spot=3)
    assert np.abs(box[7:10, 19:22, 17:20]).max() < 1e-3
    flat = bsd.denoise(poked, model3d, axes="ZYX", blind_spot=(1, 3, 3)) - bsd.denoise(vol, model3d, axes="ZYX",
                                                                                      blind_spot=(1, 3, 3))
    assert np.abs(flat[8, 19:22, 17:20]).max() < 1e-3 and abs(flat[7, 20, 18]) > 1e-3


def test_tiled_3d_equals_untiled(model3d):
    vol = _volume((16, 96, 40), seed=1)
    whole = bsd.denoise(vol, model3d, axes="ZYX", tile_size=512)
    tiled = bsd.denoise(vol, model3d, axes="ZYX", tile_size=8)  # 8-voxel cubes with a 22-voxel halo
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_model_file_round_trip(model3d, tmp_path):
    path = tmp_path / "vol.safetensors"
    model3d.save(path)
    back = bsd.load_model(path)
    assert back.config.network.spatial_dims == 3
    vol = _volume(seed=2)
    np.testing.assert_array_equal(bsd.denoise(vol, back, axes="ZYX"), bsd.denoise(vol, model3d, axes="ZYX"))


def test_time_lapse_and_channels(model3d):
    tz = np.stack([_volume(seed=3), _volume(seed=4)])
    assert bsd.denoise(tz, model3d, axes="TZYX").shape == tz.shape
    czyx = np.stack([_volume(seed=5), _volume(seed=6)])
    m = bsd.train(czyx, axes="CZYX", spatial_dims=3, network=NET, steps=1)
    assert m.config.channel_mode == "independent" and bsd.denoise(czyx, m, axes="CZYX").shape == czyx.shape


def test_noise_correlated_along_z_gets_a_z_blind_spot():
    m = bsd.train(_volume((32, 48, 48), z_kernel=3), axes="ZYX", spatial_dims=3, network=NET, steps=1)
    z, y, x = m.config.train_blind_spot
    assert z >= 3 and (y, x) == (1, 1), m.config.train_blind_spot
    assert m.config.noise["along_z"]["lags"][0] > 0.4


@pytest.mark.parametrize("axes,shape,method,expected", [
    ("ZYX", (16, 32, 32), "atbsn", 3), ("ZYX", (16, 32, 32), "auto", 3), ("ZYX", (12, 32, 32), "atbsn", 2),
    ("ZYX", (16, 32, 32), "dbsn", 2), ("YX", (32, 32), "atbsn", 2), ("TYX", (20, 32, 32), "atbsn", 2)])
def test_auto_spatial_dims(axes, shape, method, expected):
    assert resolve_spatial_dims("auto", np.zeros(shape, np.float32), axes, method, None) == expected


def test_clear_errors(model3d):
    vol = _volume()
    with pytest.raises(InputError, match="Z axis"):
        bsd.train(vol[0], spatial_dims=3, network=NET, steps=1)
    with pytest.raises(InputError, match="no 3-D network"):
        bsd.train(vol, axes="ZYX", method="dbsn", spatial_dims=3, steps=1)
    with pytest.raises(InputError, match="at least 8 slices"):
        bsd.train(vol[:5], axes="ZYX", spatial_dims=3, network=NET, steps=1)
    with pytest.raises(InputError, match="3-D network"):
        bsd.train(vol[0], blind_spot=(1, 3, 3), network=NET, steps=1)
    with pytest.raises(InputError, match="spatial_dims"):
        bsd.train(vol, axes="ZYX", spatial_dims=4, steps=1)
    with pytest.raises(InputError, match=r"\(z, y, x\)"):
        bsd.denoise(vol, model3d, axes="ZYX", blind_spot=(1, 3))
    with pytest.raises(InputError, match="Z axis"):
        bsd.denoise(vol[0], model3d)
    with pytest.raises(InputError, match="cannot be continued"):
        bsd.train(vol, axes="ZYX", model=model3d, spatial_dims=2, steps=1)
    assert not bsd.safety_check(vol, model3d, axes="ZYX").checked


@pytest.mark.parametrize("which, shape, chunk, blocks", [("model3d", (2, 48, 48, 48), 24, (2, 2, 2)),
                                                         ("model25d", (2, 20, 48, 48), 8, (3, 2, 2))])
def test_lazy_and_zarr_volumes_equal_the_in_memory_result(which, shape, chunk, blocks, request, tmp_path):
    """A 3-D model over a dask array and into a zarr store, in chunks of Z, Y and X with their halos
    (small chunks, so every axis is split), gives the in-memory result; the input stays as it was."""
    import dask.array as da
    import zarr

    model = request.getfixturevalue(which)
    vol = _volume(shape, seed=3)  # TZYX: a time-lapse of volumes
    kept = vol.copy()
    whole = bsd.denoise(vol, model, axes="TZYX", check=False)
    lazy = bsd.denoise(da.from_array(vol), model, axes="TZYX", tile_size=chunk, chunk_size=chunk)
    assert isinstance(lazy, da.Array) and lazy.numblocks == (2,) + blocks  # Z (the 2.5-D halo is 2 planes), Y, X

    np.testing.assert_allclose(lazy.compute(), whole, atol=1e-4)
    src = zarr.open(str(tmp_path / "in.zarr"), mode="w", shape=vol.shape, chunks=(1, 8, 16, 16), dtype=vol.dtype)
    src[:] = vol
    out = bsd.denoise(str(tmp_path / "in.zarr"), model, axes="TZYX", out=str(tmp_path / "out.zarr"),
                      tile_size=chunk, chunk_size=chunk)
    np.testing.assert_allclose(np.asarray(zarr.open(str(out), mode="r")), whole, atol=1e-4)
    # into a TIFF: page by page from slabs of one Z chunk (each 3-D block computed once)
    import tifffile

    tif = bsd.denoise(str(tmp_path / "in.zarr"), model, axes="TZYX", out=str(tmp_path / "out.tif"),
                      tile_size=chunk, chunk_size=chunk)
    np.testing.assert_allclose(tifffile.imread(str(tif)), whole, atol=1e-4)
    np.testing.assert_array_equal(vol, kept)


def test_lazy_volumes_fail_clearly(model25d, tmp_path):
    import dask.array as da

    vol = _volume((20, 48, 48), seed=4)
    bad = vol.copy()
    bad[17, 30, 40] = np.nan
    with pytest.raises(InputError, match=r"NaN or infinite values near Z (8:16|16:20), Y \d+:48, X \d+:48"):
        bsd.denoise(da.from_array(bad), model25d, axes="ZYX", chunk_size=8).compute()
    # its own statistics (renormalize) from a subsample of the planes: close to the in-memory ones
    own = bsd.denoise(da.from_array(vol * 2 + 100), model25d, axes="ZYX", renormalize=True).compute()
    ref = bsd.denoise(vol * 2 + 100, model25d, axes="ZYX", renormalize=True, check=False)
    assert np.abs(own - ref).mean() < 0.01 * ref.std()


def test_cli_trains_and_applies_a_3d_model(tmp_path, capsys):
    import tifffile

    from napari_bsdenoise.cli import main

    tif, model, out = tmp_path / "stack.tif", tmp_path / "vol.safetensors", tmp_path / "den.tif"
    tifffile.imwrite(tif, _volume().astype(np.uint16), imagej=True, metadata={"axes": "ZYX"})
    assert main(["train", str(tif), "-o", str(model), "--spatial-dims", "3", "--steps", "1",
                 "--blind-spot", "1x3x3", "-q"]) == 0
    m = bsd.load_model(model)
    assert m.config.network.spatial_dims == 3 and m.config.train_blind_spot == (1, 3, 3)
    assert m.config.network.z_context == 2  # the default volume network: 2.5-D
    assert main(["denoise", str(model), str(tif), "-o", str(out), "--blind-spot", "1x1x1", "-q"]) == 0
    assert tifffile.imread(out).shape == (16, 40, 36)
    # streamed chunk by chunk into a zarr store: the same result
    assert main(["denoise", str(model), str(tif), "-o", str(tmp_path / "den.zarr"), "--blind-spot", "1x1x1", "-q"]) == 0
    import zarr

    np.testing.assert_allclose(np.asarray(zarr.open(str(tmp_path / "den.zarr"), mode="r")), tifffile.imread(out),
                               atol=1e-3)


def test_z_correlation_estimate_is_exact_and_ignores_smooth_signal():
    """White noise on a signal that is smooth along Z (a long axial PSF) is independent between slices; noise
    filtered along Z by [1, 1] has lag-1 correlation 0.5, which the estimate reads to 0.05."""
    from scipy.ndimage import gaussian_filter

    from napari_bsdenoise.noise.estimate import z_noise_correlation

    rng = np.random.default_rng(0)
    signal = gaussian_filter(rng.random((32, 96, 96)) > 0.97, (4, 1, 1)).astype(np.float64) * 400
    white = rng.normal(0, 5, signal.shape)
    z = z_noise_correlation((signal + white)[None, None])
    assert z.length == 0 and (z.train_side, z.inference_side) == (1, 1) and abs(z.lags[0]) < 0.05
    pair = (white + np.roll(white, 1, axis=0)) / np.sqrt(2)
    z = z_noise_correlation((signal + pair)[None, None])
    assert abs(z.lags[0] - 0.5) < 0.05 and z.length == 1 and (z.train_side, z.inference_side) == (3, 3)


NET_25D = {"width": 4, "depth": 1, "z_context": 1}


@pytest.fixture(scope="module")
def model25d():
    return bsd.train(_volume(), axes="ZYX", spatial_dims=3, network=NET_25D, steps=2, seed=0)


def test_a_volume_trains_a_25d_network(model25d):
    cfg = model25d.config
    assert type(model25d.network).__name__ == "ATBSN25D" and cfg.network.z_context == 1
    assert cfg.training["patch_depth"] == 2 + 4  # the 4 planes the loss counts and one on each side
    assert cfg.training["patch_size"] == 36  # 2-D patches (64, cut to the image), not the 3-D network's 32
    assert "2.5-D" in model25d.summary()


def test_25d_denoise_hides_the_voxel_and_sees_the_planes_beside_it(model25d):
    vol = _volume()
    out = bsd.denoise(vol, model25d, axes="ZYX")
    poked = vol.copy()
    poked[8, 20, 18] += 500
    diff = np.abs(bsd.denoise(poked, model25d, axes="ZYX") - out)
    assert diff[8, 20, 18] < 1e-3
    for nb in ((7, 20, 18), (9, 20, 18), (8, 19, 18), (8, 21, 18), (8, 20, 17), (8, 20, 19)):
        assert diff[nb] > 1e-3, nb
    assert diff[6].max() < 1e-6 and diff[10].max() < 1e-6  # one plane of context on each side, no more


def test_25d_tiled_equals_untiled_and_file_round_trip(model25d, tmp_path):
    vol = _volume((16, 96, 40), seed=1)
    whole = bsd.denoise(vol, model25d, axes="ZYX", tile_size=512)
    np.testing.assert_allclose(bsd.denoise(vol, model25d, axes="ZYX", tile_size=8), whole, atol=1e-4)
    # (z, y, x) tiles: each pass predicts only its own planes, the Z halo is context
    np.testing.assert_allclose(bsd.denoise(vol, model25d, axes="ZYX", tile_size=(3, 16, 8)), whole, atol=1e-4)
    model25d.save(tmp_path / "v.safetensors")
    back = bsd.load_model(tmp_path / "v.safetensors")
    assert back.config.network.z_context == 1
    np.testing.assert_array_equal(bsd.denoise(vol, back, axes="ZYX", tile_size=512), whole)


def test_25d_z_correlated_noise_keeps_its_z_side_at_inference():
    """The context planes sit just beyond the training Z side, so inference keeps that side."""
    m = bsd.train(_volume((32, 48, 48), z_kernel=3), axes="ZYX", spatial_dims=3, network=NET_25D, steps=1)
    z = m.config.train_blind_spot[0]
    assert z >= 3 and m.config.inference_blind_spot[0] == z
    assert m.network.context_offsets(m.config.inference_blind_spot)[-1] == (z + 1) // 2


def test_z_context_needs_a_3d_network():
    with pytest.raises(InputError, match="z_context"):
        bsd.train(_volume()[0], network=NET_25D, steps=1)
    with pytest.raises(InputError, match="z_context"):
        bsd.train(_volume(), axes="ZYX", spatial_dims=3, network={**NET_25D, "z_context": -1}, steps=1)


def test_volume_presets_choose_the_network(tmp_path):
    """The volume sizes are the 2.5-D network; ``*-full3d`` the full 3-D one, for volumes only (API and CLI)."""
    from napari_bsdenoise.cli import main

    vol = _volume()
    assert type(bsd.train(vol, axes="ZYX", spatial_dims=3, steps=1).network).__name__ == "ATBSN25D"
    full = bsd.train(vol, axes="ZYX", spatial_dims=3, network="tiny-full3d", steps=1)
    assert type(full.network).__name__ == "ATBSN3D" and (full.config.network.width, full.config.network.depth) == (8, 2)
    with pytest.raises(InputError, match="network must be one of"):
        bsd.train(vol[0], network="tiny-full3d", steps=1)
    import tifffile

    tifffile.imwrite(tmp_path / "v.tif", vol.astype(np.uint16), imagej=True, metadata={"axes": "ZYX"})
    assert main(["train", str(tmp_path / "v.tif"), "-o", str(tmp_path / "f.safetensors"),
                 "--spatial-dims", "3", "--network", "tiny-full3d", "--steps", "1", "-q"]) == 0
    assert bsd.load_model(tmp_path / "f.safetensors").config.network.z_context == 0


def test_volume_tiles_and_halos_follow_the_network(model3d, model25d):
    """The 2.5-D network tiles one plane of a 2-D-sized tile by default and does not round its Z sides to
    the pooling grid (it does not pool along Z); the full 3-D network tiles cubes on its grid."""
    from napari_bsdenoise.engine.predict import volume_halos, volume_tiles
    from napari_bsdenoise.engine.tiling.runners import _smaller_tile

    net25, net3 = model25d.network, model3d.network
    assert volume_tiles(net25) == (1, 512, 512) and volume_tiles(net25, 8) == (1, 8, 8)
    assert volume_tiles(net25, (3, 9, 16)) == (3, 10, 16)  # in-plane on the grid of 2, Z as asked
    assert volume_halos(net25, 1, None)[0] == 1 and volume_halos(net25, 1, None)[1] % net25.multiple == 0
    assert volume_tiles(net3) == (64, 64, 64) and volume_tiles(net3, (3, 8, 8)) == (4, 8, 8)
    with pytest.raises(ValueError, match="tile"):
        volume_tiles(net3, (8, 8))
    assert _smaller_tile((4, 64, 64), 2) == (2, 32, 32) and _smaller_tile((1, 2, 2), 2) == (1, 2, 2)
    assert _smaller_tile(64, 8) == 32


@pytest.mark.parametrize("which", ["model3d", "model25d"])
def test_volumes_repair_hot_pixels_plane_by_plane(which, request, tmp_path):
    """A camera's hot pixels sit at the same Y-X in every Z plane: the 2.5-D network sees the planes above
    and below whole, so they are repaired in each plane before it runs (as in 2-D), in memory and tiled;
    hot_pixels="keep" leaves them; the input is never changed."""
    import dask.array as da

    model = request.getfixturevalue(which)
    vol = _volume(seed=5)
    hot = vol.copy()
    hot[:, 12, 9] += 400  # the same pixel of every plane
    hot[5, 30, 25] += 400  # a cosmic ray in one plane
    kept = hot.copy()
    mask = bsd.find_hot_pixels(hot, model, axes="ZYX")
    assert mask.shape == hot.shape and mask[:, 12, 9].all() and mask[5, 30, 25]
    assert mask.sum() == vol.shape[0] + 1  # nothing else: the sphere's edge is structure
    fixed = bsd.denoise(hot, model, axes="ZYX")
    assert bsd.api.repairs_outliers(model)
    np.testing.assert_array_equal(hot, kept)
    # the repaired input gives the result of a clean input at those pixels, far from the hot value
    patched = hot.copy()
    patched[mask] = vol[mask]
    near = np.abs(fixed - bsd.denoise(patched, model, axes="ZYX"))
    assert near.max() < 0.5 * 8  # (the ring median stands in for the true value: within a noise sigma)
    raw = bsd.denoise(hot, model, axes="ZYX", hot_pixels="keep")
    assert np.abs(raw - fixed).max() > 1.0  # the hot pixels reach the result without the repair
    tiled = bsd.denoise(da.from_array(hot), model, axes="ZYX", chunk_size=16, tile_size=16).compute()
    np.testing.assert_allclose(tiled, fixed, atol=1e-4)
    # training repairs them in its copy of the data too
    net = NET_25D if which == "model25d" else NET
    trained = bsd.train(hot, axes="ZYX", spatial_dims=3, network=net, steps=1, seed=0)
    assert trained.config.training["hot_pixels"]["repaired"] == vol.shape[0] + 1
    np.testing.assert_array_equal(hot, kept)
