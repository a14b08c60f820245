"""The refinement's safeguard (methods/bsgd/safeguard.py, issue #17): refine keeps the guide's result
where the refined one is not estimated (self-supervised) to beat it, and says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import napari_bsdenoise as bsd
from napari_bsdenoise.errors import InputError
from napari_bsdenoise.methods.bsgd.safeguard import RefineCheck
from widget_helpers import _noisy

KW = dict(sampling_steps=2, rounds=1, seed=1)


@pytest.fixture(scope="module")
def broken(small_bsgd, tmp_path_factory):
    """A deliberately broken refinement: the BSGD branches' weights scrambled (in a copy)."""
    model = bsd.load_model(small_bsgd.save(tmp_path_factory.mktemp("bsgd") / "bsgd.safetensors"))
    with torch.no_grad():
        for p in model.network.parameters():
            p.mul_(30.0)
    return model


def test_a_broken_refinement_keeps_the_guide(broken, small_guide):
    noisy = _noisy((48, 48))
    events = []
    with pytest.warns(bsd.SafetyWarning, match="guide's result is kept"):
        out = bsd.refine(noisy, broken, guide=small_guide, callback=events.append, **KW)
    np.testing.assert_array_equal(out, bsd.denoise(noisy, small_guide, check=False))
    assert any(e.kind == "check" and "refinement check" in e.message for e in events)
    raw = bsd.refine(noisy, broken, guide=small_guide, check=False, **KW)
    assert not np.allclose(raw, out)  # the check is what kept the guide


def test_a_guide_whose_own_check_keeps_the_input_is_refined_as_denoise_gives_it(small_bsgd, small_guide, tmp_path):
    """The guide's result is what ``denoise`` gives, its safety check included: where that keeps the
    input (a guide with scrambled weights), refining keeps it too, instead of refining a bad start."""
    bad = bsd.load_model(small_guide.save(tmp_path / "guide.safetensors"))
    with torch.no_grad():
        for p in bad.network.parameters():
            p.copy_(torch.randn_like(p) * 3)
    noisy = _noisy((48, 48))
    with pytest.warns(bsd.SafetyWarning):
        want = bsd.denoise(noisy, bad)
    with pytest.warns(bsd.SafetyWarning):
        out = bsd.refine(noisy, small_bsgd, guide=bad, **KW)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_allclose(out, noisy, atol=1e-4)  # (the input kept)
    assert not np.allclose(bsd.refine(noisy, small_bsgd, guide=bad, check=False, **KW), want, atol=1e-2)


def test_checks_need_a_guide_model(small_bsgd, small_guide):
    noisy = _noisy((48, 48))
    precomputed = bsd.denoise(noisy, small_guide, check=False)
    with pytest.raises(InputError, match="guide model"):
        bsd.refine(noisy, small_bsgd, guide=precomputed, check=True, **KW)
    # "auto" with a precomputed result: nothing to check against, the refinement is returned
    np.testing.assert_array_equal(bsd.refine(noisy, small_bsgd, guide=precomputed, **KW),
                                  bsd.refine(noisy, small_bsgd, guide=precomputed, check=False, **KW))
    with pytest.raises(InputError, match="check must be"):
        bsd.refine(noisy, small_bsgd, guide=small_guide, check="maybe", **KW)


def test_report():
    r = RefineCheck(guide_gain_db=3.0, refined_gain_db=2.5, noise_scale=0.8)
    assert r.keep_guide and "kept" in r.summary()
    assert not RefineCheck(3.0, 3.5, 1.0).keep_guide
    assert RefineCheck(3.0, float("nan"), 1.0).keep_guide  # an estimate that failed keeps the guide
    # both gains at the cap (high SNR, estimates below zero): the difference of the errors decides
    assert not RefineCheck(60.0, 60.0, 1.0, mse_difference=-0.01).keep_guide
    assert RefineCheck(60.0, 60.0, 1.0, mse_difference=0.01).keep_guide
    assert RefineCheck(60.0, 60.0, 1.0, mse_difference=0.0).keep_guide  # a tie keeps the guide
    assert "% of the noise variance" in RefineCheck(3.0, 3.5, 1.0, mse_difference=-0.02).summary()
    json.dumps(r.to_dict())
