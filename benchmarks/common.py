"""Shared pieces of the quality benchmark: data, metrics, classical baselines, results I/O.

Data
----
Real noisy/clean pairs live OUTSIDE the repository (research-only terms; never copy them in).
They are found through the environment variable ``BSDENOISE_DATA`` or, by default, at
``<repo>/../shared/data/real`` (a folder holding ``pairs.csv``).  :func:`data_root` returns ``None``
when the folder is absent so callers can skip cleanly.

Groups (``pairs.csv`` sources):

* ``sidd``  = ``sidd_yilmazdoga`` + ``sidd_val_block_danet`` (13 smartphone sRGB pairs, correlated noise)
* ``nam``   = ``cc15_nam`` + ``nam_cbdnet`` (40 DSLR sRGB pairs, mild correlated noise)
* ``w2s``   = ``w2s_8bit`` (240 widefield fluorescence, 8-bit grey, FOV 001-080; noisy and clean were
  contrast-stretched one by one, so only the scale-invariant metrics are meaningful)
* ``fmd``   = ``fmd_samples`` (10 grey fluorescence pairs, same 8-bit scale)
* ``synthetic`` = bundled scikit-image images with known clean signal, see :func:`synthetic_pairs`.

Subsets (``limit``) are deterministic: evenly spaced indices over the ``pairs.csv`` order; for W2S the
subset takes evenly spaced fields of view and cycles through the three stains (``i % 3``) so that a
subset of 40 covers 40 different FOVs and all stains (a plain "every 6th" would pick stain 0 only).

Metric conventions (all computed in float64, in 0-255 units)
------------------------------------------------------------
* The method output is converted to float and **clipped to [0, 255], not rounded**; every metric is
  computed on this clipped float image against the float clean image.
* ``psnr``   = 10 log10(255^2 / MSE) over all pixels and channels (data_range 255).
* ``ssim``   = ``skimage.metrics.structural_similarity(gt, out, data_range=255)`` with scikit-image's
  defaults (7x7 uniform window, sample covariance, K1=0.01, K2=0.03, i.e. *not* the Gaussian-weighted
  variant of Wang et al. that some papers use), ``channel_axis=-1`` for RGB = mean of per-channel SSIM.
* ``si_psnr`` = scale-invariant PSNR: fit ``a*out + b`` to ``gt`` by least squares (one global a, b over
  all pixels and channels), then PSNR (data_range 255) of the fitted image, which is not clipped again.
  Always >= ``psnr``.  This reproduces the ``si_psnr`` column of ``pairs.csv`` for W2S exactly.
* ``si_ssim`` = SSIM (as above) of the same affinely fitted image; use it instead of ``ssim`` for W2S.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
DATA_ENV = "BSDENOISE_DATA"

GROUP_SOURCES: dict[str, tuple[str, ...]] = {
    "sidd": ("sidd_yilmazdoga", "sidd_val_block_danet"),
    "nam": ("cc15_nam", "nam_cbdnet"),
    "w2s": ("w2s_8bit",),
    "fmd": ("fmd_samples",),
}
REAL_GROUPS = tuple(GROUP_SOURCES)
ALL_GROUPS = REAL_GROUPS + ("synthetic",)
# groups whose noise is (nominally) pixel-independent: blind spot 1 is valid there
PIXEL_INDEPENDENT_GROUPS = ("w2s", "fmd")
# groups whose noisy and clean images are not on the same intensity scale
SCALE_FREE_GROUPS = ("w2s",)


# --------------------------------------------------------------------------------------------- data
def data_root() -> Path | None:
    """Folder holding ``pairs.csv``: ``$BSDENOISE_DATA`` or ``<repo>/../shared/data/real``; None if absent."""
    env = os.environ.get(DATA_ENV)
    root = Path(env).expanduser() if env else (REPO.parent / "shared" / "data" / "real")
    return root if (root / "pairs.csv").is_file() else None


@dataclass
class Pair:
    """One noisy/clean pair; arrays are loaded lazily by :meth:`load`."""

    group: str
    name: str  # stable id, e.g. "cc15_nam/d600_iso3200_1_real.png" or "synthetic/camera_pg"
    pixel_independent: bool
    meta: dict = field(default_factory=dict)
    _loader: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(noisy, gt)``: noisy as stored (uint8), gt as float64, both HxW or HxWx3."""
        noisy, gt = self._loader()
        return noisy, np.asarray(gt, dtype=np.float64)

    @property
    def rgb(self) -> bool:
        return int(self.meta.get("c", 1)) == 3


def _read_image(path: Path, channels: int) -> np.ndarray:
    from skimage import io

    img = io.imread(path)
    if channels == 1 and img.ndim == 3:
        img = img[..., 0]
    if channels == 3 and img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    return img


def _subset_indices(n: int, limit: int | None) -> list[int]:
    if limit is None or limit >= n:
        return list(range(n))
    return [int(i * n // limit) for i in range(limit)]


def _w2s_subset(rows: list[dict], limit: int | None) -> list[dict]:
    """Evenly spaced FOVs, stain cycling with the subset index (deterministic)."""
    if limit is None or limit >= len(rows):
        return rows
    by_fov: dict[str, dict[int, dict]] = {}
    for r in rows:
        stem = Path(r["noisy"]).stem  # "FFF_C"
        fov, stain = stem.split("_")
        by_fov.setdefault(fov, {})[int(stain)] = r
    fovs = sorted(by_fov)
    if limit > len(fovs):  # more than one image per FOV wanted: plain even spacing
        return [rows[i] for i in _subset_indices(len(rows), limit)]
    out = []
    for i, k in enumerate(_subset_indices(len(fovs), limit)):
        stains = by_fov[fovs[k]]
        want = i % 3
        out.append(stains.get(want, stains[min(stains)]))
    return out


def real_pairs(group: str, limit: int | None = None, root: Path | None = None) -> list[Pair]:
    """Pairs of a real group in ``pairs.csv`` order (deterministic subset when ``limit`` is set)."""
    root = root or data_root()
    if root is None:
        raise FileNotFoundError(f"benchmark data not found; set {DATA_ENV}")
    with open(root / "pairs.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] in GROUP_SOURCES[group]]
    if group == "w2s":
        rows = _w2s_subset(rows, limit)
    else:
        rows = [rows[i] for i in _subset_indices(len(rows), limit)]
    pairs = []
    for r in rows:
        c = int(r["c"])

        def loader(r=r, c=c):
            return _read_image(root / r["noisy"], c), _read_image(root / r["gt"], c)

        pairs.append(
            Pair(
                group=group,
                name=r["noisy"],
                pixel_independent=group in PIXEL_INDEPENDENT_GROUPS,
                meta={k: r[k] for k in ("source", "h", "w", "c", "psnr_255", "si_psnr", "resid_lag1_corr_x")},
                _loader=loader,
            )
        )
    return pairs


# synthetic: (name, skimage.data image, noise kind, parameters, seed)
# Poisson-Gaussian: y = gain * Poisson(x / gain) + N(0, read^2), x in 0-255 units (pixel-independent).
# Correlated: white N(0, s0^2) filtered per channel by the 3x3 binomial Gaussian [1,2,1]x[1,2,1]/16,
#   s0 = 40 -> std after filtering 40 * 0.375 = 15; lag-1 correlation 0.67.
# The noisy images are clipped to [0, 255] and rounded to uint8 like the real 8-bit data.
SYNTHETIC_SPECS = (
    ("camera_pg", "camera", "poisson_gaussian", {"gain": 4.0, "read": 5.0}, 1001),
    ("cell_pg", "cell", "poisson_gaussian", {"gain": 2.0, "read": 3.0}, 1002),
    ("camera_corr", "camera", "correlated_gaussian", {"sigma_white": 40.0}, 1003),
    ("astronaut_corr", "astronaut", "correlated_gaussian", {"sigma_white": 40.0}, 1004),
)
_BINOMIAL3 = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0


def make_synthetic(image: str, kind: str, params: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(noisy uint8, clean float64)`` for one synthetic spec.

    ``cell`` (bundled with scikit-image) stands in for ``human_mitosis``, which scikit-image downloads
    on first use and so is not reproducible offline.
    """
    from scipy import ndimage as ndi
    from skimage import data

    clean = getattr(data, image)().astype(np.float64)
    rng = np.random.default_rng(seed)
    if kind == "poisson_gaussian":
        g = params["gain"]
        noisy = g * rng.poisson(clean / g) + rng.normal(0.0, params["read"], clean.shape)
    elif kind == "correlated_gaussian":
        white = rng.normal(0.0, params["sigma_white"], clean.shape)
        if white.ndim == 3:
            noise = np.stack([ndi.convolve(white[..., c], _BINOMIAL3, mode="reflect") for c in range(white.shape[-1])], -1)
        else:
            noise = ndi.convolve(white, _BINOMIAL3, mode="reflect")
        noisy = clean + noise
    else:
        raise ValueError(kind)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), clean


def synthetic_pairs(limit: int | None = None) -> list[Pair]:
    specs = [SYNTHETIC_SPECS[i] for i in _subset_indices(len(SYNTHETIC_SPECS), limit)]
    out = []
    for name, image, kind, params, seed in specs:
        c = 3 if image == "astronaut" else 1
        out.append(
            Pair(
                group="synthetic",
                name=f"synthetic/{name}",
                pixel_independent=kind == "poisson_gaussian",
                meta={"source": f"skimage.data.{image}", "c": c, "kind": kind, **params, "seed": seed},
                _loader=partial(make_synthetic, image, kind, params, seed),
            )
        )
    return out


def load_group(group: str, limit: int | None = None, root: Path | None = None) -> list[Pair]:
    if group == "synthetic":
        return synthetic_pairs(limit)
    return real_pairs(group, limit, root)


# ------------------------------------------------------------------------------------------ metrics
def _prep(out: np.ndarray) -> np.ndarray:
    """Metric convention: float64, clipped to [0, 255], not rounded."""
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 255.0)


def psnr(gt: np.ndarray, out: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(gt, np.float64) - _prep(out)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(gt: np.ndarray, out: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    gt = np.asarray(gt, np.float64)
    return float(
        structural_similarity(gt, _prep(out), data_range=255.0, channel_axis=-1 if gt.ndim == 3 else None)
    )


def affine_fit(gt: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``a*out + b`` with (a, b) the least-squares fit of the (clipped) output to ``gt``."""
    x = _prep(out).ravel()
    y = np.asarray(gt, np.float64).ravel()
    xm, ym = x.mean(), y.mean()
    var = float(np.mean((x - xm) ** 2))
    a = float(np.mean((x - xm) * (y - ym))) / var if var > 0 else 0.0
    b = ym - a * xm
    return (a * _prep(out) + b).reshape(np.shape(gt))


def si_psnr(gt: np.ndarray, out: np.ndarray) -> float:
    fit = affine_fit(gt, out)
    mse = float(np.mean((np.asarray(gt, np.float64) - fit) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def si_ssim(gt: np.ndarray, out: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    gt = np.asarray(gt, np.float64)
    return float(
        structural_similarity(
            gt, affine_fit(gt, out), data_range=255.0, channel_axis=-1 if gt.ndim == 3 else None
        )
    )


def score(gt: np.ndarray, out: np.ndarray) -> dict[str, float]:
    return {"psnr": psnr(gt, out), "ssim": ssim(gt, out), "si_psnr": si_psnr(gt, out), "si_ssim": si_ssim(gt, out)}


def noise_stats(noisy: np.ndarray, gt: np.ndarray, scale_free: bool) -> dict[str, float]:
    """True residual std (0-255 units) and its lag-1 correlation along x (GT-based, for reporting only).

    For scale-free groups (W2S) the clean image is first fitted affinely to the noisy one.
    """
    z = np.asarray(noisy, np.float64)
    ref = np.asarray(gt, np.float64)
    if scale_free:
        ref = affine_fit(z, ref)  # a*gt+b fitted to the noisy image
    r = z - ref
    r = r - r.mean()
    lag1 = float(np.mean(r[:, 1:] * r[:, :-1]) / np.mean(r * r))
    return {"resid_std": float(r.std()), "resid_lag1": lag1}


# ---------------------------------------------------------------------------------------- baselines
# All baselines work on float images in [0, 1] (noisy / 255) and return float32 in 0-255 units.
def estimate_sigma01(x01: np.ndarray) -> float:
    """skimage's robust wavelet (MAD of finest diagonal detail) noise std, [0, 1] units, averaged over RGB."""
    from skimage.restoration import estimate_sigma

    rgb = x01.ndim == 3
    return float(estimate_sigma(x01, channel_axis=-1 if rgb else None, average_sigmas=True))


JINV_SIGMA_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def calibrate_wavelet(x01: np.ndarray) -> tuple[Callable, dict, dict]:
    """J-invariant calibration of ``denoise_wavelet`` as in scikit-image's "Calibrating denoisers using
    J-invariance" example: ``calibrate_denoiser(noisy, partial(denoise_wavelet, rescale_sigma=True),
    denoise_parameters=grid)``.

    Grid: sigma = estimate_sigma x ``JINV_SIGMA_FACTORS``; wavelet db1/db2; RGB: channel_axis=-1 and
    convert2ycbcr in (True, False).  Returns (J-invariant calibrated function, best kwargs, info).
    """
    from skimage.restoration import calibrate_denoiser, denoise_wavelet

    rgb = x01.ndim == 3
    s = estimate_sigma01(x01)
    grid: dict[str, list] = {
        "sigma": [float(s * f) for f in JINV_SIGMA_FACTORS],
        "wavelet": ["db1", "db2"],
        "channel_axis": [-1 if rgb else None],
    }
    if rgb:
        grid["convert2ycbcr"] = [True, False]
    fn = partial(denoise_wavelet, rescale_sigma=True)
    calibrated, (tested, losses) = calibrate_denoiser(x01, fn, denoise_parameters=grid, extra_output=True)
    best = dict(tested[int(np.argmin(losses))])
    factor = best["sigma"] / s if s > 0 else float("nan")
    info = {
        "sigma_est": s * 255.0,
        "best_sigma": best["sigma"] * 255.0,
        "best_factor": factor,
        "wavelet": best["wavelet"],
        "ycbcr": best.get("convert2ycbcr", False),
        "at_grid_edge": bool(np.isclose(factor, JINV_SIGMA_FACTORS[-1]) or np.isclose(factor, JINV_SIGMA_FACTORS[0])),
    }
    return calibrated, best, info


def run_jinv(noisy: np.ndarray, cache: dict | None = None) -> tuple[np.ndarray, dict]:
    """(b) scikit-image's J-invariant calibrated wavelet denoiser, canonical usage: the function returned
    by ``calibrate_denoiser`` (itself J-invariant, 4x4 masks) applied to the noisy image."""
    cache = {} if cache is None else cache
    x = noisy.astype(np.float64) / 255.0
    t0 = time.perf_counter()
    calibrated, best, info = calibrate_wavelet(x)
    t_cal = time.perf_counter() - t0
    cache["jinv_calibration"] = (best, info, t_cal)
    out = calibrated(x)
    return (out * 255.0).astype(np.float32), info


def run_wavelet_cal(noisy: np.ndarray, cache: dict | None = None) -> tuple[np.ndarray, dict, float]:
    """Variant: ``denoise_wavelet`` applied directly (not J-invariant) with the calibrated parameters.

    Reuses the calibration of :func:`run_jinv` from ``cache`` when present.  Returns
    ``(out, info, seconds)`` with seconds = calibration + this denoising (timed here, not by the caller).
    """
    from skimage.restoration import denoise_wavelet

    x = noisy.astype(np.float64) / 255.0
    if cache is not None and "jinv_calibration" in cache:
        best, info, t_cal = cache["jinv_calibration"]
    else:
        t0 = time.perf_counter()
        _, best, info = calibrate_wavelet(x)
        t_cal = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = denoise_wavelet(x, rescale_sigma=True, **best)
    return (out * 255.0).astype(np.float32), info, t_cal + time.perf_counter() - t0


def run_bm3d(noisy: np.ndarray, sigma255: float | None = None) -> tuple[np.ndarray, dict]:
    """(c) BM3D ('np' profile) with sigma from ``estimate_sigma`` (or ``sigma255`` if given, 0-255 units);
    ``bm3d.bm3d`` for grey, ``bm3d.bm3d_rgb`` (opponent colour space) for RGB, on [0, 1] floats."""
    import bm3d

    x = noisy.astype(np.float64) / 255.0
    s = estimate_sigma01(x) if sigma255 is None else sigma255 / 255.0
    s = max(s, 1e-4)
    out = bm3d.bm3d_rgb(x, s) if x.ndim == 3 else bm3d.bm3d(x, s)
    return (np.asarray(out) * 255.0).astype(np.float32), {"sigma": s * 255.0}


# ----------------------------------------------------------------------------------------- results
FIELDS = ("group", "image", "method", "psnr", "ssim", "si_psnr", "si_ssim", "seconds", "info")


def read_results(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def done_keys(path: Path) -> set[tuple[str, str, str]]:
    return {(r["group"], r["image"], r["method"]) for r in read_results(path)}


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


# ---------------------------------------------------------------------------------------- markdown
GROUP_ORDER = ("sidd", "nam", "fmd", "w2s", "synthetic")
METHOD_ORDER = (
    "noisy", "jinv", "wavelet_cal", "bm3d", "bm3d_oracle",
    "atbsn_s1", "atbsn_s3", "atbsn_s5", "atbsn_t1_s1", "atbsn_auto",
)
GROUP_TITLES = {
    "sidd": "SIDD (smartphone sRGB)",
    "nam": "Nam (DSLR sRGB)",
    "fmd": "FMD (fluorescence, grey)",
    "w2s": "W2S (widefield, grey, stretched)",
    "synthetic": "synthetic (skimage.data)",
}
METHOD_NOTES = {
    "noisy": "the noisy input itself",
    "jinv": "scikit-image `calibrate_denoiser` over `denoise_wavelet` (J-invariant output, canonical usage)",
    "wavelet_cal": "`denoise_wavelet` applied directly with the J-invariant-calibrated parameters",
    "bm3d": "BM3D (`bm3d` 4.0.3, profile 'np'), sigma = `skimage.restoration.estimate_sigma`",
    "bm3d_oracle": "BM3D with sigma = true std of (noisy - clean): uses the clean image, reference only",
    "atbsn_s1": "AT-BSN trained with blind spot 9, inferred with blind spot 1",
    "atbsn_s3": "AT-BSN trained with blind spot 9, inferred with blind spot 3",
    "atbsn_s5": "AT-BSN trained with blind spot 9, inferred with blind spot 5",
    "atbsn_t1_s1": "AT-BSN trained and inferred with blind spot 1 (pixel-independent groups only)",
    "atbsn_auto": "AT-BSN with blind_spot='auto' and default inference",
}


def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None or not math.isfinite(v) else format(v, fmt)


def _mean(rows: Iterable[dict], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    vals = [v for v in vals if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def _order(items: Iterable[str], order: tuple[str, ...]) -> list[str]:
    items = set(items)
    return [x for x in order if x in items] + sorted(items - set(order))


def summarize(rows: list[dict]) -> list[dict]:
    """Per (group, method) means; one dict per row of the markdown table."""
    out = []
    for g in _order({r["group"] for r in rows}, GROUP_ORDER):
        grows = [r for r in rows if r["group"] == g]
        for m in _order({r["method"] for r in grows}, METHOD_ORDER):
            mrows = [r for r in grows if r["method"] == m]
            out.append({
                "group": g, "method": m, "n": len(mrows),
                **{k: _mean(mrows, k) for k in ("psnr", "ssim", "si_psnr", "si_ssim", "seconds")},
            })
    return out


MARK_BEGIN = "<!-- bench_quality:begin (generated by benchmarks/bench_quality.py --table; do not edit inside) -->"
MARK_END = "<!-- bench_quality:end -->"


def render_markdown(rows: list[dict], csv_name: str = "benchmarks/results/quality.csv") -> str:
    summ = summarize(rows)
    lines = [
        MARK_BEGIN,
        "",
        f"Per-group means over the images in `{csv_name}` (one row per image x method there).",
        "",
        "| group | method | n | PSNR | SSIM | SI-PSNR | SI-SSIM | s / image |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for s in summ:
        scale_free = s["group"] in SCALE_FREE_GROUPS
        lines.append(
            f"| {GROUP_TITLES.get(s['group'], s['group'])} | {s['method']} | {s['n']} | "
            f"{'n/a' if scale_free else _f(s['psnr'], '.2f')} | {'n/a' if scale_free else _f(s['ssim'], '.4f')} | "
            f"{_f(s['si_psnr'], '.2f')} | {_f(s['si_ssim'], '.4f')} | {_f(s['seconds'], '.1f')} |"
        )
    # groups where methods were not run on the same images
    uneven = [g for g in {s["group"] for s in summ} if len({s["n"] for s in summ if s["group"] == g}) > 1]
    if uneven:
        lines += ["", f"Note: methods were run on different numbers of images in: {', '.join(sorted(uneven))} "
                  "(compare means only over equal n)."]
    syn = [r for r in rows if r["group"] == "synthetic"]
    if syn:
        lines += ["", "Synthetic set, per image (PSNR / SSIM):", ""]
        methods = _order({r["method"] for r in syn}, METHOD_ORDER)
        lines += ["| image | " + " | ".join(methods) + " |", "|---|" + "--:|" * len(methods)]
        for img in sorted({r["image"] for r in syn}):
            cells = []
            for m in methods:
                hit = [r for r in syn if r["image"] == img and r["method"] == m]
                cells.append(f"{float(hit[0]['psnr']):.2f} / {float(hit[0]['ssim']):.3f}" if hit else "—")
            lines.append(f"| {img.split('/', 1)[-1]} | " + " | ".join(cells) + " |")
    lines += ["", "Methods:", ""]
    for m in _order({s["method"] for s in summ}, METHOD_ORDER):
        lines.append(f"- `{m}`: {METHOD_NOTES.get(m, '')}")
    lines += ["", MARK_END]
    return "\n".join(lines) + "\n"


DOC_HEADER = """# Quality benchmarks

Generated by `benchmarks/bench_quality.py` (see `benchmarks/README.md`). The real data are research-only
pairs outside the repository (`$BSDENOISE_DATA`, default `<repo>/../shared/data/real`).

Conventions: outputs are clipped to [0, 255] as floats (not rounded) before scoring; PSNR and SSIM use
data_range 255; SSIM is scikit-image's `structural_similarity` with its defaults (7x7 uniform window;
RGB: mean over channels, `channel_axis=-1`); SI-PSNR / SI-SSIM first fit `a*output + b` to the clean
image by least squares. W2S noisy and clean images were contrast-stretched independently, so only
SI-PSNR / SI-SSIM are meaningful there (PSNR/SSIM shown as n/a). Seconds are wall-clock per image on
one CPU thread (shared 2-core machine, `nice -n 10`), including calibration / training.

"""


def write_markdown(csv_path: Path, md_path: Path) -> Path:
    """(Re)write the generated block of ``md_path``; text outside the markers is preserved."""
    md_path = Path(md_path)
    try:
        csv_name = str(Path(csv_path).resolve().relative_to(REPO))
    except ValueError:
        csv_name = str(csv_path)
    block = render_markdown(read_results(csv_path), csv_name)
    if md_path.is_file():
        text = md_path.read_text()
        if MARK_BEGIN in text and MARK_END in text:
            pre = text[: text.index(MARK_BEGIN)]
            post = text[text.index(MARK_END) + len(MARK_END):].lstrip("\n")
            new = pre + block + ("\n" + post if post else "")
        else:
            new = text.rstrip("\n") + "\n\n" + block
    else:
        new = DOC_HEADER + block
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(new)
    return md_path
