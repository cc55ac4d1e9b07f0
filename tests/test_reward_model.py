"""`cra train reward`: a LoRA reward model on `cra dataset pairs`, with TRL's RewardTrainer, on CPU."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("trl")
pytest.importorskip("peft")

from rl_setup import store_perturbed_pairs, use_sft_database  # noqa: E402

from cra.cli import cli  # noqa: E402

pytestmark = pytest.mark.slow  # trains on a tiny model: the heavy lane

FAST = [
    "--no-load-in-4bit",
    "--max-steps",
    "18",
    "--batch-size",
    "8",
    "--learning-rate",
    "3e-3",
    "--cpu-threads",
    "1",
    "--logging-steps",
    "2",
    "--eval-steps",
    "6",
]


@pytest.fixture(scope="session")
def rl_root(tmp_path_factory):
    return tmp_path_factory.mktemp("rl-shared")


@pytest.fixture
def sft(rl_root, cra_home):
    return use_sft_database(rl_root, cra_home)


def test_reward_model_learns_to_prefer_claudes_action_and_records_the_run(sft):
    db = sft["db"]
    assert store_perturbed_pairs(db) > 40
    out = CliRunner().invoke(
        cli, ["dataset", "pairs", "--no-mine", "--name", "pairs", "--eval-fraction", "0.2"], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output

    result = CliRunner().invoke(cli, ["train", "reward", "--pairs", "pairs", *FAST], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = next(db.query("SELECT * FROM runs WHERE kind = 'reward'"))
    assert run["status"] == "completed" and run["parent_run"] == sft["sft"]["id"] and run["dataset"] == "pairs"
    m = json.loads(run["metrics"])
    assert m["steps"] == 18 and m["train_pairs"] > 30 and m["eval_pairs"] > 0
    assert m["sft_adapter"]  # initialised from the SFT policy
    losses = [s["loss"] for s in m["step_log"] if "loss" in s]
    assert losses[-1] < losses[0]
    assert any("eval_accuracy" in s for s in m["step_log"])
    # Better than before training at ranking held-out pairs (Claude's action over a perturbed one).
    assert m["accuracy_after"]["margin"] > m["accuracy_before"]["margin"]
    assert m["accuracy_after"]["accuracy"] >= m["accuracy_before"]["accuracy"]
    assert "pair accuracy" in result.output

    # The saved reward model (LoRA + score head) loads and scores as it did in training.
    from cra.train import loading
    from cra.train.reward_model import load_reward_run, pair_accuracy, reward_run, tokenize_pairs

    model, tokenizer = load_reward_run(reward_run(db, "last"), loading.resolve_precision("fp32"))
    rows, _ = tokenize_pairs(
        Path(next(db.query("SELECT path FROM datasets WHERE name = 'pairs'"))["path"]) / "eval.jsonl", tokenizer, 2048
    )
    reloaded = pair_accuracy(model, rows, tokenizer.pad_token_id)
    assert reloaded["accuracy"] == pytest.approx(m["accuracy_after"]["accuracy"])
    assert reloaded["margin"] == pytest.approx(m["accuracy_after"]["margin"], abs=1e-4)
    (artifact,) = db.query("SELECT * FROM artifacts WHERE run_id = ?", [run["id"]])
    assert artifact["kind"] == "reward_model"


def test_reward_model_errors_are_clear(sft):
    out = CliRunner().invoke(cli, ["train", "reward", "--no-load-in-4bit"])
    assert out.exit_code == 1 and "no pairs" in out.output and "cra dataset pairs" in out.output
    out = CliRunner().invoke(cli, ["train", "reward", "--pairs", "nope", "--no-load-in-4bit"])
    assert out.exit_code == 1 and "no pairs 'nope'" in out.output
