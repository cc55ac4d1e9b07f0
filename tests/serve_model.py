"""A tiny model trained to act inside Claude Code, for the `cra serve` tests: a recorded run with its
dataset, LoRA adapter and merged GGUF, built through the real commands in about a minute on CPU.

The conversations are what `cra serve` renders for a Claude Code request (BuildOptions' defaults:
the default system prompt with the working directory, thinking as `reasoning`): "List the md files"
-> thinking, a Glob call, its result, "Done.". The chat template is cra's ChatML without the tool list
(a tiny model learns the tool names from the conversations; the list would be most of each prompt)
and with thinking rendered as <think>...</think>, so the model writes thinking, a tool call and, after
the result, a final answer: every kind of block the server streams.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from cra.dataset.build import DEFAULT_SYSTEM, BuildOptions, record_dataset

DATASET = "serve-tiny"
# (request, its object words, tool, arguments, result, thinking) for the four kinds of request.
KINDS = [
    ("List the {} files", ["md", "py", "txt", "json", "toml"], "Glob", lambda w: {"pattern": f"*.{w}"}, "a.{}"),
    ("Show me the contents of {}", ["app.py", "main.py", "README.md"], "Read", lambda w: {"file_path": w}, "x = 1"),
    ("Find where {} is defined", ["main", "parse", "greet"], "Grep", lambda w: {"pattern": f"def {w}"}, "a.py:1"),
    ("Run the {} tests", ["unit", "api", "smoke"], "Bash", lambda w: {"command": f"pytest {w}"}, "3 passed"),
]
_DIRS = ["/home/user/project", "/srv/app", "/tmp/work", "/home/dev/code/site", "/opt/tool", "/work/repo"]


def template_text() -> str:
    """cra's ChatML template with no tool list in the system turn and thinking before the content."""
    from cra.train.templates import CHATML_TEMPLATE

    marker = "{%- if tools %}"
    assert CHATML_TEMPLATE.startswith(marker)
    text = "{%- if false %}" + CHATML_TEMPLATE[len(marker) :]
    generation = "{%- generation %}"
    assert text.count(generation) == 1
    return text.replace(
        generation,
        generation + "{%- if message.reasoning %}{{- '<think>' + message.reasoning + '</think>\\n' }}{%- endif %}",
    )


def conversations(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        request, words, tool, args, result = KINDS[rng.randrange(len(KINDS))]
        word = rng.choice(words)
        cwd = rng.choice(_DIRS) + ("/" + rng.choice(["a", "b", "src", "x1"]) if rng.random() < 0.5 else "")
        call = {"id": f"call_{i}", "type": "function", "function": {"name": tool, "arguments": json.dumps(args(word))}}
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": DEFAULT_SYSTEM + "\nWorking directory: " + cwd},
                    {"role": "user", "content": request.format(word)},
                    {"role": "assistant", "content": "", "reasoning": f"This needs {tool}.", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": f"call_{i}", "name": tool, "content": result.format(word)},
                    {"role": "assistant", "content": "Done."},
                ],
                "tools": "[]",
                "meta": {"session_id": f"serve-{seed}-{i}", "turn_id": i, "step": 5, "source": "handmade"},
            }
        )
    return rows


def build_served_run(root: Path) -> dict:
    """-> {db, run_id, gguf, template}: a completed sft run on a pre-fitted tiny model, exported."""
    import torch
    from click.testing import CliRunner

    from cra.cli import cli
    from cra.db import open_db
    from cra.testing.prefit import prefit
    from cra.testing.tiny import build_model, write_splits

    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    template = root / "template.jinja"
    template.write_text(template_text(), encoding="utf-8")
    base = prefit(
        build_model(root / "random"),
        root / "prefit",
        steps=150,
        chat_template=str(template),
        conversations=conversations(400, seed=1),
    )
    data = write_splits(root / "data", conversations(64, seed=2), 64)
    db_path = str(root / "cra.db")
    db = open_db(db_path)
    summary = {"train_examples": 64, "eval_examples": 0, "redaction_enabled": False}
    record_dataset(db, DATASET, "sft", "openai", data, BuildOptions().as_dict(), summary)
    runner = CliRunner(env={"CRA_HOME": str(root / "home")})
    common = ["--no-load-in-4bit", "--batch-size", "16", "--grad-accum", "1", "--max-length", "256"]
    common += ["--learning-rate", "1e-3", "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0"]
    common += ["--cpu-threads", "1", "--warmup-ratio", "0", "--eval-steps", "1000", "--max-steps", "4"]
    trained = runner.invoke(
        cli,
        ["train", "sft", "-d", db_path, "--runs-dir", str(root / "runs"), "--base", str(base), "--dataset", DATASET]
        + ["--chat-template", str(template), *common],
        catch_exceptions=False,
    )
    assert trained.exit_code == 0, trained.output
    exported = runner.invoke(cli, ["export", "gguf", "last", "-d", db_path, "--outtype", "f32"], catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    run_id = db.execute("SELECT max(id) FROM runs").fetchone()[0]
    gguf = db.execute("SELECT path FROM artifacts WHERE kind = 'gguf' ORDER BY id DESC LIMIT 1").fetchone()[0]
    return {"db": db_path, "run_id": run_id, "gguf": gguf, "template": str(template), "base": str(base)}
