#!/usr/bin/env bash
# The main job on a fresh machine, offline: capture real Claude Code sessions (the real client from
# npm, driven against a local mock of the Messages API) into a fresh database, show them, build a
# dataset from them and train a tiny QLoRA adapter on it (a locally built model: no hub downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "dev,train"
exec .venv/bin/python scripts/demo.py "$@"
