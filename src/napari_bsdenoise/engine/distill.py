"""Multi-teacher distillation of a tunable blind-spot teacher into a non-blind student.

One frozen AT-BSN, run at several blind-spot sizes, acts as several teachers
(AT-BSN (D), Chen et al. 2024, §3.5 of the brief): small blind spots keep
detail but let correlated noise through, large ones suppress it but blur.  The
student is trained on patches of the same noisy data to be close to all of
them at once (``mode="multi"``: the mean of the per-teacher losses, the paper's
sum up to a constant) or to their average (``mode="mean"``, for comparison).
The teacher's UNet runs once per patch; only its final shift and 1x1 head are
evaluated per blind spot (:meth:`ATBSN.features`).

With ``precompute=True`` (or ``"auto"`` and small enough data), the teachers' outputs are computed once
over the whole images before training and cropped (and transformed) with each patch, instead of running the
teacher on every batch: the teacher then also sees each patch's full surroundings, and a step costs only
the student's forward and backward pass.
"""

from __future__ import annotations

import copy

from ..config import blind_spot_sort_key, check_blind_spot, format_blind_spot
from ..device import autocast
from .train import Trainer

MODES = ("multi", "mean")
#: ``precompute="auto"``: whole-image teacher outputs when the data (inputs plus one output per teacher)
#: fits this many bytes and has at most this many pixels (beyond that, teaching patch by patch is cheaper)
PRECOMPUTE_MAX_BYTES = 1 << 30
PRECOMPUTE_MAX_PIXELS = 32_000_000


def default_teacher_blind_spots(train_blind_spot) -> tuple:
    """Teacher set from the teacher's training blind spot.

    Correlated noise (trained at s > 1): the paper's set, ``0, 1, 3, ...`` up to two
    beyond the training blind spot (SIDD: 0-11).  Pixel-independent noise (trained
    at 1): the 1-pixel teacher alone; adding s = 3 (blurrier) or s = 0 (copies noise)
    cost 0.1-0.3 dB on FMD and W2S (measured, docs/distillation.md).
    """
    if isinstance(train_blind_spot, tuple):  # (y, x): grow each side up to two beyond its own
        sy, sx = train_blind_spot
        top = min(max(sy, sx) + 2, 11)
        side = lambda k, s: 1 if s <= 1 else min(k, s + 2)  # noqa: E731
        spots = {(side(k, sy), side(k, sx)) for k in range(1, top + 1, 2)}
        return (0, *sorted((y if y == x else (y, x) for y, x in spots), key=blind_spot_sort_key))
    s = int(train_blind_spot)
    if s <= 1:
        return (1,)
    return (0, *range(1, min(s + 2, 11) + 1, 2))


def _undo_dihedral(a, k: int):
    """The inverse of ``patches.dihedral(., k)`` on the last two axes."""
    import numpy as np

    if k >= 4:
        a = a[..., ::-1]
    return np.rot90(a, -(k % 4), axes=(-2, -1))


def _teacher_outputs(teacher, x, blind_spots) -> list:
    """The teacher's outputs on ``x`` at each blind spot (AT-BSN: one UNet pass, one head per blind spot;
    other teachers, e.g. D-BSN, whose blind spot 0 is its fused output: one pass each)."""
    if hasattr(teacher, "features"):
        feats = teacher.features(x)
        size = tuple(x.shape[-2:])
        return [teacher.head_from_features(feats, s, size) for s in blind_spots]
    return [teacher(x, s) for s in blind_spots]


class _AllHeads:
    """The teacher at every blind spot in one pass (AT-BSN: one UNet pass, one head per blind spot),
    outputs stacked on the channel axis; duck-types a network for ``predict``."""

    def __init__(self, teacher, blind_spots):
        self.teacher, self.blind_spots = teacher, tuple(blind_spots)
        self.multiple = getattr(teacher, "multiple", 1)

    def receptive_radius(self, blind_spot):
        return max(self.teacher.receptive_radius(s) for s in self.blind_spots)

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, x, blind_spot=None):
        import torch

        return torch.cat(_teacher_outputs(self.teacher, x, self.blind_spots), dim=1)


class DistillTrainer(Trainer):
    """Train a student network (``model``) to match ``teacher`` at ``blind_spots``.

    Same generator protocol, budget, schedule, held-out validation and best-model
    keeping as :class:`~.train.Trainer`; the validation loss is the distillation
    loss on held-out patches (no ground truth needed).
    """

    def __init__(self, data, model, *, teacher, blind_spots, mode: str = "multi", precompute=False, fusion=None,
                 outliers=None, **kwargs):
        import numpy as np
        import torch

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if precompute not in ("auto", True, False):
            raise ValueError(f"precompute must be 'auto', True or False, got {precompute!r}")
        self.blind_spots = tuple(check_blind_spot(s) for s in blind_spots)
        self.mode = mode
        self.fusion = fusion  # FusionParams: blind-spot targets fused with the input (nn/fusion.py)
        self.outliers = outliers  # OutlierParams: the teacher sees inputs with hot pixels repaired
        device = kwargs["device"]
        self.teacher = copy.deepcopy(teacher).to(device).eval()
        if device.type == "cpu":
            self.teacher = self.teacher.to(memory_format=torch.channels_last)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        from ..nn.fast_unet import inference_form

        # the teacher's inference form (nn/fast_atbsn.py, the same function) makes every target: per
        # batch it is ~1.6x faster than the trained form, so a timed distillation gets more student steps
        self.teacher_form = inference_form(self.teacher, kwargs.get("precision", "fp32"))
        self.n_in = int(data.shape[1])
        self.n_targets = 1 if mode == "mean" else len(self.blind_spots)
        if precompute == "auto":
            n, c, h, w = data.shape
            precompute = (n * h * w <= PRECOMPUTE_MAX_PIXELS
                          and 4 * n * c * h * w * (1 + self.n_targets) <= PRECOMPUTE_MAX_BYTES)
        self.precomputed = bool(precompute)
        if self.precomputed:  # inputs and targets side by side: every crop and transform applies to both
            targets = self._whole_image_targets(data, device, kwargs.get("precision", "fp32"))
            data = np.concatenate([np.asarray(data, np.float32), *targets], axis=1)
        super().__init__(data, model, **kwargs)

    def _whole_image_targets(self, data, device, precision):
        """Each teacher's output over the whole images, averaged over the 8 dihedral transforms.

        Patch by patch, the teacher sees randomly transformed patches, and AT-BSN is not exactly
        equivariant (its rotations share one head), so the student's best answer is the teacher's
        output averaged over the transforms: that average is the precomputed target."""
        import numpy as np
        import torch

        from .patches import dihedral
        from .predict import auto_tile, predict

        if self.outliers is not None:  # the teacher's input, as denoise gives it (the student's stays raw)
            from ..nn.outliers import repair

            data = repair(torch.from_numpy(np.asarray(data, np.float32)), self.outliers).numpy()
        # tile by tile (one sample each), by the teacher's inference form
        heads = _AllHeads(self.teacher_form, self.blind_spots)
        widest = max(self.blind_spots, key=blind_spot_sort_key)  # the largest halo
        tile = auto_tile(self.teacher, widest, 512 * 2**20)  # ~512 MB of activations
        total = None
        for k in range(8):
            x = np.ascontiguousarray(dihedral(data, k), np.float32)
            y = predict(heads, x, blind_spot=widest, device=device, precision=precision, tile=tile)
            y = _undo_dihedral(y.astype(np.float32), k)
            total = y if total is None else total + y
        outs = self._fused(torch.from_numpy(np.asarray(data, np.float32)),
                           [torch.from_numpy(o) for o in np.split(total / 8, len(self.blind_spots), axis=1)])
        outs = [o.numpy() for o in outs]
        return [np.mean(outs, axis=0)] if self.mode == "mean" else outs

    def _fused(self, x, outs: list) -> list:
        """Blind-spot targets (blind spot >= 1) fused with the noisy input ``x`` when fusion is on."""
        if self.fusion is None:
            return outs
        from ..nn.fusion import fuse

        return [o if s == 0 else fuse(x, o, self.fusion) for s, o in zip(self.blind_spots, outs)]

    def describe(self) -> str:
        return (f"distilling on {self.device} ({self.precision}) from teachers at blind spots "
                f"{', '.join(map(format_blind_spot, self.blind_spots))} ({self.mode})")

    def targets(self, x):
        """The teachers' outputs on ``x`` at each blind spot, detached."""
        import torch

        with torch.no_grad(), autocast(self.device, self.precision):
            if self.outliers is not None:  # the teacher's input, as denoise gives it
                from ..nn.outliers import repair

                x = repair(x, self.outliers)
            outs = [o.float() for o in _teacher_outputs(self.teacher_form, x, self.blind_spots)]
            outs = self._fused(x, outs)
        if self.mode == "mean":
            return [torch.stack(outs).mean(0)]
        return outs

    def _batch_loss(self, x):
        if self.precomputed:  # channels: the input, then each teacher's output
            x, rest = x[:, : self.n_in], x[:, self.n_in :]
            targets = list(rest.split(rest.shape[1] // self.n_targets, dim=1))
        else:
            targets = self.targets(x)
        with autocast(self.device, self.precision):
            pred = self.net(x).float()
        return sum(self._loss(pred, t) for t in targets) / len(targets)

    def _provenance(self) -> dict:
        return {**super()._provenance(), "teacher_targets": "whole image" if self.precomputed else "per patch",
                "fused_targets": self.fusion is not None, "hot_pixels_repaired": self.outliers is not None}
