"""`cra eval` end to end: real recorded steps replayed through the metrics, and a tiny model on CPU whose
trained adapter beats its base on held-out steps (numbers measured, never assumed)."""

import json

import pytest
from click.testing import CliRunner

from cra.cli import cli
from cra.db import open_db

pytestmark = pytest.mark.slow  # trains and evaluates a tiny model: the heavy lane


def _render(message):
    """Claude's own action written as the model would write it (cra's ChatML tool-call format)."""
    parts = [message.get("content") or ""]
    for tc in message.get("tool_calls") or ():
        args = json.loads(tc["function"]["arguments"])
        parts.append(
            "<tool_call>\n" + json.dumps({"name": tc["function"]["name"], "arguments": args}) + "\n</tool_call>"
        )
    return "\n".join(p for p in parts if p)


def test_recorded_sessions_replayed_with_claudes_own_actions_score_perfectly(recorded_db, tmp_path):
    """Steps from a dataset built from real Claude Code recordings; predicting Claude's own action must
    agree on every metric (a metric that does not is measuring the wrong thing)."""
    from cra.eval import metrics
    from cra.eval.steps import load_steps

    out = tmp_path / "ds"
    built = CliRunner().invoke(
        cli,
        [
            "dataset",
            "build",
            "-d",
            str(recorded_db),
            "-o",
            str(out),
            "--min-tool-calls",
            "1",
            "--min-answer-words",
            "1",
            "--keep-unrecovered",
            "--keep-failed",
            "--eval-fraction",
            "0",
        ],
        catch_exceptions=False,
    )
    assert built.exit_code == 0, built.output
    steps, skipped = load_steps(out / "train.jsonl")
    examples = [json.loads(line) for line in open(out / "train.jsonl")]
    assistant = sum(1 for e in examples for m in e["messages"] if m["role"] == "assistant")
    assert len(steps) + skipped["duplicate_steps"] == assistant and len(steps) >= 10
    scores = [metrics.score_step(s, _render(s.target)) for s in steps]
    report = metrics.aggregate(scores)
    assert report["call_steps"] >= 5
    assert report["tool_name_accuracy"]["rate"] == 1.0 and report["exact_args"]["rate"] == 1.0
    assert report["stop_accuracy"]["rate"] == 1.0 and report["format"]["parseable"]["rate"] == 1.0
    assert report["arg_similarity"]["mean"] == 1.0
    assert report["sequence"]["edit_distance"]["mean"] == 0.0 and report["sequence"]["depth_agreement"]["rate"] == 1.0
    # A shuffled prediction (each step answered with another step's action) must score worse.
    shifted = [metrics.score_step(s, _render(steps[(i + 1) % len(steps)].target)) for i, s in enumerate(steps)]
    worse = metrics.aggregate(shifted)
    assert worse["tool_name_accuracy"]["rate"] < 1.0 and worse["sequence"]["edit_distance"]["mean"] > 0


# One torch thread: on a shared 2-core machine two threads spin and run far slower.
SFT = [
    "--no-load-in-4bit",
    "--batch-size",
    "16",
    "--grad-accum",
    "1",
    "--max-length",
    "256",
    "--learning-rate",
    "5e-3",
    "--lora-r",
    "16",
    "--lora-alpha",
    "32",
    "--lora-dropout",
    "0",
    "--cpu-threads",
    "1",
    "--logging-steps",
    "4",
    "--warmup-ratio",
    "0",
    "--eval-steps",
    "1000",
    "--max-steps",
    "12",
]
EVAL = ["--max-new-tokens", "40", "--cpu-threads", "1", "--batch-size", "16"]


@pytest.fixture(scope="module")
def prefitted(tmp_path_factory):
    """The tiny model pre-fitted on general tool use ("Open app.py for me" -> Read): it writes well-formed
    calls but has never seen the task's phrasing ("Show me the contents of app.py") (cra/testing/prefit.py)."""
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    import torch

    from cra.testing.prefit import keyword_conversations, prefit, write_toolless_template
    from cra.testing.tiny import build_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval-tiny")
    template = write_toolless_template(root / "template.jinja")
    raw = build_model(root / "random")
    rows = keyword_conversations(400, seed=1000, phrasing="general")
    return str(prefit(raw, root / "prefit", steps=100, chat_template=str(template), conversations=rows)), str(template)


@pytest.fixture(scope="module")
def trained(prefitted, tmp_path_factory):
    """A database holding one short LoRA SFT run on the keyword task, from the pre-fitted base."""
    from cra.testing.prefit import write_keyword_dataset

    base, template = prefitted
    root = tmp_path_factory.mktemp("eval-run")
    data = write_keyword_dataset(root / "data", n_train=96, n_eval=32)
    db = str(root / "cra.db")
    result = CliRunner(env={"CRA_HOME": str(root / "home")}).invoke(
        cli,
        [
            "train",
            "sft",
            "-d",
            db,
            "--runs-dir",
            str(root / "runs"),
            "--base",
            base,
            "--dataset",
            str(data),
            "--chat-template",
            template,
            *SFT,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return db


def test_trained_adapter_beats_its_base_on_held_out_steps(trained):
    result = CliRunner().invoke(cli, ["eval", "last", "-d", trained, *EVAL], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    print(result.output)
    db = open_db(trained)
    rows = {r["subject"]: r for r in db.query("SELECT * FROM evals WHERE backend = 'hf' ORDER BY id")}
    assert set(rows) == {"run", "base"}
    run, base = (json.loads(rows[k]["metrics"]) for k in ("run", "base"))
    assert rows["run"]["step_count"] == rows["base"]["step_count"] == 64  # 32 held-out turns, 2 steps each
    assert rows["run"]["steps_hash"] == rows["base"]["steps_hash"] and rows["run"]["split"] == "eval"
    run_acc, base_acc = run["tool_name_accuracy"], base["tool_name_accuracy"]
    assert run_acc["n"] == base_acc["n"] == 32
    # The adapter learned the choice; the base can only guess: their 95% intervals do not overlap.
    assert run_acc["low"] > base_acc["high"], (run_acc, base_acc)
    assert run["format"]["valid"]["rate"] >= 0.85 and run["stop_accuracy"]["rate"] >= 0.9
    assert run["reward"]["total"]["mean"] > base["reward"]["total"]["mean"]
    line = next(line for line in result.output.splitlines() if line.startswith("tool name accuracy"))
    assert f"{100 * run_acc['rate']:.1f}%" in line and f"{100 * base_acc['rate']:.1f}%" in line
    assert "the adapter beats its base" in result.output
    predictions = [json.loads(line) for line in open(rows["run"]["predictions"])]
    assert len(predictions) == 64 and all("prediction" in p for p in predictions)

    # The same models on the same steps are not generated again.
    again = CliRunner().invoke(cli, ["eval", "last", "-d", trained, *EVAL], catch_exceptions=False)
    assert again.output.count("already measured these steps") == 2
    assert f"{100 * run_acc['rate']:.1f}%" in again.output
    only_base = CliRunner().invoke(
        cli, ["eval", "last", "-d", trained, "--base-only", "--json", *EVAL], catch_exceptions=False
    )
    (b,) = json.loads(only_base.stdout)
    assert b["subject"] == "base" and b["metrics"]["tool_name_accuracy"] == base_acc


def test_llama_cpp_backend_behaves_like_the_hf_adapter(trained):
    """The exported GGUF (base + LoRA adapter, f32) makes the same greedy choices in llama.cpp."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'cra[llama]')")
    exported = CliRunner().invoke(
        cli, ["export", "gguf", "last", "-d", trained, "--adapter", "--outtype", "f32"], catch_exceptions=False
    )
    assert exported.exit_code == 0, exported.output
    hf = CliRunner().invoke(cli, ["eval", "last", "-d", trained, "--json", *EVAL], catch_exceptions=False)
    cpp = CliRunner().invoke(
        cli, ["eval", "last", "-d", trained, "--backend", "llama.cpp", "--json", *EVAL], catch_exceptions=False
    )
    assert cpp.exit_code == 0, cpp.output
    hf_rows = {r["subject"]: r for r in json.loads(hf.stdout)}
    cpp_rows = {r["subject"]: r for r in json.loads(cpp.stdout)}
    assert cpp_rows["run"]["backend"] == "llama.cpp" and cpp_rows["run"]["adapter"].endswith("adapter-f32.gguf")
    for subject in ("run", "base"):
        a = [json.loads(line)["prediction"] for line in open(hf_rows[subject]["predictions"])]
        b = [json.loads(line)["prediction"] for line in open(cpp_rows[subject]["predictions"])]
        same = sum(x == y for x, y in zip(a, b))
        print(f"{subject}: {same}/{len(a)} predictions identical in llama.cpp and transformers")
        assert same >= 0.9 * len(a), (subject, same, len(a), [(x, y) for x, y in zip(a, b) if x != y][:3])
    run_hf, run_cpp = hf_rows["run"]["metrics"], cpp_rows["run"]["metrics"]
    assert abs(run_hf["tool_name_accuracy"]["rate"] - run_cpp["tool_name_accuracy"]["rate"]) <= 0.1
    assert run_cpp["tool_name_accuracy"]["low"] > cpp_rows["base"]["metrics"]["tool_name_accuracy"]["high"]
