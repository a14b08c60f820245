#!/usr/bin/env bash
# Set everything up (scripts/setup.sh testing) and run the whole test suite headless.
# Extra arguments go to pytest, e.g. `bash scripts/setup_and_test.sh -k cli`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh testing
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
# The import contracts of pyproject.toml ([tool.importlinter]; docs/architecture.md), a few seconds.
echo "lint-imports: checking the package's import contracts"
"$PYTHON" -c "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" exec "$PYTHON" -m pytest -q "$@"
