"""The result of the noise-correlation diagnostic: :class:`NoiseCorrelation`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .recommend import MILD_NOISE_FRACTION


@dataclass(frozen=True)
class NoiseCorrelation:
    """Result of :func:`estimate_noise_correlation`.

    Attributes
    ----------
    autocorrelation : ndarray, shape (2L+1, 2L+1)
        Normalised autocorrelation of the noise; the centre (lag (0, 0)) is 1.
        Row index is the y lag + L, column index the x lag + L.
    lag1_x, lag1_y : float
        Correlation at lag 1 along x and along y.
    correlation_length : int
        Largest Chebyshev lag (pixels) at which the noise is still correlated;
        0 for pixel-independent noise.
    train_blind_spot, inference_blind_spot : int
        Recommended odd blind spots for training and inference.
    noise_std : float
        Estimated noise standard deviation in the units of the input (an
        average over the intensity range for signal-dependent noise).
    n_blocks : int
        Number of flat blocks the estimate is based on.
    noise_fraction : float
        ``noise_std`` divided by the standard deviation of the whole (noisy)
        image: how much of the image's variation is noise.  Correlated noise
        below 0.25 is *mild*: the recommended blind spots are then 3 and 3.
    noise_curve : tuple
        Per channel, ``(intensities, variances)``: the noise variance measured
        in up to 8 intensity strata (noise is often signal dependent); see
        :meth:`noise_variance`.
    """

    autocorrelation: np.ndarray = field(compare=False, repr=False)
    lag1_x: float
    lag1_y: float
    correlation_length: int
    train_blind_spot: int
    inference_blind_spot: int
    noise_std: float
    n_blocks: int
    noise_fraction: float = float("nan")
    noise_curve: tuple = field(default=(), compare=False, repr=False)

    def noise_variance(self, intensity, channel: int = 0) -> np.ndarray:
        """Noise variance at ``intensity`` (input units) in ``channel``, interpolated between the
        intensity strata of the estimate (constant beyond them); ``noise_std**2`` without a curve."""
        if not self.noise_curve:
            return np.full(np.shape(intensity), self.noise_std**2)
        mu, var = self.noise_curve[channel]
        return np.interp(intensity, mu, var)

    @property
    def mild(self) -> bool:
        """Correlated but weak next to the image's own variation (see ``noise_fraction``)."""
        return not self.pixel_independent and self.noise_fraction < MILD_NOISE_FRACTION

    @property
    def max_lag(self) -> int:
        return (self.autocorrelation.shape[0] - 1) // 2

    @property
    def pixel_independent(self) -> bool:
        return self.correlation_length == 0

    def summary(self) -> str:
        """A short human-readable verdict with the recommended blind spots."""
        lags = f"lag-1 corr x {self.lag1_x:.2f}, y {self.lag1_y:.2f}"
        if self.pixel_independent:
            return (
                f"noise looks pixel-independent ({lags}; std {self.noise_std:.3g}): "
                f"blind spot {self.train_blind_spot} for training and inference"
            )
        hi, lo = max(abs(self.lag1_x), abs(self.lag1_y)), min(abs(self.lag1_x), abs(self.lag1_y))
        axis = ""
        if hi - lo > 0.1 and lo < 0.5 * hi:
            axis = f", mostly along {'x' if abs(self.lag1_x) > abs(self.lag1_y) else 'y'}"
        mild = (f", mild: {self.noise_fraction:.0%} of the image's std, so a small blind spot keeps more detail "
                "than it lets noise through" if self.mild else "")
        return (
            f"noise is spatially correlated over ~{self.correlation_length} px{axis} ({lags}; "
            f"std {self.noise_std:.3g}{mild}): train with blind spot {self.train_blind_spot}, "
            f"infer with {self.inference_blind_spot}"
        )

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary (plain Python floats, ints and lists)."""
        return {
            "autocorrelation": [[float(v) for v in row] for row in np.asarray(self.autocorrelation)],
            "lag1_x": float(self.lag1_x),
            "lag1_y": float(self.lag1_y),
            "correlation_length": int(self.correlation_length),
            "train_blind_spot": int(self.train_blind_spot),
            "inference_blind_spot": int(self.inference_blind_spot),
            "noise_std": float(self.noise_std),
            "n_blocks": int(self.n_blocks),
            "noise_fraction": float(self.noise_fraction),
            "noise_curve": [[list(mu), list(var)] for mu, var in self.noise_curve],
        }

    @classmethod
    def from_dict(cls, d: dict) -> NoiseCorrelation:
        """Inverse of :meth:`to_dict`."""
        acf = np.asarray(d["autocorrelation"], dtype=np.float64)
        acf.setflags(write=False)
        return cls(
            autocorrelation=acf,
            lag1_x=float(d["lag1_x"]),
            lag1_y=float(d["lag1_y"]),
            correlation_length=int(d["correlation_length"]),
            train_blind_spot=int(d["train_blind_spot"]),
            inference_blind_spot=int(d["inference_blind_spot"]),
            noise_std=float(d["noise_std"]),
            n_blocks=int(d["n_blocks"]),
            noise_fraction=float(d.get("noise_fraction", float("nan"))),  # absent before 0.2
            noise_curve=tuple((tuple(map(float, mu)), tuple(map(float, var)))
                              for mu, var in d.get("noise_curve", ())),  # absent before 0.3
        )
