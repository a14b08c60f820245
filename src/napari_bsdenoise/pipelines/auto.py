"""One button: diagnose the noise, pick the method, split one wall-time budget between training,
distillation and inference, and denoise (:func:`napari_bsdenoise.auto_denoise`).

The plan, in order (every choice and its reason is recorded in :attr:`AutoResult.choices`, in each
model's ``config.training["auto"]`` and in ``model.summary()``):

1. the noise diagnostic (:func:`napari_bsdenoise.estimate_noise_correlation`) on the image itself;
2. the method: D-BSN for pixel-independent noise (raw microscopy cameras: a 1-pixel blind spot and a
   noise model, one pass at inference), AT-BSN with the diagnostic's blind spots for spatially
   correlated noise (camera sRGB), followed by a distilled student;
3. the inference time, measured: one forward pass of each network that will run, timed on a tile
   and scaled to the image (plus the whole-image teacher targets of the distillation), reserved
   from the budget with a margin;
4. what is left is split between the teacher and the student (``teacher_fraction``), and each
   trainer stops on its share (``seconds=``), keeping its best model by the held-out loss.

Stopping (closing the generator, or a callback returning False) ends the current stage; the models
trained so far are kept in :attr:`AutoDenoiser.result` and nothing is denoised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import registry
from ..axes import to_samples
from ..defaults import DEFAULT_AUTO_SECONDS, DEFAULT_AUTO_TEACHER_FRACTION
from ..engine.denoise import denoise_array
from ..engine.progress import ProgressEvent, iter_events, run_events
from ..engine.sure import DEFAULT_CROP, DEFAULT_CROPS
from ..errors import InputError
from ..inputs import check_image, check_trainable_size, sample_layout
from ..methods.blindspot import choose_method, make_blindspot_trainer, recommended_method
from ..methods.student import make_distiller
from ..model import BlindSpotModel

#: Part of the budget kept free for what the plan cannot time in advance (validation passes, copies).
MARGIN_FRACTION = 0.04
MARGIN_SECONDS = 2.0
#: What ``method=`` takes: the diagnostic's choice, or one forced.
AUTO_METHODS = ("auto", "atbsn", "dbsn")
#: Smallest useful training budget per stage (seconds).
MIN_STAGE_SECONDS = 5.0


@dataclass
class AutoResult:
    """What :func:`napari_bsdenoise.auto_denoise` made: the result and the models, with every choice."""

    denoised: np.ndarray | None
    teacher: BlindSpotModel | None
    student: BlindSpotModel | None
    choices: dict = field(default_factory=dict)
    stopped: bool = False

    @property
    def model(self) -> BlindSpotModel | None:
        """The model that made :attr:`denoised` (the student when there is one, unless it failed the
        safety check and the teacher did better)."""
        if self.student is None or str(self.choices.get("final_model", "")).startswith("teacher"):
            return self.teacher
        return self.student

    def summary(self) -> str:
        c = self.choices
        lines = [f"auto_denoise: {c.get('method')} ({c.get('method_reason', '')})"]
        plan = c.get("budget", {})
        if plan:
            lines.append("budget {total:.0f} s: noise diagnostic {noise:.1f} s, teacher {teacher:.0f} s, student "
                         "{student:.0f} s, inference {inference:.1f} s (planned)".format(**plan))
        used = c.get("seconds", {})
        if used:
            lines.append("used: " + ", ".join(f"{k} {v:.1f} s" for k, v in used.items()))
        check = c.get("safety_check")
        if check:
            lines.append(check["summary"])
        if self.stopped:
            lines.append(f"stopped during {c.get('stopped_in', '?')}: nothing denoised; the models so far are kept")
        return "\n".join(lines)


def _seconds_per_pixel(network, channels: int, blind_spot: int, device) -> float:
    """Measured inference cost of ``network`` (seconds per pixel of one channel plane)."""
    import torch

    side = 128
    x = torch.zeros(1, channels, side, side, device=device)
    net = network.to(device).eval()
    with torch.no_grad():
        net(x, blind_spot)  # warm-up (allocations, kernels)
        dt = float("inf")
        for _ in range(2):  # the faster of two: a busy machine inflates single timings
            t0 = time.perf_counter()
            net(x, blind_spot)
            dt = min(dt, time.perf_counter() - t0)
    network.to("cpu")
    return dt / (side * side)


class AutoDenoiser:
    """Iterable pipeline of :class:`ProgressEvent` (``message`` names the stage); :attr:`result` holds
    the models made so far at any time, and the denoised image at the end."""

    def __init__(self, image, *, axes: str | None = None, seconds: float = DEFAULT_AUTO_SECONDS,
                 method: str = "auto", teacher_fraction: float = DEFAULT_AUTO_TEACHER_FRACTION, distill="auto",
                 seed: int = 0, device=None, hot_pixels="auto"):
        from ..device import resolve_device
        from ..noise import estimate_noise_correlation_samples

        self.t0 = time.perf_counter()
        self.arr = check_image(image)
        if not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0):
            raise InputError(f"seconds must be a positive number, got {seconds!r}")
        if not (isinstance(teacher_fraction, (int, float)) and 0 < teacher_fraction <= 1):
            raise InputError(f"teacher_fraction must be in (0, 1], got {teacher_fraction!r}")
        if method not in AUTO_METHODS:
            raise InputError(f"method must be one of {', '.join(map(repr, AUTO_METHODS))}, got {method!r}")
        if distill not in ("auto", True, False):
            raise InputError(f"distill must be 'auto', True or False, got {distill!r}")
        self.layout = sample_layout(self.arr, axes, None)
        check_trainable_size(self.layout)
        self.axes, self.seed, self.hot_pixels = self.layout.axes, seed, hot_pixels
        self.device = resolve_device(device)
        self.noise = estimate_noise_correlation_samples(to_samples(self.arr, self.layout))
        t_noise = time.perf_counter() - self.t0
        if method == "auto":
            method = recommended_method(self.noise)
            reason = ("the noise looks pixel-independent: a 1-pixel blind spot with a noise model" if method == "dbsn"
                      else f"the noise looks spatially correlated over ~{self.noise.correlation_length} px: AT-BSN, "
                           f"blind spots {self.noise.train_blind_spot}/{self.noise.inference_blind_spot}")
        else:
            reason = choose_method(method, "auto", self.noise)[1]
        # A student where it measured better at this budget (docs/auto.md): AT-BSN on strong correlated
        # noise (SIDD: +1.2 and +1.6 dB over the fused teacher).  Not on mild correlated noise (Nam: the
        # fused teacher 39.1 and 39.9 dB, a half-budget student 35.7 and 37.7), nor for D-BSN, whose fused
        # one-pass output is what a student would learn (no gain on W2S and FMD, docs/distillation.md).
        self.distill = (method == "atbsn" and not self.noise.mild) if distill == "auto" else bool(distill)
        self.method = method
        inference = self._inference_seconds(method)
        remaining = seconds * (1 - MARGIN_FRACTION) - MARGIN_SECONDS - t_noise - inference
        if remaining < MIN_STAGE_SECONDS * (2 if self.distill else 1):
            need = (seconds - remaining) + MIN_STAGE_SECONDS * (2 if self.distill else 1)
            raise InputError(f"seconds={seconds:g} is too little for this image ({self.arr.shape}): denoising "
                             f"alone takes about {inference:.0f} s here; give at least {need:.0f} s")
        teacher_s = remaining * (teacher_fraction if self.distill else 1.0)
        # the stages end by this clock time; the student's budget is re-planned when it starts
        self.deadline = self.t0 + seconds * (1 - MARGIN_FRACTION) - MARGIN_SECONDS
        self.inference_reserve = inference
        self.plan = {"total": float(seconds), "noise": t_noise, "teacher": teacher_s,
                     "student": remaining - teacher_s, "inference": inference}
        self.result = AutoResult(None, None, None, {
            "method": method, "method_reason": reason, "distill": self.distill,
            "distill_reason": self._distill_reason(method) if distill == "auto" else "distill= chosen by the user",
            "teacher_fraction": teacher_fraction if self.distill else 1.0, "budget": dict(self.plan),
            "noise": self.noise.summary(), "device": str(self.device), "seconds": {}})

    def _distill_reason(self, method: str) -> str:
        if self.distill:
            return "strong correlated noise: a student distilled from the teacher at several blind spots"
        if method == "atbsn":
            return "mild correlated noise: the teacher's output fused with the input, no student"
        return "pixel-independent noise: the teacher's fused one-pass output, no student"

    def _inference_seconds(self, method: str) -> float:
        """Inference time: measured forward passes scaled to the image (x 1.3).  The student learns per-batch
        teacher targets (``precompute=False``), whose cost is inside its own time budget: whole-image
        targets cost 8 teacher passes up front, which a minutes-long budget cannot always afford."""
        from ..config import NETWORK_PRESETS, NetworkConfig

        n_in = self.layout.n_channels if self.layout.channel_mode == "joint" else 1
        planes = int(np.prod(self.arr.shape)) // (self.layout.n_channels * int(np.prod(self.layout.spatial_shape)))
        planes *= self.layout.n_channels if self.layout.channel_mode == "independent" else 1
        pixels = planes * int(np.prod(self.layout.spatial_shape))
        preset = "tiny" if self.device.type == "cpu" else "small"
        spec = registry.get(method)
        teacher = registry.build_network(NetworkConfig(method=method, in_channels=n_in, out_channels=n_in,
                                                       **dict(spec.presets[preset])))
        s = 1 if method == "dbsn" else self.noise.inference_blind_spot
        per_px = _seconds_per_pixel(teacher, n_in, s, self.device)
        # the safety check: at most three passes over its crops (engine/safety.py, engine/sure.py)
        check = 3 * per_px * min(pixels, DEFAULT_CROPS * DEFAULT_CROP**2)
        if not self.distill:
            return 1.3 * (per_px * pixels + check)
        student = registry.build_network(NetworkConfig(method="student", in_channels=n_in, out_channels=n_in,
                                                       **dict(NETWORK_PRESETS[preset])))
        t_student = _seconds_per_pixel(student, n_in, 0, self.device) * pixels
        return 1.3 * (t_student + check)


    def __iter__(self):
        return self.run()

    def _stage(self, name: str, gen, t0: float | None = None):
        """Relay ``gen``'s events, labelled; returns its value (None when the consumer stopped)."""
        t0 = time.perf_counter() if t0 is None else t0
        try:
            while True:
                try:
                    event = next(gen)
                except StopIteration as stop:
                    return stop.value
                share = self.plan[name] / self.plan["total"]  # the whole pipeline's progress
                done = self.plan["noise"] + sum(self.plan[k] for k in ("teacher", "student", "inference")
                                                 [: ("teacher", "student", "inference").index(name)])
                fraction = min(1.0, done / self.plan["total"] + share * event.fraction)
                yield ProgressEvent(event.kind, event.step, event.total, fraction, event.elapsed, event.eta,
                                    event.loss, event.val_loss, event.best_val_loss, event.learning_rate,
                                    message=f"{name}: {event.message}" if event.message else name)
        finally:
            self.result.choices["seconds"][name] = round(time.perf_counter() - t0, 2)

    def run(self):
        """The generator: teacher, student (when distilling), denoising; returns :attr:`result`."""
        res = self.result
        try:
            res.choices["stopped_in"] = "teacher"
            trainer = make_blindspot_trainer(self.arr, method=self.method, axes=self.axes,
                                             seconds=self.plan["teacher"], seed=self.seed, device=self.device,
                                             noise=self.noise, hot_pixels=self.hot_pixels)
            try:
                yield from self._stage("teacher", iter(trainer))
            finally:
                res.teacher = self._record(trainer.model)
            final = res.teacher
            if self.distill:
                res.choices["stopped_in"] = "student"
                t_start = time.perf_counter()
                distiller = make_distiller(self.arr, res.teacher, axes=self.axes, seconds=self.plan["student"],
                                           seed=self.seed, device=self.device, precompute=False,
                                           hot_pixels=self.hot_pixels)
                # what is left now that the teacher has run and the whole-image targets are computed
                distiller.seconds = max(MIN_STAGE_SECONDS,
                                        self.deadline - time.perf_counter() - self.inference_reserve)
                res.choices["student_seconds"] = round(distiller.seconds, 1)
                try:
                    yield from self._stage("student", iter(distiller), t_start)
                finally:
                    res.student = self._record(distiller.model)
                final = res.student
            res.choices["stopped_in"] = "inference"
            final, settings = self._checked(final)
            if settings is None:  # every setting estimated clearly below the input: the input, unchanged
                from ..engine.safety import kept_input

                res.denoised = kept_input(self.arr, final, axes=self.axes, hot_pixels=self.hot_pixels)
                res.choices["seconds"]["inference"] = 0.0
            else:
                res.denoised = yield from self._stage("inference", iter_events(
                    denoise_array, self.arr, final, axes=self.axes, device=self.device,
                    hot_pixels=self.hot_pixels, **settings))
            res.choices.pop("stopped_in")
        except GeneratorExit:
            res.stopped = True
            raise
        res.choices["seconds"]["total"] = round(time.perf_counter() - self.t0, 2)
        for m in (res.teacher, res.student):
            if m is not None:
                self._record(m)
        return res

    def _checked(self, final):
        """The safety check (engine/safety.py) of ``final`` at its default setting: ``(model, settings)``,
        the teacher when the student fails it and the teacher does better; settings None keeps the input."""
        from ..engine.safety import safety_check

        res = self.result
        report = safety_check(self.arr, final, axes=self.axes, hot_pixels=self.hot_pixels, device=self.device)
        if report.fell_back and final is res.student and res.teacher is not None:
            t_report = safety_check(self.arr, res.teacher, axes=self.axes, hot_pixels=self.hot_pixels,
                                    device=self.device)
            best = lambda r: -np.inf if r.chosen is None else r.chosen.gain_db  # noqa: E731
            if best(t_report) > best(report):
                final, report = res.teacher, t_report
                res.choices["final_model"] = "teacher (the student failed the safety check)"
        res.choices["safety_check"] = report.to_dict()
        if not report.fell_back:
            return final, {}
        if report.chosen is None:
            return final, None
        return final, {"blind_spot": report.chosen.blind_spot, "fusion": report.chosen.fusion}

    def _record(self, model):
        """``model`` with the choices in its provenance (``config.training["auto"]``)."""
        if model is not None:
            model.config.training["auto"] = {k: v for k, v in self.result.choices.items() if k != "noise"}
        return model


def auto_denoise(image, *, axes: str | None = None, seconds: float = DEFAULT_AUTO_SECONDS,
                 method: str = "auto", teacher_fraction: float = DEFAULT_AUTO_TEACHER_FRACTION, distill="auto",
                 seed: int = 0, device=None, hot_pixels="auto", callback=None) -> AutoResult:
    """Denoise ``image`` in one call within ``seconds`` of wall time (see :class:`AutoDenoiser`).

    ``method="auto"`` lets the noise diagnostic choose (D-BSN for pixel-independent noise, AT-BSN for
    correlated noise); ``"atbsn"`` or ``"dbsn"`` forces one, and the rest of the plan follows it.

    ``callback`` is called with each :class:`ProgressEvent`; returning ``False`` stops: the result then
    has ``stopped=True``, the models trained so far and no denoised image.
    """
    pipeline = AutoDenoiser(image, axes=axes, seconds=seconds, method=method, teacher_fraction=teacher_fraction,
                            distill=distill, seed=seed, device=device, hot_pixels=hot_pixels)
    try:
        return run_events(pipeline.run(), callback)
    except InterruptedError:  # stopped: the models so far, nothing denoised
        return pipeline.result
