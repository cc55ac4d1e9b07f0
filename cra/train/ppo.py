"""`cra train ppo`: PPO as the original design describes it, on TRL's PPOTrainer (trl.experimental.ppo).

- policy: the SFT run's adapter on its base, trained further (LoRA);
- reference: a frozen copy of that SFT policy, for the per-token KL penalty (`kl_coef`);
- reward (`--reward`): `behavioral` (default), the same behavioral reward GRPO trains on (cra/reward),
  scoring each sampled message against what Claude did at that point; or `model`, a completed
  `cra train reward` run (score head + LoRA, merged), frozen;
- value model: a score head on the SFT policy's backbone (or initialised from the reward model with
  `--reward model`), LoRA on the backbone plus the head, trained;
- episodes: real contexts from the dataset (the conversation before one of Claude's actions), the
  policy samples the next message, the reward scores it; no tool runs.

PPOTrainer lives in `trl.experimental.ppo` up to trl 1.12 and was removed after (README, "Training
dependencies"): cra pins trl to 1.12.x, where SFT, GRPO, the reward model and PPO all work.
PPOTrainer cannot resume its optimizer: `--resume` restarts from the last checkpoint's policy adapter
(value model from the reward model again) and trains the remaining steps.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from .. import progress
from ..errors import ConfigError, StageError
from . import loading, rl, runs
from .lifecycle import RLRun, make_graceful_stop
from .rl import RLSettings


class PPOSettings(RLSettings):
    """PPO of the SFT adapter, scored by the behavioral reward (or a reward model), with a value model
    and a frozen SFT reference."""

    reward: Literal["behavioral", "model"] = Field(
        "behavioral",
        description="behavioral: the behavioral reward GRPO trains on (docs/rl.md); "
        "model: the learned reward model of a `cra train reward` run (--reward-run).",
    )
    reward_run: str = Field("last", description="With --reward model: a `cra train reward` run id, or last.")
    weights: str = Field(
        "", description="Behavioral reward weights: name=value,... or a .json/.toml file (none: the defaults)."
    )
    response_length: int = Field(128, ge=4, description="Longest sampled response in tokens.")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature for episodes.")
    kl_coef: float = Field(0.05, ge=0, description="KL penalty coefficient to the frozen SFT reference.")
    num_ppo_epochs: int = Field(4, ge=1, description="PPO epochs over each batch of episodes.")
    num_mini_batches: int = Field(1, ge=1, description="Minibatches per batch of episodes.")
    cliprange: float = Field(0.2, gt=0, description="Policy ratio clip range.")
    vf_coef: float = Field(0.1, gt=0, description="Value loss coefficient.")
    missing_eos_penalty: float = Field(
        1.0, ge=0, description="Subtracted from the score of a response that never ends."
    )
    value_lora_r: int = Field(16, ge=1, description="LoRA rank on the value model's backbone.")
    eval_samples: int = Field(8, ge=1, description="Seeded samples per context when scoring before and after.")

    @model_validator(mode="after")
    def _batches(self):
        if (self.batch_size * self.grad_accum) % self.num_mini_batches:
            raise ValueError("batch_size x grad_accum must be a multiple of num_mini_batches")
        if self.reward_run != "last" and not str(self.reward_run).isdigit():
            raise ValueError("reward_run: give a run id or 'last'")
        if self.weights:
            from ..behavioral_reward import parse_weights

            parse_weights(self.weights)  # a typo fails now, not after the models loaded
        return self


def _ppo_config(settings: PPOSettings, output_dir: Path, steps: int):
    from trl.experimental.ppo import PPOConfig

    return PPOConfig(
        **runs.trainer_args(settings, output_dir),
        total_episodes=steps * settings.batch_size * settings.grad_accum,
        num_ppo_epochs=settings.num_ppo_epochs,
        num_mini_batches=settings.num_mini_batches,
        response_length=settings.response_length,
        temperature=settings.temperature,
        kl_coef=settings.kl_coef,
        cliprange=settings.cliprange,
        vf_coef=settings.vf_coef,
        missing_eos_penalty=settings.missing_eos_penalty or None,
        stop_token="eos",
        local_rollout_forward_batch_size=settings.batch_size,
        num_sample_generations=0,
        lr_scheduler_type=settings.lr_scheduler,
        save_steps=settings.save_steps,
        disable_tqdm=True,
    )


class _Interrupted(Exception):
    pass


def _stop_after_save():
    """PPOTrainer's loop ignores should_training_stop: after Ctrl-C, stop once the checkpoint is saved."""
    stop = make_graceful_stop()
    cls = type(stop)

    def on_save(self, args, state, control, **kwargs):
        if self.requested:
            raise _Interrupted(state.global_step)
        return control

    cls.on_save = on_save
    return stop


def _value_model(scorer_model, settings: PPOSettings):
    """A trainable copy of a one-score model (the reward model, or the SFT policy's backbone with a new
    score head): LoRA on its backbone, its score head trained in full."""
    import copy

    from peft import LoraConfig, inject_adapter_in_model

    value = copy.deepcopy(scorer_model)
    targets = loading._target_modules(
        value, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    value = inject_adapter_in_model(
        LoraConfig(r=settings.value_lora_r, lora_alpha=2 * settings.value_lora_r, target_modules=targets), value
    )
    for name, param in value.named_parameters():
        param.requires_grad_("lora_" in name or name.startswith("score"))
    value.train()
    return value


def behavioral_reward_model(tokenizer, rows: list[dict], scorer):
    """The behavioral reward where PPOTrainer expects a reward model (a module it moves and calls).

    PPOTrainer scores episodes with `get_reward(reward_model, query_responses, pad_id, context_length)`;
    inside `scoring_through(reward)` those calls reach `reward.scores`, which finds each episode's
    context by its query's token ids (the prompts PPO was given), decodes the response as PPOTrainer
    cut it (after the stop token) and scores it against Claude's action there, as GRPO does.
    """
    import torch

    pad = tokenizer.pad_token_id
    contexts: dict[tuple[int, ...], str] = {}
    for row in rows:  # identical prompts (the same context recorded twice) keep the first reference
        ids = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        contexts.setdefault(tuple(t for t in ids if t != pad), row["context"])

    class BehavioralReward(torch.nn.Module):
        def scores(self, query_responses, context_length: int):
            texts, found = [], []
            for row in query_responses.tolist():
                # PPOTrainer treats pad tokens in a query as padding too (its attention mask).
                key = tuple(t for t in row[:context_length] if t != pad)
                if key not in contexts:
                    raise StageError("PPO scored a context it was not given: the prompts and the episodes disagree")
                found.append(contexts[key])
                texts.append(rl.decode_completion(tokenizer, row[context_length:]))
            totals = [s.total for s in scorer.batch(texts, found)]
            return torch.tensor(totals, dtype=torch.float32, device=query_responses.device)

    return BehavioralReward()


@contextmanager
def scoring_through(reward):
    """While PPOTrainer trains, its reward calls for `reward` go to `reward.scores` (trl 1.12's PPOTrainer
    looks `get_reward` up in its module each time; its value model's calls pass through unchanged)."""
    from trl.experimental.ppo import ppo_trainer

    original = ppo_trainer.get_reward

    def get_reward(model, query_responses, pad_token_id, context_length):
        if model is reward:
            return None, reward.scores(query_responses, context_length), None
        return original(model, query_responses, pad_token_id, context_length)

    ppo_trainer.get_reward = get_reward
    try:
        yield
    finally:
        ppo_trainer.get_reward = original


def episode_rewards(
    model,
    tokenizer,
    rows,
    max_new_tokens,
    scorer,
    reward_model=None,
    batch_size=8,
    *,
    samples: int = 4,
    temperature: float = 0.7,
    seed: int = 0,
    missing_eos_penalty: float = 0.0,
) -> dict:
    """Responses to `rows` scored by the behavioral reward (and the reward model, when given), measured
    alike before and after training: `samples` seeded samples per context at the episode temperature,
    generated and scored as PPOTrainer does (top_k 0, cut after the end-of-turn token, a reward model's
    score read there); samples=0: one greedy response.

    `behavioral` is the behavioral reward (with its `components`), `reward_model` the reward model's raw
    score; `reward` is what PPO maximises: the score it trains on (the reward model's when given, else
    the behavioral one) less `missing_eos_penalty` for a response that never ended; `ended` the share
    that ended."""
    import statistics

    import torch

    torch.manual_seed(seed)
    n = max(samples, 1)
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    model_scores, behavioral, ended = [], [], []
    components: dict[str, list[float]] = {}
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            enc = tokenizer([r["prompt"] for r in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=samples > 0,
                    num_return_sequences=n,
                    temperature=temperature if samples > 0 else None,
                    top_k=0 if samples > 0 else None,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
                width = enc["input_ids"].shape[1]
                chunk = [row for row in chunk for _ in range(n)]  # generate() repeats each prompt n times
                full = []
                for row, ids in zip(chunk, out[:, width:]):
                    score = scorer.score(row["context"], rl.decode_completion(tokenizer, ids))
                    behavioral.append(score.total)
                    for name, comp in score.components.items():
                        components.setdefault(name, []).append(comp.score)
                    ids = ids.tolist()
                    ended.append(tokenizer.eos_token_id in ids)
                    if ended[-1]:
                        ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
                    ids = [t for t in ids if t != tokenizer.pad_token_id]
                    full.append(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"] + ids)
                if reward_model is not None:
                    w = max(len(f) for f in full)
                    ids = torch.tensor([f + [tokenizer.pad_token_id] * (w - len(f)) for f in full])
                    mask = torch.tensor([[1] * len(f) + [0] * (w - len(f)) for f in full])
                    model_scores.extend(reward_model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist())
    finally:
        tokenizer.padding_side = side
    trained_on = model_scores if reward_model is not None else behavioral
    rewards = [s - (0 if e else missing_eos_penalty) for s, e in zip(trained_on, ended)]
    out = {
        "behavioral": statistics.fmean(behavioral),
        "components": {k: statistics.fmean(v) for k, v in components.items()},
        "reward": statistics.fmean(rewards),
        "ended": statistics.fmean(ended),
        "n": len(behavioral),
        "contexts": len(rows),
        "sampled": samples > 0,
    }
    if reward_model is not None:
        out["reward_model"] = statistics.fmean(model_scores)
    return out


STEP_KEYS = {
    "objective/scores": "score_mean",
    "objective/kl": "kl",
    "objective/rlhf_reward": "rlhf_reward",
    "objective/non_score_reward": "kl_penalty",
    "objective/entropy": "entropy",
    "loss/policy_avg": "policy_loss",
    "loss/value_avg": "value_loss",
    "policy/approxkl_avg": "approx_kl",
    "policy/clipfrac_avg": "clip_fraction",
}


def _reward_run(db, settings: PPOSettings) -> dict[str, Any] | None:
    """The reward model's run with `--reward model` (checked against the policy's base), else None."""
    if settings.reward != "model":
        return None
    from .reward_model import reward_run

    run = reward_run(db, settings.reward_run)
    settings.reward_run = str(run["id"])
    if run["base_model"] != settings.base:
        raise ConfigError(
            f"reward run {run['id']} is for base {run['base_model']}, the policy's is {settings.base}: "
            "they must share a tokenizer (pass --reward-run with a run on the same base)"
        )
    return run


def _reward_and_value(settings: PPOSettings, rm_run, precision, tokenizer, rows, scorer, sft_adapter):
    """(what scores episodes, the value model): the reward run's model and a value model initialised
    from it, or the behavioral reward and a value model on the SFT policy's backbone."""
    from .reward_model import load_reward_run, load_sequence_classifier

    if rm_run is not None:
        reward_model, _ = load_reward_run(rm_run, precision, settings.load_in_4bit)
        return reward_model, _value_model(reward_model, settings)
    assert settings.base is not None  # rl.fill_from_parent set it
    backbone = load_sequence_classifier(
        settings.base, precision, settings.load_in_4bit, (sft_adapter,), trainable=False
    )
    backbone.config.pad_token_id = tokenizer.pad_token_id
    # Values start at 0: until the value model has learned, an episode's advantage is its own reward
    # (whitened over the batch), not that reward plus the noise of a randomly initialised head.
    import torch

    torch.nn.init.zeros_(backbone.score.weight)
    return behavioral_reward_model(tokenizer, rows, scorer), _value_model(backbone, settings)


def train_ppo(settings: PPOSettings, db, *, parent=None, callbacks: tuple = (), echo=progress.echo) -> dict[str, Any]:
    """Train, record the run (kind `ppo`, parent: the SFT run), return its final `runs` row."""
    from ..behavioral_reward import RewardScorer

    loading.require()
    sft = rl.sft_parent(db, settings.sft_run)
    settings.sft_run = str(sft["id"])
    rl.fill_from_parent(settings, sft)
    sft_adapter = sft["metrics"]["adapter"]
    rm_run = _reward_run(db, settings)
    start_adapter, steps_done = sft_adapter, 0
    if parent:
        checkpoint = runs.last_checkpoint(parent["output_dir"])
        assert checkpoint is not None  # runs.resumable_run refuses a run without one
        start_adapter, steps_done = str(checkpoint), int(checkpoint.name.rsplit("-", 1)[-1])
        if steps_done >= settings.max_steps:
            raise ConfigError(
                f"run {parent['id']} already reached step {steps_done} of {settings.max_steps}: "
                "pass a larger --max-steps"
            )
    run = RLRun.start(db, "ppo", settings, sft, parent, echo)
    output_dir = run.output_dir
    if parent:
        echo(f"Resuming run {parent['id']} from {start_adapter} (step {steps_done}; optimizer and value model restart)")
    with run:
        runs.set_cpu_threads(settings.cpu_threads)
        from transformers import set_seed

        # Seed everything here: the value model's LoRA init draws from torch's global generator and
        # PPOTrainer shuffles minibatches with numpy's (never seeded by it), so without this a run
        # depended on what the process had done before and differed between processes.
        set_seed(settings.seed)
        precision = loading.resolve_precision(settings.precision)
        tokenizer = rl.load_tokenizer(settings, sft_adapter)
        tokenizer.padding_side = "left"
        rows, prompt_stats = rl.build_prompts(settings, db, tokenizer)
        echo(f"{prompt_stats['prompts']} contexts from {settings.dataset} ({prompt_stats['too_long']} too long)")
        scorer = RewardScorer(settings.weights or None)
        reward_model, value = _reward_and_value(settings, rm_run, precision, tokenizer, rows, scorer, sft_adapter)
        policy = rl.load_policy(settings, precision, start_adapter)
        reference = rl.load_policy(settings, precision, sft_adapter, trainable=False)
        reference.eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        model_for_scores = reward_model if rm_run is not None else None

        def measure(model):
            return episode_rewards(
                model,
                tokenizer,
                eval_rows,
                settings.response_length,
                scorer,
                model_for_scores,
                samples=settings.eval_samples,
                temperature=settings.temperature,
                seed=settings.seed,
                missing_eos_penalty=settings.missing_eos_penalty,
            )

        eval_rows = rows[: settings.eval_prompts]
        before = None
        if parent:
            before = (parent.get("metrics") or {}).get("reward_before")
        elif eval_rows:
            before = measure(policy)
        policy.train()

        from datasets import Dataset
        from trl.experimental.ppo import PPOTrainer

        def tokenized(part):
            return Dataset.from_list(
                [{"input_ids": tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]} for r in part]
            )

        stop = _stop_after_save()
        trainer = PPOTrainer(
            args=_ppo_config(settings, output_dir, settings.max_steps - steps_done),
            processing_class=tokenizer,
            model=policy,
            ref_model=reference,
            reward_model=reward_model,
            value_model=value,
            train_dataset=tokenized(rows),
            eval_dataset=tokenized(rows[: settings.batch_size]),
            callbacks=[stop, *callbacks],
        )
        stop.install()
        interrupted = False
        try:
            # A learned reward model PPOTrainer calls itself; the behavioral one through scoring_through.
            with scoring_through(reward_model) if rm_run is None else nullcontext():
                trainer.train()
        except _Interrupted:
            interrupted = True
        finally:
            stop.uninstall()
        steps = rl.step_log(trainer.state.log_history, STEP_KEYS)
        for s in steps:
            s["step"] += steps_done
        metrics: dict[str, Any] = {
            "steps": trainer.state.global_step + steps_done,
            "episodes": trainer.state.episode,
            "sft_run": sft["id"],
            "sft_adapter": sft_adapter,
            "reward": settings.reward,
            "reward_run": rm_run["id"] if rm_run else None,
            "resumed_from": start_adapter if parent else None,
            "train_seconds": time.time() - run.started,
            **prompt_stats,
            "kl_coef": settings.kl_coef,
            "step_log": steps,
            "reward_first": steps[0].get("score_mean") if steps else None,
            "reward_last": steps[-1].get("score_mean") if steps else None,
            "kl_last": steps[-1].get("kl") if steps else None,
            "reward_before": before,
        }
        if interrupted:
            metrics["last_checkpoint"] = str(runs.last_checkpoint(output_dir) or "")
            return run.interrupted(metrics)
        if eval_rows:
            metrics["reward_after"] = measure(trainer.model.policy)
        adapter_dir = rl.save_adapter(trainer.model.policy, tokenizer, output_dir / "adapter")
        meta = {
            "base": settings.base,
            "sft_run": sft["id"],
            "reward": settings.reward,
            "reward_run": metrics["reward_run"],
        }
        return run.completed(metrics, adapter_dir, "adapter", meta)
