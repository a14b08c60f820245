"""Isolated spikes (hot and dead pixels, cosmic rays) taken out of the noise diagnostic's own copy.

The diagnostic reads the noise from flat blocks.  A hot pixel makes its block look structured, so
with hot pixels in a tenth of the blocks or more (0.1 % of the pixels) structured blocks take their
place and the measured correlation rises: a pixel-independent volume was given a blind spot of 9
instead of 1 (docs/volumes.md).  The model's own repair (:mod:`napari_bsdenoise.nn.outliers`) needs
the noise curve that the diagnostic measures, so this is a cruder, model-free pass: a pixel is a
spike when it stands more than :data:`Z_SPIKE` local noise sigma from the median of the 16 pixels
around its 3x3 neighbourhood and at most :data:`MAX_CLUSTER` pixels of that neighbourhood stand out
by :data:`Z_NEIGHBOUR` sigma.  The local sigma is the mean absolute deviation from the ring's mean over
a 15x15 window (robust enough: one spike among 225 pixels moves it by a tenth of a sigma).
"""

from __future__ import annotations

import numpy as np

Z_SPIKE = 10.0
Z_NEIGHBOUR = 4.0
MAX_CLUSTER = 4
WINDOW = 15
_OFFSETS = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dy), abs(dx)) == 2]  # the 16 of the ring
_MAD_TO_SIGMA = 1.2533  # E|x| = sigma * sqrt(2 / pi) for Gaussian x


def _spikes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``((ys, xs), ring medians)`` of the spikes of one 2-D image.  A cheap screen on the
    ring's mean (uniform filters: about 0.1 s per megapixel) picks the candidates; only they get a
    ring median."""
    from scipy import ndimage as ndi

    ring_mean = (ndi.uniform_filter(x, 5, mode="reflect") * 25 - ndi.uniform_filter(x, 3, mode="reflect") * 9) / 16
    dev = np.abs(x - ring_mean)
    sigma = _MAD_TO_SIGMA * ndi.uniform_filter(dev, WINDOW, mode="reflect")
    sigma = np.maximum(sigma, 1e-6 * (float(np.abs(x).mean()) + 1e-12))
    ys, xs = np.nonzero(dev > 0.5 * Z_SPIKE * sigma)  # (a ring spike moves the mean by 1/16 of its height)
    if ys.size == 0:
        return (ys, xs), np.empty(0, x.dtype)
    padded = np.pad(x, 2, mode="reflect")
    ring = np.stack([padded[ys + 2 + dy, xs + 2 + dx] for dy, dx in _OFFSETS], axis=1)
    med = np.median(ring, axis=1).astype(x.dtype)
    out_of_line = (dev > Z_NEIGHBOUR * sigma).astype(np.float32)
    cluster = ndi.uniform_filter(out_of_line, 3, mode="constant")[ys, xs] * 9
    keep = (np.abs(x[ys, xs] - med) > Z_SPIKE * sigma[ys, xs]) & (cluster < MAX_CLUSTER + 0.5)
    return (ys[keep], xs[keep]), med[keep]


def despike(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """``(copy of samples with spikes replaced by their ring median, number replaced)`` of
    ``(N, C, Y, X)`` samples; ``samples`` itself is returned (not copied) when there are none."""
    out = None
    total = 0
    for i in range(samples.shape[0]):
        for c in range(samples.shape[1]):
            x = np.asarray(samples[i, c], dtype=np.float32)
            if min(x.shape) < 5:
                continue
            where, med = _spikes(x)
            if med.size:
                if out is None:
                    out = np.array(samples, dtype=np.float32, copy=True)
                out[i, c][where] = med
                total += int(med.size)
    return (samples if out is None else out), total
