"""The result of the noise-correlation diagnostic: :class:`NoiseCorrelation`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .recommend import MILD_NOISE_FRACTION


def _fmt(spot) -> str:
    return str(spot) if isinstance(spot, int) else f"{spot[0]}x{spot[1]} (y x x)"


def _to_json(spot):
    return int(spot) if isinstance(spot, (int, np.integer)) else [int(v) for v in spot]


def _from_json(spot):
    return int(spot) if isinstance(spot, (int, float)) else tuple(int(v) for v in spot)


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
    train_blind_spot, inference_blind_spot : int or (int, int)
        Recommended odd blind spots for training and inference: a square side, or ``(y, x)``
        sides when the noise is correlated further along one axis than the other.
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
    correlation_lengths : (int, int)
        ``(y, x)``: the largest lag along each axis among the correlated offsets.
    direction : str
        ``"x"``, ``"y"``, ``"diagonal"`` or ``"anti-diagonal"`` when the lag-1 correlation is
        clearly strongest in that direction, else ``""``.
    correlation_reaches_edge : bool
        The noise is still correlated at the largest lag measured (``max_lag``): it may extend
        further than the blind spot covers.
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
    correlation_lengths: tuple = (0, 0)
    direction: str = ""
    correlation_reaches_edge: bool = False

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
        ly, lx = self.correlation_lengths
        extent = (f"~{self.correlation_length} px" if ly == lx or not (ly or lx)
                  else f"~{ly} px along y and ~{lx} px along x")
        axis = f", mostly along {self.direction}" if self.direction else ""
        edge = (f", and beyond: it is still correlated at lag {self.max_lag}, the furthest measured"
                if self.correlation_reaches_edge else "")
        mild = (f", mild: {self.noise_fraction:.0%} of the image's std, so a small blind spot keeps more detail "
                "than it lets noise through" if self.mild else "")
        return (
            f"noise is spatially correlated over {extent}{axis}{edge} ({lags}; "
            f"std {self.noise_std:.3g}{mild}): train with blind spot {_fmt(self.train_blind_spot)}, "
            f"infer with {_fmt(self.inference_blind_spot)}"
        )

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary (plain Python floats, ints and lists)."""
        return {
            "autocorrelation": [[float(v) for v in row] for row in np.asarray(self.autocorrelation)],
            "lag1_x": float(self.lag1_x),
            "lag1_y": float(self.lag1_y),
            "correlation_length": int(self.correlation_length),
            "train_blind_spot": _to_json(self.train_blind_spot),
            "inference_blind_spot": _to_json(self.inference_blind_spot),
            "correlation_lengths": [int(v) for v in self.correlation_lengths],
            "direction": self.direction,
            "correlation_reaches_edge": bool(self.correlation_reaches_edge),
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
            train_blind_spot=_from_json(d["train_blind_spot"]),
            inference_blind_spot=_from_json(d["inference_blind_spot"]),
            # absent before 0.2 (square blind spots only): the Chebyshev length on both axes
            correlation_lengths=tuple(int(v) for v in d.get("correlation_lengths", (d["correlation_length"],) * 2)),
            direction=str(d.get("direction", "")),
            correlation_reaches_edge=bool(d.get("correlation_reaches_edge", False)),
            noise_std=float(d["noise_std"]),
            n_blocks=int(d["n_blocks"]),
            noise_fraction=float(d.get("noise_fraction", float("nan"))),  # absent before 0.2
            noise_curve=tuple((tuple(map(float, mu)), tuple(map(float, var)))
                              for mu, var in d.get("noise_curve", ())),  # absent before 0.3
        )
