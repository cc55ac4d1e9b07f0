#!/usr/bin/env bash
# The main job on a fresh machine, offline: capture real Claude Code sessions (the real client from
# npm, driven against a local mock of the Messages API) into a fresh database, then show them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "dev"
exec .venv/bin/python scripts/demo.py "$@"
