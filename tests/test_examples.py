"""The examples run as documented (tiny budgets): a broken example is a broken first impression."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_console_session_tour(tmp_path):
    out = _run([EXAMPLES / "console_session.py", "--steps", "3"], tmp_path)
    for expected in ("noise:", "inference blind spot", "loaded it back", "identical results: True", "continued for",
                     "student distilled"):
        assert expected in out


def test_demo_writes_tiffs_model_and_figure(tmp_path):
    pytest.importorskip("matplotlib")  # in the testing extra; the demo's figure needs it
    tifffile = pytest.importorskip("tifffile")
    import napari_bsdenoise as bsd

    out = _run([EXAMPLES / "demo.py", "--steps", "5", "--out", tmp_path / "demo"], tmp_path)
    assert "PSNR denoised" in out
    noisy = tifffile.imread(tmp_path / "demo" / "noisy.tif")
    denoised = tifffile.imread(tmp_path / "demo" / "denoised.tif")
    assert noisy.dtype == np.uint16 and denoised.dtype == np.float32 and denoised.shape == noisy.shape
    model = bsd.load_model(tmp_path / "demo" / "model.safetensors")
    assert np.allclose(bsd.denoise(noisy, model), denoised, atol=1e-3 * float(np.ptp(denoised)))
    assert (tmp_path / "demo" / "before_after.png").stat().st_size > 10_000
