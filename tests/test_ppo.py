"""`cra train ppo` on CPU: SFT policy, value model, frozen SFT reference; episodes scored by the behavioral
reward (the default) or by a reward model from `cra train reward`."""

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("trl")
pytest.importorskip("peft")

from rl_setup import store_perturbed_pairs, use_sft_database  # noqa: E402

from cra.cli import cli  # noqa: E402
from cra.db import open_db  # noqa: E402

pytestmark = pytest.mark.slow  # trains on a tiny model: the heavy lane

FAST = [
    "--no-load-in-4bit",
    "--batch-size",
    "8",
    "--response-length",
    "32",
    "--learning-rate",
    "1e-3",
    "--cpu-threads",
    "1",
    "--max-prompts",
    "16",
    "--save-steps",
    "2",
    "--num-ppo-epochs",
    "2",
]


@pytest.fixture(scope="session")
def rl_root(tmp_path_factory):
    return tmp_path_factory.mktemp("rl-shared")


@pytest.fixture
def sft_db(rl_root, cra_home):
    return use_sft_database(rl_root, cra_home)


@pytest.fixture
def with_reward_model(rl_root, cra_home):
    ctx = use_sft_database(rl_root, cra_home)
    store_perturbed_pairs(ctx["db"])
    for args in (
        ["dataset", "pairs", "--no-mine", "--name", "pairs"],
        [
            "train",
            "reward",
            "--pairs",
            "pairs",
            "--no-load-in-4bit",
            "--max-steps",
            "8",
            "--batch-size",
            "8",
            "--learning-rate",
            "3e-3",
            "--cpu-threads",
            "1",
            "--eval-steps",
            "8",
        ],
    ):
        out = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert out.exit_code == 0, out.output
    ctx["reward"] = next(ctx["db"].query("SELECT * FROM runs WHERE kind = 'reward'"))
    return ctx


def _run(args):
    result = CliRunner().invoke(cli, ["train", "ppo", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_ppo_on_the_behavioral_reward_raises_it_and_records_the_run(sft_db):
    """The default: episodes scored by the behavioral reward GRPO trains on, no reward model anywhere.

    16 steps of 16 episodes, 4 PPO epochs each, from the shared SFT run. The missing-EOS penalty is off
    here: the tiny model leaves a third of its responses unfinished, and with the penalty PPO's first
    lesson is to finish them, which the behavioral reward barely sees. Measured on main after the chat
    renderer landed (2026-12-04), the behavioral reward of 128 seeded samples rose by 0.088, 0.061 and
    0.046 with seeds 42 (the default), 5 and 11 (0.44-0.47 -> 0.48-0.53); at 8 steps seed 42 fell by
    0.040 while 1, 3 and 7 rose by 0.05-0.07, so 8 steps were too few to rely on. The run is seeded end
    to end (one CPU thread), so a seed gives the same numbers under any load."""
    result = _run(
        [
            *FAST,  # first: the options after it override its batch size and epochs
            "--max-steps",
            "16",
            "--batch-size",
            "16",
            "--num-ppo-epochs",
            "4",
            "--missing-eos-penalty",
            "0",
            "--eval-prompts",
            "16",
            "--eval-samples",
            "8",
        ]
    )
    db = sft_db["db"]
    run = next(db.query("SELECT * FROM runs WHERE kind = 'ppo'"))
    assert run["status"] == "completed" and run["parent_run"] == sft_db["sft"]["id"]
    m = json.loads(run["metrics"])
    assert m["reward"] == "behavioral" and m["reward_run"] is None and db["runs"].count == 2  # no reward model
    assert m["steps"] == 16 and m["episodes"] == 256
    assert [s["step"] for s in m["step_log"]] == list(range(1, 17))
    for s in m["step_log"]:  # behavioral scores, KL to the SFT reference, both losses, every step
        assert {"score_mean", "kl", "policy_loss", "value_loss", "approx_kl"} <= set(s)
        assert 0 <= s["score_mean"] <= 1  # the behavioral reward's range (no penalty here)
    assert any(s["kl"] != 0 for s in m["step_log"])  # the policy moved away from the reference

    before, after = m["reward_before"], m["reward_after"]
    assert after["n"] == before["n"] == 128 and after["contexts"] == 16 and after["sampled"]
    assert "reward_model" not in after
    assert after["reward"] == after["behavioral"]  # what PPO maximised, without the penalty
    assert after["behavioral"] >= before["behavioral"] + 0.02, (before, after)
    assert set(after["components"]) >= {"format_validity", "agreement", "exploration_fit"}

    adapter = Path(m["adapter"])
    from safetensors.torch import load_file

    trained = load_file(adapter / "adapter_model.safetensors")
    start = load_file(Path(sft_db["sft"]["output_dir"]) / "adapter" / "adapter_model.safetensors")
    assert trained.keys() == start.keys() and any(not (trained[k] == start[k]).all() for k in trained)
    assert "behavioral reward of 128 sampled responses" in result.output


def test_behavioral_reward_scores_the_episode_of_its_own_context(sft_db):
    """The stand-in for PPOTrainer's reward model finds each episode's context by its query's tokens
    (left padding ignored, as PPOTrainer ignores it) and scores the response against Claude's action
    there: Claude's own action scores 1, and a query it was never given is an error, not a guess."""
    import torch

    from cra.behavioral_reward import RewardScorer
    from cra.errors import StageError
    from cra.train import rl
    from cra.train.ppo import PPOSettings, behavioral_reward_model

    sft = sft_db["sft"]
    settings = PPOSettings(load_in_4bit=False, max_prompts=4, base=sft["base_model"], dataset=sft["dataset"])
    tokenizer = rl.load_tokenizer(settings, json.loads(sft["metrics"])["adapter"])
    rows, _ = rl.build_prompts(settings, sft_db["db"], tokenizer)
    reward = behavioral_reward_model(tokenizer, rows, RewardScorer())
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    calls = [r for r in rows if json.loads(r["context"])["reference"].get("tool_calls")][:2]  # Claude called a tool
    queries = [tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in calls]
    width = max(map(len, queries)) + 1  # one more pad on the left of both
    claude = json.loads(calls[0]["context"])["reference"]
    call = claude["tool_calls"][0]["function"]
    right = tokenizer(
        claude["content"]
        + "\n<tool_call>\n"
        + json.dumps({"name": call["name"], "arguments": json.loads(call["arguments"])})
        + "\n</tool_call>",
        add_special_tokens=False,
    )["input_ids"]
    wrong = tokenizer("Done.", add_special_tokens=False)["input_ids"]
    responses = [right + [eos], wrong + [eos]]
    length = max(map(len, responses)) + 2
    batch = torch.tensor(
        [[pad] * (width - len(q)) + q + r + [pad] * (length - len(r)) for q, r in zip(queries, responses)]
    )
    scores = reward.scores(batch, width).tolist()
    assert scores[0] == pytest.approx(1.0) and scores[1] < 0.5
    with pytest.raises(StageError, match="not given"):
        reward.scores(torch.tensor([[pad] * 3 + wrong + right]), 3 + len(wrong))


def test_ppo_with_the_reward_model_runs_and_records_the_run(with_reward_model):
    """`--reward model` keeps the learned reward model: episodes scored by it, value model from it."""
    result = _run(["--reward", "model", "--max-steps", "2", "--eval-prompts", "4", "--eval-samples", "2", *FAST])
    db = with_reward_model["db"]
    run = next(db.query("SELECT * FROM runs WHERE kind = 'ppo'"))
    m = json.loads(run["metrics"])
    assert (
        run["status"] == "completed" and m["reward"] == "model" and m["reward_run"] == with_reward_model["reward"]["id"]
    )
    assert [s["step"] for s in m["step_log"]] == [1, 2] and m["episodes"] == 16
    after = m["reward_after"]
    assert (
        m["reward_before"]["n"] == after["n"] == 8
        and isinstance(after["reward_model"], float)
        and isinstance(after["behavioral"], float)
    )
    # What PPO maximised: the reward model's score less the missing-EOS penalty (1) for unfinished ones.
    assert after["reward"] == pytest.approx(after["reward_model"] - (1 - after["ended"]))
    assert "reward-model score of 8 sampled responses" in result.output


def test_ppo_is_deterministic_for_a_seed(sft_db):
    """Same seed, same run: the value model's LoRA init and PPOTrainer's numpy minibatch shuffle used
    to draw from unseeded global generators, so a run depended on what the process did before."""
    import random

    import numpy as np
    import torch

    from cra.train.ppo import PPOSettings, train_ppo

    db = open_db()
    logs = []
    for disturb in (0, 1):
        torch.manual_seed(1234 + disturb)  # leave the global generators in different states
        np.random.seed(disturb)
        random.seed(disturb)
        settings = PPOSettings(
            load_in_4bit=False,
            max_steps=2,
            batch_size=4,
            response_length=24,
            learning_rate=1e-3,
            cpu_threads=1,
            max_prompts=8,
            save_steps=10,
            num_ppo_epochs=2,
            grad_accum=2,
            eval_prompts=0,
        )
        run = train_ppo(settings, db, echo=lambda *a, **k: None)
        logs.append(
            [{k: s[k] for k in ("score_mean", "kl", "policy_loss", "value_loss")} for s in run["metrics"]["step_log"]]
        )
    assert logs[0] == logs[1]


def test_ppo_ctrl_c_then_resume(sft_db):
    from transformers import TrainerCallback

    from cra.train.ppo import PPOSettings, train_ppo

    class CtrlCAtStep2(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    settings = PPOSettings(
        load_in_4bit=False,
        max_steps=3,
        batch_size=4,
        response_length=24,
        learning_rate=1e-3,
        cpu_threads=1,
        max_prompts=8,
        save_steps=1,
        num_ppo_epochs=1,
        eval_prompts=0,
    )
    db = open_db()
    first = train_ppo(settings, db, callbacks=(CtrlCAtStep2(),), echo=lambda *a, **k: None)
    assert first["status"] == "interrupted" and first["metrics"]["steps"] == 2
    result = CliRunner().invoke(cli, ["train", "ppo", "--resume"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    second = next(db.query("SELECT * FROM runs WHERE kind = 'ppo' AND id != ?", [first["id"]]))
    m = json.loads(second["metrics"])
    assert second["parent_run"] == first["id"] and second["status"] == "completed"
    assert m["steps"] == 3 and [s["step"] for s in m["step_log"]] == [3]  # only the remaining step ran
    assert m["resumed_from"].endswith("checkpoint-2")


def test_ppo_with_reward_model_but_none_trained_says_how_to_get_one(sft_db):
    out = CliRunner().invoke(cli, ["train", "ppo", "--reward", "model", "--no-load-in-4bit"])
    assert out.exit_code == 1 and "no completed reward run" in out.output and "cra train reward" in out.output
    assert open_db()["runs"].count == 1  # only the SFT run: a usage error starts no run
    bad = CliRunner().invoke(cli, ["train", "ppo", "--reward", "judge"])
    assert bad.exit_code == 2 and "behavioral" in bad.output and "model" in bad.output
