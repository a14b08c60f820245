"""Self-supervised blind-spot training, as a generator of progress events.

The loss compares the network's prediction at the training blind spot with the
noisy input itself (L2 or L1).  Because the network cannot see the noise of
the pixel it predicts (nor, with a larger blind spot, its correlated
neighbours), minimising it on noisy targets minimises the error to the clean
image up to a constant (Noise2Void / Laine et al.).

Stopping is closing the generator (or not iterating further): ``trainer.model``
always holds the best model by the held-out validation loss so far, and
iterating again continues training with the optimiser state intact.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np

from ..config import format_blind_spot
from ..device import autocast
from .patches import PatchSampler
from .progress import ProgressEvent


class Trainer:
    """Train ``model``'s network on normalised ``(N, C, Y, X)`` data.

    Iterate over the trainer (or call :meth:`run` with a new budget to
    continue) to train; read :attr:`model` at any time for the best model.
    """

    def __init__(
        self,
        data: np.ndarray,
        model,
        *,
        steps: int | None,
        seconds: float | None,
        patch_size: int,
        batch_size: int,
        patch_depth: int | None = None,
        learning_rate: float,
        seed: int,
        device,
        precision: str = "fp32",
        val_interval: int | None = None,
        val_fraction: float = 0.1,
    ):
        import torch

        self.model = model  # best so far (weights copied on improvement)
        self.config = model.config
        self.device = device
        self.precision = precision
        self.steps, self.seconds = steps, seconds
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.val_interval = val_interval
        torch.manual_seed(seed)
        self.sampler = PatchSampler(data, patch_size, val_fraction=val_fraction, seed=seed, patch_depth=patch_depth)
        self.net = copy.deepcopy(model.network).to(device)
        # channels-last convolutions are faster on the CPU (measured 1.3x for the 3-D network too)
        self.memory_format = torch.channels_last_3d if data.ndim == 5 else torch.channels_last
        if hasattr(self.net, "training_planes"):  # 2.5-D: 2-D convolutions of the planes of 3-D patches
            self.memory_format = torch.contiguous_format
            if device.type == "cpu":
                self.net = self.net.to(memory_format=torch.channels_last)
        elif device.type == "cpu":
            self.net = self.net.to(memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self.val_batch = torch.from_numpy(self.sampler.validation_patches()).to(device)
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self.best_val_loss = math.inf
        self.best_step = 0
        self._started = False

    # -- the loss --------------------------------------------------------------------------
    def _loss(self, pred, target):
        import torch.nn.functional as F

        return F.l1_loss(pred, target) if self.config.loss == "l1" else F.mse_loss(pred, target)

    def _batch_loss(self, x):
        """Self-supervised loss: the prediction at the training blind spot against the noisy input."""
        s = self.config.train_blind_spot
        planes = getattr(self.net, "training_planes", None)
        with autocast(self.device, self.precision):
            if planes is None:
                pred = self.net(x, s)
            else:  # a 2.5-D network: only the planes whose Z context lies in the patch (nn/atbsn25d.py)
                region = planes(x.shape[2], s)
                pred, x = self.net(x, s, planes=region), x[:, :, region]
        return self._loss(pred.float(), x)

    def _method_note(self) -> str:
        """Why ``method="auto"`` chose this network ("" when the user chose it)."""
        reason = str(self.config.training.get("method_reason", ""))
        return f" ({reason})" if reason.startswith("auto") else ""

    def describe(self) -> str:
        return (f"training on {self.device} ({self.precision}), blind spot {format_blind_spot(self.config.train_blind_spot)}"
                + self._method_note())

    def _validate(self) -> float:
        import torch

        self.net.eval()
        total = 0.0
        with torch.no_grad():
            for chunk in self.val_batch.split(max(1, self.batch_size), dim=0):
                total += float(self._batch_loss(chunk)) * len(chunk)
        self.net.train()
        return total / len(self.val_batch)

    def _lr(self, fraction: float) -> float:
        # short linear warm-up, then cosine decay to 0 over the budget
        warm = 0.03
        if fraction < warm:
            return self.learning_rate * (0.1 + 0.9 * fraction / warm)
        f = min(1.0, (fraction - warm) / (1 - warm))
        return self.learning_rate * 0.5 * (1 + math.cos(math.pi * f))

    def _fraction(self) -> float:
        fs = []
        if self.steps:
            fs.append(self.step / self.steps)
        if self.seconds:
            fs.append(self.elapsed / self.seconds)
        return min(1.0, max(fs)) if fs else 1.0

    def _keep_best(self, val_loss: float) -> None:
        self.best_val_loss, self.best_step = val_loss, self.step
        best = copy.deepcopy(self.net).to("cpu").to(memory_format=__import__("torch").contiguous_format)
        best.eval()
        config = copy.deepcopy(self.config)
        config.training = self._provenance()
        self.model = type(self.model)(config, best)  # the model class of the caller (no import upwards)

    def _provenance(self) -> dict:
        return {
            **self.config.training,  # data provenance set by the caller; ours below wins
            "steps": self.step,
            "seconds": round(self.elapsed, 2),
            "best_step": self.best_step,
            "best_val_loss": self.best_val_loss,
            "batch_size": self.batch_size,
            "patch_size": self.sampler.patch_size,
            **({"patch_depth": self.sampler.patch_depth} if self.sampler.volumes else {}),
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "device": str(self.device),
            "precision": self.precision,
            "held_out_validation": self.sampler.held_out,
            "n_validation_patches": int(len(self.val_batch)),
            "history": self.history[-200:],
        }

    # -- the loop --------------------------------------------------------------------------
    def __iter__(self):
        return self.run()

    def run(self, steps: int | None = None, seconds: float | None = None):
        """Generator of :class:`ProgressEvent`; ``steps``/``seconds`` add to the budget."""
        import torch

        if self._started and (steps or seconds):
            # continuing: extend the budget; the cosine schedule stretches over the new total
            self.steps = self.step + steps if steps else None
            self.seconds = self.elapsed + seconds if seconds else None
        elif steps or seconds:
            self.steps, self.seconds = steps, seconds
        self._started = True
        interval = self.val_interval or (max(10, (self.steps or 2000) // 25))
        val_every_s = (self.seconds / 25) if self.seconds and not self.steps else None
        yield ProgressEvent("start", self.step, self.steps, self._fraction(), self.elapsed, message=self.describe())
        if self.best_val_loss == math.inf:
            self._keep_best(self._validate())
        self.net.train()
        t0 = time.perf_counter() - self.elapsed
        last_val_t, last_val_step = self.elapsed, self.step
        while self._fraction() < 1.0:
            lr = self._lr(self._fraction())
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            x = torch.from_numpy(self.sampler.batch(self.batch_size)).to(self.device)
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=self.memory_format)
            loss = self._batch_loss(x)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged at step {self.step} (loss {float(loss)}); try a lower learning_rate"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            self.elapsed = time.perf_counter() - t0
            frac = self._fraction()
            eta = self.elapsed * (1 - frac) / frac if frac > 0 else None
            loss_v = float(loss.detach())
            if val_every_s is None:
                validate = self.step % interval == 0
            else:  # time budget: ~25 validations, but never more often than every 10 steps
                validate = self.elapsed - last_val_t >= val_every_s and self.step - last_val_step >= 10
            if validate or frac >= 1.0:
                last_val_t, last_val_step = self.elapsed, self.step
                val = self._validate()
                self.history.append({"step": self.step, "loss": loss_v, "val_loss": val, "seconds": round(self.elapsed, 2)})
                if val < self.best_val_loss:
                    self._keep_best(val)
                else:
                    self.model.config.training = self._provenance()
                yield ProgressEvent("validation", self.step, self.steps, frac, self.elapsed, eta, loss_v, val,
                                    self.best_val_loss, lr)
            else:
                yield ProgressEvent("step", self.step, self.steps, frac, self.elapsed, eta, loss_v, None,
                                    self.best_val_loss, lr)
        self.model.config.training = self._provenance()
        yield ProgressEvent("done", self.step, self.steps, 1.0, self.elapsed, 0.0, None, None, self.best_val_loss,
                            message=f"best validation loss {self.best_val_loss:.5g} at step {self.best_step}")
