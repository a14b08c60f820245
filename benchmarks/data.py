"""Benchmark data: the real noisy/clean pairs (loaded lazily from ``pairs.csv``) and the synthetic set.

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
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
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


# noise correlated along one axis (issue #18: resampling, deskewing, line-scan or rolling-shutter read-out):
# Poisson-Gaussian (gain, read) plus white noise filtered by a normalised box of 2 * length + 1 pixels
# along x, along y or along the diagonal (or a 3 x (2 * length + 1) box: "xy", correlated along both axes
# but much more along x), scaled to std ``sigma``; clipped and rounded to uint8.
# (name, axis, length, sigma, gain, read, seed)
AXIS_SPECS = (
    ("x_strong", "x", 3, 12.0, 2.0, 3.0, 2001),
    ("y_strong", "y", 3, 12.0, 2.0, 3.0, 2002),
    ("diag_strong", "diag", 3, 12.0, 2.0, 3.0, 2003),
    ("x_mild", "x", 3, 5.0, 1.0, 2.0, 2004),
    ("y_mild", "y", 3, 5.0, 1.0, 2.0, 2005),
    ("diag_mild", "diag", 3, 5.0, 1.0, 2.0, 2006),
    ("x_long", "x", 5, 15.0, 2.0, 3.0, 2007),
    ("xy_strong", "xy", 3, 12.0, 2.0, 3.0, 2008),
)


def axis_correlated_noise(shape, axis: str, length: int, sigma: float, rng) -> np.ndarray:
    """Gaussian noise of std ``sigma`` correlated along ``axis`` ("x", "y", "diag", "xy") over
    ``2 * length + 1`` pixels (periodic filtering of white noise by a normalised box)."""
    from scipy import ndimage as ndi

    n = 2 * length + 1
    kernel = {"x": np.ones((1, n)), "y": np.ones((n, 1)), "diag": np.eye(n), "xy": np.ones((3, n))}[axis]
    out = ndi.convolve(rng.normal(0.0, 1.0, shape), kernel / np.sqrt((kernel**2).sum()), mode="wrap")
    return sigma * out / out.std()


def make_axis_correlated(axis: str, length: int, sigma: float, gain: float, read: float, seed: int,
                         image: str = "camera") -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(noisy uint8, clean float64)`` for one :data:`AXIS_SPECS` case."""
    from skimage import data

    clean = getattr(data, image)().astype(np.float64)
    rng = np.random.default_rng(seed)
    noisy = (gain * rng.poisson(clean / gain) + rng.normal(0.0, read, clean.shape)
             + axis_correlated_noise(clean.shape, axis, length, sigma, rng))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), clean


def axis_pairs(limit: int | None = None) -> list[Pair]:
    specs = [AXIS_SPECS[i] for i in _subset_indices(len(AXIS_SPECS), limit)]
    return [Pair(group="axis", name=f"axis/{name}", pixel_independent=False,
                 meta={"source": "skimage.data.camera", "c": 1, "axis": axis, "length": length, "sigma": sigma,
                       "gain": gain, "read": read, "seed": seed},
                 _loader=partial(make_axis_correlated, axis, length, sigma, gain, read, seed))
            for name, axis, length, sigma, gain, read, seed in specs]


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
    if group == "axis":
        return axis_pairs(limit)
    return real_pairs(group, limit, root)
