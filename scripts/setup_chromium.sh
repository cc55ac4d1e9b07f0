#!/usr/bin/env bash
# Headless Chromium for the HTML report test (tests/test_stats_html.py renders the report in it).
# Idempotent: does nothing when a Chromium is already on PATH. Debian/Ubuntu only (apt-get); where
# it cannot install, the test skips and says so.
set -euo pipefail
for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$name" >/dev/null 2>&1; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_chromium: no apt-get here; install Chromium yourself to run the HTML report test" >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd="sudo -n"
  else
    echo "setup_chromium: not root and no sudo: cannot install chromium" >&2
    exit 1
  fi
fi
echo "setup_chromium: installing Debian's chromium with apt-get${sudo_cmd:+ (via sudo)} for the HTML report tests" \
  "(CRA_NO_SYSTEM_PACKAGES=1 skips this)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
