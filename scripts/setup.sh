#!/usr/bin/env bash
# Creates .venv and installs cra with the given extras (idempotent; shared by main.sh and test.sh), at the
# tested versions in constraints.txt. CRA_CONSTRAINTS=none takes the newest releases the extras allow
# instead; CRA_CONSTRAINTS=FILE uses another file.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
constraints="${CRA_CONSTRAINTS:-constraints.txt}"
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
if [[ "$extras" == *train* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # torch first, pinned: any other request makes pip take the newest CUDA build and ~28 nvidia packages.
  # On Linux x86_64 PyPI's torch 2.13.0 is itself a CUDA build: for the CPU build point
  # CRA_TORCH_INDEX at https://download.pytorch.org/whl/cpu (README, "Install").
  pip install "torch==2.13.0" ${CRA_TORCH_INDEX:+--index-url "$CRA_TORCH_INDEX"}
fi
if [ "$constraints" = none ]; then
  pip install -e ".${extras:+[$extras]}"
else
  pip install -c "$constraints" -e ".${extras:+[$extras]}"
fi
