"""`cra train grpo` on the pre-fitted tiny model, on CPU: rewards, KL, registry, resume, errors."""

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("trl")
pytest.importorskip("peft")

from rl_setup import use_sft_database  # noqa: E402

from cra.cli import cli  # noqa: E402
from cra.db import open_db  # noqa: E402

pytestmark = pytest.mark.slow  # trains on a tiny model: the heavy lane

# 4 contexts x 4 samples per step at temperature 0.7: enough signal per step for 8 steps to move the
# policy reliably on the tiny model (fewer contexts per step made the direction noise).
FAST = [
    "--no-load-in-4bit",
    "--batch-size",
    "16",
    "--num-generations",
    "4",
    "--temperature",
    "0.7",
    "--max-completion-length",
    "48",
    "--learning-rate",
    "1e-3",
    "--cpu-threads",
    "1",
    "--max-prompts",
    "16",
    "--save-steps",
    "4",
]


@pytest.fixture(scope="session")
def rl_root(tmp_path_factory):
    return tmp_path_factory.mktemp("rl-shared")


@pytest.fixture
def sft(rl_root, cra_home):
    return use_sft_database(rl_root, cra_home)


def test_grpo_trains_from_the_sft_adapter_with_kl_and_records_the_run(sft):
    result = CliRunner().invoke(
        cli, ["train", "grpo", "--max-steps", "8", "--eval-prompts", "12", *FAST], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    db = sft["db"]
    run = next(db.query("SELECT * FROM runs WHERE kind = 'grpo'"))
    assert run["status"] == "completed" and run["parent_run"] == sft["sft"]["id"]
    assert run["base_model"] == sft["model"] and run["dataset"] == sft["data"]  # taken from the SFT run
    config, m = json.loads(run["config"]), json.loads(run["metrics"])
    assert config["beta"] > 0 and config["sft_run"] == str(sft["sft"]["id"])
    assert m["steps"] == 8 and len(m["step_log"]) == 8

    # Per-step reward statistics: mean, std, each component, and the KL to the SFT policy.
    components = [
        "format_validity",
        "agreement",
        "constraint_adherence",
        "reasoning_depth",
        "tool_efficiency",
        "self_correction",
        "exploration_fit",
    ]
    for step in m["step_log"]:
        assert {"reward_mean", "reward_std", "kl"} <= set(step)
        for name in components:
            assert f"{name}_mean" in step and f"{name}_std" in step
    assert max(s["kl"] for s in m["step_log"]) > 0
    # Dense rewards: samples of one context differ, so groups carry a learning signal.
    assert all(s["groups_without_variance"] < 1 for s in m["step_log"])
    assert all(s["reward_std"] > 0 for s in m["step_log"])

    # The trained adapter is not worse than the SFT adapter it started from, measured alike.
    before, after = m["reward_before"], m["reward_after"]
    assert before["n"] == after["n"] == 48 and after["sampled"]
    assert after["mean"] >= before["mean"], (before, after)

    # The adapter: same shape as SFT's, for the same base, without TRL's reference copy; weights moved.
    adapter = Path(m["adapter"])
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "ref").exists()
    from safetensors.torch import load_file

    trained = load_file(adapter / "adapter_model.safetensors")
    start = load_file(Path(sft["sft"]["output_dir"]) / "adapter" / "adapter_model.safetensors")
    assert trained.keys() == start.keys()
    assert any(not (trained[k] == start[k]).all() for k in trained)
    (artifact,) = db.query("SELECT * FROM artifacts WHERE run_id = ?", [run["id"]])
    assert artifact["kind"] == "adapter" and artifact["bytes"] > 0
    assert "kl" in result.output and "mean reward of the starting -> trained adapter" in result.output
    assert "grpo" in CliRunner().invoke(cli, ["runs", "--kind", "grpo"]).output


def test_grpo_ctrl_c_then_resume_continues_from_the_checkpoint(sft):
    from transformers import TrainerCallback

    from cra.train.grpo import GRPOSettings, train_grpo

    class CtrlCAtStep2(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGINT)

    settings = GRPOSettings(
        load_in_4bit=False,
        max_steps=4,
        batch_size=8,
        num_generations=4,
        max_completion_length=32,
        learning_rate=2e-3,
        cpu_threads=1,
        max_prompts=8,
        save_steps=2,
        eval_prompts=0,
    )
    db = open_db()
    first = train_grpo(settings, db, callbacks=(CtrlCAtStep2(),), echo=lambda *a, **k: None)
    assert first["status"] == "interrupted" and first["metrics"]["steps"] == 2
    assert first["metrics"]["last_checkpoint"].endswith("checkpoint-2")

    result = CliRunner().invoke(cli, ["train", "grpo", "--resume"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    second = next(db.query("SELECT * FROM runs WHERE kind = 'grpo' AND id != ?", [first["id"]]))
    assert second["parent_run"] == first["id"] and second["status"] == "completed"
    m = json.loads(second["metrics"])
    assert m["steps"] == 4 and m["sft_run"] == sft["sft"]["id"]
    # The step log is the whole run's (restored with the checkpoint); this run trained steps 3-4 only.
    assert [s["step"] for s in m["step_log"]] == [1, 2, 3, 4]
    checkpoints = os.listdir(os.path.join(second["output_dir"], "checkpoints"))
    assert sorted(c for c in checkpoints if c.startswith("checkpoint-")) == ["checkpoint-4"]
    assert json.loads(second["config"])["max_prompts"] == 8  # the interrupted run's settings
    again = CliRunner().invoke(cli, ["train", "grpo", "--resume"])
    assert again.exit_code == 1 and "no unfinished grpo run to resume" in again.output


def test_grpo_usage_errors_are_clear(sft):
    out = CliRunner().invoke(cli, ["train", "grpo", "--batch-size", "6", "--num-generations", "4"])
    assert out.exit_code == 1 and "multiple of num_generations" in out.output
    out = CliRunner().invoke(cli, ["train", "grpo", "--weights", "agreement=lots"])
    assert out.exit_code == 1 and "not a number" in out.output
    out = CliRunner().invoke(cli, ["train", "grpo", "--sft-run", "99", *FAST])
    assert out.exit_code == 1 and "no run 99" in out.output
    assert open_db()["runs"].count == 1  # usage errors start no run


def test_grpo_without_an_sft_run_says_how_to_get_one():
    out = CliRunner().invoke(cli, ["train", "grpo", "--no-load-in-4bit"])
    assert out.exit_code == 1 and "no completed SFT run" in out.output and "cra train sft" in out.output


def test_grpo_defaults_keep_a_kl_penalty():
    from cra.train.grpo import GRPOSettings

    assert GRPOSettings().beta > 0
