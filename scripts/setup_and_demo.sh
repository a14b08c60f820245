#!/usr/bin/env bash
# Set everything up (scripts/setup.sh demo) and run the demo: simulate a noisy microscopy image,
# train on it, denoise it, and write demo_output/ with a before/after figure.
# Extra arguments go to examples/demo.py, e.g. `bash scripts/setup_and_demo.sh --seconds 300`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh demo
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
exec "$PYTHON" examples/demo.py "$@"
