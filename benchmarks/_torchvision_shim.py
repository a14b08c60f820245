"""Minimal stand-in for ``torchvision`` so that careamics can be imported next to the CPU torch.

Why this exists: the benchmarks must run on the pinned CPU build of torch (2.13.0+cpu), and no
torchvision wheel matching it can be installed here (the PyPI wheel is built against CUDA torch and
fails at import with ``operator torchvision::nms does not exist``). careamics 0.3.5 nevertheless
imports torchvision at module import time, in two places only:

* ``torchvision.transforms.functional`` (``center_crop``) in its LVAE / HDN / MicroSplit code
  (``careamics.models.lvae``, ``careamics.lvae_training``), and
* ``torchvision.__version__`` in its BioImage Model Zoo export (``careamics.model_io.bioimage``),
  to write the version into the exported environment file.

The N2V and N2V2 code paths that ``benchmarks/n2v_peer.py`` uses (UNet, N2V masking, training,
prediction) never call any of it; the stand-in only lets ``import careamics`` succeed. Do not use it
for LVAE models or BioImage export.

``install()`` does nothing when a real torchvision imports; otherwise it registers the modules
``torchvision`` (``__version__ = "0.0-shim"``), ``torchvision.transforms`` and
``torchvision.transforms.functional`` (only ``center_crop``, same semantics as torchvision's tensor
version: zero-pad when the crop is larger than the image, round the offsets like torchvision).

Before registering, it records "torchvision is not available" in lightning_utilities' cached
availability checks, which lightning and torchmetrics consult (``RequirementCache("torchvision")``):
otherwise they would see the stand-in, believe torchvision is installed, and import parts of it
(e.g. ``torchvision.ops``) that the stand-in does not have.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

SHIM_VERSION = "0.0-shim"


def center_crop(img, output_size):
    """Crop the centre of a tensor with shape ``[..., H, W]`` to ``output_size``.

    ``output_size`` is an int (square crop) or a sequence ``(h, w)`` / ``(s,)``, as in
    ``torchvision.transforms.functional.center_crop``. A crop larger than the image is zero-padded
    first, as torchvision does.
    """
    import torch.nn.functional as F

    if isinstance(output_size, int):
        crop_h = crop_w = int(output_size)
    else:
        size = [int(s) for s in output_size]
        if len(size) == 1:
            crop_h = crop_w = size[0]
        elif len(size) == 2:
            crop_h, crop_w = size
        else:
            raise ValueError(f"output_size must be an int or a sequence of 1 or 2 ints, got {output_size!r}")

    h, w = int(img.shape[-2]), int(img.shape[-1])
    if crop_h > h or crop_w > w:
        pad_left = (crop_w - w) // 2 if crop_w > w else 0
        pad_top = (crop_h - h) // 2 if crop_h > h else 0
        pad_right = (crop_w - w + 1) // 2 if crop_w > w else 0
        pad_bottom = (crop_h - h + 1) // 2 if crop_h > h else 0
        img = F.pad(img, [pad_left, pad_right, pad_top, pad_bottom], value=0.0)
        h, w = int(img.shape[-2]), int(img.shape[-1])
        if crop_h == h and crop_w == w:
            return img

    top = int(round((h - crop_h) / 2.0))
    left = int(round((w - crop_w) / 2.0))
    return img[..., top : top + crop_h, left : left + crop_w]


def install() -> bool:
    """Register the stand-in if ``import torchvision`` fails; return True when the shim is in use."""
    existing = sys.modules.get("torchvision")
    if existing is not None:
        return getattr(existing, "__version__", None) == SHIM_VERSION
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA wheel raising RuntimeError at import
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # drop half-imported pieces of a broken install
    else:
        return False

    try:  # cache the truth (absent) before the stand-in can be found; see the module docstring
        from lightning_utilities.core.imports import module_available, package_available

        package_available("torchvision")
        module_available("torchvision")
    except ImportError:
        pass

    def _module(name: str, package: bool) -> types.ModuleType:
        mod = types.ModuleType(name)
        # a spec, so that importlib.util.find_spec() on these names does not raise ValueError
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=__file__, is_package=package)
        mod.__file__ = __file__
        if package:
            mod.__path__ = []  # a package: submodule imports resolve via sys.modules
        return mod

    tv = _module("torchvision", True)
    tv.__doc__ = "Stand-in for torchvision installed by benchmarks/_torchvision_shim.py (see there)."
    tv.__version__ = SHIM_VERSION
    transforms = _module("torchvision.transforms", True)
    functional = _module("torchvision.transforms.functional", False)
    functional.center_crop = center_crop
    transforms.functional = functional
    tv.transforms = transforms
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.transforms"] = transforms
    sys.modules["torchvision.transforms.functional"] = functional
    return True
