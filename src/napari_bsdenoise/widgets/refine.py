"""The Refine widget (experimental): blind-spot guided diffusion (BSGD) refinement of a layer.

A thin shell over :func:`napari_bsdenoise.api.make_trainer` with ``method="bsgd"`` (train the two
diffusion branches next to a guide model of the session) and :func:`napari_bsdenoise.api.refine`
(guided DDIM refinement of the guide's result).  Training runs in a napari generator worker over
the trainer's progress events (Stop acts after the current step, the best model is kept) and the
result is added to the session as "<guide> bsgd"; Continue trains the selected BSGD model further
(``make_trainer(model=...)``) and Save model… writes it; refinement runs through
:func:`napari_bsdenoise.api.iter_events` (Cancel acts after the current DDIM step) into a new
``<layer>_refined`` layer.  docs/bsgd.md: what it gains over its guide, measured.
"""

from __future__ import annotations

from qtpy.QtWidgets import QFormLayout, QGroupBox, QVBoxLayout

from .. import api
from ..errors import InputError
from .layers import load_into_session, model_metadata, output_layer_kwargs, refill_combo, save_model_file
from .panel import Panel, action, add_rows, button, check_box, combo, hrow, label, need, show_summary
from .run import BudgetRow, format_seconds, spin
from .session import SESSION

NETWORKS = ("auto", *api.BSGD_PRESETS)
EXPERIMENTAL = ("<b>Experimental.</b> Measured on 4 images per group (docs/bsgd.md), the default refinement "
                "is 0.2–0.6 dB above its guide on SIDD and W2S; on Nam the check below keeps the guide. On "
                "camera noise the distilled student is still better.")
TRAINING = "training the diffusion branches"


class RefineWidget(Panel):
    """Refine an image layer by blind-spot guided diffusion (napari dock widget "Refine")."""

    follows_session = True

    def setup(self) -> None:
        self.trainer = None  # the BSGD trainer of the last Train or Continue
        self._pending_name: str | None = None
        self._continuing = False  # the running training continues a session model (replaced, not added)

    # -- layout ------------------------------------------------------------------------------
    def build(self, root) -> None:
        self.experimental_label = label(EXPERIMENTAL)
        root.addWidget(self.experimental_label)

        box = QGroupBox("Data and guide")
        form = QFormLayout(box)
        self.add_layer_rows(form, "The noisy layer to train the diffusion branches on and to refine")
        self.guide_combo = combo(tip="The blind-spot model (or student) of this session whose result is refined; "
                                     "the diffusion branches reuse its normalisation and blind spots")
        form.addRow("Guide", self.guide_combo)
        root.addWidget(box)

        box = QGroupBox("Train diffusion branches")
        col = QVBoxLayout(box)
        form = QFormLayout()
        self.network_combo = combo(NETWORKS, "Size of each branch; auto = tiny on the CPU, small on a GPU")
        self.budget_row = BudgetRow(steps=300)
        self.budget_kind, self.steps_spin, self.minutes_spin = (self.budget_row.kind, self.budget_row.steps,
                                                                self.budget_row.minutes)
        add_rows(form, (("Network", self.network_combo), ("Budget", self.budget_row)))
        col.addLayout(form)
        self.train_button = button("Train", self.train, "Train both diffusion branches on the layer, next to the "
                                   "guide; the result is added to the session as '<guide> bsgd'")
        self.stop_button = button("Stop", self.stop, "Stop after the current step; the best model so far is kept")
        self.continue_button = button("Continue", self.continue_training, "Train the selected BSGD model further "
                                      "by the budget (a loaded one on the selected layer); it is updated in the "
                                      "session")
        col.addLayout(hrow(self.train_button, self.stop_button, self.continue_button, stretch_first=True))
        self.train_job = self.add_job(TRAINING, col, training=True)
        self.train_progress, self.train_status = self.train_job.progress, self.train_job.status
        self.loss_plot, self.device_label = self.train_job.loss_plot, self.train_job.device_label
        self.loss_plot.setToolTip("Diffusion loss (x0 regression of both branches): training and held-out")
        root.addWidget(box)

        box = QGroupBox("Refine")
        col = QVBoxLayout(box)
        form = QFormLayout()
        self.model_combo = combo(tip="BSGD models of this session (trained above or loaded)",
                                 changed=self._on_model_changed)
        self.load_button = button("Load…", self.load_model, "Load a BSGD model (.safetensors)")
        self.save_button = button("Save model…", self.save_model,
                                  "Write the selected BSGD model to a .safetensors file (+ its JSON config)")
        form.addRow("BSGD model", hrow(self.model_combo, self.load_button, self.save_button, stretch_first=True))
        self.model_label = label()
        form.addRow(self.model_label)
        self.steps_box = spin(1, 256, api.DEFAULT_SAMPLING_STEPS, "Deterministic (DDIM) steps from t_start to 0")
        self.guidance_box = spin(-1.0, 2.0, api.DEFAULT_GUIDANCE, step=0.05,
                                 tip="Guidance weight w: 0 = conventional branch only, 1 = blind-spot branch only")
        self.rounds_box = spin(1, 64, api.DEFAULT_ROUNDS, "Rounds with complementary random replacement, averaged")
        self.t_start_box = spin(0.001, 1.0, api.DEFAULT_T_START, "Diffusion time the start image is noised to (0-1)",
                                step=0.05, decimals=3)
        self.replace_box = spin(0.0, 1.0, api.DEFAULT_REPLACE, step=0.02,
                                tip="Fraction of values replaced by the noisy input in each round")
        self.anchor_box = spin(0.0, 64.0, api.DEFAULT_ANCHOR, step=0.5, decimals=1,
                               tip="Keep the guide's low frequencies below a Gaussian of this sigma (pixels): the "
                               "refinement then only adds local detail and cannot shift intensities (0: off)")
        self.seed_box = spin(0, 2**31 - 1, tip="Seeds the diffusion noise and the replacement masks (reproducible)")
        add_rows(form, (("Sampling steps", self.steps_box), ("Guidance", self.guidance_box),
                        ("Rounds", self.rounds_box), ("t_start", self.t_start_box),
                        ("Replace", self.replace_box), ("Anchor (px)", self.anchor_box), ("Seed", self.seed_box)))
        col.addLayout(form)
        self.check_box = check_box(
            "Keep the guide's result unless refining helps (safety check)", True,
            "Before refining the layer, estimate on two crops of it (no clean image: SURE against the guide's noise "
            "estimate) whether the refined result beats the guide's, and keep the guide's result where it does "
            "not. The verdict goes into the output layer's metadata. Needs a guide model; costs about two "
            "refinements of the crops.")
        col.addWidget(self.check_box)
        self.refine_button = button("Refine layer", self.refine_layer,
                                    "Refine the guide's result for the layer into '<layer>_refined'")
        self.cancel_button = button("Cancel", self.cancel, "Cancel after the current DDIM step (no layer is added)")
        col.addLayout(hrow(self.refine_button, self.cancel_button, stretch_first=True))
        self.refine_job = self.add_job("refinement", col, stopping="Cancelling…", failures=True)
        self.progress, self.status = self.refine_job.progress, self.refine_job.status
        root.addWidget(box)
        root.addStretch(1)

    # -- state -------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        """True while the diffusion branches train in the background."""
        return self.train_job.running

    @property
    def refining(self) -> bool:
        """True while a refinement runs in the background."""
        return self.refine_job.running

    def update_buttons(self) -> None:
        # one job at a time: both compete for the same CPU cores
        idle, has = not self.busy, self.bsgd_model() is not None
        self.train_button.setEnabled(idle)
        self.stop_button.setEnabled(self.training)
        self.continue_button.setEnabled(idle and has)
        self.refine_button.setEnabled(idle)
        self.cancel_button.setEnabled(self.refining)
        self.load_button.setEnabled(idle)
        self.save_button.setEnabled(idle and has)

    def guide(self):
        return SESSION.get(self.guide_combo.currentText())

    def bsgd_model(self):
        return SESSION.get(self.model_combo.currentText())

    def session_changed(self) -> None:
        names = SESSION.names()
        refill_combo(self.guide_combo, [n for n in names if SESSION.get(n).method != api.BSGD_METHOD])
        models = [n for n in names if SESSION.get(n).method == api.BSGD_METHOD]
        # a newly added BSGD model is selected; otherwise the selection stays
        refill_combo(self.model_combo, models, select_last=len(models) > self.model_combo.count())
        self._on_model_changed()

    def _on_model_changed(self, *_) -> None:
        self.update_buttons()
        model = self.bsgd_model()
        if model is None:
            self.model_label.setText("No BSGD model: train the diffusion branches above or load one.")
            self.model_label.setToolTip("")
            return
        guide = ((model.config.training or {}).get("bsgd") or {}).get("guide")
        show_summary(self.model_label, model, suffix=f"; trained next to a {guide['method']} guide" if guide else "")

    def load_model(self, path: str | None = None):
        """Read a BSGD model from a ``.safetensors`` file into the session and select it (another
        kind of model is refused with a notification)."""

        def refuse(model, name):
            if model.method != api.BSGD_METHOD:
                return (f"{name} is a {model.method!r} model, not a BSGD model: train the diffusion branches in "
                        "this widget (or with napari_bsdenoise.train_bsgd)")
            return None

        return load_into_session(self, self.model_combo, path, refuse)

    @action("saving the model")
    def save_model(self, path: str | None = None):
        """Write the selected BSGD model to a ``.safetensors`` file (asks for the path when not given;
        the default file name is the model's session name, "<guide> bsgd"); nothing while busy."""
        return save_model_file(self, self.bsgd_model(), f"{self.model_combo.currentText() or 'bsgd'}.safetensors",
                               path)

    def _data(self, model, *, trainable: bool = False):
        """The selected layer and its data and axes, checked against ``model`` (and for a trainable
        size when ``trainable``): an :class:`InputError` when they cannot be used."""
        layer, data = self.layer_input()
        if api.is_lazy_input(data):
            raise InputError(f"layer {layer.name!r} is lazy (dask/zarr): BSGD refinement takes in-memory data "
                             "only; refine a crop (e.g. layer.data[...].compute() as a new layer)")
        axes = self.axes()
        layout, _ = api.inference_layout(data, model, axes, None)  # axes and channels: fail here, at once
        if trainable:
            api.check_trainable_size(layout)
        return layer, data, axes

    # -- training ----------------------------------------------------------------------------
    @action(TRAINING)
    def train(self) -> None:
        """Train the diffusion branches on the selected layer next to the selected guide."""
        guide = need(self.guide(), "no guide: train a blind-spot model in the Train widget (or load one there)")
        _layer, data, axes = self._data(guide, trainable=True)
        kwargs = {"method": api.BSGD_METHOD, "guide": guide, "axes": axes,
                  "network": self.network_combo.currentText(), **self.budget_row.budget()}
        self.trainer = None
        self.loss_plot.clear()
        self._start(lambda: api.make_trainer(data, **kwargs), {}, f"{self.guide_combo.currentText()} bsgd",
                    continuing=False)

    @action(TRAINING)
    def continue_training(self) -> None:
        """Train the selected BSGD model further by the budget: the last trainer when the model is its
        result (optimiser state kept), otherwise (a loaded model) a new trainer on the selected layer."""
        model = need(self.bsgd_model(), "there is no BSGD model to continue: press Train first (or 'Load…' one)")
        budget = self.budget_row.budget()
        if self.trainer is not None and self.trainer.model is model:
            trainer = self.trainer
            make = lambda: trainer  # noqa: E731
        else:
            _layer, data, axes = self._data(model, trainable=True)
            kwargs = {"method": api.BSGD_METHOD, "model": model, "axes": axes, **budget}
            make = lambda: api.make_trainer(data, **kwargs)  # noqa: E731
            budget = {}
            self.trainer = None
            self.loss_plot.clear()  # a new trainer counts its steps from 0
        self._start(make, budget, self.model_combo.currentText(), continuing=True)

    def _start(self, make, budget: dict, name: str, *, continuing: bool) -> None:
        self._pending_name, self._continuing = name, continuing
        self.train_job.train(make, budget, "Preparing (reading the data)…", built=self._built,
                             finished=self._on_train_finished)

    def stop(self) -> None:
        """Stop training after the current step (the best model so far is kept)."""
        self.train_job.stop()

    def _built(self, trainer) -> None:
        self.trainer = trainer

    def _on_train_finished(self) -> None:
        t = self.trainer
        if t is not None and t.model is not None:
            if self.train_job.stopped:
                self.train_status.setText(f"Stopped at step {t.step}; the best model (step {t.best_step}) is kept.")
            # the continued model is updated in place
            name = SESSION.keep(t.model, self._pending_name or "bsgd", replace=self._continuing)
            self.model_combo.setCurrentText(name)

    # -- refinement --------------------------------------------------------------------------
    def refine_settings(self) -> dict:
        """The sampling keywords of :func:`napari_bsdenoise.api.refine` set in the widget."""
        return {"sampling_steps": self.steps_box.value(), "guidance": round(self.guidance_box.value(), 6),
                "rounds": self.rounds_box.value(), "t_start": round(self.t_start_box.value(), 6),
                "replace": round(self.replace_box.value(), 6), "anchor": round(self.anchor_box.value(), 6),
                "seed": self.seed_box.value()}

    @action("refinement")
    def refine_layer(self) -> None:
        """Refine the selected layer into ``<layer>_refined`` (in the background, cancellable)."""
        model = need(self.bsgd_model(), "no BSGD model: train the diffusion branches above or press 'Load…'")
        guide = self.guide()
        layer, data, axes = self._data(model)
        if guide is not None:
            self._data(guide)  # the guide must fit the layer too
        settings = self.refine_settings()
        meta = {**model_metadata(self.model_combo.currentText(), model), "method": api.BSGD_METHOD,
                "experimental": True, "guide": self.guide_combo.currentText() if guide is not None else None,
                **settings, "axes": axes, "source_layer": layer.name}
        checked = self.check_box.isChecked() and guide is not None
        meta["safety_check"] = "pending" if checked else "off"
        kwargs = output_layer_kwargs(layer, f"{layer.name}_refined", meta)
        gen = api.iter_events(api.refine, data, model, guide=guide, axes=axes, check="auto" if checked else False,
                              **settings)

        def describe(ev, seconds):
            if ev.kind == "check":  # the safeguard's verdict, kept with the result
                kwargs["metadata"]["napari_bsdenoise"]["safety_check"] = ev.message
                return ev.message
            what = "guide" if ev.kind == "chunk" else "DDIM step"
            return (f"Refining {layer.name!r}: {what} {ev.step}/{ev.total or '?'}, {format_seconds(seconds)}, "
                    f"ETA {format_seconds(ev.eta)}")

        self.refine_job.relay(gen, f"Refining {layer.name!r}…" if guide is not None
                              else f"Refining {layer.name!r} from the noisy image (no guide)…", describe, kwargs)

    def cancel(self) -> None:
        """Cancel the refinement after the current DDIM step."""
        self.refine_job.stop()
