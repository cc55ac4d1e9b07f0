#!/usr/bin/env bash
# The main job on a fresh machine, offline: capture real Claude Code sessions (the real client from
# npm, driven against a local mock of the Messages API) into a fresh database, show them, build a
# dataset with held-out sessions, train a tiny LoRA adapter on it (SFT, then a short GRPO stage; a
# locally built model: no hub downloads), export it as GGUF and run it in llama.cpp, and evaluate it
# against its base on the held-out sessions. Extra arguments go to scripts/demo.py (--help);
# `scripts/main.sh --family qwen2.5` trains a small model with Qwen2.5's real tokenizer and template.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "dev,train"
# llama-cpp-python runs the exported GGUF. It builds llama.cpp from source the first time (about 7
# minutes on 2 cores; portable flags, no multimodal library); pip caches the wheel in ~/.cache/pip,
# so later runs install it in seconds. Without it the demo skips the llama.cpp stage and says so.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" bash scripts/setup.sh "dev,train,llama" \
  || echo "llama-cpp-python could not be installed: the demo will skip the llama.cpp stage"
exec .venv/bin/python scripts/demo.py "$@"
