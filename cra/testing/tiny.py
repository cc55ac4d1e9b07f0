"""A tiny tokenizer and causal LM built locally in seconds: tests and the main-job command train on it.

No hub downloads: the tokenizer is a byte-level BPE trained with `tokenizers` on Python's own
standard-library sources plus synthetic tool-calling conversations, wrapped in PreTrainedTokenizerFast
with a ChatML-style template that supports tools and marks assistant output with {% generation %}.
The model is a LlamaForCausalLM (or Qwen2ForCausalLM) from a config: 0.36 M parameters. Every Linear's
output size is a multiple of 32, which bitsandbytes' 4-bit CPU path needs.

    python -m cra.testing.tiny OUT_DIR [--arch llama|qwen2]
"""

from __future__ import annotations

import json
import os
import random
import sys
import sysconfig
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|pad|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]
VOCAB_SIZE = 2048
MODEL_SIZES = dict(
    hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)
STDLIB_MODULES = ("json", "pathlib.py", "argparse.py", "subprocess.py", "shutil.py", "textwrap.py", "glob.py")

_TOOLS = ["Bash", "Read", "Edit", "Grep", "Glob", "Write"]
_WORDS = "fix the failing test in the parser module and check the config file for errors then run the suite".split()


def synthetic_conversations(n: int, seed: int = 0) -> list[dict]:
    """Small openai-format tool-calling conversations (`{"messages", "tools"}`), deterministic by seed."""
    rng = random.Random(seed)
    tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"The {name} tool.",
                "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}, "required": ["arg"]},
            },
        }
        for name in _TOOLS
    ]
    out = []
    for i in range(n):
        words = rng.sample(_WORDS, 6)
        calls = rng.randint(1, 3)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": " ".join(words).capitalize() + "."},
        ]
        for c in range(calls):
            name = rng.choice(_TOOLS)
            call_id = f"call_{i}_{c}"
            arg = rng.choice(["src/app.py", "tests/", "pytest -q", "def main", "*.py", "README.md"])
            messages.append(
                {
                    "role": "assistant",
                    "content": f"I will use {name} on {arg}.",
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps({"arg": arg})},
                        }
                    ],
                }
            )
            messages.append(
                {"role": "tool", "tool_call_id": call_id, "content": f"ok: {arg} ({rng.randint(1, 99)} lines)"}
            )
        messages.append({"role": "assistant", "content": f"Done: {' '.join(words[:4])}."})
        used = {m["tool_calls"][0]["function"]["name"] for m in messages if m.get("tool_calls")}
        # Only the tools an example can use are listed, as `cra dataset build` does.
        out.append({"messages": messages, "tools": json.dumps([t for t in tools if t["function"]["name"] in used])})
    return out


def _corpus() -> list[str]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for name in STDLIB_MODULES:
        path = lib / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            try:
                texts.append(f.read_text(encoding="utf-8"))
            except OSError:
                pass
    for conv in synthetic_conversations(300, seed=1):
        texts.append(json.dumps(conv))
        texts.extend(m.get("content") or "" for m in conv["messages"])
    return texts


def build_tokenizer(vocab_size: int = VOCAB_SIZE):
    """PreTrainedTokenizerFast with cra's ChatML template (tools, generation markers); about 3 s."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ..chat.templates import CHATML_TEMPLATE

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[4:],
    )
    wrapped.chat_template = CHATML_TEMPLATE
    return wrapped


def build_model(out_dir: str | os.PathLike, arch: str = "llama", tokenizer=None, seed: int = 0) -> Path:
    """Save a randomly initialised tiny causal LM and its tokenizer to `out_dir`; return the directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = tokenizer or build_tokenizer()
    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if arch not in classes:
        raise ValueError(f"arch must be one of {', '.join(classes)}")
    config_cls, model_cls = classes[arch]
    vocab = len(tokenizer)
    vocab += -vocab % 32  # 4-bit CPU kernels want multiples of 32
    config = config_cls(
        vocab_size=vocab,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **MODEL_SIZES,
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # generation_config carries eos/pad for generate() in later stages
    model.generation_config.save_pretrained(out)
    return out


def write_dataset(out_dir: str | os.PathLike, n_train: int = 48, n_eval: int = 12, seed: int = 0) -> Path:
    """train.jsonl / eval.jsonl of synthetic conversations in `cra dataset build`'s openai format."""
    return write_splits(out_dir, synthetic_conversations(n_train + n_eval, seed=seed), n_train)


def write_splits(out_dir: str | os.PathLike, rows: list[dict], n_train: int) -> Path:
    """The first n_train rows as train.jsonl, the rest as eval.jsonl."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.jsonl", rows[:n_train]), ("eval.jsonl", rows[n_train:])):
        with open(out / name, "w", encoding="utf-8") as f:
            for row in part:
                f.write(json.dumps(row) + "\n")
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Build a tiny local model (and tokenizer) for tests and demos.")
    parser.add_argument("out_dir")
    parser.add_argument("--arch", default="llama", choices=["llama", "qwen2"])
    ns = parser.parse_args()
    print(build_model(ns.out_dir, arch=ns.arch))
    sys.exit(0)
