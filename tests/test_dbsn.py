"""D-BSN: exact 1-pixel blind spot, NLL training on Poisson-Gaussian data, fusion, method choice, files."""

import numpy as np
import pytest
import torch

import napari_bsdenoise as bsd
from napari_bsdenoise.sample_data import poisson_gaussian
from napari_bsdenoise.errors import InputError
from napari_bsdenoise.nn.dbsn import DBSN, fuse, gaussian_nll

from conftest import psnr

SMALL = {"network": {"width": 8, "depth": 2}, "patch_size": 32, "batch_size": 4}


@pytest.fixture(scope="module")
def model():
    img = np.random.default_rng(1).normal(100, 10, (48, 48)).astype(np.float32)
    return bsd.train(img, method="dbsn", steps=3, **SMALL)


def _grad(net, x, blind_spot, y=16, x0=16):
    x = x.clone().requires_grad_(True)
    net(x, blind_spot)[0, :, y, x0].sum().backward()
    return x.grad[0].abs().sum(0)


def test_blind_spot_is_exactly_the_centre_pixel(device):
    torch.manual_seed(0)
    net = DBSN(1, width=8, depth=3).to(device).eval()
    x = torch.randn(1, 1, 48, 48, device=device)
    g = _grad(net, x, 1).cpu()
    assert g[16, 16] == 0  # mu never sees the pixel it predicts ...
    ring = g[15:18, 15:18].clone()
    ring[1, 1] = 1.0
    assert (ring > 0).all()  # ... but sees each of its 8 neighbours
    # the receptive radius is exact: nothing beyond it matters, the ring at it does
    r = net.receptive_radius()
    assert g[16 + r + 1 :, :].sum() == 0 and g[:, 16 + r + 1 :].sum() == 0
    assert g[16 + r, :].sum() > 0 or g[:, 16 + r].sum() > 0
    # the fused output (blind_spot=0) lets the centre pixel back in
    assert _grad(net, x, 0).cpu()[16, 16] > 0


def test_multichannel_blind_spot_and_any_shape():
    torch.manual_seed(0)
    net = DBSN(3, width=8, depth=2).eval()
    x = torch.randn(1, 3, 37, 53, requires_grad=True)
    parts = net.parts(x)
    assert all(parts[k].shape == x.shape for k in ("mu", "var_mu", "var_n", "fused"))
    assert (parts["var_mu"] > 0).all() and (parts["var_n"] > 0).all()
    parts["mu"][0, :, 18, 26].sum().backward()
    assert x.grad[0, :, 18, 26].abs().sum() == 0  # no channel of the centre pixel leaks
    with pytest.raises(ValueError, match="fixed 1-pixel"):
        net(x, 3)


def test_fusion_and_nll_closed_form():
    mu, y = torch.tensor([0.0]), torch.tensor([1.0])
    # equal variances: halfway; tiny prior variance: mu; tiny noise: y
    assert float(fuse(mu, y, torch.tensor([1.0]), torch.tensor([1.0]))) == pytest.approx(0.5)
    assert float(fuse(mu, y, torch.tensor([1e-6]), torch.tensor([1.0]))) == pytest.approx(0.0, abs=1e-5)
    assert float(fuse(mu, y, torch.tensor([1.0]), torch.tensor([1e-6]))) == pytest.approx(1.0, abs=1e-5)
    v = torch.tensor([0.5]), torch.tensor([1.5])
    assert float(gaussian_nll(y, mu, *v)) == pytest.approx(0.5 * (1 / 2.0 + np.log(2.0)))


@pytest.mark.parametrize("photons", [5, 1000])
def test_nll_training_is_stable_on_uint16_poisson_gaussian(smooth_image, photons):
    noisy, _ = poisson_gaussian(smooth_image / 200, photons=photons, read_noise=2.0, seed=0)
    assert noisy.dtype == np.uint16
    losses = []
    m = bsd.train(noisy, method="dbsn", steps=60, seed=0, callback=lambda e: losses.append(e.loss), **SMALL)
    losses = [v for v in losses if v is not None]
    hist = m.config.training["history"]
    assert np.all(np.isfinite(losses)) and all(np.isfinite(h["val_loss"]) for h in hist)
    assert hist[-1]["val_loss"] < hist[0]["val_loss"] - 0.1
    out = bsd.denoise(noisy, m)
    assert np.isfinite(out).all()
    with torch.no_grad():
        p = m.network.parts(torch.zeros(1, 1, 8, 8))
    assert torch.isfinite(p["var_n"]).all() and torch.isfinite(p["var_mu"]).all()


@pytest.mark.slow
def test_fusion_beats_the_blind_spot_mean(smooth_image):
    """On Poisson-Gaussian noise the posterior mean beats the blind-spot mean (measured: +1.6 dB)."""
    noisy, clean = poisson_gaussian(smooth_image / 200, photons=300, read_noise=2.0, seed=0)
    m = bsd.train(noisy, method="dbsn", steps=150, seed=0, network={"width": 16, "depth": 2},
                  patch_size=48, batch_size=8)
    r = float(clean.max() - clean.min())
    p_fused = psnr(bsd.denoise(noisy, m), clean, r)
    p_mu = psnr(bsd.denoise(noisy, m, blind_spot=1), clean, r)
    assert p_fused > p_mu + 0.5, (p_fused, p_mu)


def test_auto_picks_dbsn_for_independent_and_atbsn_for_correlated_noise(smooth_image):
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(0)
    img = np.tile(smooth_image, (2, 2))
    white = img + rng.normal(0, 10, img.shape)
    tr = bsd.make_trainer(white.astype(np.float32), method="auto", steps=1, **SMALL)
    assert tr.config.network.method == "dbsn" and type(tr).__name__ == "DBSNTrainer"
    assert "pixel-independent" in tr.config.training["method_reason"]
    assert tr.config.noise["recommended_method"] == "dbsn"
    assert (tr.config.train_blind_spot, tr.config.inference_blind_spot) == (1, 0)
    corr = img + 30 * uniform_filter(rng.normal(0, 1, img.shape), 3)
    tr = bsd.make_trainer(corr.astype(np.float32), method="auto", steps=1, patch_size=32, batch_size=4)
    assert tr.config.network.method == "atbsn" and tr.config.train_blind_spot > 1
    assert "correlated" in tr.config.training["method_reason"]
    assert "correlated" in next(iter(tr)).message  # and the start event says why


def test_model_file_round_trip_tiling_and_blind_spots(model, tmp_path, rng):
    assert model.method == "dbsn" and model.inference_blind_spot == 0 and model.config.loss == "nll"
    assert "D-BSN" in model.summary()
    img = rng.normal(100, 10, (70, 90)).astype(np.float32)
    fused = bsd.denoise(img, model)
    mu = bsd.denoise(img, model, blind_spot=1)
    assert fused.shape == img.shape and not np.allclose(fused, mu)
    again = bsd.load_model(model.save(tmp_path / "dbsn.safetensors"))
    assert again.method == "dbsn" and again.config.to_dict() == model.config.to_dict()
    np.testing.assert_array_equal(bsd.denoise(img, again), fused)
    np.testing.assert_allclose(bsd.denoise(img, model, tile_size=16), fused, atol=1e-4)
    np.testing.assert_allclose(bsd.denoise(img, model, tile_size=16, blind_spot=1), mu, atol=1e-4)
    with pytest.raises(InputError, match="fixed 1-pixel"):
        bsd.denoise(img, model, blind_spot=3)


def test_multichannel_independent_and_rgb(rng):
    stack = rng.normal(100, 10, (2, 40, 40)).astype(np.float32)
    m = bsd.train(stack, axes="CYX", method="dbsn", steps=2, **SMALL)
    assert bsd.denoise(stack, m, axes="CYX").shape == stack.shape
    rgb = rng.integers(0, 255, (40, 40, 3)).astype(np.uint8)
    m = bsd.train(rgb, method="dbsn", steps=2, **SMALL)
    assert m.config.network.in_channels == 3 and bsd.denoise(rgb, m).shape == rgb.shape


def test_bad_arguments_are_input_errors(rng, model):
    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    with pytest.raises(InputError, match="unknown method"):
        bsd.train(img, method="dbsnn", steps=1)
    with pytest.raises(InputError, match="fixed 1-pixel"):
        bsd.train(img, method="dbsn", blind_spot=5, steps=1)
    with pytest.raises(InputError, match="nll"):
        bsd.train(img, method="dbsn", loss="l1", steps=1)
    with pytest.raises(InputError, match="D-BSN"):
        bsd.train(img, method="atbsn", loss="nll", steps=1)
    with pytest.raises(InputError, match="cannot be continued"):
        bsd.train(img, method="atbsn", model=model, steps=1)
    cont = bsd.train(img, model=model, steps=2, **{k: v for k, v in SMALL.items() if k != "network"})
    assert cont.method == "dbsn"  # continuing keeps the model's method


def test_distillation_from_a_dbsn_teacher(model, rng, tmp_path):
    """The student learns the teacher's fused output (blind spot 0); no blind-spot set applies."""
    from napari_bsdenoise.engine.distill import DistillTrainer

    img = rng.normal(100, 10, (48, 48)).astype(np.float32)
    d = bsd.make_distiller(img, model, steps=3, patch_size=32, batch_size=4, precision="fp32")
    assert isinstance(d, DistillTrainer) and d.blind_spots == (0,)
    x = torch.from_numpy(d.sampler.batch(2))
    with torch.no_grad():
        np.testing.assert_allclose(d.targets(x)[0].numpy(), model.network(x, 0).numpy(), atol=1e-5)
    for _ in d:
        pass
    student = d.model
    assert student.is_student and student.config.training["distillation"]["teacher_method"] == "dbsn"
    assert "D-BSN" in student.summary()
    again = bsd.load_model(student.save(tmp_path / "student.safetensors"))
    np.testing.assert_array_equal(bsd.denoise(img, again), bsd.denoise(img, student))
    with pytest.raises(InputError, match="blind spot 0"):
        bsd.distill(img, model, teacher_blind_spots=[0, 3], steps=1)


def test_cli_train_method(tmp_path, capsys):
    import tifffile

    from napari_bsdenoise.cli import main

    yy, xx = np.mgrid[:128, :128]
    noisy, _ = poisson_gaussian(0.5 + 0.2 * np.sin(xx / 9) * np.cos(yy / 7), photons=50, read_noise=2.0, seed=0)
    image = tmp_path / "noisy.tif"
    tifffile.imwrite(image, noisy)
    model = tmp_path / "m.safetensors"
    assert main(["train", str(image), "-o", str(model), "--method", "auto", "--steps", "2", "--network", "tiny"]) == 0
    err = capsys.readouterr().err
    assert "method dbsn: auto: the noise looks pixel-independent" in err
    assert bsd.load_model(model).method == "dbsn"
    out = tmp_path / "den.tif"
    assert main(["denoise", str(model), str(image), "-o", str(out), "--blind-spot", "1", "-q"]) == 0
    assert tifffile.imread(out).shape == noisy.shape
    assert main(["train", str(image), "-o", str(model), "--method", "bsn"]) == 2
    capsys.readouterr()
    assert main(["noise", str(image)]) == 0
    assert "method for --method auto: dbsn" in capsys.readouterr().out
