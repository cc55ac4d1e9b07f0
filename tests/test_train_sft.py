"""`cra train sft` on the tiny local model, on CPU, offline: learning, masks, best checkpoint, resume, failures."""

import json
import os
import signal

import pytest
from click.testing import CliRunner

pytest.importorskip("trl")
pytest.importorskip("peft")

from cra.cli import cli  # noqa: E402
from cra.db import open_db  # noqa: E402

pytestmark = pytest.mark.slow  # trains LoRA adapters on a tiny model: the heavy lane

# Small and quick: one torch thread (two threads on a shared 2-core machine spin and run 10x slower).
FAST = [
    "--batch-size",
    "4",
    "--grad-accum",
    "1",
    "--max-length",
    "512",
    "--learning-rate",
    "3e-3",
    "--cpu-threads",
    "1",
    "--logging-steps",
    "1",
    "--warmup-ratio",
    "0",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model dir, dataset dir): the tiny Llama and 48/12 tool-calling conversations in the dataset format."""
    from cra.testing.tiny import build_model, write_dataset

    root = tmp_path_factory.mktemp("tiny-sft")
    return str(build_model(root / "model")), str(write_dataset(root / "data", n_train=48, n_eval=12))


def sft(*args):
    result = CliRunner().invoke(cli, ["train", "sft", *args], catch_exceptions=False)
    return result


def test_sft_learns_keeps_best_checkpoint_and_records_the_run(tiny, tmp_path):
    model, data = tiny
    result = sft(
        "--base", model, "--dataset", data, "--no-load-in-4bit", "--max-steps", "16", "--eval-steps", "4", *FAST
    )
    assert result.exit_code == 0, result.output
    db = open_db()
    (run,) = db.query("SELECT * FROM runs")
    assert run["status"] == "completed" and run["kind"] == "sft" and run["base_model"] == model
    metrics = json.loads(run["metrics"])
    assert metrics["steps"] == 16
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert metrics["eval_loss_best"] < metrics["eval_loss_first"] - 0.05, metrics["eval_loss_curve"]
    assert metrics["tokens_per_second"] > 0 and metrics["padding_fraction"] < 0.10
    assert json.loads(run["config"])["max_steps"] == 16

    # Best checkpoint = lowest eval loss, and the saved adapter holds exactly its weights.
    curve = metrics["eval_loss_curve"]
    best_step = min((loss, step) for step, loss in curve if step > 0)[1]
    assert metrics["best_checkpoint"].endswith(f"checkpoint-{best_step}")
    from safetensors.torch import load_file

    saved = load_file(os.path.join(metrics["adapter"], "adapter_model.safetensors"))
    best = load_file(os.path.join(metrics["best_checkpoint"], "adapter_model.safetensors"))
    assert saved.keys() == best.keys() and all((saved[k] == best[k]).all() for k in saved)

    # The adapter loads back with PEFT and changes the model's output.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model)
    ids = torch.tensor([[5, 6, 7, 8]])
    before = base(ids).logits
    tuned = PeftModel.from_pretrained(base, metrics["adapter"])
    assert not torch.allclose(before, tuned(ids).logits)

    # The summary says where everything is; `cra runs` and `cra runs show` report it.
    assert f"adapter      {metrics['adapter']}" in result.output and "tokens/s" in result.output
    listing = CliRunner().invoke(cli, ["runs"]).output
    assert "completed" in listing and run["output_dir"] in listing
    shown = CliRunner().invoke(cli, ["runs", "show", str(run["id"])]).output
    assert "adapter" in shown and "learning_rate" in shown and metrics["adapter"] in shown
    (artifact,) = db.query("SELECT * FROM artifacts")
    assert artifact["run_id"] == run["id"] and artifact["kind"] == "adapter" and artifact["bytes"] > 0


def test_labels_cover_assistant_turns_only(tiny):
    """Both ways of finding the assistant's text: cra's own ChatML renderer, and the template's rendering of
    each conversation's prefixes (a template cra has no renderer for) give the same labels."""
    import re

    from transformers import AutoTokenizer

    from cra import chat
    from cra.testing.tiny import synthetic_conversations

    model, _ = tiny
    tok = AutoTokenizer.from_pretrained(model)
    family = chat.resolve_family(tok, "auto")
    assert family.name == "chatml"
    plain = AutoTokenizer.from_pretrained(model)
    plain.chat_template = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", tok.chat_template)
    fallback = chat.resolve_family(plain, "auto")
    assert fallback.name == "template" and not fallback.markers

    for example in synthetic_conversations(5, seed=3):
        ours = chat.tokenize_example(tok, example, family)
        prefixed = chat.tokenize_example(plain, example, fallback)
        assert ours["input_ids"] == prefixed["input_ids"]
        ids = ours["input_ids"]
        learned = tok.decode([t for t, lab in zip(ids, ours["labels"]) if lab != -100])
        masked = tok.decode([t for t, lab in zip(ids, ours["labels"]) if lab == -100])
        # Everything the assistant wrote is learned; nothing the user, system or tools wrote is.
        for message in example["messages"]:
            if message["role"] == "assistant":
                assert message["content"] in learned
                for call in message.get("tool_calls", []):
                    assert json.loads(call["function"]["arguments"])["arg"] in learned
            else:
                assert message["content"] not in learned
                assert message["content"] in masked
        assert "<|im_start|>" not in learned and learned.count("<|im_end|>") == sum(
            m["role"] == "assistant" for m in example["messages"]
        )
        # The prefix path differs only by the newline after each assistant turn's end token.
        extra = [t for t, a, b in zip(ids, ours["labels"], prefixed["labels"]) if a != b]
        assert all(a == b or b == t for t, a, b in zip(ids, ours["labels"], prefixed["labels"]))
        assert tok.decode(extra).strip() == ""


def test_ctrl_c_leaves_a_resumable_run_and_resume_continues_it(tiny, tmp_path):
    from transformers import TrainerCallback

    from cra.train.config import SFTSettings
    from cra.train.sft import train_sft

    model, data = tiny

    class CtrlCAtStep3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:  # during the 3rd step: a real SIGINT, handled like a user's Ctrl-C
                os.kill(os.getpid(), signal.SIGINT)

    # A template without generation markers: this run also exercises the prefix-rendering path.
    import re

    template = tmp_path / "plain.jinja"
    from cra.chat import CHATML_TEMPLATE

    template.write_text(re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", CHATML_TEMPLATE))
    settings = SFTSettings(
        base=model,
        dataset=data,
        load_in_4bit=False,
        max_steps=8,
        eval_steps=4,
        batch_size=4,
        grad_accum=1,
        max_length=512,
        learning_rate=3e-3,
        cpu_threads=1,
        logging_steps=1,
        chat_template=str(template),
    )
    db = open_db()
    first = train_sft(settings, db, callbacks=(CtrlCAtStep3(),))
    assert first["status"] == "interrupted" and "Ctrl-C" in first["error"]
    assert first["metrics"]["steps"] == 3 and first["metrics"]["chat_template"] == "template"
    assert first["metrics"]["last_checkpoint"].endswith("checkpoint-3")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    result = sft("--resume")
    assert result.exit_code == 0, result.output
    runs = {r["id"]: r for r in db.query("SELECT * FROM runs")}
    second = runs[2]
    assert second["parent_run"] == first["id"] and second["status"] == "completed"
    metrics = json.loads(second["metrics"])
    assert metrics["steps"] == 8
    # It continued from step 3: the new run trained steps 4..8 only (its own checkpoints start after 3).
    checkpoints = sorted(c for c in os.listdir(os.path.join(second["output_dir"], "checkpoints")) if "checkpoint-" in c)
    assert checkpoints == ["checkpoint-4", "checkpoint-8"], checkpoints
    assert metrics["tokens"] < json.loads(runs[1]["metrics"])["tokens"] * 8 / 3 * 0.9
    assert json.loads(second["config"])["chat_template"] == str(template)  # the parent's settings carried over

    # Run 1 has been continued, run 2 completed: nothing is left to resume.
    nothing = CliRunner().invoke(cli, ["train", "sft", "--resume"])
    assert nothing.exit_code == 1 and "no unfinished sft run to resume" in nothing.output


def test_4bit_nf4_qlora_trains_on_cpu(tiny):
    model, data = tiny
    result = sft("--base", model, "--dataset", data, "--max-steps", "3", "--eval-steps", "3", *FAST)
    assert result.exit_code == 0, result.output
    (run,) = open_db().query("SELECT * FROM runs")
    metrics = json.loads(run["metrics"])
    assert run["status"] == "completed" and metrics["quantized_4bit"] is True and metrics["steps"] == 3
    config = json.loads(open(os.path.join(metrics["adapter"], "adapter_config.json")).read())
    assert sorted(config["target_modules"]) == sorted(json.loads(run["config"])["target_modules"])


def test_a_failing_run_is_recorded_as_failed_with_its_error(tiny, tmp_path):
    _, data = tiny
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    result = CliRunner().invoke(
        cli, ["train", "sft", "--base", str(not_a_model), "--dataset", data, "--no-load-in-4bit"]
    )
    assert result.exit_code == 1
    assert "run 1 failed" in result.output and "cra runs show 1" in result.output
    assert "Traceback" not in result.output
    (run,) = open_db().query("SELECT * FROM runs")
    assert run["status"] == "failed" and run["ended_at"] and str(not_a_model) in run["error"]
    shown = CliRunner().invoke(cli, ["runs", "show", "1"]).output
    assert "failed" in shown and "Error:" in shown


def test_unsloth_without_a_gpu_is_a_one_line_error(tiny):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    model, data = tiny
    result = CliRunner().invoke(cli, ["train", "sft", "--base", model, "--dataset", data, "--backend", "unsloth"])
    assert result.exit_code == 1
    message = result.output.strip()
    assert message.count("\n") == 0 and "CUDA GPU" in message and "--backend trl" in message
    assert open_db()["runs"].count == 0  # a usage error, not a run


def test_missing_training_extra_says_what_to_install(tiny, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    model, data = tiny
    result = CliRunner().invoke(cli, ["train", "sft", "--base", model, "--dataset", data])
    assert result.exit_code == 1
    assert "needs trl" in result.output and "pip install 'cra[train]'" in result.output


def test_missing_dataset_is_a_clear_error(tiny):
    model, _ = tiny
    result = CliRunner().invoke(cli, ["train", "sft", "--base", model, "--dataset", "no-such-dataset"])
    assert result.exit_code == 1 and "no dataset 'no-such-dataset'" in result.output


def _register(db, name, path):
    db["datasets"].insert(
        dict(
            name=name,
            kind="sft",
            format="openai",
            path=path,
            created_at="2026-01-01T00:00:00Z",
            params="{}",
            stats="{}",
            train_count=48,
            eval_count=12,
            redacted=1,
        )
    )


def test_without_dataset_the_newest_is_used_and_named(tiny, tmp_path):
    model, data = tiny
    nothing = CliRunner().invoke(cli, ["train", "sft", "--base", model])
    assert nothing.exit_code == 1 and "no dataset: build one with `cra dataset build`" in nothing.output
    db = open_db()
    _register(db, "older", str(tmp_path / "gone"))
    _register(db, "newer", data)
    result = sft("--base", model, "--no-load-in-4bit", "--max-steps", "1", *FAST)
    assert result.exit_code == 0, result.output
    assert "No --dataset given: using newer (#2, built 2026-01-01T00:00:00Z), the newest dataset." in result.output
    (run,) = db.query("SELECT * FROM runs")
    assert run["dataset"] == "newer" and json.loads(run["config"])["dataset"] == "newer"


@pytest.mark.parametrize("offline_flag", [False, True])
def test_a_hub_base_without_a_hub_fails_at_once_saying_what_to_pass(tiny, tmp_path, monkeypatch, offline_flag):
    """No minute of retries: an unreachable hub (here a closed local port) or HF_HUB_OFFLINE is seen before
    anything loads, and the message says to pass a local directory."""
    _, data = tiny
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    for name in ("HTTPS_PROXY", "https_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    if offline_flag:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(cli, ["train", "sft", "--base", "some-org/some-model", "--dataset", data])
    assert result.exit_code == 1
    message = result.output.strip()
    assert message.count("\n") == 0 and "cannot be reached" in message and "local directory" in message
    assert open_db()["runs"].count == 0  # refused before a run was registered


def test_dataset_by_name_from_the_datasets_table(tiny):
    from cra.dataset.files import resolve_dataset

    _, data = tiny
    db = open_db()
    _register(db, "mine", data)
    train, evals = resolve_dataset(db, "mine")
    assert str(train) == os.path.join(data, "train.jsonl") and str(evals) == os.path.join(data, "eval.jsonl")


@pytest.mark.gpu
def test_cuda_backend_trains(tiny):
    """On a CUDA machine: unsloth when installed (else TRL), 4-bit, bf16/fp16, 8-bit AdamW."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    model, data = tiny
    result = sft(
        "--base",
        model,
        "--dataset",
        data,
        "--max-steps",
        "6",
        "--eval-steps",
        "3",
        "--batch-size",
        "4",
        "--max-length",
        "512",
        "--learning-rate",
        "3e-3",
    )
    assert result.exit_code == 0, result.output
    (run,) = open_db().query("SELECT * FROM runs")
    metrics = json.loads(run["metrics"])
    assert run["status"] == "completed" and metrics["steps"] == 6
    import importlib.util

    assert metrics["backend"] == ("unsloth" if importlib.util.find_spec("unsloth") else "trl")


def test_sft_on_a_dataset_built_from_recorded_sessions(tiny, recorded_db, tmp_path):
    """The real path: recorded Claude Code sessions -> `cra dataset build` -> `cra train sft` by dataset name."""
    model, _ = tiny
    db_path = str(recorded_db)
    build = CliRunner().invoke(
        cli,
        [
            "dataset",
            "build",
            "-d",
            db_path,
            "--name",
            "recorded",
            "--min-tool-calls",
            "1",
            "--min-answer-words",
            "1",
            "--tools",
            "used",
            "--eval-fraction",
            "0.3",
            "--seed",
            "0",
            "-o",
            str(tmp_path / "recorded"),
        ],
    )
    assert build.exit_code == 0, build.output
    result = sft(
        "-d",
        db_path,
        "--base",
        model,
        "--dataset",
        "recorded",
        "--no-load-in-4bit",
        "--max-steps",
        "24",
        "--eval-steps",
        "8",
        "--batch-size",
        "1",
        "--grad-accum",
        "1",
        "--max-length",
        "4608",
        "--learning-rate",
        "3e-3",
        "--cpu-threads",
        "1",
        "--logging-steps",
        "4",
    )
    assert result.exit_code == 0, result.output
    (run,) = open_db(db_path).query("SELECT * FROM runs")
    metrics = json.loads(run["metrics"])
    assert run["status"] == "completed" and run["dataset"] == "recorded" and metrics["steps"] == 24
    assert metrics["train_examples"] >= 3 and metrics["eval_examples"] >= 1
    assert metrics["eval_loss_best"] < metrics["eval_loss_first"]
    assert os.path.isfile(os.path.join(metrics["adapter"], "adapter_model.safetensors"))
