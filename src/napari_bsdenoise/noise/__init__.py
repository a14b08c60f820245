"""Noise-correlation diagnostic: is the noise pixel-independent, and which blind spot does it need?

A blind-spot network only works if the noise at a pixel is independent of the
pixels it is allowed to see.  Raw microscopy noise (Poisson shot noise plus
Gaussian read noise) is pixel-independent, so a 1-pixel blind spot is right.
Camera sRGB noise (demosaicing, in-camera denoising, JPEG) and resampled data
(registration, deskewing, deconvolution) are spatially correlated over a few
pixels and need a larger training blind spot (AT-BSN: 9 to train, 3 at
inference on smartphone sRGB).

The estimate uses the noisy data alone (no clean reference):

1. every 2-D slice and channel is tiled into ``block x block`` blocks (16 px)
   and a quadratic surface is fitted to each block and subtracted, which
   removes smooth image content;
2. saturated (mostly at the data min/max), dead (no variance) and
   sub-quantisation-step blocks are dropped;
3. the correlation is measured on the blocks with the flattest
   *surroundings* (lowest largest variance among the 4 neighbouring blocks),
   minus blocks whose own variance is implausible for noise at the
   neighbours' level.  Ranking on the neighbours instead of the block itself
   avoids a bias: the lowest-variance blocks of correlated noise are also the
   least correlated ones;
4. their lag products up to ``max_lag`` are summed and the bias of the
   per-block fit (about -1/n for a mean, more for a surface) is removed exactly
   by solving the linear system that maps a stationary noise autocovariance to
   the expected lag products of the fitted residuals;
5. the noise level is read per intensity stratum (signal-dependent noise) from
   the low quantiles of the block variances, capped by a robust affine
   noise-level envelope so that textured strata do not inflate it.

Calibrated on real noisy/clean pairs (smartphone and DSLR sRGB, widefield and
confocal fluorescence): see ``recommend`` for the decision rule.
"""

from __future__ import annotations

from .estimate import (estimate_noise_correlation, estimate_noise_correlation_samples,
                       estimate_noise_correlation_volumes)
from .result import NoiseCorrelation

__all__ = ["NoiseCorrelation", "estimate_noise_correlation", "estimate_noise_correlation_samples",
           "estimate_noise_correlation_volumes"]
