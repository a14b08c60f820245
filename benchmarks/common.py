"""Shared pieces of the benchmarks, re-exported from the modules that hold them so the scripts keep
``import common as C`` and ``C.<name>``:

* :mod:`data`: locating and loading the real noisy/clean pairs (``$BSDENOISE_DATA`` or
  ``<repo>/../shared/data/real``) and the synthetic set;
* :mod:`metrics`: PSNR, SSIM, SI-PSNR, SI-SSIM and noise statistics (the metric conventions);
* :mod:`baselines`: the J-invariant calibrated wavelet denoiser and BM3D;
* :mod:`results`: the resumable results CSV;
* :mod:`report`: the generated markdown tables of ``docs/benchmarks.md``.

Each module's docstring states its conventions.
"""

from __future__ import annotations

from data import (  # noqa: F401
    REPO, DATA_ENV, GROUP_SOURCES, REAL_GROUPS, ALL_GROUPS, PIXEL_INDEPENDENT_GROUPS, SCALE_FREE_GROUPS,
    data_root, Pair, real_pairs, SYNTHETIC_SPECS, make_synthetic, synthetic_pairs, load_group,
)
from metrics import (  # noqa: F401
    psnr, ssim, affine_fit, si_psnr, si_ssim, score, noise_stats,
)
from baselines import (  # noqa: F401
    estimate_sigma01, JINV_SIGMA_FACTORS, calibrate_wavelet, run_jinv, run_wavelet_cal, run_bm3d,
)
from results import (  # noqa: F401
    RESULTS_DIR, FIELDS, read_results, done_keys, format_info, append_result,
)
from report import (  # noqa: F401
    GROUP_ORDER, METHOD_ORDER, GROUP_TITLES, METHOD_NOTES, summarize, MARK_BEGIN, MARK_END,
    render_markdown, DOC_HEADER, write_markdown,
)
