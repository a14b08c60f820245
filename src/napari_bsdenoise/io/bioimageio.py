"""The files of a BioImage Model Zoo package (bioimage.io model description 0.5): ``rdf.yaml``, the model
card (``README.md``), the cover image, the conda environment of the ``pytorch_state_dict`` weights and
the zip archive that holds them.

Core layer: numpy, PyYAML and Pillow only (no torch, no bioimageio); the weights and test tensors are
made by :mod:`napari_bsdenoise.engine.export`, which calls these.  Writing a package needs none of
the ``bioimageio`` libraries; checking one does (``bioimageio test package.zip``, docs/export.md).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

#: The model description format written.  0.5.4 is read by every 0.5 consumer (bioimageio.core >= 0.7,
#: deepImageJ, ilastik); newer bioimageio.spec releases update it on loading.
FORMAT_VERSION = "0.5.4"
INPUT_ID = "raw"
OUTPUT_ID = "denoised"
ARCHITECTURE_MODULE = "napari_bsdenoise.nn.exported"
ARCHITECTURE_CALLABLE = "ExportedDenoiser"
DEFAULT_AUTHOR = "napari-bsdenoise user"
COVER_HEIGHT = 256  # at least, in pixels

CITATIONS = {
    "atbsn": {"text": "Chen S, Zhang J, Yu Z, Huang T. Exploring Efficient Asymmetric Blind-Spots for "
                      "Self-Supervised Denoising in Real-World Scenarios. CVPR 2024 (AT-BSN)",
              "url": "https://arxiv.org/abs/2303.16783"},
    "dbsn": {"text": "Wu X, Liu M, Cao Y, Ren D, Zuo W. Unpaired Learning of Deep Image Denoising. ECCV 2020 (D-BSN)",
             "url": "https://arxiv.org/abs/2008.13711"},
}
TITLES = {"atbsn": "AT-BSN (asymmetric tunable blind-spot network)",
          "dbsn": "D-BSN (dilated blind-spot network with a noise model)",
          "student": "non-blind student distilled from a blind-spot teacher (AT-BSN (D))"}


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file(folder: Path, name: str) -> dict:
    return {"source": name, "sha256": sha256(folder / name)}


def citations(model) -> list[dict]:
    """The papers a model of ``model.method`` builds on (a student: its teacher's too)."""
    teacher = model.config.training.get("distillation", {}).get("teacher_method")
    keys = ["atbsn"] if model.method != "dbsn" else ["dbsn"]
    if teacher == "dbsn":
        keys.append("dbsn")
    return [dict(CITATIONS[k]) for k in dict.fromkeys(keys)]


def axes(n_channels: int, min_size: tuple[int, int], *, output: bool) -> list[dict]:
    """Batch, channel, y, x axes: any size from ``min_size`` (y, x; step 1) for the input; the input's for
    the output."""
    names = [f"c{i}" for i in range(n_channels)]
    space = [{"type": "space", "id": a, "size": ({"tensor_id": INPUT_ID, "axis_id": a} if output
                                                   else {"min": int(m), "step": 1})}
             for a, m in zip(("y", "x"), min_size)]
    return [{"type": "batch"}, {"type": "channel", "channel_names": names}, *space]


def rdf(folder: Path, *, name: str, description: str, authors, cite, license: str, tags, n_channels: int,
        min_size: tuple[int, int], torch_version: str, architecture_kwargs: dict, onnx_opset: int | None,
        config: dict) -> dict:
    """The ``rdf.yaml`` content of the package whose files are in ``folder``."""
    weights = {
        "pytorch_state_dict": {**_file(folder, "weights.pt"),
                               "architecture": {"callable": ARCHITECTURE_CALLABLE, "import_from": ARCHITECTURE_MODULE,
                                                "kwargs": architecture_kwargs},
                               "pytorch_version": torch_version,
                               "dependencies": _file(folder, "environment.yaml")},
        "torchscript": {**_file(folder, "weights_torchscript.pt"), "pytorch_version": torch_version,
                        "parent": "pytorch_state_dict"},
    }
    if onnx_opset is not None:
        weights["onnx"] = {**_file(folder, "weights.onnx"), "opset_version": int(onnx_opset),
                           "parent": "pytorch_state_dict"}
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": name,
        "description": description,
        "authors": [a if isinstance(a, dict) else {"name": str(a)} for a in (authors or [DEFAULT_AUTHOR])],
        "cite": list(cite),
        "license": license,
        "documentation": "README.md",
        "covers": ["cover.png"],
        "tags": list(tags),
        "timestamp": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "attachments": [_file(folder, "model.safetensors")],
        "inputs": [{
            "id": INPUT_ID,
            "description": "noisy image in the units of the training data",
            "axes": axes(n_channels, min_size, output=False),
            "test_tensor": _file(folder, "test_input.npy"),
            "sample_tensor": _file(folder, "sample_input.tif"),
            "data": {"type": "float32"},
            "preprocessing": [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}],
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "denoised image in the input's units",
            "axes": axes(n_channels, min_size, output=True),
            "test_tensor": _file(folder, "test_output.npy"),
            "sample_tensor": _file(folder, "sample_output.tif"),
            "data": {"type": "float32"},
        }],
        "weights": weights,
        "config": {"napari_bsdenoise": config},
    }


def environment(version: str) -> str:
    """The conda environment of the ``pytorch_state_dict`` weights (their architecture is this package's)."""
    return ("name: napari-bsdenoise\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n"
            "  - python>=3.11\n  - pytorch>=2.1\n  - pip\n  - pip:\n"
            f"      - napari-bsdenoise>={version}\n")


def write_yaml(path: Path, content: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")


def cover(noisy: np.ndarray, denoised: np.ndarray) -> np.ndarray:
    """A uint8 image: the noisy input (left) beside the denoised output (right), both ``(C, Y, X)``, on one
    intensity scale (0.5-99.5 percentiles of the input), enlarged to at least :data:`COVER_HEIGHT` pixels;
    colour for 3 channels, the first channel otherwise."""
    def show(a):
        return np.moveaxis(a[:3], 0, -1) if a.shape[0] == 3 else a[0]

    lo, hi = np.percentile(noisy, (0.5, 99.5))
    both = np.concatenate([show(noisy), show(denoised)], axis=1)
    zoom = max(1, -(-COVER_HEIGHT // both.shape[0]))  # small test images: pixels enlarged, not smoothed
    both = np.repeat(np.repeat(both, zoom, axis=0), zoom, axis=1)
    return np.clip(np.rint(255 * (both - lo) / max(hi - lo, 1e-12)), 0, 255).astype(np.uint8)


def write_tensors(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
    """The test tensors (``.npy``, ``(1, C, Y, X)``) and the sample tensors (TIFF, ``(C, Y, X)`` or ``(Y, X)``
    for one channel) of input ``x`` and output ``y``."""
    import tifffile

    for which, t in (("input", x), ("output", y)):
        np.save(folder / f"test_{which}.npy", t)
        tifffile.imwrite(folder / f"sample_{which}.tif", np.ascontiguousarray(t[0, 0] if t.shape[1] == 1 else t[0]),
                         photometric="minisblack")


def write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


def zip_folder(folder: Path, path: Path) -> Path:
    """Zip the files of ``folder`` (flat) into ``path`` atomically (written as ``.partial``, then renamed)."""
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    os.replace(tmp, path)
    return path


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def model_card(model, *, name: str, description: str, blind_spot: str, fused: bool, n_channels: int,
               min_size: tuple[int, int], receptive_radius: int, max_difference: float, formats, version: str) -> str:
    """The package's ``README.md``: what the model is, how it was trained, what the export computes and
    what it leaves out, how it was checked, and the references."""
    c = model.config
    t = c.training or {}
    norm = c.normalization
    method = c.network.method
    call_spot = blind_spot if "x" not in blind_spot else "(" + ", ".join(blind_spot.split("x")) + ")"
    lines = [f"# {name}", "", description, "",
             f"Model: {TITLES.get(method, method)}, exported by napari-bsdenoise {version}.", "",
             "## Method", ""]
    if method == "atbsn":
        lines.append(f"AT-BSN, a shifted-convolution UNet run on four rotations of the image, hides a square "
                     f"of side s (or a y x x rectangle) around each pixel from its own prediction (a blind spot): trained at s = "
                     f"{c.train_blind_spot}, exported at the fixed blind spot s = {blind_spot} (the network serves "
                     "any blind spot; export again for another one).")
    elif method == "dbsn":
        lines.append("D-BSN, a dilated blind-spot network with an exactly 1-pixel blind spot and a learned noise "
                     "model, exported at blind spot "
                     + ("0: its prediction fused with the noisy pixel by the posterior mean." if blind_spot == "0"
                        else "1: the blind-spot mean alone."))
    else:
        d = t.get("distillation", {})
        lines.append(f"A plain (non-blind) UNet distilled from a {d.get('teacher_method', 'blind-spot')} teacher "
                     f"run at blind spots {d.get('teacher_blind_spots', '?')} (AT-BSN (D) multi-teacher "
                     "distillation): one pass, no blind spot.")
    lines += ["", "The model is self-supervised: it was trained on noisy images alone, with no clean reference.",
              "", "## Training", "", f"- network: {method}, width {c.network.width}, depth {c.network.depth}, "
              f"{model.n_parameters:,} parameters, {c.network.in_channels} channel(s) in; loss {c.loss}",
              f"- blind spot: trained at {c.train_blind_spot}, inference default {c.inference_blind_spot}, "
              f"exported at {blind_spot}",
              f"- {t.get('steps', '?')} steps in {t.get('seconds', 0):.0f} s on {t.get('device', '?')}, "
              f"best validation loss {t.get('best_val_loss', float('nan')):.5g} at step {t.get('best_step', '?')}",
              f"- training data: shape {t.get('data_shape', '?')}, {t.get('data_dtype', '?')}, axes "
              f"{t.get('data_axes', c.axes)}, channels {c.channel_mode}"]
    if c.noise:
        lines.append(f"- noise estimate of the training data: {c.noise.get('summary', '')}".rstrip())
    hot = t.get("hot_pixels")
    if hot and hot.get("repaired"):
        lines.append(f"- {hot.get('repaired', 0)} hot/dead pixel(s) of the training data were repaired before training")
    lines += ["", "## Input, output and normalisation", "",
              f"- input `{INPUT_ID}`: float32 `(batch, channel, y, x)`, {n_channels} channel(s), in the raw units "
              "of the training data (the same camera units and offset); any height and width of at least "
              f"{min_size[0]} x {min_size[1]} pixels (the network pads internally to its pooling grid of "
              f"{2 ** c.network.depth} pixels)",
              f"- output `{OUTPUT_ID}`: the input's shape and units, float32, not clipped",
              f"- normalisation: `(x - mean) / std` per channel with the training data's mean {_fmt(norm.mean)} and "
              f"std {_fmt(norm.std)}, undone at the output; it is part of the weights (no pre- or postprocessing "
              "steps to configure)"]
    if c.channel_mode == "independent":
        lines.append("- channels are denoised independently by the same one-channel network")
    lines += ["", "## What the export computes, and what it does not", "",
              f"- It computes what `napari_bsdenoise.denoise(image, model, blind_spot={call_spot}, "
              "hot_pixels=\"keep\")` computes for one 2-D image, with these settings fixed.",
              "- Noisy-input fusion: " + ("included: the blind-spot output is fused with the noisy input where it "
                                          "misses detail, against the noise curve measured on the training data."
                                          if fused else "not applied (it does not apply to this model or was "
                                          "turned off at export: the network's output alone)."),
              "- Hot-pixel repair is NOT included: napari-bsdenoise replaces isolated outliers (hot and dead pixels, "
              "cosmic rays) of the input before the network runs; this model gets them as they are, and a non-blind "
              "or fused output keeps them. Repair them first, or use napari-bsdenoise itself.",
              "- 3-D data and time series: each 2-D slice is denoised on its own.",
              f"- Tiling: one pass over the whole input. To tile, overlap tiles by at least {receptive_radius} pixels "
              "(the receptive radius) to reproduce the untiled result.",
              "", "## Validation", "",
              f"The test output was produced by the exported TorchScript module from the test input; on that input it "
              f"differs from `napari_bsdenoise.denoise` by at most {max_difference:.3g} (in the data's units). "
              "Check the package with `bioimageio test <package>.zip` (bioimageio.core).", "",
              "There is no clean reference for self-supervised training data, so the quality of this particular "
              "model was not measured: look at the output and at the residual (input minus output), which should "
              "hold noise only. The quality of the methods on public benchmarks with clean references (SIDD, "
              "Nam, FMD, W2S) is measured in napari-bsdenoise's documentation (docs/benchmarks.md, docs/export.md).",
              "", "## Weights", "",
              "- `torchscript` (`weights_torchscript.pt`): needs PyTorch only",
              "- `pytorch_state_dict` (`weights.pt`): the architecture is "
              f"`{ARCHITECTURE_MODULE}.{ARCHITECTURE_CALLABLE}` (needs napari-bsdenoise installed: `environment.yaml`)"]
    if "onnx" in formats:
        lines.append("- `onnx` (`weights.onnx`)")
    lines += ["- `model.safetensors` (attachment): the original napari-bsdenoise model, for "
              "`napari_bsdenoise.load_model` (any blind spot, hot-pixel repair, tiling of large data)",
              "", "## References", ""]
    lines += [f"- {ref['text']}. {ref['url']}" for ref in citations(model)]
    return "\n".join(lines) + "\n"
