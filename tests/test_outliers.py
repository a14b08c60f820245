"""Hot and dead pixels (nn.outliers, issue #19): found against the noise model, never put back by the
fusion or a non-blind output, in every path; real structure (lines, spots, edges) is not touched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_bsdenoise as bsd
from napari_bsdenoise.errors import InputError
from napari_bsdenoise.nn.outliers import OutlierParams, find_outliers, repair, ring_median

SIGMA = 4.0
HOT = [(20, 30), (70, 81)]  # single hot pixels
CLUSTER = (44, 60)  # top-left of a 2x2 hot cluster


def _params():
    return OutlierParams(((0.0,),), ((1.0,),))  # unit noise variance at every intensity


def _unit_noise(rng, shape=(128, 128)):
    return torch.from_numpy(rng.normal(0, 1, (1, 1) + shape).astype(np.float32))


@pytest.mark.parametrize("shape", [(1, 1, 37, 53), (2, 3, 6, 5), (1, 1, 1, 4)])
def test_ring_median_sorting_network_equals_a_sort(rng, shape):
    x = torch.from_numpy(rng.normal(0, 1, shape).astype(np.float32))
    x[..., ::3, ::2] = 0.5  # ties
    n, c, h, w = shape
    ring = [i for i in range(25) if not (1 <= i // 5 <= 3 and 1 <= i % 5 <= 3)]
    xp = torch.nn.functional.pad(x.reshape(n * c, 1, h, w), (2, 2, 2, 2), mode="replicate")
    values = torch.nn.functional.unfold(xp, 5)[:, ring].sort(dim=1).values
    mid = values[:, 7:9].mean(dim=1)
    spread = torch.maximum(values[:, -1] - mid, mid - values[:, 0])
    got_mid, got_spread = ring_median(x)
    assert torch.allclose(got_mid, mid.reshape(shape), atol=1e-6)
    assert torch.allclose(got_spread, spread.reshape(shape), atol=1e-6)


def test_isolated_outliers_and_2x2_clusters_are_found(rng):
    x = _unit_noise(rng)
    x[0, 0, 20, 30] += 12
    x[0, 0, 90, 40] -= 12  # a dead pixel
    x[0, 0, 50:52, 70:72] += 9  # a 2x2 cluster
    mask, _ = find_outliers(x, _params())
    found = {tuple(map(int, p)) for p in np.argwhere(mask[0, 0].numpy())}
    assert found == {(20, 30), (90, 40), (50, 70), (50, 71), (51, 70), (51, 71)}
    fixed = repair(x, _params())
    assert float(fixed[0, 0, 20, 30].abs()) < 3 and float(fixed[0, 0, 50:52, 70:72].abs().max()) < 3
    assert torch.equal(fixed[~mask], x[~mask])  # nothing else changes


def test_lines_spots_and_edges_are_not_outliers(rng):
    x = _unit_noise(rng)
    x[0, 0, 10, 5:60] += 15  # a thin bright line, 1 pixel wide
    yy, xx = np.mgrid[:128, :128]
    x[0, 0] += torch.from_numpy((25 * np.exp(-((yy - 80) ** 2 + (xx - 30) ** 2) / (2 * 1.0**2))).astype(np.float32))
    x[0, 0, 60:, 90:] += 20  # a bright square: edges and a corner
    x[0, 0, 30:40, 100:101] += 12  # a short vertical line
    mask, _ = find_outliers(x, _params())
    assert int(mask.sum()) == 0
    assert int(find_outliers(_unit_noise(rng, (256, 256)), _params())[0].sum()) == 0  # noise alone


@pytest.fixture(scope="module")
def scene():
    """A smooth image with Poisson-Gaussian noise, its hot-pixel copy, and an AT-BSN trained on it."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:96, :96]
    clean = 200 + 100 * np.sin(yy / 15.0) * np.cos(xx / 21.0)
    noisy = (rng.poisson(clean / 4.0) * 4.0 + rng.normal(0, SIGMA, clean.shape)).astype(np.float32)
    hot = noisy.copy()
    for y, x in HOT:
        hot[y, x] += 500
    hot[CLUSTER[0] : CLUSTER[0] + 2, CLUSTER[1] : CLUSTER[1] + 2] += 400
    model = bsd.train(noisy, steps=4, blind_spot=1, network={"width": 8, "depth": 2}, patch_size=32, seed=0)
    return noisy, hot, model


def _noise_sigma(model, value):
    from napari_bsdenoise.noise import NoiseCorrelation

    return float(np.sqrt(NoiseCorrelation.from_dict(model.config.noise).noise_variance(value)))


def _pixels():
    cy, cx = CLUSTER
    return HOT + [(cy, cx), (cy + 1, cx + 1)]


def _check_removed(out, ref, model):
    for y, x in _pixels():
        assert abs(float(out[y, x]) - float(ref[y, x])) < 3 * _noise_sigma(model, ref[y, x]), (y, x)


def test_the_fused_default_no_longer_puts_a_hot_pixel_back(scene):
    noisy, hot, model = scene
    ref = bsd.denoise(noisy, model, fusion=True)
    # the defect this guards against: the fusion restores what the blind spot removed
    kept = bsd.denoise(hot, model, fusion=True, hot_pixels="keep")
    assert all(kept[y, x] - ref[y, x] > 300 for y, x in HOT)
    _check_removed(bsd.denoise(hot, model, fusion=True), ref, model)
    _check_removed(bsd.denoise(hot, model, blind_spot=0), bsd.denoise(noisy, model, blind_spot=0), model)
    assert int(bsd.find_hot_pixels(hot, model).sum()) == len(HOT) + 4
    assert int(bsd.find_hot_pixels(noisy, model).sum()) == 0
    np.testing.assert_array_equal(hot, scene[1])  # the input is never changed in place


def test_every_path_repairs_the_same_way(scene, tmp_path):
    da = pytest.importorskip("dask.array")
    _, hot, model = scene
    whole = bsd.denoise(hot, model, fusion=True)
    np.testing.assert_allclose(bsd.denoise(hot, model, fusion=True, tile_size=32), whole, atol=1e-4)
    lazy = bsd.denoise(da.from_array(hot, chunks=48), model, fusion=True, chunk_size=32)
    np.testing.assert_allclose(np.asarray(lazy.compute()), whole, atol=1e-4)
    out = bsd.denoise(hot, model, fusion=True, out=tmp_path / "den.zarr", chunk_size=32)
    import zarr

    np.testing.assert_allclose(np.asarray(zarr.open_array(str(out), mode="r")), whole, atol=1e-4)
    preview = bsd.api.Preview(model, hot, fusion=True).render(1)
    np.testing.assert_allclose(preview, whole, atol=1e-3)


def test_dbsn_students_and_distillation_targets_do_not_reproduce_hot_pixels(scene):
    noisy, hot, model = scene
    d = bsd.train(noisy, method="dbsn", steps=3, network={"width": 8, "depth": 1}, patch_size=32)
    _check_removed(bsd.denoise(hot, d, check=False), bsd.denoise(noisy, d, check=False), d)  # D-BSN: sees the pixel
    kw = dict(steps=1, student={"width": 8, "depth": 2}, patch_size=32, teacher_blind_spots=[1], fusion=True)
    distiller = bsd.make_distiller(hot, model, **kw)
    assert distiller.model.config.training["distillation"]["hot_pixels"] == "repaired"
    window = (slice(None), slice(None), slice(4, 68), slice(14, 78))  # a patch holding HOT[0]

    def fused_target(d, data):  # blind spot 1 fused with the noisy input, as denoise would
        return d.targets(torch.from_numpy(data[window].copy()))[0][0, 0]

    ref = fused_target(bsd.make_distiller(noisy, model, **kw), bsd.make_distiller(noisy, model, **kw).sampler.data)
    plain = fused_target(bsd.make_distiller(hot, model, hot_pixels="keep", **kw), distiller.sampler.data)
    target = fused_target(distiller, distiller.sampler.data)
    y, x = HOT[0][0] - 4, HOT[0][1] - 14
    scale = model.config.normalization.std[0]
    assert abs(float(plain[y, x] - ref[y, x])) * scale > 3 * _noise_sigma(model, 200)  # the defect
    assert abs(float(target[y, x] - ref[y, x])) * scale < 3 * _noise_sigma(model, 200)


def test_bad_hot_pixel_options_are_clear_errors(scene):
    noisy, _, model = scene
    with pytest.raises(InputError, match="hot_pixels must be one of"):
        bsd.denoise(noisy, model, hot_pixels="yes")
    from napari_bsdenoise.config import ModelConfig

    bare = bsd.BlindSpotModel(ModelConfig.from_dict({**model.config.to_dict(), "noise": None}), model.network)
    with pytest.raises(InputError, match="noise estimate"):
        bsd.denoise(noisy, bare, hot_pixels="remove")
    np.testing.assert_array_equal(bsd.denoise(noisy, bare), bsd.denoise(noisy, bare, hot_pixels="keep"))


def test_cli_repairs_hot_pixels_and_says_how_many(scene, tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    from napari_bsdenoise.cli import main

    noisy, hot, model = scene
    model_path = model.save(tmp_path / "m.safetensors")
    tifffile.imwrite(tmp_path / "hot.tif", hot)
    assert main(["denoise", str(model_path), str(tmp_path / "hot.tif"), "-o", str(tmp_path / "a.tif"),
                 "--blind-spot", "0"]) == 0
    assert f"repaired {len(HOT) + 4} hot/dead pixel(s)" in capsys.readouterr().err
    assert main(["denoise", str(model_path), str(tmp_path / "hot.tif"), "-o", str(tmp_path / "b.tif"),
                 "--blind-spot", "0", "--hot-pixels", "keep"]) == 0
    assert "repaired" not in capsys.readouterr().err
    np.testing.assert_allclose(tifffile.imread(tmp_path / "a.tif"), bsd.denoise(hot, model, blind_spot=0), atol=1e-4)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "b.tif"),
                               bsd.denoise(hot, model, blind_spot=0, hot_pixels="keep"), atol=1e-4)


def test_training_data_hot_pixels_are_repaired_counted_and_summarised(scene):
    _, hot, _ = scene
    kw = dict(steps=1, blind_spot=1, network={"width": 8, "depth": 1}, patch_size=32)
    model = bsd.train(hot, **kw)
    assert model.config.training["hot_pixels"] == {"mode": "auto", "repaired": len(HOT) + 4}
    assert f"{len(HOT) + 4} hot/dead pixel(s) repaired before training" in model.summary()
    kept = bsd.train(hot, hot_pixels="keep", **kw)
    assert "hot_pixels" not in kept.config.training and "hot/dead" not in kept.summary()
    # the repaired data is what the trainer sees; the user's array is untouched
    trainer = bsd.make_trainer(hot, **kw)
    assert float(trainer.sampler.data.max()) * model.config.normalization.std[0] < 400
    assert hot.max() > 500
