"""How good is a denoised result, without a clean reference: Monte-Carlo SURE for correlated noise.

For ``y = x + n`` with Gaussian noise of covariance ``C``, Stein's unbiased risk estimate of any
(weakly differentiable) denoiser ``g`` is

    E |g(y) - x|^2 = E |g(y) - y|^2 - tr C + 2 tr(C J_g(y)),

and ``tr(C J_g)`` is ``E_b[b . (g(y + eps b) - g(y)) / eps]`` for ``b ~ N(0, C)`` (Ramani, Blu and
Unser 2008, here with a correlated probe).  One extra pass of ``g`` on a perturbed input therefore
estimates the mean squared error of the result against the clean image it never sees, and the noisy
input's own error is ``tr C / N``, the mean noise variance.  ``C`` comes from the noise diagnostic of
the model's training data: the autocorrelation (the probe is white noise filtered to that spectrum)
and the noise curve (its local variance at the intensity of the result).  Signal-dependent noise is
treated as locally Gaussian.

The estimate is as good as that noise model.  The diagnostic's variance is re-scaled on the image
itself (:meth:`RiskEstimate.flat_scale`: where the result is flattest its residual is almost all
noise), since texture inflates it by up to a third; a correlation the diagnostic did not see (beyond
its largest lag) still makes a result that copies it look better than it is.  It is used to check a default
result against its input and to choose between candidate settings (``docs/safety.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Side of the crops the estimate is computed on, and how many (spread over the data).  Four cover a
#: 512x512 image whole: with two (its left half) the noise level read on the flat parts varied with
#: the content, and on Nam 5dmark3_iso3200_1 a model that gains +1.9 dB was estimated at +0.5 (four:
#: +2.25; docs/safety.md).
DEFAULT_CROP = 256
DEFAULT_CROPS = 4
#: Probe amplitude relative to the noise: small enough for a local slope, large enough for fp32.
DEFAULT_EPS = 0.05


@dataclass(frozen=True)
class RiskEstimate:
    """The sums of one Monte-Carlo SURE pass (normalised units), from which :meth:`mse` follows for a
    noise variance scaled by ``k`` (the diagnostic's curve times ``k``; see :meth:`flat_scale`)."""

    residual: float  # sum of (g(y) - y)^2
    trace: float  # sum of b . (g(y + eps b) - g(y)) / eps, for a probe b of the unscaled noise
    noise: float  # sum of the unscaled noise variance
    flat_residual: float  # sum of (g(y) - y)^2 over the flattest fifth of g
    flat_noise: float  # sum of the unscaled noise variance there
    pixels: int
    flat_products: object = None  # (C, C) sums of residual products over the flat pixels

    def channel_correlation(self):
        """The residual's correlation between channels where the result is flat: for an output blind to
        the noise, the noise's own (sRGB noise is strongly correlated across R, G and B)."""
        p = np.asarray(self.flat_products, float)
        d = np.sqrt(np.maximum(np.diag(p), 1e-12))
        return np.clip(p / np.outer(d, d), -1.0, 1.0)

    def mse(self, k: float = 1.0) -> float:
        """Estimated mean squared error of the result against the (unseen) clean image."""
        return (self.residual - k * self.noise + 2.0 * k * self.trace) / self.pixels

    def mse_input(self, k: float = 1.0) -> float:
        """The noisy input's: the mean noise variance."""
        return k * self.noise / self.pixels

    def gain_db(self, k: float = 1.0) -> float:
        """Estimated PSNR gain of the result over its input (``-inf`` for a non-finite result)."""
        mse, mse_in = self.mse(k), self.mse_input(k)
        if not (math.isfinite(mse) and math.isfinite(mse_in)) or mse_in <= 0:
            return -math.inf
        return 10.0 * math.log10(mse_in / max(mse, 1e-6 * mse_in))  # (an estimate can dip below 0)

    def flat_scale(self) -> float:
        """The residual's energy over the noise curve's where the result is flattest.

        There the result's own error is small, so this is close to the ratio of the image's true noise
        variance to the diagnostic's (measured 0.76 and 0.78 against true 0.73 and 0.79 on textured
        images whose diagnostic over-estimated the variance by 27-37 %), and at least that ratio: the
        smallest over several results is the best estimate.
        """
        return self.flat_residual / max(self.flat_noise, 1e-12)


def noise_scale(risks) -> float:
    """The noise-variance scale from :class:`RiskEstimate` of outputs blind to the noise (the smallest
    :meth:`~RiskEstimate.flat_scale`, within ``[0.25, 1.5]``)."""
    return float(np.clip(min(r.flat_scale() for r in risks), 0.25, 1.5))


#: Local window (pixels) and fraction of the flattest pixels of a result used by :meth:`flat_scale`.
FLAT_WINDOW = 5
FLAT_FRACTION = 0.2


def _flat_mask(g, window: int = FLAT_WINDOW, fraction: float = FLAT_FRACTION):
    """The ``fraction`` of pixels of ``g`` (N, C, Y, X) with the smallest local standard deviation."""
    import torch.nn.functional as F

    pad = window // 2
    gp = F.pad(g, (pad, pad, pad, pad), mode="replicate")
    mean = F.avg_pool2d(gp, window, stride=1)
    var = (F.avg_pool2d(gp * gp, window, stride=1) - mean * mean).clamp_min(0)
    return var <= var.flatten().quantile(fraction)


def correlated_probe(shape, acf: np.ndarray, rng) -> np.ndarray:
    """Unit-variance Gaussian noise of ``shape`` (..., H, W) whose autocorrelation is ``acf``
    (``(2L+1, 2L+1)``, 1 at the centre), by filtering white noise with the square root of its
    spectrum (periodic)."""
    h, w = shape[-2:]
    L = (acf.shape[0] - 1) // 2
    if 2 * L + 1 > min(h, w):
        raise ValueError(f"a {h}x{w} crop is too small for a {2 * L + 1}-lag autocorrelation")
    kernel = np.zeros((h, w))
    for dy in range(-L, L + 1):
        for dx in range(-L, L + 1):
            kernel[dy % h, dx % w] = acf[dy + L, dx + L]
    spectrum = np.sqrt(np.maximum(np.fft.fft2(kernel).real, 0.0))
    white = rng.standard_normal(shape)
    out = np.fft.ifft2(np.fft.fft2(white) * spectrum).real
    return (out / max(float(out.std()), 1e-12)).astype(np.float32)


def crop_starts(size: int, crop: int, n: int) -> list[int]:
    """Up to ``n`` evenly spread starts of ``crop``-long windows in ``size``."""
    if size <= crop:
        return [0]
    return sorted({int(round(i * (size - crop) / max(n - 1, 1))) for i in range(n)})


def estimate_risk(net, data: np.ndarray, *, blind_spot, acf, knots, device, crop: int = DEFAULT_CROP,
                  crops: int = DEFAULT_CROPS, eps: float = DEFAULT_EPS, seed: int = 0,
                  probe: bool = True, channel_corr=None) -> RiskEstimate:
    """Monte-Carlo SURE of ``net(x, blind_spot)`` on ``data`` (normalised ``(N, C, Y, X)``).

    ``acf`` is the noise autocorrelation and ``knots`` the ``FusionParams``-like noise curve in the
    same normalised units (``intensities``, ``variances``).  The estimate uses up to ``crops`` square
    crops of side ``crop`` spread over the samples and the image; ``eps`` scales the probe.
    ``probe=False`` skips the perturbed pass (only the residual sums, for :meth:`RiskEstimate.flat_scale`);
    ``channel_corr`` (C x C) correlates the probe across channels (default: independent channels).
    """
    import torch

    from ..nn.fast_unet import inference_form
    from ..nn.fusion import noise_variance

    rng = np.random.default_rng(seed)
    acf = np.asarray(acf, float)
    n, c, h, w = data.shape
    side_y, side_x = min(crop, h), min(crop, w)
    windows = [(i, y, x) for i in sorted({int(k * n // crops) for k in range(min(n, crops))})
               for y in crop_starts(h, side_y, 2) for x in crop_starts(w, side_x, 2)]
    windows = windows[:: max(1, len(windows) // crops)][:crops]
    mix = None
    if channel_corr is not None and c > 1:  # each channel keeps unit variance: rows of L have norm 1
        corr = np.asarray(channel_corr, float) + 1e-6 * np.eye(c)
        mix = torch.from_numpy(np.linalg.cholesky(corr / np.sqrt(np.outer(np.diag(corr), np.diag(corr))))
                               .astype(np.float32)).to(device)
    products = np.zeros((c, c))
    residual = trace = noise = flat_residual = flat_noise = 0.0
    count = 0
    net = inference_form(net.to(device).eval(), "fp32")  # the form denoise runs (a student: nn.fast_unet)
    with torch.no_grad():
        for i, y0, x0 in windows:
            y = torch.from_numpy(np.ascontiguousarray(data[i: i + 1, :, y0: y0 + side_y, x0: x0 + side_x],
                                                      np.float32)).to(device)
            g = net(y, blind_spot).float()
            var = noise_variance(g, knots).clamp_min(0)
            if probe:  # (without: only the residual sums, for RiskEstimate.flat_scale)
                unit = torch.from_numpy(correlated_probe(tuple(y.shape), acf, rng)).to(device)
                if mix is not None:
                    unit = torch.einsum("ij,bjhw->bihw", mix, unit)
                b = unit * var.sqrt()
                g_eps = net(y + eps * b, blind_spot).float()
                trace += float((b * (g_eps - g)).sum()) / eps
            sq = (g - y) ** 2
            flat = _flat_mask(g)
            residual += float(sq.sum())
            noise += float(var.sum())
            flat_residual += float(sq[flat].sum())
            flat_noise += float(var[flat].sum())
            r = (g - y)[0].reshape(c, -1)[:, flat[0].all(0).reshape(-1)]  # pixels flat in every channel
            products += (r @ r.T).double().cpu().numpy()
            count += y.numel()
    return RiskEstimate(residual, trace, noise, flat_residual, flat_noise, count, products)
