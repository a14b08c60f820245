"""``napari-bsdenoise noise``: diagnose the spatial correlation of the noise and suggest blind spots."""

from __future__ import annotations

import json

import numpy as np

from ..config import format_blind_spot
from .common import AXES_HELP, read_input


def _format_acf(acf: np.ndarray) -> str:
    lag = (acf.shape[0] - 1) // 2
    header = "  dy\\dx " + " ".join(f"{dx:>6d}" for dx in range(-lag, lag + 1))
    rows = [f"  {dy:>5d} " + " ".join(f"{v:>6.2f}" for v in row) for dy, row in zip(range(-lag, lag + 1), acf)]
    return "\n".join([header, *rows])


def run(args) -> int:
    from ..api import estimate_noise_correlation

    img = read_input(args.image, args.axes)
    result = estimate_noise_correlation(img.data, axes=img.axes)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"{img.path.name} {img.data.shape} {img.data.dtype}, axes {img.axes}")
    print(result.summary())
    from ..api import recommended_method

    method = recommended_method(result)
    print(f"method for --method auto: {method} ("
          + ("pixel-independent noise: D-BSN, 1-pixel blind spot with noise model and fusion)" if method == "dbsn"
             else "correlated noise: AT-BSN with a larger training blind spot)"))
    print(f"noise autocorrelation (from {result.n_blocks} flat 16x16 blocks; 1 at the centre, ~0 elsewhere "
          "for pixel-independent noise):")
    print(_format_acf(np.asarray(result.autocorrelation)))
    axes = f" --axes {img.axes}" if args.axes else ""
    print(f"suggested: napari-bsdenoise train {img.path.name}{axes} -o model.safetensors --blind-spot "
          f"{format_blind_spot(result.train_blind_spot)} --inference-blind-spot "
          f"{format_blind_spot(result.inference_blind_spot)}")
    return 0


def add_parser(sub) -> None:
    """Add the ``noise`` subcommand to the subparsers ``sub``."""
    n = sub.add_parser("noise", help="diagnose the spatial correlation of the noise",
                       description="Estimate the noise autocorrelation of IMAGE (no clean reference needed) "
                       "and recommend training/inference blind spots.")
    n.add_argument("image", metavar="IMAGE")
    n.add_argument("--axes", help=AXES_HELP)
    n.add_argument("--json", action="store_true", help="print the result as JSON")
    n.set_defaults(func=run)
