"""Multi-teacher distillation of a tunable blind-spot teacher into a non-blind student.

One frozen AT-BSN, run at several blind-spot sizes, acts as several teachers
(AT-BSN (D), Chen et al. 2024, §3.5 of the brief): small blind spots keep
detail but let correlated noise through, large ones suppress it but blur.  The
student is trained on patches of the same noisy data to be close to all of
them at once (``mode="multi"``: the mean of the per-teacher losses, the paper's
sum up to a constant) or to their average (``mode="mean"``, for comparison).
The teacher's UNet runs once per patch; only its final shift and 1x1 head are
evaluated per blind spot (:meth:`ATBSN.features`).
"""

from __future__ import annotations

import copy

from ..device import autocast
from .train import Trainer

MODES = ("multi", "mean")


def default_teacher_blind_spots(train_blind_spot: int) -> tuple[int, ...]:
    """Teacher set from the teacher's training blind spot.

    Correlated noise (trained at s > 1): the paper's set, ``0, 1, 3, ...`` up to two
    beyond the training blind spot (SIDD: 0-11).  Pixel-independent noise (trained
    at 1): the 1-pixel teacher alone; adding s = 3 (blurrier) or s = 0 (copies noise)
    cost 0.1-0.3 dB on FMD and W2S (measured, docs/distillation.md).
    """
    s = int(train_blind_spot)
    if s <= 1:
        return (1,)
    return (0, *range(1, min(s + 2, 11) + 1, 2))


class DistillTrainer(Trainer):
    """Train a student network (``model``) to match ``teacher`` at ``blind_spots``.

    Same generator protocol, budget, schedule, held-out validation and best-model
    keeping as :class:`~.train.Trainer`; the validation loss is the distillation
    loss on held-out patches (no ground truth needed).
    """

    def __init__(self, data, model, *, teacher, blind_spots, mode: str = "multi", **kwargs):
        import torch

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        super().__init__(data, model, **kwargs)
        self.blind_spots = tuple(int(s) for s in blind_spots)
        self.mode = mode
        self.teacher = copy.deepcopy(teacher).to(self.device).eval()
        if self.device.type == "cpu":
            self.teacher = self.teacher.to(memory_format=torch.channels_last)
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def describe(self) -> str:
        return (f"distilling on {self.device} ({self.precision}) from teachers at blind spots "
                f"{', '.join(map(str, self.blind_spots))} ({self.mode})")

    def targets(self, x):
        """The teachers' outputs on ``x`` at each blind spot, detached."""
        import torch

        with torch.no_grad(), autocast(self.device, self.precision):
            if hasattr(self.teacher, "features"):  # AT-BSN: one UNet pass, one head per blind spot
                feats = self.teacher.features(x)
                size = tuple(x.shape[-2:])
                outs = [self.teacher.head_from_features(feats, s, size).float() for s in self.blind_spots]
            else:  # e.g. D-BSN: blind spot 0 is its fused (posterior-mean) output
                outs = [self.teacher(x, s).float() for s in self.blind_spots]
        if self.mode == "mean":
            return [torch.stack(outs).mean(0)]
        return outs

    def _batch_loss(self, x):
        targets = self.targets(x)
        with autocast(self.device, self.precision):
            pred = self.net(x).float()
        return sum(self._loss(pred, t) for t in targets) / len(targets)
