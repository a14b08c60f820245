"""Export a model to a BioImage Model Zoo package (a zip with ``rdf.yaml``, bioimage.io model format 0.5).

The exported module (:class:`~napari_bsdenoise.nn.exported.ExportedDenoiser`) is the model's network at
one fixed blind spot with the training data's normalisation and, where :func:`napari_bsdenoise.denoise`
applies it, the noisy-input fusion (:func:`~napari_bsdenoise.engine.inference.resolve_fusion`), in raw
units in and out.  The package holds it as TorchScript and as a PyTorch state dict (plus ONNX on request),
test tensors made by the TorchScript module itself, a cover, a model card and the original model file.
Before anything is written the TorchScript output is checked against :func:`denoise_array` on the test
image.  Writing needs torch, PyYAML and Pillow only; checking the package needs ``bioimageio.core``
(docs/export.md).
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path

import numpy as np

from .. import registry
from ..axes import SampleLayout, to_samples
from ..config import check_blind_spot
from ..errors import BSDenoiseError, InputError
from ..inputs import check_image, match_normalization
from ..io import bioimageio as package
from ..model import BlindSpotModel, register_exporter
from ..version import __version__
from .denoise import denoise_array
from .inference import inference_layout, resolve_fusion

FORMATS = ("torchscript", "onnx")
EXPORTABLE = ("atbsn", "dbsn", "student")
DEFAULT_LICENSE = "BSD-3-Clause"
#: The test image is the centre of the given image, at most this many pixels per side.
TEST_SIDE = 256
SYNTHETIC_SIDE = 128
ONNX_OPSET = 17
#: The TorchScript output may differ from :func:`denoise_array` by this fraction of the data's std.
TOLERANCE = 1e-3
NAME_CHARACTERS = re.compile(r"^[A-Za-z0-9_+\- ()]{5,128}$")
SHORT = {"atbsn": "AT-BSN", "dbsn": "D-BSN", "student": "distilled student"}


def package_path(path, overwrite: bool) -> Path:
    """``path`` with ``.zip`` appended when missing; an :class:`InputError` when it exists (and not
    ``overwrite``) or is a folder."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        path = path.with_name(path.name + ".zip")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the package's file name (e.g. model.zip)")
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    return path


def check_export(model, blind_spot, format: str):
    """The blind spot to export ``model`` at, or an :class:`InputError` saying what does not fit."""
    if getattr(model, "network", None) is None:
        raise InputError("the model has no network to export (load it with napari_bsdenoise.load_model)")
    if model.method not in EXPORTABLE:
        raise InputError(f"{model.method} models cannot be exported (exportable: {', '.join(EXPORTABLE)}); "
                         "BSGD refines a blind-spot model at run time: export its guide")
    if format not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}, got {format!r}")
    if format == "onnx" and importlib.util.find_spec("onnx") is None:
        raise InputError("format='onnx' needs the onnx package (pip install onnx); the default format "
                         "'torchscript' needs nothing more")
    s = model.inference_blind_spot if blind_spot is None else check_blind_spot(blind_spot)
    registry.get(model.method).check_inference_blind_spot(s)
    return s


def sides(s) -> tuple[int, int]:
    """``(y, x)`` sides of a blind spot (an odd side, or a ``(y, x)`` pair of them)."""
    return (int(s[0]), int(s[1])) if isinstance(s, (tuple, list)) else (int(s), int(s))


def spot_text(s) -> str:
    """``"3"`` for a square blind spot, ``"1x9"`` (y x x) for a rectangle."""
    y, x = sides(s)
    return str(y) if y == x else f"{y}x{x}"


def default_name(model, s) -> str:
    what = SHORT[model.method]
    return f"napari-bsdenoise {what} denoiser" + ("" if model.is_student else f" (blind spot {spot_text(s)})")


def test_input(model, image, axes: str | None, s) -> np.ndarray:
    """``(1, C, Y, X)`` float32: the centre of the first 2-D slice of ``image`` (at most :data:`TEST_SIDE`
    pixels per side), or a synthetic noisy image at the model's intensities when ``image`` is None."""
    cfg = model.config
    n = cfg.network.in_channels if cfg.channel_mode == "joint" else len(cfg.normalization.mean)
    if image is None:
        return synthetic_image(model, n)
    layout, _ = inference_layout(image, model, axes, s)
    idx = []
    for a, size in zip(layout.axes, layout.shape):
        if a in "YX":
            side = min(size, TEST_SIDE)
            start = (size - side) // 2
            idx.append(slice(start, start + side))
        else:
            idx.append(0 if a in "TZ" else slice(None))
    crop = check_image(np.asarray(image[tuple(idx)]))
    sub = "".join(a for a in layout.axes if a not in "TZ")
    samples = to_samples(crop, SampleLayout(sub, tuple(crop.shape), layout.channel_mode))
    if samples.shape[1] != n:
        if cfg.channel_mode == "independent" and n == 1:
            samples = samples[:, :1]  # a one-channel normalisation: the package takes one channel
        else:
            raise InputError(f"the model was trained on {n} channel(s) and the image has {samples.shape[1]}")
    return np.ascontiguousarray(samples[:1])


def synthetic_image(model, n: int) -> np.ndarray:
    """A seeded noisy test image: scikit-image's camera (astronaut for 3 channels) at the training data's
    mean and spread, plus Gaussian noise of the level the model measured (half the spread without one)."""
    from skimage import data, transform

    cfg = model.config
    norm = cfg.normalization
    rgb = n == 3
    base = data.astronaut().astype(np.float32) if rgb else data.camera().astype(np.float32)[..., None]
    base = transform.resize(base[:, 64:-64] if rgb else base, (SYNTHETIC_SIDE, SYNTHETIC_SIDE), anti_aliasing=True)
    base = np.moveaxis(base, -1, 0)
    base = np.broadcast_to(base, (n,) + base.shape[1:]) if not rgb else base
    rng = np.random.default_rng(0)
    out = np.empty((1, n, SYNTHETIC_SIDE, SYNTHETIC_SIDE), np.float32)
    noise_std = float((cfg.noise or {}).get("noise_std", 0.0))
    for c in range(n):
        mean, std = norm.mean[min(c, len(norm.mean) - 1)], norm.std[min(c, len(norm.std) - 1)]
        sigma = noise_std if 0 < noise_std < std else 0.5 * std
        signal = max(std**2 - sigma**2, (0.1 * std) ** 2) ** 0.5
        b = base[c]
        out[0, c] = mean + signal * (b - b.mean()) / max(float(b.std()), 1e-12) + rng.normal(0, sigma, b.shape)
    return out


def export_bioimageio(model, path, *, blind_spot=None, format: str = "torchscript", fusion="auto",
                      image=None, axes: str | None = None, name: str | None = None, description: str | None = None,
                      authors=None, license: str = DEFAULT_LICENSE, tags=(), overwrite: bool = False) -> Path:
    """Write ``model`` as a BioImage Model Zoo package (bioimage.io model format 0.5) to ``path`` (``.zip``
    is appended when missing) and return its path (docs/export.md).

    The package computes ``denoise(image, model, blind_spot=blind_spot, fusion=fusion, hot_pixels="keep")``
    for one 2-D image, raw units in and out: the normalisation and the noisy-input fusion are part of the
    weights, the hot-pixel repair is not.  It holds TorchScript and PyTorch state-dict weights
    (``format="onnx"`` adds ONNX when the ``onnx`` package is installed), test tensors made by the exported
    module, a cover, a model card and the model file.  Needs no ``bioimageio`` package; check the result
    with ``bioimageio test PATH`` (bioimageio.core).

    Parameters
    ----------
    model : BlindSpotModel
        An AT-BSN, D-BSN or student model (a BSGD model refines its guide at run time: export the guide).
    blind_spot : int or (int, int), optional
        The fixed blind spot (default: the model's ``inference_blind_spot``; a student 0 only, D-BSN 0 or 1).
    fusion : {"auto", True, False}
        As in :func:`napari_bsdenoise.denoise`.
    image, axes : optional
        A noisy image like the training data: the centre of its first 2-D slice (at most 256 x 256 pixels)
        becomes the test input and the cover; default: a synthetic image at the model's intensities.
    name, description, authors, license, tags : optional
        The package's metadata (``authors``: names or bioimage.io author dicts; ``license``: an SPDX id).
    overwrite : bool
        Replace an existing ``path`` (otherwise an :class:`~napari_bsdenoise.errors.InputError`).
    """
    if not isinstance(model, BlindSpotModel):
        raise InputError(f"model must be a BlindSpotModel (from train or load_model), got {type(model).__name__}")
    s = check_export(model, blind_spot, format)
    path = package_path(path, overwrite)
    name = default_name(model, s) if name is None else str(name)
    if not NAME_CHARACTERS.match(name):
        raise InputError(f"name {name!r} must be 5 to 128 letters, digits, spaces or _+-() (bioimage.io's rule)")
    x = test_input(model, image, axes, s)
    cfg = model.config
    norm = match_normalization(cfg.normalization, SampleLayout("CYX", x.shape[1:], cfg.channel_mode))
    params = resolve_fusion(model, s, norm, fusion)
    module, scripted = build_module(model, s, norm, params)
    import torch

    with torch.no_grad():
        y = scripted(torch.from_numpy(x)).numpy()
    want = denoise_array(x[0], model, axes="CYX", blind_spot=s, device="cpu", fusion=fusion, hot_pixels="keep")
    diff = float(np.max(np.abs(y[0] - want)))
    if not diff <= TOLERANCE * max(norm.std):
        raise BSDenoiseError(f"the exported module does not reproduce napari_bsdenoise.denoise (max difference "
                             f"{diff:.3g} on the test image); please report this")
    what = SHORT[model.method]
    description = description or (f"Self-supervised {what} denoiser trained with napari-bsdenoise on noisy images "
                                  "alone" + ("" if model.is_student else f", at blind spot {spot_text(s)}"))
    info = dict(blind_spot=spot_text(s), fused=params is not None, n_channels=x.shape[1],
                min_size=tuple(max(v, 2) + 1 for v in sides(s)))
    radius = module.network.receptive_radius(s) + (params.window // 2 if params is not None else 0)
    with tempfile.TemporaryDirectory(prefix="bsdenoise-export-") as tmp:
        folder = Path(tmp)
        torch.jit.save(scripted, str(folder / "weights_torchscript.pt"))
        torch.save(module.state_dict(), folder / "weights.pt")
        package.write_tensors(folder, x, y)
        package.write_png(folder / "cover.png", package.cover(x[0], y[0]))
        (folder / "environment.yaml").write_text(package.environment(__version__))
        model.save(folder / "model.safetensors")
        opset = export_onnx(scripted, x, y, folder / "weights.onnx", what) if format == "onnx" else None
        card = package.model_card(model, name=name, description=description, receptive_radius=radius,
                                  max_difference=diff, formats=[format], version=__version__, **info)
        (folder / "README.md").write_text(card, encoding="utf-8")
        training = {k: v for k, v in cfg.training.items() if k != "history"}  # the loss curves stay in the file
        config = {"version": __version__, "blind_spot": list(s) if isinstance(s, tuple) else s,
                  "fusion": params is not None, "hot_pixel_repair": False, "max_abs_difference_to_denoise": diff,
                  "receptive_radius": radius, "model_config": {**cfg.to_dict(), "training": training}}
        tags = ["denoising", "self-supervised", "blind-spot", "2d", "pytorch", "napari-bsdenoise",
                what.lower().replace(" ", "-"), *tags]
        content = package.rdf(folder, name=name, description=description, authors=authors,
                              cite=package.citations(model), license=license, tags=list(dict.fromkeys(tags)),
                              n_channels=info["n_channels"], min_size=info["min_size"],
                              torch_version=torch.__version__.split("+")[0],
                              architecture_kwargs=module_kwargs(model, s, norm, params), onnx_opset=opset,
                              config=config)
        package.write_yaml(folder / "rdf.yaml", content)
        path.parent.mkdir(parents=True, exist_ok=True)
        return package.zip_folder(folder, path)


def module_kwargs(model, s, norm, params) -> dict:
    """The JSON-compatible keywords of :class:`~napari_bsdenoise.nn.exported.ExportedDenoiser` for ``model``."""
    from ..nn.exported import fusion_kwargs

    net = model.config.network
    return dict(method=net.method, in_channels=net.in_channels, out_channels=net.out_channels, width=net.width,
                depth=net.depth, blind_spot=list(sides(s)) if isinstance(s, (tuple, list)) else int(s),
                mean=[float(m) for m in norm.mean], std=[float(v) for v in norm.std],
                independent=model.config.channel_mode == "independent", fusion=fusion_kwargs(params))


def build_module(model, s, norm, params):
    """``(module, scripted)``: the :class:`~napari_bsdenoise.nn.exported.ExportedDenoiser` of ``model`` with
    its weights (on the CPU, in eval mode) and its TorchScript version."""
    from ..nn.exported import ExportedDenoiser

    module = ExportedDenoiser(**module_kwargs(model, s, norm, params))
    module.network.load_state_dict(model.network.state_dict(), strict=True)
    module.eval()
    return module, module.to_torchscript()


def onnx_rot90(g, x, k: int, dims):
    """``torch.rot90`` (AT-BSN's rotations) for torch's TorchScript-based ONNX exporter, which has no operator
    for it: flips (``Slice`` with step -1) and a ``Transpose``, as ``torch.rot90`` defines it."""
    import torch

    a, b = dims

    def const(v):
        return g.op("Constant", value_t=torch.tensor([v], dtype=torch.int64))

    def flip(t, axis):
        return g.op("Slice", t, const(-1), const(-(2**63)), const(axis), const(-1))

    def swap(t):
        perm = [0, 1, 2, 3]
        perm[a], perm[b] = perm[b], perm[a]
        return g.op("Transpose", t, perm_i=perm)

    k %= 4
    return x if k == 0 else swap(flip(x, b)) if k == 1 else flip(flip(x, a), b) if k == 2 else swap(flip(x, a))


def export_onnx(scripted, x: np.ndarray, y: np.ndarray, path: Path, what: str) -> int:
    """Write ``scripted`` as ONNX (batch, height and width dynamic) and return the opset; checked against
    ``y`` with onnxruntime when it is installed."""
    import torch
    from torch.onnx import symbolic_helper

    torch.onnx.register_custom_op_symbolic("aten::rot90", symbolic_helper.parse_args("v", "i", "is")(onnx_rot90),
                                           ONNX_OPSET)
    try:
        torch.onnx.export(scripted, (torch.from_numpy(x),), str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[package.INPUT_ID], output_names=[package.OUTPUT_ID],
                          dynamic_axes={n: {0: "batch", 2: "y", 3: "x"}
                                        for n in (package.INPUT_ID, package.OUTPUT_ID)})
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"the ONNX export of this {what} model failed ({type(exc).__name__}: {first}); "
                         "use format='torchscript'") from None
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::rot90", ONNX_OPSET)
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {package.INPUT_ID: x})[0]
        if not np.allclose(got, y, rtol=1e-3, atol=1e-3 * float(np.std(y)) + 1e-6):
            raise BSDenoiseError(f"the ONNX export of this {what} model does not reproduce its TorchScript output; "
                                 "use format='torchscript'")
    return ONNX_OPSET


register_exporter("bioimageio", export_bioimageio)  # BlindSpotModel.export_bioimageio
