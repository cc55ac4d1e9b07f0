#!/usr/bin/env bash
# Creates .venv and installs cra with the given extras (idempotent; shared by main.sh and test.sh).
# torch==2.13.0 goes in first when training extras are asked for: any other torch request pulls
# gigabytes of CUDA packages on CPU machines.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
if [[ "$extras" == *train* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  pip install "torch==2.13.0"
fi
pip install -e ".${extras:+[$extras]}"
