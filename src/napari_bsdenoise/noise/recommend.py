"""Blind-spot recommendation from the measured noise autocorrelation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- tuning constants (calibrated on real noisy/clean pairs and synthetic noise) ---
_INDEPENDENT_THRESHOLD = 0.1  # max |corr| of the 8 nearest neighbours still called pixel-independent
_LENGTH_THRESHOLD = 0.05  # |corr| above this counts towards the correlation length
_CORR_THRESHOLD_SE = 4.0  # thresholds are at least this many standard errors of the estimate
# Correlated noise that is weak next to the image's own variation (noise std below this fraction of
# the image's std): a large training blind spot blurs away more detail than the noise it removes.
# Measured (docs/benchmarks.md): Nam DSLR crops at fractions 0.03-0.07 gained 2-6 dB with training
# blind spot 3 instead of 9 (300 steps); at 0.13 and 0.16, +1.0 and +0.1 dB (2000 steps, fused output);
# SIDD phone crops (0.5-0.8) lose 6 dB with 3.  Inference 3, not 1: with the noisy-input fusion
# (nn/fusion.py) 3 won on every image measured (a 1-pixel blind spot lets correlated noise into the
# prediction, which then hides from the fusion's noise test).
MILD_NOISE_FRACTION = 0.25
# An axis is correlated out to the lags whose |corr| exceeds this fraction of the strongest lag-1
# neighbour's (and the absolute threshold): noise filtered along x (lag-1 x 0.6) measured 0.05-0.13
# along y on real texture, which would otherwise turn a 1 x 15 blind spot into a square.
_AXIS_RELATIVE_THRESHOLD = 0.25


#: Largest lag the diagnostic extends to when the correlation still reaches its default 4-pixel window
#: (the 16-pixel analysis blocks allow 7); the blind spot then covers up to 15 pixels along that axis.
EXTENDED_MAX_LAG = 7


@dataclass(frozen=True)
class Recommendation:
    """What :func:`recommend` reads from an autocorrelation."""

    length: int  # Chebyshev correlation length (0: pixel-independent)
    lengths: tuple[int, int]  # (y, x): the largest |lag| along each axis among the correlated offsets
    direction: str  # "", "x", "y", "diagonal" or "anti-diagonal": where the lag-1 correlation is largest
    train: int | tuple  # training blind spot: an odd side or (y, x) sides
    infer: int | tuple  # inference blind spot
    reaches_edge: bool  # still correlated at the largest lag measured


def spot(y: int, x: int):
    """A blind spot from its sides: an int for a square, else ``(y, x)``."""
    return y if y == x else (y, x)


def recommend(acf: np.ndarray, se: float) -> Recommendation:
    """Correlation lengths and blind spots from the autocorrelation.

    * pixel-independent (length 0, blind spots 1/1) unless some lag-1 neighbour
      (Chebyshev ring 1, diagonals included) correlates by more than
      ``_INDEPENDENT_THRESHOLD``;
    * otherwise the correlation length along each axis is the largest |lag| on that axis among the
      offsets whose |correlation| exceeds ``_LENGTH_THRESHOLD``; the training blind spot covers it plus
      one pixel of margin on each side (a blind-spot network also exploits weak, spread-out correlation,
      and with asymmetric inference a large training blind spot costs little), capped by the measured
      range.  Noise correlated along one axis only gets a rectangle (``(1, 9)``: one row, nine columns),
      which keeps the neighbours whose noise is independent;
    * inference uses at most 3 per axis (AT-BSN's asymmetric choice), never more than training.

    Both thresholds are raised to ``_CORR_THRESHOLD_SE`` standard errors of the
    estimate for small images.
    """
    L = (acf.shape[0] - 1) // 2
    yy, xx = np.meshgrid(np.arange(-L, L + 1), np.arange(-L, L + 1), indexing="ij")
    cheb = np.maximum(np.abs(yy), np.abs(xx))
    ring_max = [float(np.max(np.abs(acf[cheb == d]))) for d in range(1, L + 1)]
    floor = _CORR_THRESHOLD_SE * se
    if ring_max[0] <= max(_INDEPENDENT_THRESHOLD, floor):
        return Recommendation(0, (0, 0), "", 1, 1, False)
    thr = max(_LENGTH_THRESHOLD, floor)
    length = max(d for d in range(1, L + 1) if d == 1 or ring_max[d - 1] > thr)
    # per axis, against a threshold relative to the strongest neighbour: image texture left in the
    # flat blocks correlates a little in every direction and would make every rectangle a square
    strong = (np.abs(acf) > max(thr, _AXIS_RELATIVE_THRESHOLD * ring_max[0])) & (cheb > 0)
    strong |= (cheb == 1) & (np.abs(acf) >= ring_max[0])  # the strongest lag-1 neighbour counts
    ly, lx = int(np.abs(yy[strong]).max()), int(np.abs(xx[strong]).max())
    # the long axis keeps the absolute rule (the whole correlation length); only a clearly shorter
    # axis gets a shorter side
    if ly < lx:
        lx = length
    elif lx < ly:
        ly = length
    else:
        ly = lx = length
    ring1 = {"x": abs(acf[L, L + 1]), "y": abs(acf[L + 1, L]),
             "diagonal": abs(acf[L + 1, L + 1]), "anti-diagonal": abs(acf[L + 1, L - 1])}
    best = max(ring1, key=ring1.get)
    others = sorted(ring1.values())[-2]
    direction = best if ring1[best] - others > 0.1 and others < 0.5 * ring1[best] else ""
    side = lambda n: min(2 * n + 3, 2 * L + 1) if n > 0 else 1  # noqa: E731
    ty, tx = side(ly), side(lx)
    return Recommendation(length, (ly, lx), direction, spot(ty, tx), spot(min(3, ty), min(3, tx)),
                          ring_max[-1] > thr)
