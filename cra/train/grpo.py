"""`cra train grpo`: GRPO from an SFT adapter, rewarded by the behavioral reward (cra/behavioral_reward).

For each real context (the conversation before one of Claude's actions) the policy samples
`num_generations` next messages; each is scored against what Claude did there (no tool runs) and
the group's relative rewards are the advantages. The policy is the SFT run's adapter, trained
further; the reference for the KL penalty (beta > 0) is a frozen copy of that same SFT adapter
(TRL keeps it as a second adapter named "ref"). The run's directory holds `checkpoints/` (resumable),
`adapter/` (same shape as SFT's, for the same base) and `summary.json`; `runs` records its parent
SFT run, per-step reward statistics (mean, std, each component), KL, and the mean reward of greedy
completions on training contexts before and after.

    cra train grpo                       # from the newest completed SFT run, on its dataset
    cra train grpo --sft-run 3 --max-steps 200 --beta 0.04 --num-generations 8
    cra train grpo --resume              # after Ctrl-C or a crash
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from .. import progress
from . import loading, rl, runs
from .lifecycle import RLRun, make_graceful_stop
from .rl import RLSettings


class GRPOSettings(RLSettings):
    """GRPO of the SFT adapter with the behavioral reward and a KL penalty to the SFT policy."""

    num_generations: int = Field(4, ge=2, description="Completions sampled per context (the group).")
    max_completion_length: int = Field(256, ge=8, description="Longest completion in tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (the group needs diversity).")
    beta: float = Field(0.04, ge=0, description="KL penalty to the SFT policy (0 turns the reference off).")
    weights: str = Field(
        "", description="Reward weights: name=value,... or a .json/.toml file (none: the defaults, docs/rl.md)."
    )

    @model_validator(mode="after")
    def _groups_fit(self):
        processes = int(os.environ.get("WORLD_SIZE", "1"))  # under accelerate launch, a group spans ranks
        if (self.batch_size * self.grad_accum * processes) % self.num_generations:
            raise ValueError(
                f"batch_size x grad_accum x processes ({self.batch_size} x {self.grad_accum} x {processes}) must "
                f"be a multiple of num_generations ({self.num_generations}): each step scores whole groups"
            )
        if self.weights:
            from ..behavioral_reward import parse_weights

            parse_weights(self.weights)  # a typo fails now, not after the model loaded
        return self


def _grpo_config(settings: GRPOSettings, output_dir: Path, weights: list[float]):
    from trl import GRPOConfig

    return GRPOConfig(
        **runs.trainer_args(settings, output_dir),
        max_steps=settings.max_steps,
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        beta=settings.beta,
        reward_weights=weights,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,
        save_steps=settings.save_steps,
        logging_first_step=True,
        data_seed=settings.seed,
        remove_unused_columns=False,  # the reward reads the `context` column
        log_completions=False,
    )


STEP_KEYS = {
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "kl": "kl",
    "loss": "loss",
    "frac_reward_zero_std": "groups_without_variance",
    "completions/mean_length": "completion_length",
}


def train_grpo(
    settings: GRPOSettings,
    db,
    *,
    parent: dict[str, Any] | None = None,
    callbacks: tuple = (),
    echo=progress.echo,
) -> dict[str, Any]:
    """Train, record the run, return its final `runs` row. `parent`: an interrupted grpo run to resume."""
    from ..behavioral_reward import COMPONENTS, RewardScorer

    loading.require()
    sft = rl.sft_parent(db, settings.sft_run)
    settings.sft_run = str(sft["id"])  # recorded as resolved: a resume starts from the same adapter
    rl.fill_from_parent(settings, sft)
    sft_adapter = sft["metrics"]["adapter"]
    resume_from = runs.last_checkpoint(parent["output_dir"]) if parent else None

    run = RLRun.start(db, "grpo", settings, sft, parent, echo)
    output_dir, echo = run.output_dir, run.echo  # (rank 0's voice under accelerate launch)
    if parent and resume_from:
        echo(f"Resuming run {parent['id']} from {resume_from}")
    with run:
        runs.set_cpu_threads(settings.cpu_threads)
        precision = loading.resolve_precision(settings.precision)
        tokenizer = rl.load_tokenizer(settings, sft_adapter)
        rows, prompt_stats = rl.build_prompts(settings, db, tokenizer)
        echo(f"{prompt_stats['prompts']} contexts from {settings.dataset} ({prompt_stats['too_long']} too long)")
        model = rl.load_policy(settings, precision, sft_adapter)

        scorer = RewardScorer(settings.weights or None)
        funcs, weights = scorer.reward_functions()
        funcs = [_decoding(f, tokenizer) for f in funcs]
        eval_rows = rows[: settings.eval_prompts]
        before = None
        if parent and resume_from:  # the starting adapter was scored when the interrupted run began
            before = (parent.get("metrics") or {}).get("reward_before")
        elif eval_rows and run.main:  # (a measure for the record: rank 0's)
            before = _expected_reward(model, tokenizer, eval_rows, scorer, settings)

        from datasets import Dataset
        from trl import GRPOTrainer

        stop = make_graceful_stop()
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=_grpo_config(settings, output_dir, weights),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[stop, *callbacks],
        )
        result = stop.train(trainer, resume_from)

        keys = dict(STEP_KEYS)
        for name in COMPONENTS:
            keys[f"rewards/{name}/mean"] = f"{name}_mean"
            keys[f"rewards/{name}/std"] = f"{name}_std"
        steps = rl.step_log(trainer.state.log_history, keys)
        metrics: dict[str, Any] = {
            "steps": trainer.state.global_step,
            "sft_run": sft["id"],
            "sft_adapter": sft_adapter,
            "train_loss": result.training_loss,
            "train_seconds": result.metrics.get("train_runtime"),
            **prompt_stats,
            "beta": settings.beta,
            "reward_weights": dict(zip(COMPONENTS, weights)),
            "step_log": steps,
            "reward_first": steps[0].get("reward_mean") if steps else None,
            "reward_last": steps[-1].get("reward_mean") if steps else None,
            "kl_last": next((s["kl"] for s in reversed(steps) if "kl" in s), None),
            "reward_before": before,
            "last_checkpoint": str(runs.last_checkpoint(output_dir) or ""),
            "processes": run.launch.world_size,
        }
        if stop.requested:
            return run.interrupted(metrics)
        if not run.main:
            return runs.get_run(db, run.id)  # rank 0 measures, saves and records the result
        if eval_rows:
            metrics["reward_after"] = _expected_reward(trainer.model, tokenizer, eval_rows, scorer, settings)
        adapter_dir = rl.save_adapter(trainer.model, tokenizer, output_dir / "adapter")
        return run.completed(metrics, adapter_dir, "adapter", {"base": settings.base, "sft_run": sft["id"]})


def _expected_reward(model, tokenizer, rows, scorer, settings: GRPOSettings) -> dict:
    """What GRPO maximises, measured the same way before and after: seeded samples per context."""
    return rl.mean_reward(
        model,
        tokenizer,
        rows,
        scorer,
        settings.max_completion_length,
        samples=settings.num_generations,
        temperature=settings.temperature,
        seed=settings.seed,
    )


def _decoding(func, tokenizer):
    """TRL decodes completions without special tokens, which can drop <tool_call> markers: score the ids."""

    def reward(prompts=None, completions=None, completion_ids=None, **kwargs):
        if completion_ids is not None:
            completions = [rl.decode_completion(tokenizer, ids) for ids in completion_ids]
        return func(prompts=prompts, completions=completions, **kwargs)

    reward.__name__ = func.__name__
    reward.__doc__ = func.__doc__
    return reward
