"""D-BSN training: blind-spot mean by L2, uncertainty and noise level by a Gaussian NLL.

Per pixel and channel (normalised units) the loss is

    (y - mu)^2  +  0.5 * ((y - mu')^2 / v + log var_n + var_mu / var_n),   v = var_mu + var_n,

where ``mu'`` is ``mu`` detached: the blind-spot mean is the plain self-supervised L2
estimator (the official code's stage a, kept on throughout), while the two variance heads
learn, from detached features, how far the noisy pixel scatters around it (stages b/c).
The second term is D-BSN's constrained NLL: ``log v`` replaced by its upper bound
``log var_n + var_mu / var_n`` (closed form for independent channels; no inverses;
variances exp-parametrised, clamped and floored).  The plain NLL
(``objective = "nll"``) only identifies ``var_mu + var_n``; measured on real data it put
noise into ``var_mu`` and its fusion let noise back in (W2S image 001_0: SI-PSNR 24.8 fused
vs 28.8 for the mean alone), while the bound never fused worse than the mean in our tests
(28.7 there; it gives up some of the plain NLL's gain at very high photon counts).
Training the heads on detached inputs keeps the mean from being bent to suit the
variances, and lets all three be trained in one run with the same budget, schedule,
validation and stop/continue behaviour as AT-BSN (:class:`~.train.Trainer`).  The
validation loss is the same sum on held-out patches.
"""

from __future__ import annotations

from ..device import autocast
from ..nn.dbsn import constrained_nll, gaussian_nll
from .train import Trainer


class DBSNTrainer(Trainer):
    """Train a :class:`~napari_bsdenoise.nn.dbsn.DBSN` on normalised ``(N, C, Y, X)`` data."""

    #: "bound": the paper's constrained NLL (default); "nll": the plain Gaussian NLL
    objective = "bound"

    def _batch_loss(self, x):
        import torch.nn.functional as F

        with autocast(self.device, self.precision):
            mu, feats = self.net.blind(x)
            var_mu, var_n = self.net.variances(mu.detach(), feats.detach())
        mu = mu.float()
        nll = constrained_nll if self.objective == "bound" else gaussian_nll
        return F.mse_loss(mu, x) + nll(x, mu.detach(), var_mu, var_n)

    def describe(self) -> str:
        return (f"training D-BSN on {self.device} ({self.precision}): 1-pixel dilated blind spot, noise "
                f"model and posterior-mean fusion{self._method_note()}")
