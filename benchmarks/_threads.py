"""Thread limits for the benchmark scripts (kept free of numpy/torch: it must run before they load)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads(threads: int) -> None:
    """Cap OpenMP/BLAS/numexpr at ``threads`` (read when those libraries load, so call this before
    importing numpy or torch) and make ``benchmarks/`` importable (``common``)."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)


def run_on_threads(run, args) -> int:
    """``run(args)`` on ``args.threads`` threads (OpenMP/BLAS capped first, then torch's own pool)."""
    limit_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    run(args)
    return 0
