"""Sample data for napari (File > Open Sample > Blind-Spot Denoise): noisy images with known clean references.

Everything is made from scikit-image's bundled images (nothing is downloaded)
with a seeded, physically motivated noise model, so the results are identical
on every machine.  Each function returns napari layer data tuples: the clean
reference first (hidden) and the noisy image last (so it is the selected layer).
"""

from __future__ import annotations

import numpy as np

CAMERA_OFFSET = 100  # ADU added by the camera so that read noise never clips at 0


def poisson_gaussian(clean: np.ndarray, *, photons: float, read_noise: float, gain: float = 1.0,
                     offset: float = CAMERA_OFFSET, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a scientific camera: ``clean`` in [0, 1] -> ``(noisy uint16, clean float32)`` in ADU.

    ``photons`` is the expected photon count at ``clean == 1``; the noisy image is
    ``gain * Poisson(photons * clean) + Normal(0, read_noise) + offset`` rounded and
    clipped to uint16; the returned clean image is its expectation.
    """
    rng = np.random.default_rng(seed)
    expected = photons * np.clip(clean.astype(np.float64), 0.0, None)
    adu = gain * rng.poisson(expected) + rng.normal(0.0, read_noise, clean.shape) + offset
    noisy = np.clip(np.rint(adu), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    return noisy, (gain * expected + offset).astype(np.float32)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def camera_pipeline(rgb: np.ndarray, *, photons: float = 40.0, read_noise: float = 2.0,
                    seed: int = 0) -> np.ndarray:
    """A simple phone-camera pipeline with spatially correlated noise: ``uint8 RGB -> uint8 RGB``.

    Linear light on an RGGB Bayer mosaic gets Poisson-Gaussian noise, is
    demosaicked bilinearly and lightly smoothed (in-camera noise reduction), then
    gamma-encoded to sRGB.  Interpolation and smoothing spread each pixel's noise
    over its neighbours, which is why such images need a blind spot larger than 1.
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    lin = _srgb_to_linear(rgb.astype(np.float64) / 255.0)
    h, w, _ = lin.shape
    mask = np.zeros((h, w, 3), bool)
    mask[0::2, 0::2, 0] = True  # R
    mask[0::2, 1::2, 1] = mask[1::2, 0::2, 1] = True  # G
    mask[1::2, 1::2, 2] = True  # B
    mosaic = (lin * mask).sum(axis=2)
    noisy = (rng.poisson(photons * mosaic) + rng.normal(0.0, read_noise, mosaic.shape)) / photons
    out = np.empty_like(lin)
    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    k_g = np.array([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]])
    for c, k in ((0, k_rb), (1, k_g), (2, k_rb)):
        out[..., c] = ndi.convolve(noisy * mask[..., c], k, mode="mirror")
    out = ndi.uniform_filter(out, size=(2, 2, 1), mode="mirror")  # mild in-camera noise reduction
    return np.rint(255.0 * _linear_to_srgb(out)).astype(np.uint8)


def nuclei_image() -> np.ndarray:
    """A fluorescence-like 512x512 image in [0, 1] of a tissue's nuclear stain.

    The haematoxylin (nuclear) stain of scikit-image's bundled
    immunohistochemistry image, unmixed with ``skimage.color.rgb2hed``, lightly
    smoothed to remove the original's own noise, with the weaker half of the
    pixels set to a dark background (as in fluorescence) and the brightest 0.2 %
    saturated.
    """
    from scipy import ndimage as ndi
    from skimage import color, data

    stain = ndi.gaussian_filter(color.rgb2hed(data.immunohistochemistry())[..., 0], 0.8)
    lo, hi = np.percentile(stain, [50, 99.8])
    return np.clip((stain - lo) / (hi - lo), 0.0, 1.0)


def sample_microscopy():
    """2-D fluorescence-like tissue image (512x512) with low-light Poisson-Gaussian camera noise, uint16."""
    noisy, clean = poisson_gaussian(nuclei_image(), photons=30.0, read_noise=2.0, seed=1)
    meta = {"scale": (0.5, 0.5), "units": ("micrometer", "micrometer"), "axis_labels": ("y", "x")}
    return [
        (clean, {"name": "nuclei (clean reference)", "visible": False, "colormap": "gray", **meta}),
        (noisy, {"name": "nuclei (noisy)", "colormap": "gray", **meta}),
    ]


def sample_camera():
    """RGB photo (512x512) through a simulated phone-camera pipeline: spatially correlated noise, uint8."""
    from skimage import data

    clean = data.astronaut()
    noisy = camera_pipeline(clean, photons=40.0, read_noise=2.0, seed=2)
    return [
        (clean, {"name": "astronaut (clean reference)", "visible": False, "rgb": True}),
        (noisy, {"name": "astronaut (camera noise)", "rgb": True}),
    ]


def sample_stack():
    """Small focus series (ZYX 32x128x128) of the nuclei image with Poisson-Gaussian noise, uint16.

    Each plane is the in-focus image blurred more the further it is from the
    middle plane, as a widefield microscope sees a thin section through focus.
    """
    from scipy import ndimage as ndi

    crop = nuclei_image()[192:320, 192:320]
    vol = np.stack([ndi.gaussian_filter(crop, 0.3 + 0.25 * abs(z - 15.5)) for z in range(32)])
    noisy, clean = poisson_gaussian(vol, photons=30.0, read_noise=2.0, seed=3)
    meta = {"colormap": "magma", "scale": (2.0, 1.0, 1.0), "units": ("micrometer",) * 3,
            "axis_labels": ("z", "y", "x")}
    return [
        (clean, {"name": "focus stack (clean reference)", "visible": False, **meta}),
        (noisy, {"name": "focus stack (noisy)", **meta}),
    ]
