#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, checks the code, then runs the suite.
#   1. ruff (lint and format) and mypy on the library: seconds, so a slip shows first;
#   2. the fast lane: every test not marked `slow` or `e2e`;
#   3. the heavy lane: the `slow` and `e2e` tests (tiny-model training, export, the real client).
# Extra arguments go to one pytest run instead of the lanes (e.g. scripts/test.sh -k hook -x).
set -euo pipefail
cd "$(dirname "$0")/.."
# llama-cpp-python runs the exported GGUF files in the export tests. It builds llama.cpp from source
# the first time (about 7 minutes on 2 cores; portable flags, no multimodal library); pip caches the
# wheel in ~/.cache/pip, so later runs install it in seconds.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" bash scripts/setup.sh "dev,train,llama,serve"
# The HTML report and A/B pack tests render pages in headless Chromium. When none is on PATH,
# scripts/setup_chromium.sh installs Debian's chromium package with apt-get (as root, or through
# `sudo -n`): a change to the system, so it says so; CRA_NO_SYSTEM_PACKAGES=1 skips it (those tests
# then skip and say why).
if [ "${CRA_NO_SYSTEM_PACKAGES:-}" != 1 ]; then
  bash scripts/setup_chromium.sh || echo "chromium unavailable: the HTML report tests will skip"
fi

echo "== ruff check, ruff format --check, mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # files and settings: [tool.mypy] in pyproject.toml

# pytest exits 5 when it collected nothing: with `set -e` that fails this script, as it should.
pytest=(.venv/bin/python -m pytest -p no:cacheprovider)
if [ $# -gt 0 ]; then
  exec "${pytest[@]}" "$@"
fi
echo "== fast lane (not slow, not e2e)"
"${pytest[@]}" -m "not slow and not e2e"
echo "== heavy lane (slow, e2e)"
"${pytest[@]}" -m "slow or e2e"
