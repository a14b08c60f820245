"""BSGD diffusion: the noise schedule, the training objective and guided DDIM refinement.

Design choices (the paper's text is not available; docs/bsgd.md says what is verified):

* **Continuous-time cosine schedule** (Nichol & Dhariwal 2021): ``alpha_bar(t) = cos^2(pi/2 (t+s)/(1+s))``
  normalised to 1 at ``t = 0``, ``s = 0.008``, ``t`` in [0, 1].  It destroys information more gradually
  than the linear schedule at small ``t``, which is where a refinement starting from a denoised guide
  spends all its steps.  Continuous time lets DDIM use any step count without a discrete grid.
* **x0-prediction** for both branches, loss ``|| f(x_t, t) - x0 ||^2`` with ``x0`` = the normalised noisy
  patch.  For the blind-spot branch this is forced: it cannot see ``x_t`` at the pixel it predicts, so it
  cannot predict that pixel's diffusion noise ``eps``, but it can regress ``x0`` from the neighbours,
  which, like any blind-spot network, gives the *semi-clean* estimate (noise independent of the
  neighbourhood averages out).  ``eps`` is derived when sampling: ``eps_i = (x_t - a x0_i) / sigma``.
* **Guidance** ``eps = eps_c + w (eps_b - eps_c)`` (a re-parameterised classifier-free guidance, per the
  secondary sources).  Because ``eps`` is affine in ``x0``, it is exactly ``x0 = x0_c + w (x0_b - x0_c)``;
  ``w = 1`` samples with the blind-spot branch alone, ``w = 0`` with the conventional branch alone.
* **Refinement, not generation**: each round starts from a start image (the guide's output, or the noisy
  image) diffused to ``t_start`` (SDEdit-style) and runs ``steps`` deterministic DDIM steps (eta = 0)
  to ``t = 0``.
* **Complementary random replacement**: before round ``r`` the start image has each value replaced by the
  noisy input where ``frac(u + r / R) < p`` (``u`` a uniform number per pixel and channel, shared by all
  rounds), AP-BSN R^3 style (p = 0.16 there).  For ``p <= 1 / R`` the rounds' masks are disjoint and every
  value is re-injected in the same number of rounds ("complementary"); the R results are averaged.
  Rounds are independent of each other (not chained), so the result depends on pixels at most
  ``steps x (one evaluation's receptive radius)`` away.
* **Low frequencies anchored to the start image** (``anchor``, a Gaussian sigma in pixels; 0 turns it
  off): the rounds' mean keeps only its difference from the start image above that scale,
  ``out = x - G_sigma * (x - start)``.  Measured (docs/bsgd.md), the branches bias the mean colour and
  the slow variations of a weak-noise image (Nam: SI-PSNR 5 dB above the PSNR), which the guide already
  has right; what a refinement is for is local detail.
* **Randomness from global coordinates**: the diffusion noise and the replacement masks are a counter-
  based hash of ``(seed, stream, round, sample, channel, y, x)`` in the *whole image's* coordinates, not a
  stateful generator, so a tile computes exactly the numbers the untiled run uses and tiling shows no
  seams; a fixed seed gives the same result on any tiling and device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

COSINE_S = 0.008
T_MAX = 0.999  # alpha_bar(1) = 0 exactly; stay just below it
SCHEDULES = ("cosine",)
PARAMETERIZATION = "x0"
_M32 = 0xFFFFFFFF


# -- schedule ---------------------------------------------------------------------------------
def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sqrt(alpha_bar), sqrt(1 - alpha_bar))`` of the cosine schedule at ``t`` (any shape)."""
    t = torch.as_tensor(t, dtype=torch.float64).clamp(0.0, T_MAX)
    f = torch.cos((t + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
    f0 = math.cos(COSINE_S / (1 + COSINE_S) * math.pi / 2) ** 2
    ab = (f / f0).clamp(0.0, 1.0)
    return ab.sqrt().float(), (1 - ab).sqrt().float()


# -- training ---------------------------------------------------------------------------------
def diffusion_losses(net, x0: torch.Tensor, blind_spot: int, *, t_max: float = 1.0,
                     generator: torch.Generator | None = None, t: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """x0-prediction MSE of the conventional and the blind-spot branch on a batch of noisy patches.

    ``t`` (shape ``(B,)``) is uniform in ``[0, t_max]`` per patch unless given; the two branches see the
    same ``x_t``.
    """
    b = x0.shape[0]
    if t is None:
        t = torch.rand(b, generator=generator, device="cpu") * t_max
    t = t.to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device, x0.dtype)
    a, s = alpha_sigma(t)
    a, s = a.to(x0.device)[:, None, None, None], s.to(x0.device)[:, None, None, None]
    xt = a * x0 + s * eps
    pred_c, pred_b = net.branches(xt, t, blind_spot)
    return ((pred_c.float() - x0) ** 2).mean(), ((pred_b.float() - x0) ** 2).mean()


# -- counter-based randomness -----------------------------------------------------------------
def _mix(h: torch.Tensor) -> torch.Tensor:
    """32-bit integer finaliser (lowbias32) on int64 tensors holding values in [0, 2^32)."""
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _M32
    h = h ^ (h >> 15)
    h = (h * 0x846CA68B) & _M32  # may wrap in int64; the low 32 bits stay exact
    return h ^ (h >> 16)


def hash_uniform(seed: int, *keys) -> torch.Tensor:
    """Uniform numbers in (0, 1) that are a pure function of ``seed`` and the broadcast integer ``keys``."""
    h = _mix(torch.tensor(int(seed) & _M32, dtype=torch.int64))
    for k in keys:
        k = torch.as_tensor(k).to(torch.int64) & _M32
        h = _mix((h ^ k) + 0x9E3779B9 & _M32)
    return ((h.double() + 0.5) / 2.0**32).float()


def hash_normal(seed: int, *keys) -> torch.Tensor:
    """Standard normal numbers (Box-Muller on two hashed uniforms) as a function of ``seed`` and ``keys``."""
    u1 = hash_uniform(seed, 1, *keys)
    u2 = hash_uniform(seed, 2, *keys)
    return torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)


def _grid_keys(coords: torch.Tensor, channels: int):
    """Integer keys ``(n, c, y, x)`` broadcast to ``(B, C, H, W)`` from coordinate planes ``(B, 3, H, W)``."""
    c = torch.arange(channels, dtype=torch.int64)[None, :, None, None]
    n, gy, gx = (coords[:, i : i + 1].round().to(torch.int64).cpu() for i in range(3))
    return n, c, gy, gx


# -- guided sampling --------------------------------------------------------------------------
def check_sampling(steps: int, guidance: float, rounds: int, t_start: float, replace: float,
                   anchor: float = 0.0) -> None:
    """Raise ``ValueError`` on settings outside their ranges."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"sampling_steps must be a positive integer, got {steps!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    if not (isinstance(t_start, (int, float)) and 0 < t_start <= 1):
        raise ValueError(f"t_start must be in (0, 1], got {t_start!r}")
    if not (isinstance(guidance, (int, float)) and math.isfinite(guidance)):
        raise ValueError(f"guidance must be a finite number, got {guidance!r}")
    if not (isinstance(replace, (int, float)) and 0 <= replace <= 1):
        raise ValueError(f"replace must be in [0, 1], got {replace!r}")
    if isinstance(anchor, bool) or not (isinstance(anchor, (int, float)) and math.isfinite(anchor) and anchor >= 0):
        raise ValueError(f"anchor must be a Gaussian sigma >= 0 in pixels (0: off), got {anchor!r}")


def anchor_radius(anchor: float) -> int:
    """Pixels the anchoring's Gaussian reaches (truncated at 4 sigma; 0 when off)."""
    return int(math.ceil(4 * anchor)) if anchor > 0 else 0


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)``, truncated at 4 sigma, edges replicated."""
    r = anchor_radius(sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32, device=x.device) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def guided_refine(net, y: torch.Tensor, start: torch.Tensor, coords: torch.Tensor, *, blind_spot: int,
                  steps: int = 4, guidance: float = 0.75, rounds: int = 2, t_start: float = 0.3,
                  replace: float = 0.16, seed: int = 0, anchor: float = 0.0, on_step=None) -> torch.Tensor:
    """Guided DDIM refinement of ``start`` (normalised ``(B, C, H, W)``) given the noisy ``y``.

    ``coords`` holds ``(sample index, global y, global x)`` planes ``(B, 3, H, W)`` that key the random
    numbers.  ``on_step(round, step)`` is called after every DDIM step.  Returns the mean of the rounds,
    with its low frequencies (a Gaussian of sigma ``anchor`` pixels) taken from ``start`` when ``anchor > 0``.
    """
    check_sampling(steps, guidance, rounds, t_start, replace, anchor)
    n, c, gy, gx = _grid_keys(coords, y.shape[1])
    dev = y.device
    u = hash_uniform(seed, 0, n, c, gy, gx).to(dev) if replace > 0 else None
    ts = [t_start * (1 - k / steps) for k in range(steps + 1)]
    total = torch.zeros_like(y, dtype=torch.float32)
    for r in range(rounds):
        z = start
        if u is not None:
            z = torch.where(torch.remainder(u + r / rounds, 1.0) < replace, y, start)
        a0, s0 = alpha_sigma(torch.tensor(ts[0]))
        x = a0 * z + s0 * hash_normal(seed, 3, r, n, c, gy, gx).to(dev)
        for k in range(steps):
            t = torch.full((y.shape[0],), ts[k], device=dev)
            x0_c, x0_b = net.branches(x, t, blind_spot)
            x0 = x0_c.float() + guidance * (x0_b.float() - x0_c.float())
            a, s = alpha_sigma(torch.tensor(ts[k]))
            a1, s1 = alpha_sigma(torch.tensor(ts[k + 1]))
            eps = (x - a * x0) / s
            x = a1 * x0 + s1 * eps  # DDIM, eta = 0; the last step (t = 0) returns x0
            if on_step is not None:
                on_step(r, k)
        total += x
    mean = total / rounds
    if anchor > 0:
        mean = mean - gaussian_blur(mean - start.float(), anchor)
    return mean


class RefineWindow(nn.Module):
    """The refinement as a "network" for :func:`~napari_bsdenoise.engine.predict.predict_iter`.

    Its input windows hold ``[y (C), start (C), sample index, global y, global x]`` channels, so the
    result is a pure function of the window; :meth:`receptive_radius` is ``steps`` times one evaluation's
    radius plus the anchoring blur's, so tiles with that halo reproduce the untiled result.
    """

    def __init__(self, net, *, channels: int, steps: int, guidance: float, rounds: int, t_start: float,
                 replace: float, seed: int, anchor: float = 0.0, on_step=None):
        super().__init__()
        check_sampling(steps, guidance, rounds, t_start, replace, anchor)
        self.net = net
        self.channels = channels
        self.settings = dict(steps=steps, guidance=guidance, rounds=rounds, t_start=t_start, replace=replace,
                             seed=seed, anchor=anchor)
        self.on_step = on_step

    @property
    def multiple(self) -> int:
        return self.net.multiple

    def receptive_radius(self, blind_spot: int = 1) -> int:
        return self.settings["steps"] * self.net.step_radius(blind_spot) + anchor_radius(self.settings["anchor"])

    def forward(self, window: torch.Tensor, blind_spot: int = 1) -> torch.Tensor:
        c = self.channels
        y, start, coords = window[:, :c], window[:, c : 2 * c], window[:, 2 * c :]
        return guided_refine(self.net, y, start, coords, blind_spot=blind_spot, on_step=self.on_step,
                             **self.settings)


def window_data(y, start, sample_offset: int = 0):
    """Stack ``(N, C, H, W)`` numpy arrays ``y`` and ``start`` with coordinate planes for :class:`RefineWindow`."""
    import numpy as np

    n, _c, h, w = y.shape
    coords = np.empty((n, 3, h, w), np.float32)
    coords[:, 0] = (np.arange(n, dtype=np.float32) + sample_offset)[:, None, None]
    coords[:, 1] = np.arange(h, dtype=np.float32)[None, :, None]
    coords[:, 2] = np.arange(w, dtype=np.float32)[None, None, :]
    return np.concatenate([y.astype(np.float32), start.astype(np.float32), coords], axis=1)
