"""Synthetic 3-D benchmark volumes with known clean signal (issue #15: native 3-D blind-spot networks).

scikit-image's ``cells3d`` is downloaded on first use and so is not reproducible offline; these volumes
stand in for it.  Everything is deterministic (seeded ``numpy.random.default_rng``) and uses numpy,
scipy.ndimage / scipy.spatial and scikit-image only.

    python benchmarks/data3d.py            # per case: shape, noisy PSNR / SSIM, lag-1 noise correlation along Z, Y, X

Clean volumes (:func:`make_clean`, in photons)
----------------------------------------------
Structures are drawn on an isotropic fine grid of ``(Z * z_ratio, Y, X)`` pixels (``z_ratio = 4``: the
z-step is 4 times the xy pixel), blurred with an anisotropic Gaussian PSF (sigma 1.0 px laterally,
3.0 px = 0.75 slice axially: the axial PSF is 3x wider than the lateral one in physical units) and then
sampled every ``z_ratio``-th plane (optical sections).  A 32 x 128 x 128 volume is thus a physical cube;
a nucleus of 5-9 px axial semi-axis spans ~3-6 slices, a filament lying in the xy plane ~3 slices.

* ``membranes`` (like cells3d's two channels summed): Voronoi cells (~1.5 px thick membranes between
  neighbouring seeds, at 0.3-0.45 of the peak) with a textured ellipsoid nucleus per cell (brightness
  0.45-1.0 of the peak) and a few dozen diffraction-limited puncta;
* ``filaments``: non-overlapping textured nuclei of varied brightness (0.35-1.0), 3-D random-walk
  filaments with persistence (0.25-0.6 of the peak, tilted so they cross several slices) and puncta.

Both sit on a smooth, slowly varying background (``background`` photons, +-50 %, times a 0.8-1.2
gradient along x); the structures are scaled so that the brightest nucleus peaks at ``peak`` photons
(a punctum on a filament or membrane crossing may exceed it a little).

Noise cases (:data:`VOLUME_SPECS`, :func:`make_volume`)
-------------------------------------------------------
Camera units (ADU): ``noisy = offset + gain * Poisson(photons) + N(0, read^2)``, rounded to integer
ADU (not clipped, float32); the clean reference is ``offset + gain * photons`` (float64), same units.

* ``pg``: the above, pixel-independent (gain 2 ADU/photon, read noise 3 ADU, offset 100 ADU);
* ``zcorr``: the same noise realisation, then resampled along Z: the residual ``noisy_pg - clean`` is
  filtered along Z only by the unit-energy kernel ``[a, 1, a] / sqrt(1 + 2 a^2)`` (``a = 0.4``,
  periodic), a model of the interpolation in deskewing / z-resampling.  The per-voxel noise level is
  preserved (the kernel has unit energy), the lag-1 correlation along Z is ``2a / (1 + 2a^2) = 0.61``
  (lag 2: 0.12) and there is none along Y or X.  The clean reference is not filtered: it is the signal
  the denoiser should recover.  (Adding an independent Z-correlated component on top of the Poisson-
  Gaussian noise would also work but needs it to dominate the variance for a lag-1 of 0.5-0.7, which
  would change the noise level as well as its correlation.)

Metrics for volumes: :func:`psnr3d` / :func:`ssim3d` use ``data_range = clean.max() - clean.min()`` and
do not clip (``metrics.psnr`` assumes 0-255 and clips there, which is wrong for ADU volumes).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # importable from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import Pair, _subset_indices  # noqa: E402

Z_RATIO = 4  # z-step / xy pixel size
PSF_SIGMA_XY = 1.0  # px (fine grid)
PSF_SIGMA_Z = 3.0  # px of the fine grid = 0.75 slice


@dataclass(frozen=True)
class CleanSpec:
    """One clean volume: structure mix, shape (Z, Y, X in slices / pixels), photon levels, seed."""

    kind: str  # "membranes" or "filaments"
    shape: tuple[int, int, int] = (32, 128, 128)
    peak: float = 60.0  # photons at the brightest structure
    background: float = 5.0  # mean background photons
    seed: int = 0


@dataclass(frozen=True)
class NoiseSpec:
    kind: str  # "pg" or "zcorr"
    gain: float = 2.0  # ADU per photon
    read: float = 3.0  # read noise std, ADU
    offset: float = 100.0  # camera baseline, ADU
    z_a: float = 0.4  # zcorr: side weight of the [a, 1, a] resampling kernel along Z
    seed: int = 0


# (name, clean spec, noise spec); the same clean volume is used by its pg and zcorr cases, and zcorr
# reuses the pg noise realisation (same noise seed) before the Z resampling
CLEAN_SPECS = {
    "membranes": CleanSpec("membranes", peak=80.0, background=6.0, seed=3101),
    "filaments": CleanSpec("filaments", peak=40.0, background=4.0, seed=3102),
}
VOLUME_SPECS = (
    ("membranes_pg", "membranes", NoiseSpec("pg", seed=3201)),
    ("filaments_zcorr", "filaments", NoiseSpec("zcorr", seed=3202)),
    ("membranes_zcorr", "membranes", NoiseSpec("zcorr", seed=3201)),
    ("filaments_pg", "filaments", NoiseSpec("pg", seed=3202)),
)


# ---------------------------------------------------------------------------------------------------
# clean structures (fine isotropic grid, float32)


def _smooth_field(shape, sigma, rng) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field smoothed by ``sigma`` (periodic)."""
    from scipy import ndimage as ndi

    f = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    f -= f.mean()
    return f / max(float(f.std()), 1e-12)


def _rotation(rng) -> np.ndarray:
    """Random rotation: mostly about z (nuclei lie flat), with a small tilt."""
    t = rng.uniform(0, 2 * np.pi)
    tilt = rng.normal(0.0, 0.15)
    rz = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])  # (z, y, x) order
    rx = np.array([[np.cos(tilt), -np.sin(tilt), 0], [np.sin(tilt), np.cos(tilt), 0], [0, 0, 1]])
    return rx @ rz


def _add_ellipsoid(vol, center, semi, rot, brightness, texture, edge=1.0) -> None:
    """Add a soft-edged textured ellipsoid (physical coords = fine-grid pixels) to ``vol`` in place."""
    r = int(math.ceil(max(semi) + 3 * edge))
    lo = [max(0, int(c) - r) for c in center]
    hi = [min(s, int(c) + r + 1) for c, s in zip(center, vol.shape)]
    if any(h <= l for l, h in zip(lo, hi)):
        return
    zz, yy, xx = np.meshgrid(*[np.arange(l, h, dtype=np.float32) - c for l, h, c in zip(lo, hi, center)],
                             indexing="ij")
    p = np.stack([zz, yy, xx], -1) @ rot.astype(np.float32)  # into the ellipsoid's frame
    rho = np.sqrt(sum((p[..., i] / semi[i]) ** 2 for i in range(3)))
    # signed distance ~ (rho - 1) * mean semi-axis; logistic edge of width ``edge`` px
    d = (rho - 1.0) * float(np.mean(semi))
    inside = 1.0 / (1.0 + np.exp(np.clip(d / edge, -30, 30)))
    sl = tuple(slice(l, h) for l, h in zip(lo, hi))
    vol[sl] += brightness * inside * texture[sl]


def _texture(shape, rng) -> np.ndarray:
    """Chromatin-like modulation 0.6-1.0 (mean ~0.8)."""
    return np.clip(0.8 + 0.1 * _smooth_field(shape, 2.0, rng), 0.5, 1.0).astype(np.float32)


def _splat(vol, pts, weight) -> None:
    """Trilinear splatting of points (N x 3, fine-grid coordinates) into ``vol``."""
    base = np.floor(pts).astype(np.int64)
    frac = (pts - base).astype(np.float32)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                idx = base + np.array([dz, dy, dx])
                w = ((frac[:, 0] if dz else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
                     * (frac[:, 2] if dx else 1 - frac[:, 2])) * weight
                ok = np.all((idx >= 0) & (idx < np.array(vol.shape)), axis=1)
                np.add.at(vol, tuple(idx[ok].T), w[ok])


def _random_walk(start, n_steps, step, rng, persistence=0.97, tilt=0.35) -> np.ndarray:
    """Persistent 3-D random walk (fine-grid coords); the initial direction is tilted out of the xy plane."""
    phi = rng.uniform(0, 2 * np.pi)
    th = rng.uniform(-tilt, tilt)
    d = np.array([np.sin(th), np.cos(th) * np.sin(phi), np.cos(th) * np.cos(phi)])
    pts = [np.asarray(start, float)]
    for _ in range(n_steps):
        d = persistence * d + (1 - persistence) * rng.normal(size=3) * 2.0
        d[0] *= 0.9  # keep filaments closer to the xy plane (cells are flat)
        d /= np.linalg.norm(d)
        pts.append(pts[-1] + step * d)
    return np.array(pts)


def _membranes(fine_shape, rng):
    """Voronoi membranes + one nucleus per cell + puncta, before the PSF; values in relative units."""
    from scipy.spatial import cKDTree

    Zf, Y, X = fine_shape
    n_cells = max(4, int(round(Y * X * Zf / (48.0**3))))  # ~48 px cells
    seeds = rng.uniform([0.1 * Zf, 0, 0], [0.9 * Zf, Y, X], size=(n_cells, 3))
    tree = cKDTree(seeds)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in fine_shape], indexing="ij"), -1)
    d, _ = tree.query(grid.reshape(-1, 3), k=2)
    gap = (d[:, 1] - d[:, 0]).reshape(fine_shape).astype(np.float32)  # 2 x distance to the bisector
    width = 1.5  # px, membrane thickness ~ width
    memb = np.exp(-0.5 * (gap / width) ** 2).astype(np.float32)
    memb *= np.float32(rng.uniform(0.3, 0.45)) * (1.0 + 0.25 * _smooth_field(fine_shape, 6.0, rng))
    nuc = np.zeros(fine_shape, np.float32)
    tex = _texture(fine_shape, rng)
    for c in seeds:
        a, b = rng.uniform(8, 13), rng.uniform(7, 11)
        cz = rng.uniform(5, 9)
        _add_ellipsoid(nuc, c + rng.normal(0, 2, 3), (cz, a, b), _rotation(rng), rng.uniform(0.45, 1.0), tex)
    return memb, nuc


def _filaments(fine_shape, rng):
    """Non-overlapping nuclei + persistent random-walk filaments, before the PSF; relative units."""
    Zf, Y, X = fine_shape
    nuc = np.zeros(fine_shape, np.float32)
    tex = _texture(fine_shape, rng)
    n_target = max(3, int(round(Y * X * Zf / 1.2e5)))
    centers, tries = [], 0
    while len(centers) < n_target and tries < 2000:
        tries += 1
        c = rng.uniform([0.15 * Zf, 6, 6], [0.85 * Zf, Y - 6, X - 6])
        semi = (rng.uniform(5, 8), rng.uniform(7, 13), rng.uniform(7, 13))
        if all(np.linalg.norm(c - c2) > max(semi[1:]) + max(s2[1:]) + 2 for c2, s2 in centers):
            centers.append((c, semi))
    for c, semi in centers:
        _add_ellipsoid(nuc, c, semi, _rotation(rng), rng.uniform(0.35, 1.0), tex)
    fil = np.zeros(fine_shape, np.float32)
    n_fil = max(4, int(round(Y * X * Zf / 8e4)))
    for _ in range(n_fil):
        start = rng.uniform([0.2 * Zf, 0, 0], [0.8 * Zf, Y, X])
        pts = _random_walk(start, n_steps=int(rng.integers(400, 1200)), step=0.25, rng=rng)
        _splat(fil, pts, rng.uniform(0.5, 1.0) * 0.25)  # 4 points per px: ~1 per px of length
    return fil, nuc


@lru_cache(maxsize=4)
def make_clean(spec: CleanSpec) -> np.ndarray:
    """Clean volume (Z, Y, X) in photons, float64 (cached; do not modify the returned array)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(spec.seed)
    Z, Y, X = spec.shape
    fine = (Z * Z_RATIO, Y, X)
    psf = (PSF_SIGMA_Z, PSF_SIGMA_XY, PSF_SIGMA_XY)
    if spec.kind == "membranes":
        lines, nuc = _membranes(fine, rng)
        lines_b = ndi.gaussian_filter(lines, psf, mode="nearest")
    elif spec.kind == "filaments":
        lines, nuc = _filaments(fine, rng)
        lines_b = ndi.gaussian_filter(lines, psf, mode="nearest")
        # a px-length of filament after the PSF peaks at ~1/(2 pi sx sz) ~ 0.053: rescale to 0.25-0.6
        lines_b *= np.float32(rng.uniform(0.25, 0.6) / max(float(np.percentile(lines_b[lines_b > 0], 99.5)), 1e-9))
    else:
        raise ValueError(spec.kind)
    nuc_b = ndi.gaussian_filter(nuc, psf, mode="nearest")
    pts = np.zeros(fine, np.float32)
    n_pts = max(10, int(round(Y * X * Z / 8000.0)))
    _splat(pts, rng.uniform([0, 0, 0], np.array(fine) - 1, size=(n_pts, 3)), 1.0)
    pts_b = ndi.gaussian_filter(pts, psf, mode="nearest")
    pts_b *= np.float32(rng.uniform(0.35, 0.7) / (1.0 / ((2 * np.pi) ** 1.5 * PSF_SIGMA_Z * PSF_SIGMA_XY**2)))
    # optical sections; the brightest nucleus sets the scale (``peak`` photons), so that the rare
    # puncta on a filament or membrane crossing do not dim everything else
    nuc_s = nuc_b[::Z_RATIO].astype(np.float64)
    struct = (np.maximum(lines_b, 0) + np.maximum(pts_b, 0))[::Z_RATIO].astype(np.float64) + nuc_s
    struct *= spec.peak / nuc_s.max()
    # smooth background: +-50 % low-frequency variation plus a gentle gradient along x
    bg = _smooth_field((Z, Y, X), (Z / 4.0, Y / 6.0, X / 6.0), rng).astype(np.float64)
    bg = np.clip(1.0 + 0.25 * bg, 0.5, 1.5) * (0.8 + 0.4 * np.linspace(0, 1, X))[None, None, :]
    clean = spec.background * bg / bg.mean() + struct
    clean.setflags(write=False)
    return clean


# ---------------------------------------------------------------------------------------------------
# noise


def z_kernel(a: float) -> np.ndarray:
    k = np.array([a, 1.0, a])
    return k / np.sqrt((k**2).sum())


def make_volume(clean_spec: CleanSpec, noise: NoiseSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy float32, clean float64)``, both in camera units (ADU), shape (Z, Y, X)."""
    from scipy import ndimage as ndi

    photons = make_clean(clean_spec)
    rng = np.random.default_rng(noise.seed)
    clean = noise.offset + noise.gain * photons
    noisy = np.rint(noise.offset + noise.gain * rng.poisson(photons) + rng.normal(0.0, noise.read, photons.shape))
    if noise.kind == "zcorr":
        resid = ndi.correlate1d(noisy - clean, z_kernel(noise.z_a), axis=0, mode="wrap")
        noisy = clean + resid
    elif noise.kind != "pg":
        raise ValueError(noise.kind)
    return noisy.astype(np.float32), np.array(clean, dtype=np.float64)


def volume_cases(limit: int | None = None, shape: tuple[int, int, int] | None = None) -> list[Pair]:
    """The 3-D cases as :class:`data.Pair` (group ``"volume"``, name ``"volume/<case>"``); ``load()``
    returns ``(noisy float32 ZYX, clean float64 ZYX)`` in ADU.  ``limit`` takes an evenly spaced
    deterministic subset (``limit=1``: ``membranes_pg``, ``limit=2``: + ``membranes_zcorr``);
    ``shape`` overrides the (Z, Y, X) size of every clean volume."""
    specs = [VOLUME_SPECS[i] for i in _subset_indices(len(VOLUME_SPECS), limit)]
    out = []
    for name, clean_name, noise in specs:
        cs = CLEAN_SPECS[clean_name]
        if shape is not None:
            cs = CleanSpec(cs.kind, tuple(int(s) for s in shape), cs.peak, cs.background, cs.seed)
        out.append(Pair(
            group="volume",
            name=f"volume/{name}",
            pixel_independent=noise.kind == "pg",
            meta={"source": f"synthetic {cs.kind}", "axes": "ZYX", "shape": "x".join(map(str, cs.shape)),
                  "z_ratio": Z_RATIO, "peak_photons": cs.peak, "background_photons": cs.background,
                  "clean_seed": cs.seed, "noise": noise.kind, "gain": noise.gain, "read": noise.read,
                  "offset": noise.offset, "z_a": noise.z_a if noise.kind == "zcorr" else None,
                  "noise_seed": noise.seed},
            _loader=partial(make_volume, cs, noise),
        ))
    return out


# ---------------------------------------------------------------------------------------------------
# metrics for volumes (data range of the clean volume, no clipping)


def data_range(clean: np.ndarray) -> float:
    return float(np.max(clean) - np.min(clean))


def psnr3d(clean: np.ndarray, out: np.ndarray) -> float:
    """PSNR with ``data_range = clean.max() - clean.min()``, over all voxels, output not clipped."""
    clean = np.asarray(clean, np.float64)
    mse = float(np.mean((clean - np.asarray(out, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range(clean) ** 2 / mse)


def ssim3d(clean: np.ndarray, out: np.ndarray) -> float:
    """3-D SSIM: ``skimage.metrics.structural_similarity`` on the volume (7x7x7 uniform window),
    ``data_range = clean.max() - clean.min()``, output not clipped."""
    from skimage.metrics import structural_similarity

    clean = np.asarray(clean, np.float64)
    return float(structural_similarity(clean, np.asarray(out, np.float64), data_range=data_range(clean)))


def lag1_correlations(noisy: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """Lag-1 correlation of the true residual ``noisy - clean`` (mean removed) along Z, Y and X."""
    r = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
    r = r - r.mean()
    v = float(np.mean(r * r))
    return {
        "z": float(np.mean(r[1:] * r[:-1]) / v),
        "y": float(np.mean(r[:, 1:] * r[:, :-1]) / v),
        "x": float(np.mean(r[:, :, 1:] * r[:, :, :-1]) / v),
    }


def main(argv=None) -> int:
    import argparse
    import time

    p = argparse.ArgumentParser(description="print the 3-D benchmark cases and verify their noise")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--shape", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"))
    p.add_argument("--ssim", action="store_true", help="also print the noisy 3-D SSIM (slower)")
    args = p.parse_args(argv)
    for pair in volume_cases(args.limit, shape=args.shape):
        t0 = time.perf_counter()
        noisy, clean = pair.load()
        t = time.perf_counter() - t0
        c = lag1_correlations(noisy, clean)
        resid = noisy.astype(np.float64) - clean
        line = (f"{pair.name:26s} shape {noisy.shape} {noisy.dtype}  clean {clean.min():.1f}-{clean.max():.1f} ADU"
                f"  resid std {resid.std():.2f}  noisy PSNR {psnr3d(clean, noisy):.2f} dB")
        if args.ssim:
            line += f"  SSIM {ssim3d(clean, noisy):.4f}"
        line += f"  lag-1 corr z {c['z']:+.3f} y {c['y']:+.3f} x {c['x']:+.3f}  ({t:.1f} s)"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
