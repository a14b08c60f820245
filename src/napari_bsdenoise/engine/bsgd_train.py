"""Training of the two BSGD branches on patches of the noisy data (no clean reference)."""

from __future__ import annotations

from ..device import autocast
from .bsgd_sample import diffusion_losses
from .train import Trainer

VALIDATION_SEED = 12345
VALIDATION_TIMES = 4


class BSGDTrainer(Trainer):
    """Both branches trained together (sum of their x0-prediction losses), with :class:`Trainer`'s budget,
    schedule, held-out validation and best-model keeping.

    Validation uses fixed stratified times and diffusion noise from a fixed generator, so the validation loss of two
    checkpoints is comparable (random ``t`` would make best-model selection a lottery).
    """

    def __init__(self, data, model, *, t_max: float = 1.0, **kwargs):
        super().__init__(data, model, **kwargs)
        self.t_max = float(t_max)
        self.last_losses = (float("nan"), float("nan"))

    def describe(self) -> str:
        return (f"training the BSGD diffusion branches on {self.device} ({self.precision}), x0-prediction, "
                f"cosine schedule, t in [0, {self.t_max:g}], blind spot {self.config.train_blind_spot}")

    def _validate(self) -> float:
        import torch

        self._val_gen = torch.Generator().manual_seed(VALIDATION_SEED)
        try:
            return super()._validate()
        finally:
            self._val_gen = None

    def _batch_loss(self, x):
        import torch

        gen = getattr(self, "_val_gen", None)
        t = None
        if gen is not None:  # validation: every patch at VALIDATION_TIMES stratified times in [0, t_max]
            k = VALIDATION_TIMES
            t = ((torch.arange(k, dtype=torch.float32) + 0.5) / k * self.t_max).repeat_interleave(len(x))
            x = x.repeat(k, 1, 1, 1)
        with autocast(self.device, self.precision):
            loss_c, loss_b = diffusion_losses(self.net, x, self.config.train_blind_spot, t_max=self.t_max,
                                              generator=gen, t=t)
        if gen is None:
            self.last_losses = (float(loss_c.detach()), float(loss_b.detach()))
        return loss_c + loss_b

    def _provenance(self) -> dict:
        before = (self.config.training.get("continued_from") or {}).get("steps", 0)
        return {**super()._provenance(), "total_steps": before + self.step,
                "last_branch_losses": {"conv": self.last_losses[0], "bsn": self.last_losses[1]}}
