"""Model files written by the previous release still load and give the same results (tests/data/README.md)."""

import json
from pathlib import Path

import numpy as np
import pytest

import napari_bsdenoise as bsd

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def image():
    return np.load(DATA / "v0.1_input.npy")


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(DATA / "v0.1_outputs.npz"))


@pytest.mark.parametrize("name", ["atbsn", "dbsn", "student", "bsgd"])
def test_v01_model_files_load_with_the_same_config_and_summary(name):
    model = bsd.load_model(DATA / f"v0.1_{name}.safetensors")
    assert model.method == name
    assert model.config.version == "0.1.0"
    summaries = json.loads((DATA / "v0.1_summaries.json").read_text())
    assert model.summary() == summaries[name]


@pytest.mark.parametrize("name", ["atbsn", "dbsn", "student"])
def test_v01_models_denoise_as_they_did(name, image, expected):
    model = bsd.load_model(DATA / f"v0.1_{name}.safetensors")
    # check=False: these toy models fail 0.2's safety check (it would keep the input); the network's
    # output itself is what must not have changed
    np.testing.assert_allclose(bsd.denoise(image, model, check=False), expected[name], rtol=1e-5, atol=1e-4)


def test_v01_atbsn_at_another_blind_spot_and_bsgd_refinement(image, expected):
    teacher = bsd.load_model(DATA / "v0.1_atbsn.safetensors")
    np.testing.assert_allclose(bsd.denoise(image, teacher, blind_spot=1), expected["atbsn_s1"], rtol=1e-5, atol=1e-4)
    diffusion = bsd.load_model(DATA / "v0.1_bsgd.safetensors")
    # with 0.1's sampling settings (0.2 anchors the low frequencies and takes 2 steps by default)
    old_defaults = dict(sampling_steps=4, anchor=0.0)
    np.testing.assert_allclose(bsd.refine(image, diffusion, guide=teacher, seed=0, check=False, **old_defaults),
                               expected["bsgd"], rtol=1e-4, atol=1e-3)


def test_a_file_saved_now_round_trips_like_the_old_one(tmp_path, image):
    model = bsd.load_model(DATA / "v0.1_atbsn.safetensors")
    path = model.save(tmp_path / "again.safetensors")
    again = bsd.load_model(path)
    assert again.config.to_dict() == model.config.to_dict()
    np.testing.assert_array_equal(bsd.denoise(image, again), bsd.denoise(image, model))
