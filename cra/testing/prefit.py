"""A small model that can learn something on CPU: a tool-choice task and a short full-parameter pre-fit.

A randomly initialised tiny model (cra/testing/tiny.py) writes junk, and LoRA alone barely moves it
(../shared/docs/ml-stack.md). `prefit` trains all its weights for a hundred steps on general tool use:
requests phrased one way ("Open app.py for me", "Search the code for parse", "Which md files are
there", "Execute the unit suite") answered with the right tool call. The result writes well-formed
`<tool_call>` messages, as an instruct model would, but has never seen the task's own phrasing.

The task (`keyword_conversations`, "task" phrasing: "Show me the contents of app.py", "Find where parse
is defined", "List the md files", "Run the unit tests") is what an adapter trained with `cra train sft`
learns and what `cra eval` holds out: the base can only guess which tool such a request needs, the
adapter has learned it. (A pre-fit on random tool choices teaches the format too, but it also teaches
the model to ignore the request, and a short LoRA run then barely recovers: measured 41% vs 31%.)

`prefitted_base` does the same for a base with a real tokenizer and template (cra/testing/bases.py):
the conversations are rendered in that family's own format, and the result is cached.

    python -m cra.testing.prefit MODEL_DIR OUT_DIR [--steps 100]
    python -m cra.testing.prefit --family qwen2.5     # the main job's base: prints its cached directory
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from pathlib import Path

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "parameters": {
                "type": "object",
                "properties": {"file_path": {"type": "string"}},
                "required": ["file_path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Grep",
            "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Glob",
            "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Bash",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        },
    },
]
_FILES = [
    "app.py",
    "main.py",
    "config.py",
    "utils.py",
    "parser.py",
    "cli.py",
    "models.py",
    "views.py",
    "setup.py",
    "server.py",
    "client.py",
    "db.py",
    "api.py",
    "core.py",
    "io.py",
    "log.py",
]
_SYMBOLS = [
    "main",
    "parse",
    "load",
    "save",
    "render",
    "connect",
    "handle",
    "run",
    "build",
    "check",
    "close",
    "open",
    "read",
    "write",
    "start",
    "stop",
]
_EXTS = ["py", "md", "txt", "json", "toml", "yaml", "cfg", "html", "css", "js", "sh", "ini"]
_SUITES = ["unit", "parser", "api", "db", "cli", "smoke", "models", "views", "io", "core", "auth", "cache"]


# (request template, object words) per tool kind: Read, Grep, Glob, Bash. "task" is what the adapter
# learns and `cra eval` holds out; "general" is the pre-fit's own phrasing of the same four needs.
_PHRASES = {
    "task": ["Show me the contents of {}", "Find where {} is defined", "List the {} files", "Run the {} tests"],
    "general": ["Open {} for me", "Search the code for {}", "Which {} files are there", "Execute the {} suite"],
}
_OBJECTS = [_FILES, _SYMBOLS, _EXTS, _SUITES]


def _held_out(word: str, kind: int) -> bool:
    """Every fourth object of each kind is kept for eval requests only (write_keyword_dataset)."""
    return _OBJECTS[kind].index(word) % 4 == 3


def _request(kind: int, rng: random.Random, phrasing: str = "task", words: str = "all") -> tuple[str, str]:
    """(request, its object): show a file, find a definition, list files by extension, run a suite.
    words: "all" objects, only the "held_out" ones, or only the "seen" ones (the rest)."""
    choices = [w for w in _OBJECTS[kind] if words == "all" or _held_out(w, kind) == (words == "held_out")]
    word = rng.choice(choices)
    return _PHRASES[phrasing][kind].format(word), word


def _call(kind: int, word: str) -> tuple[str, dict, str]:
    if kind == 0:
        return "Read", {"file_path": word}, "def main():\n    pass"
    if kind == 1:
        return "Grep", {"pattern": f"def {word}"}, f"app.py:3:def {word}():"
    if kind == 2:
        return "Glob", {"pattern": f"*.{word}"}, f"a.{word}"
    return "Bash", {"command": f"pytest {word}"}, "3 passed"


def keyword_conversations(
    n: int, seed: int = 0, start: int = 0, phrasing: str = "task", words: str = "all"
) -> list[dict]:
    """`cra dataset build`-format rows (one turn each: request, tool call, result, answer), the tool
    being the one the request needs. Every row has its own session id in `meta`, as real turns do.
    words: see _request."""
    rng = random.Random(seed)
    tools = json.dumps(TOOLS)
    rows = []
    for i in range(start, start + n):
        kind = rng.randrange(4)
        request, word = _request(kind, rng, phrasing, words)
        name, args, result = _call(kind, word)
        call_id = f"call_{i}"
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": request},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": json.dumps(args)},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": call_id, "content": result},
                    {"role": "assistant", "content": "Done."},
                ],
                "tools": tools,
                "meta": {
                    "session_id": f"task-{seed}-{i}",
                    "turn_id": i,
                    "step": 5,
                    "source": "handmade",
                    "synthetic": False,
                },
            }
        )
    return rows


def write_toolless_template(path: str | os.PathLike) -> Path:
    """cra's ChatML template without the tool list in the system turn.

    The tool block is ~250 tokens of a ~300-token example: on a CPU test it is most of the cost, and a
    tiny model learns the four tool names from the conversations anyway. The dataset still carries
    the schemas, so `cra eval` still checks calls against them.
    """
    from ..chat.templates import CHATML_TEMPLATE

    marker = "{%- if tools %}"
    assert CHATML_TEMPLATE.startswith(marker)
    path = Path(path)
    path.write_text("{%- if false %}" + CHATML_TEMPLATE[len(marker) :], encoding="utf-8")
    return path


def write_keyword_dataset(out_dir: str | os.PathLike, n_train: int = 96, n_eval: int = 32, seed: int = 0) -> Path:
    """train.jsonl / eval.jsonl of the keyword task. The eval requests name objects no training request
    names (every fourth file, symbol, extension and suite), so no held-out step is a training step: the
    tool has to be read from the request's phrasing, which is what the adapter is meant to learn."""
    from .tiny import write_splits

    train = keyword_conversations(n_train, seed=seed, words="seen")
    held_out = keyword_conversations(n_eval, seed=seed + 1, start=n_train, words="held_out")
    return write_splits(out_dir, train + held_out, n_train)


def assistant_loss(model, ids, mask, labels):
    """The causal LM loss with the output layer applied only where a label is: the same number as
    `model(..., labels=labels).loss`, without logits for every position (a real 128k-152k vocabulary
    makes those gigabytes for a batch of Claude Code conversations)."""
    import torch.nn.functional as F

    hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    keep = targets != -100
    logits = model.get_output_embeddings()(hidden[keep])
    return F.cross_entropy(logits.float(), targets[keep])


def prefit(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    steps: int = 100,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    seed: int = 0,
    conversations: list[dict] | None = None,
    chat_template: str = "auto",
) -> Path:
    """Full-parameter training of a (tiny) causal LM on assistant tokens; saves model + tokenizer to out_dir.

    Default data: 400 conversations in the "general" phrasing. A plain torch loop: on a 0.36 M
    parameter model the Trainer's overhead would dominate.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .. import chat

    if chat_template != "auto" and chat_template not in chat.family_names() and not Path(chat_template).is_file():
        raise ValueError(f"chat_template must be 'auto', a family or a template file, not {chat_template!r}")

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    family = chat.resolve_family(tokenizer, chat_template)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.train()
    rows = conversations or keyword_conversations(400, seed=seed + 1000, phrasing="general")
    encoded = [chat.tokenize_example(tokenizer, row, family) for row in rows]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    optim = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    rng = random.Random(seed)
    for step in range(steps):
        batch = rng.sample(encoded, min(batch_size, len(encoded)))
        width = max(len(e["input_ids"]) for e in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            n = len(e["input_ids"])
            ids[row, :n] = torch.tensor(e["input_ids"])
            labels[row, :n] = torch.tensor(e["labels"])
            mask[row, :n] = 1
        loss = assistant_loss(model, ids, mask, labels)
        loss.backward()
        optim.step()
        optim.zero_grad()
        # Cosine decay: the last steps settle the format instead of bouncing around it.
        for group in optim.param_groups:
            group["lr"] = learning_rate * 0.5 * (1 + math.cos(math.pi * (step + 1) / steps))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    return out


# The real-tokenizer base's pre-fit (measured on 2 cores, Qwen2.5's 152k vocabulary): at 3e-3 and 100
# steps of 16 it still wrote `"arguments": "arguments": ...`; at 1e-2, 150 steps of 8 (about 150 s on one
# thread) it writes `<tool_call>\n{"name": "Glob", "arguments": {"pattern": ...}}\n</tool_call>` (loss 0.27).
REAL_BASE_PREFIT = dict(steps=150, batch_size=8, learning_rate=1e-2, seed=0)


def prefit_cache_key(family: str, settings: dict) -> str:
    """Everything a pre-fitted real-tokenizer base depends on: the sources that build, render and fit it,
    the tokenizer files' package version, the library versions and the fit's settings."""
    import hashlib

    import tokenizers
    import torch
    import transformers

    from .. import chat
    from . import bases

    key = hashlib.sha256()
    sources = [Path(__file__), Path(bases.__file__), *sorted(Path(str(chat.__file__)).parent.glob("*.py"))]
    for source in sources:
        key.update(source.read_bytes())
    versions = (sys.version, torch.__version__, transformers.__version__, tokenizers.__version__)
    key.update(repr((family, sorted(settings.items()), bases.LLAMA_CPP_PYTHON_VERSION, versions)).encode())
    return key.hexdigest()[:16]


def prefitted_base(family: str = "qwen2.5", cache_dir: str | os.PathLike | None = None, **overrides) -> Path:
    """A small random model with `family`'s real tokenizer and chat template (cra/testing/bases.py),
    pre-fitted on general tool use rendered in that family's own format (Qwen's `<tool_call>` blocks,
    Llama 3's JSON lines), so it writes the family's tool calls before any SFT.

    Built once per cache key (`prefit_cache_key`) under `~/.cache/cra/prefit-<family>-<key>`
    (`CRA_CACHE_DIR` moves `~/.cache/cra`; `cache_dir` replaces it); a later call with the same sources,
    versions and settings returns the cached directory at once. `overrides`: REAL_BASE_PREFIT's keys.
    """
    import shutil
    import tempfile

    import torch

    from .bases import build_base, cache_root

    unknown = set(overrides) - set(REAL_BASE_PREFIT)
    if unknown:
        raise ValueError(f"unknown pre-fit settings {sorted(unknown)}: use {sorted(REAL_BASE_PREFIT)}")
    settings = {**REAL_BASE_PREFIT, **overrides}
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    cached = root / f"prefit-{family}-{prefit_cache_key(family, settings)}"
    if (cached / "config.json").is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{cached.name}.", dir=cached.parent))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster than 2 on a shared 2-core machine for a model this small
    try:
        raw = build_base(work / "random", family=family, seed=settings["seed"])
        prefit(raw, work / "prefit", chat_template="auto", **settings)
        try:
            os.replace(work / "prefit", cached)
        except OSError:  # another process cached the same base first
            if not (cached / "config.json").is_file():
                raise
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(work, ignore_errors=True)
    return cached


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Pre-fit a small model on general tool use (full parameters).")
    parser.add_argument("model_dir", nargs="?", help="the model to fit (not with --family)")
    parser.add_argument("out_dir", nargs="?", help="where to save it (not with --family)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default 100; --family: 150)")
    parser.add_argument(
        "--chat-template",
        default="auto",
        help="auto, a family, or a template file (e.g. from write_toolless_template).",
    )
    parser.add_argument(
        "--family",
        choices=("llama3.1", "qwen2.5", "qwen3"),
        help="build (or find in the cache) a real-tokenizer base of this family, pre-fitted; prints its directory",
    )
    ns = parser.parse_args()
    if ns.family:
        if ns.model_dir or ns.out_dir:
            parser.error("--family builds its own model into the cache: give no MODEL_DIR or OUT_DIR")
        print(prefitted_base(ns.family, **({"steps": ns.steps} if ns.steps else {})))
    elif ns.model_dir and ns.out_dir:
        print(prefit(ns.model_dir, ns.out_dir, steps=ns.steps or 100, chat_template=ns.chat_template))
    else:
        parser.error("give MODEL_DIR and OUT_DIR, or --family")
    sys.exit(0)
