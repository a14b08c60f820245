"""The one model-file format: safetensors weights with the JSON config in its header.

A ``.safetensors`` file is a length-prefixed JSON header followed by raw
tensor bytes; nothing in it is ever executed.  The model config lives under
the header's ``__metadata__`` key ``napari_bsdenoise``, so one file holds both.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from .errors import ModelFileError

METADATA_KEY = "napari_bsdenoise"
_MAX_HEADER = 100 * 1024 * 1024


def _sniff(path: Path) -> None:
    """Reject files that are clearly not safetensors with a specific message."""
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        first = fh.read(1)
    if len(head) == 8 and first == b"{":
        (n,) = struct.unpack("<Q", head)
        if n <= _MAX_HEADER and n + 8 <= size:
            return  # a safetensors header (its length's first byte may well be 0x80, like a pickle's)
    if len(head) < 8:
        raise ModelFileError(f"{path} is empty or truncated ({size} bytes): not a napari-bsdenoise model file")
    if head[:2] == b"PK":
        raise ModelFileError(
            f"{path} is a zip archive (e.g. a PyTorch .pt/.pth checkpoint); napari-bsdenoise only loads "
            "safetensors model files it wrote, and never unpickles files"
        )
    if head[0] == 0x80:
        raise ModelFileError(f"{path} looks like a Python pickle; napari-bsdenoise never loads pickles (unsafe)")
    (n,) = struct.unpack("<Q", head)
    if n > _MAX_HEADER or n + 8 > size:
        raise ModelFileError(f"{path} is not a valid safetensors file (truncated or corrupted header)")


def write(path, tensors: dict, config: dict) -> Path:
    """Write ``tensors`` (name -> torch.Tensor) and ``config`` atomically to ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(config)})
    os.replace(tmp, path)  # never leaves a half-written model under the final name
    return path


def read_config(path) -> dict:
    """Return the JSON config of a model file without loading the weights."""
    from safetensors import safe_open

    path = Path(path)
    _sniff(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"{path} is not a readable safetensors file: {exc}") from None
    if METADATA_KEY not in meta:
        raise ModelFileError(f"{path} is a safetensors file but not a napari-bsdenoise model (no model config in it)")
    try:
        return json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: the model config is not valid JSON ({exc})") from None


def read(path) -> tuple[dict, dict]:
    """Return ``(tensors, config)`` of a model file."""
    from safetensors.torch import load_file

    config = read_config(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelFileError(f"{path}: the weights cannot be read (truncated or corrupted file?): {exc}") from None
    return tensors, config
