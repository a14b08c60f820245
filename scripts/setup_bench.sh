#!/usr/bin/env bash
# Install what the benchmarks compare against (benchmarks/README.md): BM3D, PyWavelets (J-invariant
# wavelet) and careamics' N2V/N2V2, without letting anything replace the pinned CPU torch.
#
#   bash scripts/setup_bench.sh
#
# careamics 0.3.5 declares torchvision<=0.26, which would pull an older (multi-GB CUDA) torch; it only
# uses torchvision for its LVAE models and BioImage export, so it is installed without its declared
# dependencies and given the rest of them. torchvision is NOT installed (no wheel works with the CPU
# torch: the PyPI one is built for CUDA torch and fails with "operator torchvision::nms does not
# exist"); the benchmarks import careamics through benchmarks/_torchvision_shim.py instead, a minimal
# stand-in that N2V/N2V2 never call.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
bash scripts/setup.sh
constraints="$(mktemp)"
"$PYTHON" - > "$constraints" <<'PY'
import importlib.metadata as md
for name in ("torch", "numpy", "scipy", "scikit-image", "tifffile", "zarr", "pydantic", "dask"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass
PY
"$PYTHON" -m pip install -q -c "$constraints" "bm3d>=4.0" "PyWavelets>=1.4" "matplotlib>=3.6"
"$PYTHON" -m pip install -q --no-deps "careamics==0.3.5"
"$PYTHON" -m pip install -q -c "$constraints" "lightning>=2.2,<=2.6.6" \
    "torchmetrics>0.7,<1.9" "bioimageio.core>=0.9,<=0.11.0" "microssim<=0.0.5" "pyyaml" "psutil"
rm -f "$constraints"
"$PYTHON" -c "import sys; sys.path.insert(0, 'benchmarks'); import _torchvision_shim; _torchvision_shim.install()
import bm3d, pywt, careamics, torch; print('setup_bench: careamics', careamics.__version__, 'torch', torch.__version__)"
