"""Device and numeric-precision choice (CUDA, Apple MPS or CPU; fp32 or bf16 autocast)."""

from __future__ import annotations

import contextlib
import functools

from .errors import InputError


def resolve_device(device=None):
    """``None``/"auto" picks CUDA, then Apple MPS, then the CPU; anything else is passed to torch."""
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1', 'mps' or None") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device='cuda' was asked for but no CUDA GPU is available to PyTorch")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device='mps' was asked for but Apple MPS is not available to PyTorch")
    return dev


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str | None, device, *, training: bool = False) -> str:
    """Pick "fp32" or "bf16".

    "auto" trains in bf16 autocast where the hardware has native bf16 (CUDA GPUs
    that support it, CPUs with AVX512-BF16/AMX: about 2x faster steps with no
    measurable quality cost, docs/benchmarks.md) and keeps fp32 for inference on
    the CPU, where bf16's 8-bit mantissa would quantise 16-bit intensities.
    """
    import torch

    precision = precision or "auto"
    if precision not in ("auto", "fp32", "bf16"):
        raise InputError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and training and cpu_has_bf16():
        return "bf16"
    return "fp32"


def autocast(device, precision: str):
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_device(device=None) -> str:
    """The device that ``device`` (None: the automatic choice) resolves to, for a label or a log."""
    import torch

    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"CUDA GPU ({torch.cuda.get_device_name(dev)})"
    if dev.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
