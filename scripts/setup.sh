#!/usr/bin/env bash
# Install napari-bsdenoise from this checkout, and what it needs, into the current Python environment.
#
#   bash scripts/setup.sh            # the package
#   bash scripts/setup.sh testing    # + pytest, pytest-qt, PyQt5 and (as root on Debian/Ubuntu) Qt's system libraries
#   bash scripts/setup.sh demo       # + matplotlib for examples/demo.py
#
# Idempotent and quick when everything is already installed.  PyTorch is installed first and
# pinned (CPU build 2.13.0) so that pip never pulls a multi-GB CUDA build by accident; a torch >= 2.1
# that is already installed (e.g. your own CUDA build) is kept.  Environment: PYTHON (interpreter,
# default python3), TORCH_VERSION (default 2.13.0).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
what="${1:-}"
case "$what" in "" | testing | demo) ;; *) echo "usage: bash scripts/setup.sh [testing|demo]" >&2; exit 2 ;; esac
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. Qt's system libraries for napari/pytest-qt (Debian/Ubuntu; tests run with QT_QPA_PLATFORM=offscreen).
QT_DEBS=(xvfb libgl1 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
         libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3
         libfontconfig1)
if [[ "$what" == testing ]] && command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for deb in "${QT_DEBS[@]}"; do
        dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
    done
    if ((${#missing[@]})); then
        if [[ "$(id -u)" == 0 ]]; then
            echo "setup: installing Qt system libraries: ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            echo "setup: note: Qt may need: sudo apt-get install ${missing[*]}" >&2
        fi
    fi
fi

# 2. PyTorch first (see above).
if ! "$PYTHON" - <<'PY' 2>/dev/null
import sys, torch
major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
sys.exit((major, minor) < (2, 1))
PY
then
    echo "setup: installing torch==${TORCH_VERSION:-2.13.0}"
    "$PYTHON" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi

# 3. The package itself (editable) and the extras; skipped when this exact setup is already in place.
case "$what" in
    testing) spec=(-e ".[testing]"); check="import napari_bsdenoise, pytest, pytestqt, PyQt5.QtCore, napari, matplotlib" ;;
    demo) spec=(-e . "matplotlib>=3.6"); check="import napari_bsdenoise, matplotlib" ;;
    *) spec=(-e .); check="import napari_bsdenoise" ;;
esac
stamp="build/.setup-${what:-base}"
want="$("$PYTHON" -c 'import sys; print(sys.executable)') $(cksum < pyproject.toml)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$PYTHON" -c "$check" 2>/dev/null \
    && [[ "$("$PYTHON" -c 'import napari_bsdenoise, os; print(os.path.realpath(napari_bsdenoise.__file__))')" \
        == "$(pwd -P)/src/napari_bsdenoise/__init__.py" ]]; then
    echo "setup: napari-bsdenoise${what:+ ($what)} is already installed"
else
    echo "setup: pip install ${spec[*]}"
    "$PYTHON" -m pip install -q "${spec[@]}"
    mkdir -p build
    echo "$want" > "$stamp"
fi
