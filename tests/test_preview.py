"""The cached-feature preview equals the tiled denoiser on the same pixels, at every blind spot;
iter_events turns a callback-driven call into a cancellable generator."""

from __future__ import annotations

import numpy as np
import pytest

import napari_bsdenoise as bsd
from napari_bsdenoise.api import Preview, iter_events
from napari_bsdenoise.errors import InputError


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    return bsd.train(rng.normal(100, 10, (64, 64)).astype(np.float32), steps=2, network="tiny", blind_spot=1,
                     patch_size=32, batch_size=2)


def test_preview_of_a_region_equals_denoise(model):
    rng = np.random.default_rng(1)
    img = rng.normal(100, 10, (300, 260)).astype(np.float32)
    region = (101, 163, 37, 200)  # not on the pooling grid: the crop is aligned, the view is not
    p = Preview(model, img, region=region)
    assert p.cached and p.crop[0] % 8 == 0 and p.crop[2] % 8 == 0
    assert p.crop[0] <= 101 - 81 and p.crop[1] >= min(300, 163 + 81)  # context of one receptive radius
    y0, y1, x0, x1 = region
    for s in (0, 1, 3, 7):
        np.testing.assert_allclose(p.render(s), bsd.denoise(img, model, blind_spot=s)[y0:y1, x0:x1], atol=1e-4)
    assert p.render(0).shape == (62, 163) and p.render_seconds > 0
    assert not np.allclose(p.render(0), p.render(5))


def test_preview_channels_and_errors(model):
    rng = np.random.default_rng(2)
    chans = rng.normal(100, 10, (2, 64, 64)).astype(np.float32)  # independent channels
    m2 = bsd.train(chans, axes="CYX", steps=2, network="tiny", blind_spot=1, patch_size=32, batch_size=2)
    p = Preview(m2, chans, axes="CYX", region=(8, 40, 16, 48))
    want = bsd.denoise(chans, m2, axes="CYX", blind_spot=3)[:, 8:40, 16:48]
    np.testing.assert_allclose(p.render(3), want, atol=1e-4)
    with pytest.raises(InputError, match="2-D view"):
        Preview(model, rng.normal(size=(3, 64, 64)), axes="ZYX")
    with pytest.raises(InputError, match="odd"):
        p.render(2)


def test_iter_events_yields_returns_and_cancels(model):
    img = np.random.default_rng(3).normal(100, 10, (64, 64)).astype(np.float32)
    gen = iter_events(bsd.denoise, img, model, tile_size=16, check=False)  # (tile events only)
    events = []
    with pytest.raises(StopIteration) as stop:
        while True:
            events.append(next(gen))
    assert len(events) == 16 and events[-1].fraction == 1.0
    np.testing.assert_allclose(stop.value.value, bsd.denoise(img, model, check=False), atol=1e-5)
    gen = iter_events(bsd.denoise, img, model, tile_size=16, check=False)  # (tile events only)
    next(gen)
    gen.close()  # cancels the call and waits for its thread
    with pytest.raises(InputError):
        list(iter_events(bsd.denoise, np.zeros((2, 2, 2, 2, 2, 2)), model))


def test_preview_of_a_student_runs_it_once(model):
    rng = np.random.default_rng(4)
    img = rng.normal(100, 10, (200, 180)).astype(np.float32)
    student = bsd.distill(img[:64, :64], model, student="tiny", steps=2, patch_size=32, batch_size=2)
    want = bsd.denoise(img, student)
    for region in ((50, 130, 20, 150), (120, 200, 100, 180)):  # inside, and at the bottom-right corner
        p = Preview(student, img, region=region)
        assert p.cached and p._features is None
        y0, y1, x0, x1 = region
        first = p.render(0)
        np.testing.assert_allclose(first, want[y0:y1, x0:x1], atol=1e-4)
        assert p.render(0) is not first and np.array_equal(p.render(0), first)  # the cached output, re-read
    with pytest.raises(InputError, match="student"):
        p.render(3)


def test_preview_of_a_dbsn_model_takes_0_or_1():
    rng = np.random.default_rng(5)
    img = rng.normal(100, 10, (96, 96)).astype(np.float32)
    dbsn = bsd.train(img, method="dbsn", steps=2, network="tiny")
    p = Preview(dbsn, img, region=(10, 70, 20, 90))
    for s in (0, 1):
        np.testing.assert_allclose(p.render(s), bsd.denoise(img, dbsn, blind_spot=s)[10:70, 20:90], atol=1e-4)
    with pytest.raises(InputError, match="D-BSN"):
        p.render(3)
