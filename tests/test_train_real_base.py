"""Training on real tokenizers and templates: the issue's end-to-end check, on test bases that carry the
real Llama 3.1 and Qwen3 vocabularies and chat templates (cra/testing/bases.py).

A dataset is built from the recorded Claude Code sessions with default flags, then `cra train sft`
trains one step with default flags on the Llama 3.1 base: parallel calls and thinking included, the
loss on the assistant's tokens only, within a memory budget that a shared CPU machine affords.
"""

import json
import os
import resource
import subprocess
import sys

import pytest
from click.testing import CliRunner

pytest.importorskip("trl")
pytestmark = pytest.mark.slow  # trains on real-vocabulary bases: the heavy lane

from cra import chat  # noqa: E402
from cra.cli import cli  # noqa: E402
from cra.db import open_db  # noqa: E402

# A 128k-vocabulary base at 8192 tokens: full logits alone would be ~4 GB per sequence in fp32.
MEMORY_BUDGET_MB = 4096


def child_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def test_default_build_then_one_default_step_on_the_llama31_base(recorded_db, tmp_path, llama_cpp_models):
    from transformers import AutoTokenizer

    from cra.testing.bases import build_base

    base = build_base(tmp_path / "llama31", family="llama3.1")
    db = str(recorded_db)
    built = CliRunner().invoke(cli, ["dataset", "build", "-d", db, "--name", "recorded"])
    assert built.exit_code == 0, built.output
    path = next(open_db(db).query("SELECT path FROM datasets WHERE name = 'recorded'"))["path"]
    rows = [json.loads(line) for name in ("train", "eval") for line in open(os.path.join(path, f"{name}.jsonl"))]
    assert any(len(m.get("tool_calls") or ()) > 1 for r in rows for m in r["messages"])  # parallel calls
    assert any(m.get("reasoning") for r in rows for m in r["messages"])  # thinking

    # What training feeds the model: thinking and every parallel call among the learned tokens.
    tokenizer = AutoTokenizer.from_pretrained(base)
    family = chat.resolve_family(tokenizer, "auto")
    assert family.name == "llama3"
    for row in rows:
        encoded = chat.tokenize_example(tokenizer, row, family)
        learned = tokenizer.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != -100])
        for m in row["messages"]:
            if m["role"] == "assistant":
                assert (m.get("reasoning") or "") in learned and m["content"].strip() in learned
                for call in m.get("tool_calls") or ():
                    assert f'"name": "{call["function"]["name"]}", "parameters": ' in learned

    before = child_peak_mb()
    result = subprocess.run(
        [sys.executable, "-m", "cra", "train", "sft", "-d", db, "--base", str(base), "--max-steps", "1"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "No --dataset given: using recorded" in result.stdout
    (run,) = open_db(db).query("SELECT * FROM runs")
    metrics = json.loads(run["metrics"])
    assert run["status"] == "completed" and run["dataset"] == "recorded" and metrics["steps"] == 1
    assert metrics["chat_template"] == "llama3" and metrics["loss_type"] == "chunked_nll"
    assert metrics["train_truncated"] == 0 and metrics["quantized_4bit"] is True
    peak = child_peak_mb()
    assert peak < MEMORY_BUDGET_MB or peak == before, f"peak {peak:.0f} MB"


def test_a_qwen3_base_trains_with_native_thinking(tmp_path, llama_cpp_models):
    """Qwen3's architecture and template: thinking inside <think> tokens, learned (the loss of a random
    model over the real 152k vocabulary is about ln 151936 = 11.9 a token)."""
    import math

    from transformers import AutoTokenizer

    from cra.testing.bases import build_base

    base = build_base(tmp_path / "qwen3", family="qwen3")
    turn = json.loads(open(os.path.join(os.path.dirname(__file__), "fixtures", "chat", "turn.json")).read())
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps({"messages": turn["messages"], "tools": turn["tools"]}) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(base)
    assert chat.resolve_family(tokenizer, "auto").name == "qwen3"
    result = CliRunner().invoke(
        cli,
        ["train", "sft", "--base", str(base), "--dataset", str(data), "--max-steps", "1", "--no-load-in-4bit"]
        + ["--batch-size", "1", "--grad-accum", "1", "--cpu-threads", "1", "--logging-steps", "1"],
    )
    assert result.exit_code == 0, result.output
    (run,) = open_db().query("SELECT * FROM runs")
    metrics = json.loads(run["metrics"])
    assert metrics["chat_template"] == "qwen3" and metrics["steps"] == 1
    assert abs(metrics["train_loss"] - math.log(151936)) < 0.5
    encoded = chat.tokenize_example(tokenizer, turn, chat.FAMILIES["qwen3"])
    assert metrics["tokens"] == len(encoded["input_ids"])
