"""The public API: validate inputs, pick defaults, call the methods and the engine.

Scripts, the napari console, the CLI and the widgets all go through these functions; nothing heavy
happens here.  Methods are looked up by name in :mod:`napari_bsdenoise.registry` (filled by
:mod:`napari_bsdenoise.methods`); the layers below never import this module (docs/architecture.md).
"""

from __future__ import annotations

import numpy as np

from . import methods  # noqa: F401  (importing the methods fills the registry)
from . import registry
from .defaults import (DEFAULT_AUTO_SECONDS, DEFAULT_AUTO_TEACHER_FRACTION, DEFAULT_BATCH_SIZE,
                       DEFAULT_DISTILL_PATCH_SIZE, DEFAULT_LEARNING_RATE, DEFAULT_METHOD, DEFAULT_PATCH_SIZE,
                       DEFAULT_STEPS, MIN_TRAIN_SIDE)
from .config import format_blind_spot, parse_blind_spot
from .device import describe_device as device_description
from .engine import tiling
from .engine.denoise import denoise_array, drive
from .engine.export import export_bioimageio
from .engine.inference import inference_layout, inference_network, repairs_outliers, resolve_fusion
from .engine.preview import Preview
from .engine.safety import CHECKS, SafetyReport, SafetyWarning, checked_settings, kept_input
from .engine.safety import safety_check as engine_safety_check
from .engine.progress import ProgressEvent, iter_events, run_events
from .errors import InputError
from .inputs import check_image, check_trainable_size, convert_dtype, match_normalization, normalize
from .methods.blindspot import choose_method, make_blindspot_trainer, recommended_method
from .methods.bsgd.checks import (BSGD_PRESETS, DEFAULT_ANCHOR, DEFAULT_GUIDANCE, DEFAULT_REPLACE,
                                   DEFAULT_ROUNDS, DEFAULT_SAMPLING_STEPS, DEFAULT_T_START)
from .methods.bsgd.checks import NAME as BSGD_METHOD
from .methods.bsgd.refine import refine
from .methods.bsgd.training import make_bsgd_trainer, train_bsgd
from .methods.student import make_distiller
from .model import BlindSpotModel
from .pipelines.auto import AUTO_METHODS, AutoDenoiser, AutoResult, auto_denoise

__all__ = [
    "DEFAULT_AUTO_SECONDS", "DEFAULT_AUTO_TEACHER_FRACTION",
    "AUTO_METHODS", "AutoDenoiser", "AutoResult", "auto_denoise",
    "BSGD_METHOD", "BSGD_PRESETS", "DEFAULT_ANCHOR", "DEFAULT_GUIDANCE", "DEFAULT_REPLACE", "DEFAULT_ROUNDS", "DEFAULT_SAMPLING_STEPS",
    "DEFAULT_T_START", "DEFAULT_BATCH_SIZE", "DEFAULT_DISTILL_PATCH_SIZE", "DEFAULT_LEARNING_RATE", "DEFAULT_METHOD",
    "DEFAULT_PATCH_SIZE", "DEFAULT_STEPS", "MIN_TRAIN_SIDE", "TRAIN_METHODS", "Preview", "ProgressEvent",
    "check_image", "check_trainable_size", "device_description", "choose_method", "denoise", "denoise_iter", "distill",
    "estimate_noise_correlation", "export_bioimageio", "find_hot_pixels", "format_blind_spot", "inference_layout", "inference_network", "is_lazy_input", "iter_events",
    "load_model", "make_bsgd_trainer", "make_distiller", "make_trainer", "match_normalization", "method_info",
    "normalize", "open_input", "parse_blind_spot", "safety_check", "SafetyReport", "SafetyWarning", "recommended_method", "refine", "repairs_outliers", "resolve_fusion", "run_events", "train",
    "train_bsgd", "trainable_methods",
]

#: What ``train(method=...)`` and the Train panel offer: the blind-spot methods and ``"auto"`` (BSGD is
#: trained against a guide: :func:`train_bsgd`, ``method="bsgd"`` with ``guide=``, the Refine panel).
TRAIN_METHODS = (*(n for n in registry.names(trainable=True) if not registry.get(n).guided), "auto")


def trainable_methods() -> tuple[str, ...]:
    """Names of the registered methods that :func:`make_trainer` trains (``method=``), BSGD included."""
    return registry.names(trainable=True)


def method_info(name: str) -> registry.Method:
    """The registry record of a method (presets, title, rules): ``method_info("atbsn").presets``."""
    return registry.get(name)


# -- training ---------------------------------------------------------------------------------
def make_trainer(image, *, method: str | None = None, model: BlindSpotModel | None = None,
                 guide: BlindSpotModel | None = None, **kwargs):
    """Prepare training and return a trainer (:class:`~napari_bsdenoise.engine.train.Trainer` or the
    method's subclass).

    Iterate over the trainer to train (each item is a
    :class:`~napari_bsdenoise.engine.progress.ProgressEvent`); stop whenever you
    like; ``trainer.model`` is the best model so far.  Arguments are those of
    :func:`train`.
    """
    continuing = isinstance(model, BlindSpotModel) and not model.is_student
    if method is None:  # continuing: the model's own method
        method = model.method if continuing else DEFAULT_METHOD
    elif method == "auto" and continuing:
        method = model.method
    if method != "auto" and method in registry.names() and registry.get(method).guided:
        return registry.get(method).make_trainer(image, guide=guide, model=model, **kwargs)
    if guide is not None:
        raise InputError("guide= is for method='bsgd' (the blind-spot model that the diffusion refinement refines)")
    if method not in TRAIN_METHODS:
        raise InputError(f"unknown method {method!r}; available: {', '.join(map(repr, TRAIN_METHODS))}")
    if method == "auto":
        return make_blindspot_trainer(image, method="auto", model=model, **kwargs)
    return registry.get(method).make_trainer(image, model=model, **kwargs)


def train(image, *, callback=None, **kwargs) -> BlindSpotModel:
    """Train a blind-spot denoiser on a noisy image or stack, with no clean reference.

    Parameters
    ----------
    image : array_like
        Noisy data, uint8/uint16/float, with axes among T, Z, C, Y, X.
    axes : str, optional
        Axes of ``image`` (e.g. ``"ZYX"``, ``"TCYX"``, ``"YXC"`` for RGB).
        Inferred only for 2-D (``YX``) and RGB (``YXC``) arrays.
    method : {"atbsn", "dbsn", "auto"}, optional
        The network family.  ``"atbsn"`` (default): asymmetric tunable blind spot,
        right for spatially correlated noise.  ``"dbsn"``: D-BSN, a 1-pixel dilated
        blind-spot network with a learned noise model whose prediction is fused with
        the noisy pixel at inference (posterior mean), right for pixel-independent
        (raw camera, Poisson-Gaussian) noise; its models are applied at blind spot 0
        (fused, the default) or 1 (the blind-spot mean alone).  ``"auto"`` picks D-BSN
        when :func:`estimate_noise_correlation` finds pixel-independent noise and
        AT-BSN otherwise, and records why (``model.config.training["method_reason"]``).
        When continuing a ``model``, the default is that model's method.  ``"bsgd"``
        trains the two diffusion branches of blind-spot guided diffusion for
        :func:`napari_bsdenoise.refine` (``guide=`` the blind-spot model it refines;
        docs/bsgd.md; experimental).
    blind_spot : "auto" or int
        Training blind spot (odd side in pixels).  ``"auto"`` uses
        :func:`estimate_noise_correlation`: 1 for pixel-independent noise, larger
        for spatially correlated noise.
    inference_blind_spot : int, optional
        Default blind spot stored in the model for :func:`denoise`.
    steps, seconds : int, float, optional
        Training budget; training stops at whichever comes first
        (``steps=2000`` when both are None).  Only a ``steps`` budget is
        exactly reproducible.
    seed : int
        Seeds weights initialisation and patch sampling.
    device : str or torch.device, optional
        ``None`` picks CUDA, then Apple MPS, then the CPU.
    network : {"auto", "tiny", "small", "paper"} or dict
        Size preset, or ``{"width": w, "depth": d}`` (for D-BSN: branch width and
        dilated blocks per branch, ``config.DBSN_PRESETS``).  ``auto`` is ``tiny`` on
        the CPU (about 3x more steps per second than ``small``, which matters
        under a minutes-long budget) and ``small`` on a GPU.
    loss : {"auto", "l2", "l1", "nll"}
        ``auto`` is L1 for RGB camera images, L2 (mean estimate, right for
        photon counts) otherwise; D-BSN always uses ``"nll"`` (L2 for its mean,
        Gaussian NLL for its uncertainty and noise level).
    patch_size, batch_size, learning_rate : optional
        Optimisation settings (patches are at least ``8 * blind_spot`` pixels; defaults 64 and 8, for
        a 3-D network 32 and 4 with ``patch_depth=16`` slices).
    spatial_dims : {2, 3, "auto"}
        AT-BSN: ``2`` (default) trains a 2-D network on the Y-X slices (Z and T are samples); ``3`` a
        network on Z-Y-X volumes with a ``(z, y, x)`` blind box (``blind_spot="auto"`` also measures the
        noise correlation along Z), recorded in the model: by default the 2.5-D network
        (:class:`~napari_bsdenoise.nn.atbsn25d.ATBSN25D`: each plane blind, two planes on each side
        beyond the Z side seen whole), with ``network="tiny-full3d"`` (``small-``, ``paper-``) the
        full 3-D one (:class:`~napari_bsdenoise.nn.atbsn3d.ATBSN3D`).  ``"auto"``: 3 for AT-BSN on data with at least 16 Z slices, else 2.  A 3-D model has no
        noisy-input fusion or safety check yet; it repairs hot pixels plane by plane and tiles lazy
        and zarr input in 3-D chunks.
    precision : {"auto", "fp32", "bf16"}
        Autocast precision.
    channels : {"joint", "independent"}, optional
        ``joint`` trains one multi-channel network (RGB); ``independent``
        treats channels as separate images (fluorophores).  Default: joint for
        RGB, independent otherwise.
    model : BlindSpotModel, optional
        Continue training this model instead of starting afresh.
    guide : BlindSpotModel, optional
        ``method="bsgd"`` only: the model whose result the refinement starts from
        (its normalisation and channel mode are reused).
    hot_pixels : {"auto", "keep", "remove"}
        AT-BSN and D-BSN: isolated outliers of the training data (hot and dead pixels; see
        :func:`denoise`) are repaired before training (``"auto"``, ``"remove"``) or kept (``"keep"``);
        the count is recorded (``config.training["hot_pixels"]``) and shown by ``model.summary()``.
    callback : callable, optional
        Called with each :class:`ProgressEvent`; return ``False`` to stop early.

    Returns
    -------
    BlindSpotModel
        The model with the lowest held-out validation loss.

    Examples
    --------
    >>> import numpy as np, napari_bsdenoise as bsd
    >>> rng = np.random.default_rng(0)
    >>> noisy = (rng.normal(100, 10, (64, 64))).astype("float32")
    >>> model = bsd.train(noisy, steps=5, network="tiny", blind_spot=1)
    >>> bsd.denoise(noisy, model).shape
    (64, 64)
    """
    trainer = make_trainer(image, **kwargs)
    for event in trainer:
        if callback is not None and callback(event) is False:
            break
    return trainer.model


# -- distillation -----------------------------------------------------------------------------
def distill(image, teacher: BlindSpotModel, *, callback=None, **kwargs) -> BlindSpotModel:
    """Distil a trained blind-spot ``teacher`` into a fast non-blind student (AT-BSN (D)).

    The frozen teacher, run at several blind-spot sizes, gives several targets per
    patch of ``image`` (the same noisy data, no clean reference); the student learns
    to be close to all of them.  It sees the pixel it predicts, so it keeps detail the
    blind spots lose, and one pass of a plain UNet costs several times less than the
    teacher's four rotated passes: the student is what to run over big stacks.

    Parameters
    ----------
    image : array_like
        Noisy data (as for :func:`train`; usually the teacher's own training data).
    teacher : BlindSpotModel
        An AT-BSN or D-BSN model from :func:`train` or :func:`load_model`.  A D-BSN
        teacher's target is its fused (posterior-mean) output.
    axes : str, optional
        As in :func:`train`.
    student : {"auto", "tiny", "small", "paper"}, dict or BlindSpotModel
        Student size (``"auto"``: the teacher's width and depth, so its UNet weights
        give a warm start; ``"paper"`` is the paper's 1 M-parameter student C), or a
        student model to continue distilling.
    teacher_blind_spots : "auto" or list of int
        Blind spots at which the teacher is run.  ``"auto"``: ``0, 1, 3, ...`` up to two
        beyond the teacher's training blind spot for correlated noise (the paper's
        SIDD set is 0-11), the 1-pixel teacher alone for pixel-independent noise.
    mode : {"multi", "mean"}
        ``multi``: mean of the L1/L2 distances to every teacher output (the paper);
        ``mean``: distance to the average teacher output.
    warm_start : bool
        Start from the teacher's UNet weights where shapes match.
    precompute : bool or "auto"
        ``True``: run the teacher once over the whole images (averaged over the 8 dihedral transforms)
        before training and crop its outputs with each patch; each step then costs only the student's
        pass (measured 3.6x faster per step, about equal PSNR at equal time, 0.15-0.2 dB lower at equal
        steps: docs/distillation.md).  ``False`` (default, what the published tables measure): run the
        teacher on every batch.  ``"auto"``: precompute when the inputs plus the teachers' outputs fit
        1 GB and 32 megapixels.  ``config.training["teacher_targets"]`` records which was used.
    fusion : {"auto", True, False}
        Fuse the teacher's blind-spot targets (blind spots >= 1) with the noisy input, as
        :func:`denoise` fuses the teacher's output (``"auto"``: AT-BSN teachers trained on
        spatially correlated noise); the student then learns to keep the detail the blind
        spots miss (measured +1.1 dB on a Nam DSLR crop: docs/fusion.md).  Recorded as
        ``config.training["distillation"]["fused_targets"]``.
    hot_pixels : {"auto", "keep", "remove"}
        As in :func:`denoise`: the teacher's targets are computed from the input with its hot and dead
        pixels repaired, so the student learns not to reproduce them (recorded as
        ``config.training["distillation"]["hot_pixels"]``).
    steps, seconds, seed, device, patch_size, batch_size, learning_rate, precision
        As in :func:`train` (patches default to 96 pixels).
    callback : callable, optional
        Called with each :class:`ProgressEvent`; return ``False`` to stop early.

    Returns
    -------
    BlindSpotModel
        The student with the lowest held-out distillation loss; :func:`denoise`,
        ``save`` and :func:`load_model` treat it like any model (it has no blind spot).

    Examples
    --------
    >>> import numpy as np, napari_bsdenoise as bsd
    >>> noisy = np.random.default_rng(0).normal(100, 10, (64, 64)).astype("float32")
    >>> teacher = bsd.train(noisy, steps=5, blind_spot=1)
    >>> student = bsd.distill(noisy, teacher, steps=5)
    >>> student.is_student, bsd.denoise(noisy, student).shape
    (True, (64, 64))
    """
    distiller = make_distiller(image, teacher, **kwargs)
    for event in distiller:
        if callback is not None and callback(event) is False:
            break
    return distiller.model


# -- inference --------------------------------------------------------------------------------
def _check_model(model) -> BlindSpotModel:
    if not isinstance(model, BlindSpotModel):
        raise InputError(f"model must be a BlindSpotModel (from train or load_model), got {type(model).__name__}")
    return model


def denoise(
    image,
    model: BlindSpotModel,
    *,
    axes: str | None = None,
    blind_spot: int | None = None,
    device=None,
    precision: str = "auto",
    tile_size: int | tuple | None = None,
    renormalize: bool = False,
    callback=None,
    out=None,
    dtype: str = "float32",
    chunk_size: int | None = None,
    memory=None,
    scheduler=None,
    client=None,
    overwrite: bool = False,
    fusion="auto",
    hot_pixels="auto",
    check="auto",
):
    """Denoise ``image`` with a trained ``model``.

    Parameters
    ----------
    image : array_like, dask/zarr array, or path
        Noisy data with axes among T, Z, C, Y, X (any number of slices).  A dask or
        zarr array, or a path to a ``.zarr`` store or a TIFF file (read lazily with
        ``tifffile``'s zarr interface) is never loaded whole: without ``out=`` the
        result is a lazy dask array (nothing is computed until you ask).
    model : BlindSpotModel
        From :func:`train` or :func:`load_model`.
    axes : str, optional
        As in :func:`train`; inferred for 2-D and RGB arrays.
    blind_spot : int, optional
        Inference blind spot (0 = non-blind, 1, 3, 5, ...); default: the
        model's recommended ``inference_blind_spot``.
    device, precision : optional
        As in :func:`train`.
    tile_size : int or (z, y, x), optional
        Tile side for inference (default 768; smaller uses less memory).  For a 3-D model, an int is
        the full 3-D network's cube side (default 64) or the 2.5-D network's in-plane side (default
        one plane of 512 at a time).
    renormalize : bool
        Normalise with this image's own statistics instead of the model's
        (only when the new data's intensities differ from the training data).
    callback : callable, optional
        Called with a :class:`ProgressEvent` after each tile (or output chunk); return
        ``False`` to cancel (a ``.zarr`` output can then be resumed by the same call).
    out : str or Path, optional
        Write the result chunk by chunk to a ``.zarr`` store (resumable; marked complete
        only at the end) or a ``.tif``/``.ome.tif`` file (written as ``.partial`` and renamed
        when done) and return its path.  Axes and pixel sizes of the input are recorded.
    dtype : {"float32", "input"} or numpy dtype
        Output type; ``"input"`` rounds and clips to the input's integer type.
    chunk_size, memory : optional
        Y/X chunk side of the dask graph / output store (default: the tile) and the
        activation-memory budget per running chunk (bytes or "2GB"; default from the
        available RAM) from which the tile is derived when ``tile_size`` is None.
    scheduler, client : optional
        dask scheduler for lazy and ``out=`` runs: ``"threads"`` (default), ``"sync"``, a
        ``dask.distributed.Client`` (``client=``) or a scheduler address
        (``scheduler="tcp://host:8786"``).  On a cluster the model is installed once per
        worker (docs/large_data.md).
    overwrite : bool
        Replace an existing ``out`` instead of resuming it.
    fusion : {"auto", True, False}
        Put the noisy input back where the blind-spot output misses detail: a local
        Wiener gain on the residual (input minus output) against the noise level the
        model measured in its training data (:mod:`napari_bsdenoise.nn.fusion`).
        ``"auto"`` (default) fuses AT-BSN outputs at blind spots >= 1 when the model's
        training data had spatially correlated noise; it matters most for weak noise,
        where a blind spot alone loses more detail than it removes noise.  ``True`` also
        fuses for pixel-independent noise; ``False`` gives the network's output alone.
    hot_pixels : {"auto", "keep", "remove"}
        Isolated outliers (hot and dead pixels, cosmic rays, salt-and-pepper; up to 2x2 pixels) that
        stand more than 6 noise sigma from their surroundings, by the noise curve the model measured,
        are replaced by their local median in a copy of the input before the network runs, so that
        neither the fusion nor a non-blind output puts them back (:mod:`napari_bsdenoise.nn.outliers`;
        :func:`find_hot_pixels` counts them).  ``"auto"`` (default) does so for every model with a noise
        estimate, ``"remove"`` insists, ``"keep"`` leaves the input as it is.
    check : {"auto", True, False}
        The self-supervised safety check (:func:`safety_check`): estimate on the image itself, without a
        clean reference, whether the result improves on the input, and where the default settings do
        not (by at least 0.5 dB), use the model's best other setting, or keep the input when none is
        estimated to improve on it; a :class:`SafetyWarning` says so.  ``"auto"`` (default) checks the
        default path (``blind_spot`` and ``fusion`` left as they are) of in-memory results (not ``out=``
        or lazy input: check a representative image with :func:`safety_check`); ``True`` checks any
        settings; ``False`` never.  It costs two or three passes over two 256x256 crops.

    Returns
    -------
    numpy.ndarray, dask.array.Array or Path
        float32 array of the input's shape, in the input's units (not clipped), for numpy
        input; a lazy dask array for dask/zarr/path input; the output path with ``out=``.
    """
    _check_model(model)
    if out is None and not tiling.is_lazy_input(image):  # the safety check of in-memory results
        image = check_image(image)
        blind_spot, fusion, report = checked_settings(image, model, check=check, axes=axes, blind_spot=blind_spot,
                                                      fusion=fusion, hot_pixels=hot_pixels, device=device,
                                                      callback=callback)
        if report is not None and report.keeps_input:
            kept = kept_input(image, model, axes=axes, hot_pixels=hot_pixels)
            return kept if dtype == "float32" else convert_dtype(kept, image.dtype if dtype == "input" else dtype)
    elif check not in CHECKS:
        raise InputError(f"check must be one of {CHECKS}, got {check!r}")
    big = dict(axes=axes, blind_spot=blind_spot, device=device, precision=precision, tile_size=tile_size,
               renormalize=renormalize, dtype=dtype, chunk_size=chunk_size, memory=memory, fusion=fusion,
               hot_pixels=hot_pixels)
    if isinstance(scheduler, str) and "://" in scheduler and client is None and out is None:
        from distributed import Client

        client = Client(scheduler)
    if out is not None:
        if not tiling.is_lazy_input(image):
            image = check_image(image)
        gen = tiling.denoise_iter(image, model, out=out, overwrite=overwrite, scheduler=scheduler,
                                  client=client, **big)
        return drive(gen, callback)
    if tiling.is_lazy_input(image):
        return tiling.denoise_lazy(image, model, client=client, **big)
    arr = image  # in memory: checked above, with the safety check
    if client is not None:
        return np.asarray(tiling.denoise_lazy(arr, model, client=client, **big).compute())
    return denoise_array(arr, model, axes=axes, blind_spot=blind_spot, device=device, precision=precision,
                         tile_size=tile_size, renormalize=renormalize, callback=callback, dtype=dtype,
                         fusion=fusion, hot_pixels=hot_pixels)


def safety_check(image, model: BlindSpotModel, **kwargs) -> SafetyReport:
    """Estimate, without a clean reference, how much ``model``'s result on ``image`` improves on it, and
    the best setting when the default does not (:func:`napari_bsdenoise.engine.safety.safety_check`;
    keywords ``axes``, ``blind_spot``, ``fusion``, ``hot_pixels``, ``device``, ``full``).

    >>> import numpy as np, napari_bsdenoise as bsd
    >>> noisy = np.random.default_rng(0).normal(100, 10, (64, 64)).astype("float32")
    >>> model = bsd.train(noisy, steps=5, network="tiny", blind_spot=1)
    >>> len(bsd.safety_check(noisy, model).candidates) >= 1
    True
    """
    return engine_safety_check(check_image(image), _check_model(model), **kwargs)


def denoise_iter(image, model: BlindSpotModel, *, out, **kwargs):
    """Generator of :class:`ProgressEvent` (one per output chunk) that denoises ``image`` into
    ``out`` (``.zarr``, ``.tif``, ``.ome.tif``); returns the output path.  Closing it cancels.

    Keywords as :func:`denoise`.  For the napari widget: drive it from a ``GeneratorWorker``.
    """
    _check_model(model)
    if not tiling.is_lazy_input(image):
        image = check_image(image)
    return (yield from tiling.denoise_iter(image, model, out=out, **kwargs))


def find_hot_pixels(image, model: BlindSpotModel, *, axes: str | None = None) -> np.ndarray:
    """Where ``image`` has isolated outliers (hot or dead pixels, cosmic rays) by ``model``'s noise curve.

    These are the pixels :func:`denoise` repairs with ``hot_pixels="auto"``: more than 6 noise sigma
    from the median of their surroundings, in clusters of at most 2x2 pixels (thin lines, spots and
    edges are not outliers; :mod:`napari_bsdenoise.nn.outliers`).

    Returns
    -------
    numpy.ndarray of bool
        The shape of ``image`` (numpy input); ``mask.sum()`` is the count.

    Examples
    --------
    >>> import numpy as np, napari_bsdenoise as bsd
    >>> noisy = np.random.default_rng(0).normal(100, 10, (64, 64)).astype("float32")
    >>> model = bsd.train(noisy, steps=2, blind_spot=1)
    >>> noisy[20, 30] += 500                                  # a hot pixel
    >>> [tuple(map(int, p)) for p in np.argwhere(bsd.find_hot_pixels(noisy, model))]
    [(20, 30)]
    """
    from .engine.denoise import hot_pixel_mask

    return hot_pixel_mask(check_image(image), _check_model(model), axes=axes)


def is_lazy_input(image) -> bool:
    """True for inputs that :func:`denoise` reads lazily (dask or zarr arrays, TIFF/zarr paths)."""
    return tiling.is_lazy_input(image)


def open_input(image):
    """A lazily readable view of ``image`` (a dask array plus the axes and pixel sizes its file states)."""
    return tiling.open_input(image)


def load_model(path) -> BlindSpotModel:
    """Load a model file (safetensors + JSON config; never executes code from the file)."""
    return BlindSpotModel.load(path)


def estimate_noise_correlation(image, *, axes: str | None = None, max_lag: int = 4):
    """Estimate the spatial autocorrelation of the noise and recommend blind spots.

    See :func:`napari_bsdenoise.noise.estimate_noise_correlation`.
    """
    from .noise import estimate_noise_correlation as estimate

    return estimate(check_image(image), axes=axes, max_lag=max_lag)
