"""Export to the BioImage Model Zoo (docs/export.md): the package passes ``bioimageio.core``'s test of a
model (format, test tensors reproduced by the TorchScript and the state-dict weights, other input sizes),
the exported module computes what ``denoise`` computes (any shape, every method, independent channels,
the fusion), and bad requests are refused with clear errors.  Exporting needs no bioimageio package."""

from __future__ import annotations

import io
import sys
import zipfile

import numpy as np
import pytest
import tifffile
import yaml

import napari_bsdenoise as bsd
from napari_bsdenoise.cli import main
from napari_bsdenoise.engine.inference import resolve_fusion


def _image(shape=(64, 64), seed=0, correlated=True):
    """A smooth image plus noise, spatially correlated (a blurred field: fusion applies) or not."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    signal = 300 + 80 * np.sin(xx / 7.0) * np.cos(yy / 5.0) + 2 * xx
    noise = rng.normal(0, 20, shape)
    if correlated:
        noise = ndi.gaussian_filter(noise, (0,) * (len(shape) - 2) + (1.2, 1.2)) * 2.5
    return (signal + noise).astype(np.float32)


@pytest.fixture(scope="module")
def models():
    import torch

    torch.set_num_threads(1)
    teacher = bsd.train(_image(), steps=3, network="tiny", blind_spot=3, inference_blind_spot=1, patch_size=32,
                        batch_size=2)
    return {
        "atbsn": teacher,
        "student": bsd.distill(_image(), teacher, steps=2, patch_size=32, batch_size=2),
        "dbsn": bsd.train(_image(correlated=False), method="dbsn", steps=3, network="tiny", patch_size=32,
                          batch_size=2),
    }


def _torchscript(path):
    import torch

    with zipfile.ZipFile(path) as zf:
        return torch.jit.load(io.BytesIO(zf.read("weights_torchscript.pt")))


def _run(module, x):
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()


def _check_with_bioimageio_core(path):
    core = pytest.importorskip("bioimageio.core")
    summary = core.test_model(path)
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    names = " ".join(d.name for d in summary.details)
    assert "Reproduce test outputs from test inputs (torchscript)" in names
    assert "Reproduce test outputs from test inputs (pytorch_state_dict)" in names
    return summary


def test_atbsn_package_passes_bioimageio_test_and_reproduces_denoise(models, tmp_path, monkeypatch):
    import copy

    model = copy.deepcopy(models["atbsn"])
    # a signal-dependent noise curve of several knots (the fusion's piecewise-linear variance)
    model.config.noise["noise_curve"] = [[[250.0, 320.0, 400.0, 480.0], [150.0, 260.0, 420.0, 380.0]]]
    img = _image((80, 90), seed=3)
    params = resolve_fusion(model, 1, model.config.normalization, "auto")
    assert params is not None and len(params.intensities[0]) == 4  # the fusion is exported
    monkeypatch.setitem(sys.modules, "bioimageio", None)  # writing a package needs no bioimageio package
    path = model.export_bioimageio(tmp_path / "teacher", image=img, authors=["A. Tester"])
    monkeypatch.delitem(sys.modules, "bioimageio")
    assert path == tmp_path / "teacher.zip" and path.is_file()
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        card = zf.read("README.md").decode()
        x = np.load(io.BytesIO(zf.read("test_input.npy")))
    assert {"rdf.yaml", "README.md", "cover.png", "weights_torchscript.pt", "weights.pt", "environment.yaml",
            "test_input.npy", "test_output.npy", "model.safetensors"} <= names
    assert rdf["format_version"].startswith("0.5.") and rdf["license"] == "BSD-3-Clause"
    assert rdf["authors"] == [{"name": "A. Tester"}] and "arxiv.org/abs/2303.16783" in rdf["cite"][0]["url"]
    assert rdf["weights"]["torchscript"]["parent"] == "pytorch_state_dict"
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["blind_spot"] == 1
    assert rdf["config"]["napari_bsdenoise"]["fusion"] is True
    assert rdf["config"]["napari_bsdenoise"]["max_abs_difference_to_denoise"] <= 1e-3
    np.testing.assert_array_equal(x[0, 0], img)  # the whole (small) image is the test input
    for words in ("Hot-pixel repair is NOT included", "## Validation", "mean [", "trained at 3", "fusion: included"):
        assert words.lower() in card.lower(), words
    # the TorchScript module is denoise at blind spot 1 (fused, no hot-pixel repair), also on other shapes
    ts = _torchscript(path)
    for shape in ((80, 90), (37, 53), (5, 9)):
        sub = img[: shape[0], : shape[1]]
        want = bsd.denoise(sub, model, blind_spot=1, hot_pixels="keep")
        np.testing.assert_allclose(_run(ts, sub[None, None])[0, 0], want, atol=1e-3)
    _check_with_bioimageio_core(path)
    # the original model is attached: napari-bsdenoise reads it back
    with zipfile.ZipFile(path) as zf:
        (tmp_path / "m.safetensors").write_bytes(zf.read("model.safetensors"))
    assert bsd.load_model(tmp_path / "m.safetensors").config.to_dict() == model.config.to_dict()


def test_exported_fusion_is_the_fusion_of_denoise():
    import torch

    from napari_bsdenoise.nn.exported import NoiseFusion
    from napari_bsdenoise.nn.fusion import FusionParams, fuse

    rng = torch.Generator().manual_seed(0)
    x, f = torch.randn(2, 3, 23, 31, generator=rng), torch.randn(2, 3, 23, 31, generator=rng)
    for mu, var in ((((0.1,),) * 3, ((0.3,),) * 3),  # one knot (an average level), three channels
                    (((-1.0, -0.2, 0.5, 1.5, 1.5),), ((0.2, 0.5, 0.4, 1.2, 1.2),))):  # a curve, padded, shared
        params = FusionParams(mu, var, 7, 1.4)
        module = torch.jit.script(NoiseFusion(params))
        torch.testing.assert_close(module(x, f), fuse(x, f, params), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("which, blind_spot", [("student", None), ("dbsn", None), ("dbsn", 1)])
def test_student_and_dbsn_packages(models, tmp_path, which, blind_spot):
    model = models[which]
    img = _image((70, 66), seed=5, correlated=which != "dbsn")
    path = bsd.export_bioimageio(model, tmp_path / "m.zip", blind_spot=blind_spot, image=img)
    s = model.inference_blind_spot if blind_spot is None else blind_spot
    ts = _torchscript(path)
    want = bsd.denoise(img, model, blind_spot=s, hot_pixels="keep")
    np.testing.assert_allclose(_run(ts, img[None, None])[0, 0], want, atol=1e-3)
    if blind_spot is None:  # the D-BSN mean alone is checked against denoise only (time)
        _check_with_bioimageio_core(path)


def test_independent_channels_and_rgb_and_synthetic_test_image(tmp_path):
    import torch

    torch.set_num_threads(1)
    two = np.stack([_image(seed=1), 0.5 * _image(seed=2) + 40])  # CYX, two fluorophores
    model = bsd.train(two, axes="CYX", steps=2, network="tiny", blind_spot=1, patch_size=32, batch_size=2)
    assert model.config.channel_mode == "independent" and len(model.config.normalization.mean) == 2
    path = bsd.export_bioimageio(model, tmp_path / "two.zip", image=two, axes="CYX")
    np.testing.assert_allclose(_run(_torchscript(path), two[None])[0], bsd.denoise(two, model, axes="CYX",
                               blind_spot=1, hot_pixels="keep"), atol=1e-3)
    rgb = np.clip(np.stack([_image(seed=c) / 2 - 30 for c in range(3)], axis=-1), 0, 255).astype(np.uint8)
    model = bsd.train(rgb, steps=2, network="tiny", blind_spot=1, patch_size=32, batch_size=2)
    path = bsd.export_bioimageio(model, tmp_path / "rgb.zip")  # no image: a synthetic one
    with zipfile.ZipFile(path) as zf:
        x = np.load(io.BytesIO(zf.read("test_input.npy")))
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    assert x.shape == (1, 3, 128, 128) and len(rdf["inputs"][0]["axes"][1]["channel_names"]) == 3
    want = np.moveaxis(bsd.denoise(np.moveaxis(x[0], 0, -1), model, axes="YXC", blind_spot=1, hot_pixels="keep"),
                       -1, 0)
    np.testing.assert_allclose(_run(_torchscript(path), x)[0], want, atol=1e-3)


def test_rectangular_blind_spot(models, tmp_path):
    from napari_bsdenoise.config import check_blind_spot

    try:
        check_blind_spot((1, 3))
    except ValueError:
        pytest.skip("this version has square blind spots only")
    model, img = models["atbsn"], _image((40, 44), seed=7)
    path = bsd.export_bioimageio(model, tmp_path / "rect.zip", blind_spot=(1, 3), image=img)
    with zipfile.ZipFile(path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    assert rdf["name"].endswith("(blind spot 1x3)") and rdf["config"]["napari_bsdenoise"]["blind_spot"] == [1, 3]
    assert [a["size"]["min"] for a in rdf["inputs"][0]["axes"][2:]] == [3, 4]
    np.testing.assert_allclose(_run(_torchscript(path), img[None, None])[0, 0],
                               bsd.denoise(img, model, blind_spot=(1, 3), hot_pixels="keep"), atol=1e-3)


def test_bad_requests_are_refused(models, tmp_path):
    model, student, dbsn = models["atbsn"], models["student"], models["dbsn"]
    with pytest.raises(ValueError, match="format must be one of"):
        bsd.export_bioimageio(model, tmp_path / "a.zip", format="tensorflow")
    with pytest.raises(ValueError, match="non-blind distilled student"):
        bsd.export_bioimageio(student, tmp_path / "a.zip", blind_spot=1)
    with pytest.raises(ValueError, match="D-BSN has a fixed 1-pixel blind spot"):
        bsd.export_bioimageio(dbsn, tmp_path / "a.zip", blind_spot=3)
    with pytest.raises(ValueError, match="blind_spot must be 0 or an odd integer"):
        bsd.export_bioimageio(model, tmp_path / "a.zip", blind_spot=2)
    with pytest.raises(ValueError, match="name .* must be 5 to 128"):
        bsd.export_bioimageio(model, tmp_path / "a.zip", name="cells/v1")
    with pytest.raises(ValueError, match="model must be a BlindSpotModel"):
        bsd.export_bioimageio("model.safetensors", tmp_path / "a.zip")
    with pytest.raises(ValueError, match="has 3"):  # an RGB test image for a grey model
        bsd.export_bioimageio(model, tmp_path / "a.zip", image=np.zeros((32, 32, 3), np.uint8))
    existing = tmp_path / "exists.zip"
    existing.write_bytes(b"not mine")
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        bsd.export_bioimageio(model, existing)
    assert existing.read_bytes() == b"not mine"
    assert bsd.export_bioimageio(model, existing, overwrite=True) == existing and zipfile.is_zipfile(existing)
    import copy

    broken = copy.copy(model)
    broken.network = None
    with pytest.raises(ValueError, match="has no network"):
        bsd.export_bioimageio(broken, tmp_path / "a.zip")
    try:
        import onnx  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs the onnx package"):
            bsd.export_bioimageio(model, tmp_path / "a.zip", format="onnx")
    assert not (tmp_path / "a.zip").exists()


def test_bsgd_models_are_not_exported(tmp_path):
    from napari_bsdenoise.config import ModelConfig, NetworkConfig
    from napari_bsdenoise.model import BlindSpotModel

    cfg = ModelConfig(network=NetworkConfig(method="bsgd", width=8, depth=2))
    with pytest.raises(ValueError, match="bsgd models cannot be exported.*export its guide"):
        bsd.export_bioimageio(BlindSpotModel(cfg), tmp_path / "a.zip")


def test_cli_export(models, tmp_path, capsys):
    model_path = models["atbsn"].save(tmp_path / "cells.safetensors")
    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, _image())
    rc = main(["export", str(model_path), "-o", str(tmp_path / "cells"), "--image", str(image), "--blind-spot", "3",
               "--author", "A. Tester", "-q"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "saved" in out and "bioimageio test" in out and (tmp_path / "cells.zip").is_file()
    with zipfile.ZipFile(tmp_path / "cells.zip") as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    assert rdf["weights"]["torchscript"] and rdf["config"]["napari_bsdenoise"]["blind_spot"] == 3
    assert rdf["authors"] == [{"name": "A. Tester"}]
    # errors are one line, exit code 2
    rc = main(["export", str(model_path), "-o", str(tmp_path / "cells.zip")])
    err = capsys.readouterr().err
    assert rc == 2 and "exists; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    rc = main(["export", str(model_path), "-o", str(tmp_path / "x.zip"), "--blind-spot", "4", "-q"])
    assert rc == 2 and "odd integer" in capsys.readouterr().err
    rc = main(["export", str(model_path), "-o", str(tmp_path / "x.zip"), "--format", "keras"])
    assert rc == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["export", "--help"]) == 0


def test_importing_the_package_loads_no_bioimageio():
    import subprocess

    code = "import sys, napari_bsdenoise; sys.exit(any(m.startswith('bioimageio') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_onnx_weights_when_onnx_is_installed(models, tmp_path):
    pytest.importorskip("onnx")
    path = bsd.export_bioimageio(models["atbsn"], tmp_path / "onnx.zip", image=_image((48, 40)), format="onnx")
    with zipfile.ZipFile(path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    assert rdf["weights"]["onnx"]["parent"] == "pytorch_state_dict" and rdf["weights"]["onnx"]["opset_version"] >= 7
    summary = _check_with_bioimageio_core(path)
    assert any(d.name == "Reproduce test outputs from test inputs (onnx)" for d in summary.details)
