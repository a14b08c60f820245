"""Blind-spot recommendation from the measured noise autocorrelation."""

from __future__ import annotations

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


def recommend(acf: np.ndarray, se: float) -> tuple[int, int, int]:
    """(correlation length, train blind spot, inference blind spot) from the autocorrelation.

    * pixel-independent (length 0, blind spots 1/1) unless some lag-1 neighbour
      (Chebyshev ring 1, diagonals included) correlates by more than
      ``_INDEPENDENT_THRESHOLD``;
    * otherwise the correlation length is the outermost ring whose largest
      |correlation| exceeds ``_LENGTH_THRESHOLD``; the training blind spot covers
      it plus one ring of margin (a blind-spot network also exploits weak,
      spread-out correlation, and with asymmetric inference a large training
      blind spot costs little), capped by the measured range;
    * inference uses 3 (AT-BSN's asymmetric choice), never more than training.

    Both thresholds are raised to ``_CORR_THRESHOLD_SE`` standard errors of the
    estimate for small images.
    """
    L = (acf.shape[0] - 1) // 2
    yy, xx = np.meshgrid(np.arange(-L, L + 1), np.arange(-L, L + 1), indexing="ij")
    cheb = np.maximum(np.abs(yy), np.abs(xx))
    ring_max = [float(np.max(np.abs(acf[cheb == d]))) for d in range(1, L + 1)]
    floor = _CORR_THRESHOLD_SE * se
    if ring_max[0] <= max(_INDEPENDENT_THRESHOLD, floor):
        return 0, 1, 1
    length = max(d for d in range(1, L + 1) if d == 1 or ring_max[d - 1] > max(_LENGTH_THRESHOLD, floor))
    train = min(2 * length + 3, 2 * L + 1)
    return length, train, min(3, train)
