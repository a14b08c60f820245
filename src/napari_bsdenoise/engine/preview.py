"""A fast blind-spot preview of one 2-D view: cache the network's features, re-run only the head.

AT-BSN's features do not depend on the inference blind spot: only the final
shift and the 1x1 head do (:meth:`~napari_bsdenoise.nn.atbsn.ATBSN.features`).
:class:`Preview` computes the features of a view (plus a context margin) once,
and :meth:`Preview.render` then applies any blind spot to the view alone, which
is what a blind-spot slider needs.  A distilled student has no blind spot to tune: it
is run once on the crop, and every render (blind spot 0 only) reuses that output.
Other networks without ``features()`` are run whole on each render.

With a margin of at least the network's receptive radius (the default for the
``tiny`` and ``small`` presets) the preview equals what
:func:`napari_bsdenoise.denoise` gives for the same pixels, up to float rounding.
No napari or Qt here: the widgets and the console use it alike.
"""

from __future__ import annotations

import time

import numpy as np

from ..axes import SampleLayout, fold_channels, from_samples, to_samples, unfold_channels
from ..errors import InputError

#: The margin of context around a view is capped at this many pixels (the ``paper`` preset's
#: receptive radius is ~320 px; a capped margin makes the preview approximate near its borders).
MAX_MARGIN = 128


def _check_axes_2d(axes: str, shape) -> str:
    axes = (axes or "").upper()
    if sorted(axes) not in (sorted("YX"), sorted("CYX")) or len(axes) != len(shape):
        raise InputError(f"a preview needs one 2-D view with axes among C, Y, X (e.g. 'YX', 'YXC'); got "
                         f"axes {axes!r} for shape {tuple(shape)}")
    return axes


#: Where AT-BSN's final shift moves branch ``k``'s features, in the image frame: shifting down by
#: ``d`` in rotation ``k``'s frame is a shift by ``d * (dy, dx)`` once rotated back
#: (``ATBSN.head_from_features``; tests/test_preview.py checks the equality).
_SHIFTS = ((1, 0), (0, -1), (-1, 0), (0, 1))


def _window(g, ry: slice, rx: slice, sy: int, sx: int):
    """``g[:, y - sy, x - sx, :]`` for ``y`` in ``ry``, ``x`` in ``rx`` (NHWC), zero outside ``g``."""
    import torch.nn.functional as F

    h, w = g.shape[1:3]
    y0, y1, x0, x1 = ry.start - sy, ry.stop - sy, rx.start - sx, rx.stop - sx
    win = g[:, max(0, y0):min(h, y1), max(0, x0):min(w, x1), :]
    pads = (0, 0, max(0, -x0), max(0, x1 - w), max(0, -y0), max(0, y1 - h))
    return F.pad(win, pads) if any(pads) else win


class Preview:
    """Denoised previews of ``region`` of a 2-D image at any blind spot, from cached features.

    Parameters
    ----------
    model : BlindSpotModel
    image : array_like
        One 2-D view (the current slice): axes ``YX``, or with channels (``YXC``, ``CYX``).
    axes : str, optional
        Axes of ``image``; inferred for ``YX`` and RGB ``YXC``.
    region : (y0, y1, x0, x1), optional
        The visible part of ``image`` (default: all of it).
    margin : int, optional
        Context around ``region`` (default: the receptive radius, at most :data:`MAX_MARGIN`).
    device : str, optional
        Torch device (default ``"cpu"``).
    fusion : {"auto", True, False}
        As in :func:`napari_bsdenoise.denoise` (the preview shows what denoising gives).
    """

    def __init__(self, model, image, *, axes: str | None = None, region=None, margin: int | None = None,
                 device: str | None = "cpu", fusion="auto",
                 hot_pixels="auto"):
        import torch

        from ..device import resolve_device
        from ..inputs import check_image, match_normalization, normalize
        from ..nn.fusion import DEFAULT_WINDOW
        from ..nn.outliers import RADIUS, repair
        from ..errors import InputError
        from .inference import inference_layout, resolve_fusion, resolve_hot_pixels

        if model.config.network.spatial_dims == 3:
            raise InputError("the live preview is 2-D only in this version: a 3-D model denoises whole volumes")
        arr = check_image(image)
        layout, _ = inference_layout(arr, model, axes, 0)
        self.axes = _check_axes_2d(layout.axes, arr.shape)
        self.model = model
        self.network = model.network.eval()
        self.device = resolve_device(device)
        h, w = layout.spatial_shape
        y0, y1, x0, x1 = (0, h, 0, w) if region is None else (int(v) for v in region)
        y0, x0 = max(0, min(y0, h - 1)), max(0, min(x0, w - 1))
        y1, x1 = max(y0 + 1, min(y1, h)), max(x0 + 1, min(x1, w))
        self.region = (y0, y1, x0, x1)
        multiple = getattr(self.network, "multiple", 1)
        if margin is None:
            radius = self.network.receptive_radius(1) if hasattr(self.network, "receptive_radius") else 64
            radius += DEFAULT_WINDOW // 2 + RADIUS  # the fusion's window, the outlier repair's
            margin = min(MAX_MARGIN, -(-radius // multiple) * multiple)
        # the crop starts on the pooling grid of the whole image, so its features are the image's
        cy0, cx0 = max(0, y0 - margin) // multiple * multiple, max(0, x0 - margin) // multiple * multiple
        cy1, cx1 = min(h, y1 + margin), min(w, x1 + margin)
        self.crop = (cy0, cy1, cx0, cx1)
        iy, ix = self.axes.index("Y"), self.axes.index("X")
        sl = [slice(None)] * arr.ndim
        sl[iy], sl[ix] = slice(cy0, cy1), slice(cx0, cx1)
        crop = arr[tuple(sl)]
        cfg = model.config
        self._crop_layout = SampleLayout(self.axes, tuple(crop.shape), cfg.channel_mode)
        vshape = list(crop.shape)
        vshape[iy], vshape[ix] = y1 - y0, x1 - x0
        self._view_layout = SampleLayout(self.axes, tuple(vshape), cfg.channel_mode)
        self._norm = match_normalization(cfg.normalization, self._crop_layout)
        self._fusion = resolve_fusion(model, 1, self._norm, fusion)  # (not applied at blind spot 0)
        data = normalize(to_samples(crop, self._crop_layout), self._norm)
        if cfg.channel_mode == "independent":
            data = fold_channels(data)
        t0 = time.perf_counter()
        self._x = torch.from_numpy(np.ascontiguousarray(data)).to(self.device)
        outliers = resolve_hot_pixels(model, self._norm, hot_pixels)
        if outliers is not None:  # hot pixels repaired once, as denoise does (nn/outliers.py)
            self._x = repair(self._x, outliers)
        self._features = None
        self._output = None  # a student's output on the crop (its only blind spot is 0)
        if getattr(model, "is_student", False):
            from ..nn.fast_unet import inference_form

            with torch.no_grad():  # the form denoise runs, so the preview shows denoise's numbers
                self._output = inference_form(self.network.to(self.device), "fp32")(self._x, 0)
        elif hasattr(self.network, "features") and hasattr(self.network, "head"):
            from ..nn.fast_unet import inference_form

            with torch.no_grad():  # (a 2-D AT-BSN's inference form: the same features, faster)
                feats = inference_form(self.network.to(self.device), "fp32").features(self._x)
                # rotated back to the image frame once, channels last: a blind spot then only
                # selects a shifted window of each (no copy of the whole crop per slider move)
                self._features = []
                while feats:
                    k = 4 - len(feats)
                    f = feats.pop(0)
                    self._features.append(torch.rot90(f, -k, dims=(2, 3)).permute(0, 2, 3, 1).contiguous())
                    del f
        self.features_seconds = time.perf_counter() - t0
        self.render_seconds = 0.0

    @property
    def cached(self) -> bool:
        """True when renders reuse cached work: features (only the head runs per blind spot)
        or, for a student, its output on the crop."""
        return self._features is not None or self._output is not None

    def render(self, blind_spot: int) -> np.ndarray:
        """The denoised ``region`` at ``blind_spot`` (float32, in the input's units and axes)."""
        import torch

        from .. import registry
        from ..config import check_blind_spot
        from ..nn.atbsn import blind_spot_shifts
        from ..nn.fusion import fuse

        s = check_blind_spot(blind_spot)
        registry.get(self.model.method).check_inference_blind_spot(s)
        t0 = time.perf_counter()
        y0, y1, x0, x1 = self.region
        cy0, cy1, cx0, cx1 = self.crop
        fusion = self._fusion if s != 0 else None
        pad = fusion.window // 2 if fusion is not None else 0  # the fusion needs the output around the region
        ey0, ex0 = max(0, y0 - cy0 - pad), max(0, x0 - cx0 - pad)
        ry = slice(ey0, min(cy1 - cy0, y1 - cy0 + pad))
        rx = slice(ex0, min(cx1 - cx0, x1 - cx0 + pad))
        with torch.no_grad():
            if self._output is not None:
                out = self._output[:, :, ry, rx]
            elif self._features is None:
                out = self.network.to(self.device)(self._x, s)[:, :, ry, rx]
            else:
                dv, dh = blind_spot_shifts(s)  # vertical and horizontal branches
                branches = [_window(g, ry, rx, dy * (dh if dx else dv), dx * (dh if dx else dv))
                            for g, (dy, dx) in zip(self._features, _SHIFTS)]
                out = self.network.head(torch.cat(branches, dim=3).permute(0, 3, 1, 2))
            if fusion is not None:
                out = fuse(self._x[:, :, ry, rx], out, fusion)
        out = out[:, :, y0 - cy0 - ey0 : y1 - cy0 - ey0, x0 - cx0 - ex0 : x1 - cx0 - ex0]
        out = out.float().cpu().numpy()
        if self.model.config.channel_mode == "independent":
            out = unfold_channels(out, self._view_layout.n_channels)
        mean = np.asarray(self._norm.mean, np.float32)[None, :, None, None]
        std = np.asarray(self._norm.std, np.float32)[None, :, None, None]
        result = np.ascontiguousarray(from_samples(out * std + mean, self._view_layout), dtype=np.float32)
        self.render_seconds = time.perf_counter() - t0
        return result
