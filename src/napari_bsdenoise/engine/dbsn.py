"""D-BSN training: blind-spot mean by L2, uncertainty and noise level by the Gaussian NLL.

Per pixel and channel (normalised units) the loss is

    (y - mu)^2  +  0.5 * ((y - mu')^2 / v + log v),   v = var_mu + var_n,

where ``mu'`` is ``mu`` detached: the blind-spot mean is the plain self-supervised L2
estimator (the official code's stage a, kept on throughout), while the two variance
heads learn, from detached features, how far the noisy pixel scatters around it
(official stages b/c, with the closed-form NLL of a diagonal Gaussian; no inverses,
variances exp-parametrised, clamped and floored).  The paper's constrained bound
(``log var_n + var_mu / var_n`` for ``log v``) was measured too: it pushes the variance into
``var_n`` and fused worse at high photon counts (31.9 vs 34.4 dB on a 1000-photon camera image),
so the plain NLL (the official code's fine-tuning loss) is used.  Training the heads on detached inputs keeps the mean
from being bent to suit the variances, and lets all three be trained in one run with
the same budget, schedule, validation and stop/continue behaviour as AT-BSN
(:class:`~.train.Trainer`).  The validation loss is the same sum on held-out patches.
"""

from __future__ import annotations

from ..device import autocast
from ..nn.dbsn import gaussian_nll
from .train import Trainer


class DBSNTrainer(Trainer):
    """Train a :class:`~napari_bsdenoise.nn.dbsn.DBSN` on normalised ``(N, C, Y, X)`` data."""

    def _batch_loss(self, x):
        import torch.nn.functional as F

        with autocast(self.device, self.precision):
            mu, feats = self.net.blind(x)
            var_mu, var_n = self.net.variances(mu.detach(), feats.detach())
        mu = mu.float()
        return F.mse_loss(mu, x) + gaussian_nll(x, mu.detach(), var_mu, var_n)

    def describe(self) -> str:
        return (f"training D-BSN on {self.device} ({self.precision}): 1-pixel dilated blind spot, noise "
                f"model and posterior-mean fusion{self._method_note()}")
