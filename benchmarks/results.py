"""Benchmark results I/O: the resumable results CSV (one row per group x image x method)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from data import REPO

RESULTS_DIR = REPO / "benchmarks" / "results"
FIELDS = ("group", "image", "method", "psnr", "ssim", "si_psnr", "si_ssim", "seconds", "info")


def read_results(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def done_keys(path: Path, fields=("group", "image", "method")) -> set[tuple[str, ...]]:
    """The ``fields`` of the rows already in a resumable results CSV (empty when there is none)."""
    return {tuple(r[f] for f in fields) for r in read_results(path)}


def shard(items, spec: str) -> list:
    """Every N-th of ``items`` from the K-th, for ``--shard K/N`` (parallel runs)."""
    k, n = (int(v) for v in spec.split("/"))
    return list(items)[k::n]


def format_info(info: dict) -> str:
    parts = []
    for k, v in info.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k}={v}")
    return ";".join(parts)


def append_result(path: Path, row: dict) -> None:
    """Append one row (creating the file with a header), flushed so an interrupted run loses nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file() or path.stat().st_size == 0
    out = {k: row.get(k, "") for k in FIELDS}
    for k in ("psnr", "ssim", "si_psnr", "si_ssim"):
        if isinstance(out[k], float):
            out[k] = f"{out[k]:.4f}"
    if isinstance(out["seconds"], float):
        out["seconds"] = f"{out['seconds']:.2f}"
    if isinstance(out["info"], dict):
        out["info"] = format_info(out["info"])
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(out)
        fh.flush()
        os.fsync(fh.fileno())


def append_rows(path: Path, fields, rows: list[dict]) -> None:
    """Append ``rows`` with the columns ``fields`` to a CSV (a header first when the file is new)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields))
        if new:
            w.writeheader()
        w.writerows(rows)
