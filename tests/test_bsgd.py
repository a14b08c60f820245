"""BSGD: both branches learn, the blind-spot branch is blind at every t, sampling is seeded and
reproducible, refinement through tiles equals the untiled result, models save/load, bad input fails."""

import numpy as np
import pytest
import torch

import napari_bsdenoise as bsd
from napari_bsdenoise.config import ModelConfig, NetworkConfig, Normalization
from napari_bsdenoise.methods.bsgd.sampling import diffusion_losses, guided_refine, hash_normal, window_data
from napari_bsdenoise.errors import InputError
from napari_bsdenoise.model import BlindSpotModel
from napari_bsdenoise.nn.bsgd import BSGDNet, TimeBlindSpotNet

torch.set_num_threads(1)


def _randomize_film(net, scale=0.3, seed=0):
    """FiLM layers start at zero (identity); give them weights so the time conditioning is active."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".film." in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def _bsgd_model(channels=1, width=4, depth=2, blind_spot=1, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(network=NetworkConfig(method="bsgd", in_channels=channels, out_channels=channels,
                                            width=width, depth=depth),
                      normalization=Normalization([100.0] * channels, [20.0] * channels),
                      channel_mode="joint", train_blind_spot=blind_spot, inference_blind_spot=blind_spot,
                      loss="l2", axes="YX" if channels == 1 else "YXC")
    model = BlindSpotModel(cfg)
    _randomize_film(model.network)
    return model


@pytest.fixture
def noisy(smooth_image):
    rng = np.random.default_rng(1)
    return (smooth_image[:48, :48] + rng.normal(0, 15, (48, 48))).astype(np.float32)


def test_both_branches_loss_falls(noisy):
    torch.manual_seed(0)
    net = BSGDNet(1, width=8, depth=2)
    x = torch.from_numpy((noisy[None, None, :32, :32] - noisy.mean()) / noisy.std()).repeat(4, 1, 1, 1)
    x = torch.cat([x, x.flip(-1)], 0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    t_fixed = torch.linspace(0.05, 0.95, len(x))

    def losses():
        with torch.no_grad():
            g = torch.Generator().manual_seed(7)
            return [float(v) for v in diffusion_losses(net, x, 1, generator=g, t=t_fixed)]

    before = losses()
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        lc, lb = diffusion_losses(net, x, 1, generator=g)
        opt.zero_grad()
        (lc + lb).backward()
        opt.step()
    after = losses()
    assert after[0] < 0.7 * before[0], (before, after)  # conventional branch
    assert after[1] < 0.7 * before[1], (before, after)  # blind-spot branch


@pytest.mark.parametrize("blind_spot", [1, 3])
def test_blind_spot_branch_is_blind_at_any_t(blind_spot):
    torch.manual_seed(0)
    net = TimeBlindSpotNet(1, width=4, depth=2)
    _randomize_film(net)
    d = (blind_spot + 1) // 2
    for t in (0.0, 0.3, 0.9):
        x = torch.randn(1, 1, 32, 32, requires_grad=True)
        out = net(x, torch.tensor([t]), blind_spot)
        out[0, 0, 16, 16].backward()
        g = x.grad[0, 0].abs()
        assert float(g[16 - d + 1 : 16 + d, 16 - d + 1 : 16 + d].max()) == 0.0, t
        assert float(g.sum()) > 0  # it does see its surroundings
        assert float(g[16, 16 + d + 1]) > 0 and float(g[16 - d - 1, 16]) > 0


def test_time_conditioning_changes_the_output():
    net = _bsgd_model().network
    x = torch.randn(1, 1, 16, 16)
    a = net.branches(x, torch.tensor([0.1]), 1)
    b = net.branches(x, torch.tensor([0.8]), 1)
    assert not torch.allclose(a[0], b[0]) and not torch.allclose(a[1], b[1])


def test_sampling_is_deterministic_for_a_seed():
    net = _bsgd_model().network.eval()
    rng = np.random.default_rng(0)
    y = rng.normal(size=(1, 1, 24, 24)).astype(np.float32)
    w = torch.from_numpy(window_data(y, 0.5 * y))
    run = lambda seed: guided_refine(net, w[:, :1], w[:, 1:2], w[:, 2:], blind_spot=1, steps=2, rounds=2,  # noqa: E731
                                     t_start=0.5, replace=0.3, seed=seed)
    with torch.no_grad():
        a, b, c = run(3), run(3), run(4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # the random numbers depend on the coordinates, not on the order they are drawn in
    keys = (0, torch.arange(5)[:, None], torch.arange(4)[None, :])
    assert torch.equal(hash_normal(1, *keys)[2:4, 1:3],
                       hash_normal(1, 0, torch.arange(2, 4)[:, None], torch.arange(1, 3)[None, :]))


class _Offset(torch.nn.Module):
    """Both branches predict their input plus a slow ramp and a constant: a refinement that shifts the
    intensities, which the anchoring must take out, and a fine checkerboard of detail it must keep."""

    def branches(self, x, t, blind_spot):
        h, w = x.shape[-2:]
        ramp = torch.linspace(0, 3, w)[None, None, None, :] + 2.0
        checker = 0.5 * (-1.0) ** (torch.arange(h)[:, None] + torch.arange(w)[None, :])
        return x + ramp + checker, x + ramp + checker


def test_anchoring_keeps_the_start_low_frequencies_and_the_local_detail():
    y = torch.zeros(1, 1, 40, 48)
    start = torch.zeros(1, 1, 40, 48)
    coords = torch.from_numpy(window_data(y.numpy(), start.numpy())[:, 2:])
    kw = dict(blind_spot=1, steps=1, rounds=1, t_start=1e-4, replace=0.0)  # (almost no diffusion noise)
    raw = guided_refine(_Offset(), y, start, coords, anchor=0.0, **kw)
    anchored = guided_refine(_Offset(), y, start, coords, anchor=2.0, **kw)
    inner = (slice(None), slice(None), slice(10, 30), slice(10, 38))
    assert raw[inner].mean() > 3  # the shift is there without the anchor
    assert anchored[inner].mean().abs() < 0.02  # and gone with it
    detail = 0.5 * (-1.0) ** (torch.arange(40)[:, None] + torch.arange(48)[None, :])
    # the finest detail passes (a 2-pixel period keeps (1 - e^(-2 pi^2 sigma^2 / 4)) of itself)
    torch.testing.assert_close(anchored[inner][0, 0], detail[10:30, 10:38], atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="anchor"):
        guided_refine(_Offset(), y, start, coords, anchor=-1.0, **kw)


def test_refine_tiled_equals_untiled(rng):
    model = _bsgd_model(width=4, depth=2)
    img = rng.normal(100, 20, (224, 40)).astype(np.float32)  # halo 2 x 41 -> 84 rows: windows differ
    guide = img * 0.5 + 50
    kw = dict(guide=guide, sampling_steps=2, rounds=2, t_start=0.4, replace=0.3, seed=5)
    full = bsd.refine(img, model, **kw)
    events = []
    tiled = bsd.refine(img, model, tile_size=32, callback=events.append, **kw)
    assert full.shape == img.shape and full.dtype == np.float32
    np.testing.assert_allclose(tiled, full, atol=2e-4)
    assert events[-1].kind == "done" and events[-2].fraction == pytest.approx(1.0)
    assert sum(e.kind == "step" for e in events) == 14 * 2 * 2  # 7 x 2 tiles, 2 rounds, 2 steps
    assert not np.allclose(full, guide)
    # stacks: every slice refined with its own random numbers, same machinery
    stack = bsd.refine(np.stack([img, img]), model, axes="ZYX", **{**kw, "guide": np.stack([guide, guide])})
    np.testing.assert_allclose(stack[0], full, atol=2e-4)
    assert not np.allclose(stack[0], stack[1])


def test_refine_cancel(rng):
    model = _bsgd_model()
    img = rng.normal(100, 20, (32, 32)).astype(np.float32)
    with pytest.raises(InterruptedError):
        bsd.refine(img, model, sampling_steps=3, callback=lambda e: False)


def test_train_bsgd_with_guide_save_load(tmp_path, noisy):
    guide = bsd.train(noisy, steps=2, network="tiny", blind_spot=1)
    events = []
    model = bsd.train_bsgd(noisy, guide=guide, steps=4, network={"width": 4, "depth": 2}, patch_size=32,
                           callback=events.append)
    assert model.method == "bsgd" and events[-1].kind == "done"
    assert model.config.normalization.mean == guide.config.normalization.mean
    assert model.config.training["bsgd"]["guide"]["method"] == guide.method
    path = model.save(tmp_path / "bsgd.safetensors")
    loaded = bsd.load_model(path)
    assert loaded.method == "bsgd"
    kw = dict(guide=guide, sampling_steps=2, rounds=1, seed=1)
    np.testing.assert_array_equal(bsd.refine(noisy, model, **kw), bsd.refine(noisy, loaded, **kw))
    # a BSGD model also denoises like a blind-spot model (its blind-spot branch at t = 0)
    assert bsd.denoise(noisy, loaded).shape == noisy.shape
    # stopping early through the callback
    stopped = bsd.train_bsgd(noisy, steps=50, network={"width": 4, "depth": 2}, patch_size=32,
                             callback=lambda e: e.kind != "step")
    assert stopped.config.training["steps"] < 50


def test_warm_start_from_the_guide(noisy):
    guide = bsd.train(noisy, steps=2, network={"width": 4, "depth": 2}, blind_spot=3, patch_size=32)
    trainer = bsd.make_trainer(noisy, method="bsgd", guide=guide, steps=1, patch_size=32)
    net, info = trainer.model.network, trainer.model.config.training["bsgd"]["warm_start"]
    assert trainer.model.config.network.width == 4 and info["bsn"] == len(guide.network.state_dict())
    assert info["conv"] > 0
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        for t in (0.0, 0.5, 1.0):  # before training, the blind-spot branch is the guide at every t
            torch.testing.assert_close(net.bsn(x, torch.full((1,), t), 3), guide.network(x, 3))
    from napari_bsdenoise.api import make_bsgd_trainer

    cold = make_bsgd_trainer(noisy, guide=guide, steps=1, patch_size=32, warm_start=False)
    assert cold.model.config.training["bsgd"]["warm_start"] is None
    with torch.no_grad():
        assert not torch.allclose(cold.model.network.bsn(x, torch.zeros(1), 3), guide.network(x, 3))
    # another size than the guide's: nothing to copy, said so
    other = bsd.make_trainer(noisy, method="bsgd", guide=guide, steps=1, patch_size=32,
                             network={"width": 8, "depth": 2})
    assert other.model.config.training["bsgd"]["warm_start"] is None


def test_continue_a_bsgd_model(noisy):
    """``model=`` continues a BSGD model: it starts as the best (same held-out patches and diffusion noise,
    so the same held-out loss), the loss falls or stays, and config and provenance are kept."""
    from napari_bsdenoise.api import make_bsgd_trainer

    guide = bsd.train(noisy, steps=2, network="tiny", blind_spot=1)
    first = bsd.train_bsgd(noisy, guide=guide, steps=4, network={"width": 4, "depth": 2}, patch_size=32, t_max=0.6)
    before = first.config.training
    trainer = make_bsgd_trainer(noisy, model=first, steps=6, patch_size=32)
    events = iter(trainer)
    next(events), next(events)  # "start", then the first step: the start model was validated before it
    assert trainer.best_step == 0 and trainer.best_val_loss == pytest.approx(before["best_val_loss"], rel=1e-5)
    for _ in events:
        pass
    more = trainer.model
    after = more.config.training
    assert after["best_val_loss"] <= before["best_val_loss"] * (1 + 1e-6)
    assert not any(torch.equal(a, b) for a, b in zip(first.network.state_dict().values(),
                                                     more.network.state_dict().values()) if a.is_floating_point())
    keep = ("network", "normalization", "channel_mode", "train_blind_spot", "inference_blind_spot", "axes", "noise")
    assert {k: more.config.to_dict()[k] for k in keep} == {k: first.config.to_dict()[k] for k in keep}
    assert after["bsgd"] == before["bsgd"] and after["bsgd"]["t_max"] == 0.6 and trainer.t_max == 0.6
    assert after["bsgd"]["guide"]["method"] == guide.method  # the guide it was trained next to, not passed again
    assert after["continued_from"]["steps"] == 4 and after["steps"] == 6 and after["total_steps"] == 10
    # through train(method="bsgd" implied by the model) and once more: the total keeps counting
    again = bsd.train(noisy, model=more, steps=2, patch_size=32)
    assert again.method == "bsgd" and again.config.training["total_steps"] == 12
    with pytest.raises(InputError, match="BSGD model"):
        bsd.train_bsgd(noisy, model=guide, steps=1)

def test_bad_input(rng, noisy):
    model = _bsgd_model()
    with pytest.raises(InputError, match="BSGD model"):
        bsd.refine(noisy, bsd.train(noisy, steps=1, network="tiny", blind_spot=1))
    with pytest.raises(InputError, match="rounds"):
        bsd.refine(noisy, model, rounds=0)
    with pytest.raises(InputError, match="t_start"):
        bsd.refine(noisy, model, t_start=1.5)
    with pytest.raises(InputError, match="anchor"):
        bsd.refine(noisy, model, anchor=float("nan"))
    with pytest.raises(InputError, match="shape"):
        bsd.refine(noisy, model, guide=noisy[:40])
    bad = noisy.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        bsd.refine(bad, model)
    with pytest.raises(InputError, match="channel"):
        bsd.refine(rng.normal(size=(32, 32, 3)), model)
    with pytest.raises(InputError, match="t_max"):
        bsd.train_bsgd(noisy, t_max=2.0)
    with pytest.raises(InputError, match="too small"):
        bsd.train_bsgd(noisy[:8, :8])
    with pytest.raises(InputError, match="network"):
        bsd.train_bsgd(noisy, network="huge")
    with pytest.raises(InputError, match="guide"):
        bsd.train_bsgd(noisy, guide=model)


def test_refine_cli(tmp_path, noisy):
    """``napari-bsdenoise train --method bsgd`` then ``refine`` equal the API."""
    import tifffile

    from napari_bsdenoise.cli import main

    tifffile.imwrite(tmp_path / "in.tif", noisy)
    guide_path = bsd.train(noisy, steps=2, network="tiny", blind_spot=1).save(tmp_path / "g.safetensors")
    model_path = tmp_path / "m.safetensors"
    assert main(["train", str(tmp_path / "in.tif"), "-o", str(model_path), "--method", "bsgd", "--guide",
                 str(guide_path), "--steps", "2", "-q"]) == 0
    assert bsd.load_model(model_path).method == "bsgd"
    argv = ["refine", str(model_path), str(tmp_path / "in.tif"), "-o", str(tmp_path / "out.tif"),
            "--sampling-steps", "2", "--rounds", "1", "--seed", "3", "-q"]
    assert main(argv) == 0
    out = tifffile.imread(tmp_path / "out.tif")
    expected = bsd.refine(noisy, bsd.load_model(model_path), sampling_steps=2, rounds=1, seed=3)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert main(argv[:4] + [str(tmp_path / "in.tif")] + argv[5:]) == 2  # refuses to write over its input


def test_train_method_bsgd_is_train_bsgd(noisy):
    guide = bsd.train(noisy, steps=2, network="tiny", blind_spot=1)
    model = bsd.train(noisy, method="bsgd", guide=guide, steps=2)
    assert model.method == "bsgd"
    with pytest.raises(InputError, match="guide"):
        bsd.train(noisy, method="atbsn", guide=guide, steps=1)
