"""Shared fixtures.  Like kornia, device-aware tests run on the CPU and also on CUDA / Apple MPS
when present (``--device all``), so the same suite checks a GPU box."""

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="cpu, cuda, mps or all (every available device)")


def _available_devices():
    import torch

    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        opt = metafunc.config.getoption("--device")
        devs = _available_devices() if opt == "all" else [opt]
        metafunc.parametrize("device", devs)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def psnr(a, b, data_range):
    return float(10 * np.log10(data_range**2 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.fixture
def smooth_image():
    """A 96x96 piecewise-smooth test image in [0, 200] (no download)."""
    from skimage import data, transform

    img = data.camera()[100:356, 150:406].astype(np.float32)
    return transform.resize(img, (96, 96), anti_aliasing=True, preserve_range=True).astype(np.float32) * 200 / 255


# -- tiny trained models for the napari widget tests (tests/test_widgets_*.py) -----------------
# Session-scoped so each is trained once for the whole run however the widget tests are split.
# The imports are inside the fixtures: only the widget tests (which start the headless display
# through widget_helpers) ever build these.
@pytest.fixture(scope="session")
def gray_model():
    import napari_bsdenoise as bsd
    from widget_helpers import _noisy

    return bsd.train(_noisy((64, 64)), steps=2, network="tiny", blind_spot=1, patch_size=32, batch_size=2)


@pytest.fixture(scope="session")
def rgb_model():
    import napari_bsdenoise as bsd
    from widget_helpers import _noisy

    rgb = np.stack([_noisy((64, 64), seed=c, dtype=np.uint8) for c in range(3)], axis=-1)
    return bsd.train(rgb, steps=2, network="tiny", blind_spot=1, patch_size=32, batch_size=2)


@pytest.fixture(scope="session")
def teacher():
    import napari_bsdenoise as bsd
    from widget_helpers import _noisy

    return bsd.train(_noisy((64, 64)), steps=3, network="tiny", blind_spot=1, patch_size=32, batch_size=2)


@pytest.fixture(scope="session")
def small_guide():
    import napari_bsdenoise as bsd
    from widget_helpers import _noisy

    return bsd.train(_noisy((48, 48)), steps=2, network="tiny", blind_spot=1)


@pytest.fixture(scope="session")
def small_bsgd(small_guide):
    import napari_bsdenoise as bsd
    from widget_helpers import _noisy

    return bsd.train(_noisy((48, 48)), method="bsgd", guide=small_guide, steps=2, network="tiny")
