#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k hook -x).
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
# pytest exits 5 when it collected nothing: with `set -e` that fails this script, as it should.
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
